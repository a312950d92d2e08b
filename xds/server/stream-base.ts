/**
 * What SotW and delta streams share: joining a node group on the first request that
 * names a node, watching that group's snapshot, writing with backpressure awareness,
 * and tearing down once.
 */
import { status, type ServerDuplexStream } from '@grpc/grpc-js';
import { findResourceType, type ResourceType } from '../resources/registry.ts';
import type { Node } from '../gen/envoy/config/core/v3/base_pb.js';
import type { Snapshot } from '../cache/snapshot.ts';
import type { SnapshotCache } from '../cache/snapshot-cache.ts';
import type { ServerCallbacks, StreamAuthorizer, StreamInfo } from './callbacks.ts';

export interface StreamDeps {
  readonly cache: SnapshotCache;
  /** Maps a node (and its stream: peer certificate) to its group; streams of one group share snapshots. */
  readonly nodeGroup: (node: Node, info: StreamInfo) => string;
  /** Called before a group's snapshot is first read, so the owner can build it lazily. */
  readonly ensureGroup?: ((group: string, node: Node) => void) | undefined;
  readonly callbacks: ServerCallbacks;
  readonly onClosed?: ((stream: object) => void) | undefined;
  /** Refuses streams whose node the peer may not speak for; none: every stream is served. */
  readonly authorize?: StreamAuthorizer | undefined;
}

let nextStreamId = 1;

export abstract class StreamBase<Req, Res> {
  readonly info: StreamInfo;
  protected readonly deps: StreamDeps;
  protected readonly call: ServerDuplexStream<Req, Res>;
  #nonce = 0;
  #unwatch: (() => void) | undefined;
  #closed = false;

  constructor(call: ServerDuplexStream<Req, Res>, deps: StreamDeps, protocol: 'sotw' | 'delta') {
    this.call = call;
    this.deps = deps;
    const cert = call.getAuthContext().sslPeerCertificate;
    // Node reports "no certificate" as an empty object.
    const peerCertificate = cert !== undefined && cert.raw !== undefined ? cert : null;
    this.info = { id: nextStreamId++, protocol, peer: call.getPeer(), peerCertificate, openedAt: new Date(), node: undefined, group: undefined };
    deps.callbacks.onStreamOpen?.(this.info);
    call.on('data', (req: Req) => {
      if (this.#closed) return;
      try {
        this.onRequest(req);
      } catch (err) {
        this.close(`internal error: ${(err as Error).message}`);
        call.destroy(err as Error);
      }
    });
    call.on('end', () => {
      this.close('client closed the stream');
      call.end();
    });
    call.on('error', (err: Error) => this.close(`stream error: ${err.message}`));
    call.on('close', () => this.close('connection closed'));
    // A proxy that stops reading fills its flow-control window; pushes then stop (see
    // backedUp) and the latest state goes out once it drains: a slow proxy costs at most a
    // few buffered responses, never an unbounded queue of stale ones.
    call.on('drain', () => {
      const latest = this.snapshot();
      if (latest && !this.#closed) this.onSnapshot(latest);
    });
  }

  /** True while the client is not keeping up: responses are held back until 'drain'. */
  protected get backedUp(): boolean {
    return this.call.writableNeedDrain;
  }

  protected abstract onRequest(req: Req): void;
  /** The group's snapshot changed (or first became available). */
  protected abstract onSnapshot(snapshot: Snapshot): void;

  /** Joins the node's group on the first request carrying a node. Returns false if none yet. */
  protected join(node: Node | undefined): boolean {
    if (this.info.group !== undefined) {
      // A later request may carry the node again, with new metadata (readiness, labels).
      // The group stays: it was chosen on the first node.
      if (node) {
        if (!this.#authorized(node)) return false;
        this.info.node = node;
        this.deps.callbacks.onStreamNodeUpdate?.(this.info);
      }
      return true;
    }
    if (!node || !this.#authorized(node)) return false;
    this.info.node = node;
    const group = this.deps.nodeGroup(node, this.info);
    this.info.group = group;
    this.deps.ensureGroup?.(group, node);
    this.#unwatch = this.deps.cache.watch(group, () => {
      const latest = this.snapshot();
      if (latest && !this.#closed) this.onSnapshot(latest);
    });
    this.deps.callbacks.onStreamNode?.(this.info);
    return true;
  }

  /** Asks the authorizer about `node`; a refusal ends the stream with PERMISSION_DENIED. */
  #authorized(node: Node): boolean {
    const reason = this.deps.authorize?.(node, this.info) ?? null;
    if (reason === null) return true;
    this.deps.callbacks.onIgnoredRequest?.(this.info, '', `unauthorized: ${reason}`);
    this.fail(status.PERMISSION_DENIED, reason);
    return false;
  }

  /**
   * The checks every request passes first: the stream has a node (else it is closed with
   * INVALID_ARGUMENT), the peer may speak for it (else PERMISSION_DENIED) and the type URL is
   * registered (else the request is ignored).
   */
  protected admit(node: Node | undefined, typeUrl: string, what: string): ResourceType | undefined {
    if (this.#closed) return undefined;
    if (!this.join(node)) {
      if (this.#closed) return undefined;
      this.deps.callbacks.onIgnoredRequest?.(this.info, typeUrl, 'first request without node');
      this.fail(status.INVALID_ARGUMENT, `first ${what} must carry a node`);
      return undefined;
    }
    const type = findResourceType(typeUrl);
    if (!type) this.deps.callbacks.onIgnoredRequest?.(this.info, typeUrl, 'unknown type URL');
    return type;
  }

  protected snapshot(): Snapshot | undefined {
    return this.info.group === undefined ? undefined : this.deps.cache.getSnapshot(this.info.group);
  }

  protected nextNonce(): string {
    return (++this.#nonce).toString(36);
  }

  protected write(bytes: Uint8Array): void {
    if (!this.#closed) this.call.write(bytes as unknown as Res);
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unwatch?.();
    this.deps.onClosed?.(this);
    this.deps.callbacks.onStreamClosed?.(this.info, reason);
  }

  /** Ends the stream with a gRPC error status. */
  protected fail(code: number, details: string): void {
    this.close(details);
    this.call.emit('error', Object.assign(new Error(details), { code, details }));
  }

  /** Server-side end: closes the stream with status OK. */
  end(reason: string): void {
    this.close(reason);
    this.call.end();
  }
}
