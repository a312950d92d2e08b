/**
 * One ADS stream of the client, from open to status. What SotW and delta share lives here:
 * the node goes on the first request only (and once more on one request after
 * AdsClient.setNode, see nodeChanged), a stream is torn down once (by its status, or by
 * cancel), and every outcome goes to the host, the AdsClient, which owns reconnecting.
 * A session never outlives its stream: the next stream gets a new session that resumes
 * from the SubscriptionStore.
 */
import { status, type ClientDuplexStream, type StatusObject } from '@grpc/grpc-js';
import type { Message } from '@bufbuild/protobuf';
import type { Node } from '../gen/envoy/config/core/v3/base_pb.js';
import type { ResourceValidator } from './options.ts';
import type { ResourceMap, SubscriptionChange, SubscriptionStore, TypeRecord } from './subscriptions.ts';

/** The response a state came from. */
export interface UpdateInfo {
  /** SotW version_info; delta system_version_info. */
  readonly version: string;
  readonly nonce: string;
}

/** A stream as the AdsClient drives it, whatever the protocol. */
export interface Session {
  readonly done: boolean;
  /** Sends the requests that open the stream: one per subscribed type, resuming what is held. */
  open(): void;
  /** The caller changed a subscription while this stream is up. `rec` is undefined once a type has no names left. */
  subscriptionChanged(typeUrl: string, change: SubscriptionChange, rec: TypeRecord | undefined): void;
  /**
   * The host's node was replaced: the next request carries it. If the stream has already
   * sent a request, one goes now for a subscribed type, built not to be an ACK, a NACK or a
   * subscription change (see nodeRequest); with nothing subscribed, the node waits for the
   * next request.
   */
  nodeChanged(): void;
  /** Ends the stream from this side (CANCELLED); the host is not told. */
  cancel(): void;
}

export interface SessionHost {
  readonly store: SubscriptionStore;
  /** The current node (AdsClient.setNode replaces it), read when a request goes out. */
  node(): Node;
  readonly validators: Readonly<Record<string, ResourceValidator>>;
  /** A response was accepted (the store already holds it, the ACK is written). */
  accepted(session: Session, typeUrl: string, resources: ResourceMap, info: UpdateInfo): void;
  /** A response was rejected (the NACK is written, the store unchanged). */
  rejected(session: Session, typeUrl: string, error: string): void;
  /** A response arrived: the stream reached a server. */
  responded(session: Session): void;
  /** The stream is over, with the gRPC status as text. Not called after cancel(). */
  ended(session: Session, reason: string): void;
}

/** google.rpc.Code INVALID_ARGUMENT, the error_detail code of a NACK. */
export const NACK_CODE = status.INVALID_ARGUMENT;

export abstract class StreamSession<Req extends Message, Res> implements Session {
  protected readonly host: SessionHost;
  readonly #call: ClientDuplexStream<Req, Res>;
  /** The next request must carry the node: the stream's first, or the first after nodeChanged(). */
  #nodePending = true;
  #sentAny = false;
  #done = false;

  constructor(host: SessionHost, call: ClientDuplexStream<Req, Res>) {
    this.host = host;
    this.#call = call;
    call.on('data', (res: Res) => {
      if (this.#done) return;
      this.host.responded(this);
      this.onResponse(res);
    });
    // The 'status' event reports every end, errors included; this listener only keeps an
    // error status from being thrown as an unhandled 'error' event.
    call.on('error', () => {});
    call.on('status', (s: StatusObject) => this.#finish(describeStatus(s)));
  }

  get done(): boolean {
    return this.#done;
  }

  abstract open(): void;

  abstract subscriptionChanged(typeUrl: string, change: SubscriptionChange, rec: TypeRecord | undefined): void;

  protected abstract onResponse(res: Res): void;

  /**
   * A request that only restates one subscribed type (no ACK, NACK or subscription change),
   * to carry a new node; undefined when nothing is subscribed.
   */
  protected abstract nodeRequest(): Req | undefined;

  nodeChanged(): void {
    if (this.#done) return;
    this.#nodePending = true;
    // Before the first request, the node goes on it anyway.
    if (!this.#sentAny) return;
    const req = this.nodeRequest();
    if (req) this.send(req);
  }

  /** Writes a request; the first one of the stream (and the first after nodeChanged) carries the node. */
  protected send(req: Req & { node?: Node | undefined }): void {
    if (this.#done) return;
    if (this.#nodePending) {
      req.node = this.host.node();
      this.#nodePending = false;
    }
    this.#sentAny = true;
    this.#call.write(req);
  }

  cancel(): void {
    if (this.#done) return;
    this.#done = true;
    this.#call.cancel();
  }

  #finish(reason: string): void {
    if (this.#done) return;
    this.#done = true;
    this.host.ended(this, reason);
  }
}

/** `server ended the stream` for OK, else `UNAVAILABLE: No connection established...`. */
function describeStatus(s: StatusObject): string {
  if (s.code === status.OK) return 'server ended the stream';
  return `${status[s.code] ?? `code ${s.code}`}: ${s.details}`;
}
