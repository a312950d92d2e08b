/**
 * AdsClient: an xDS client over one ADS stream (SotW or delta), for any Node program.
 *
 *   subscribe()/unsubscribe() ──► SubscriptionStore ◄── resumes ── Session (one per stream)
 *                                   (wanted + held)                 SotwSession | DeltaSession
 *                                                                     │ validate → ACK/NACK
 *   'update' / 'nack' / 'connected' / 'disconnected'  ◄───────────────┘
 *
 * setNode() replaces the node: an open stream sends it on one request that is neither an
 * ACK/NACK nor a subscription change (so the server answers nothing), and every later
 * stream opens with it.
 *
 * The store outlives streams; a stream that ends (server gone, error, GOAWAY) is replaced
 * after an exponential backoff with jitter, and the new one re-subscribes everything with
 * what is held (SotW version_info, delta initial_resource_versions). The backoff restarts
 * from its first step once a stream has had a response accepted.
 *
 * Each stream gets its own grpc-js channel with a private subchannel pool, so its own
 * connection, closed with it. A new stream therefore never lands on the previous stream's
 * connection while that one is going away (GOAWAY), and the channel reaching READY proves a
 * connection to the server was made for this stream: that is 'connected'. (With a shared
 * channel, READY can be stale: the next call then fails to connect after 'connected'.)
 */
import { EventEmitter } from 'node:events';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { ChannelCredentials, connectivityState, makeGenericClientConstructor, type ChannelOptions, type ClientDuplexStream } from '@grpc/grpc-js';
import type { NodeSchema } from '../gen/envoy/config/core/v3/base_pb.js';
import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse } from '../gen/envoy/service/discovery/v3/discovery_pb.js';
import { getResourceType } from '../resources/registry.ts';
import { ADS_SERVICE } from '../transport/ads-service.ts';
import type { ExponentialBackoff } from './backoff.ts';
import { DeltaSession } from './delta-session.ts';
import { ClientClosedError, InvalidOptionError } from './errors.ts';
import { resolveNode, resolveOptions, type AdsClientConfig, type AdsClientOptions } from './options.ts';
import { SotwSession } from './sotw-session.ts';
import type { Session, SessionHost, UpdateInfo } from './stream-session.ts';
import { SubscriptionStore, type ResourceMap } from './subscriptions.ts';

export type { UpdateInfo } from './stream-session.ts';
export type { ResourceMap, XdsResource } from './subscriptions.ts';

// The events of an AdsClient; listeners run synchronously on the stream's event and must not throw.
export type AdsClientEvents = {
  /** A response was accepted and ACKed: `resources` is the full state of the type now held. */
  update: [typeUrl: string, resources: ResourceMap, info: UpdateInfo];
  /** A response was rejected and NACKed (the previous state stays): every problem, one per line. */
  nack: [typeUrl: string, error: string];
  /** A stream reached the server: a connection was made for it, or a response arrived. */
  connected: [];
  /** A connected stream ended; `reason` is its gRPC status (`UNAVAILABLE: ...`) or "client closed". */
  disconnected: [reason: string];
};

/** What the client holds of one type. */
export interface TypeState {
  /** Last accepted version (SotW version_info, delta system_version_info); '' before any. */
  readonly version: string;
  readonly resources: ResourceMap;
}

const EMPTY: ResourceMap = new Map();
const MAX_RECEIVE_BYTES = 64 * 1024 * 1024;
const AdsServiceClient = makeGenericClientConstructor(ADS_SERVICE, 'AggregatedDiscoveryService');
const CHANNEL_OPTIONS: Partial<ChannelOptions> = Object.freeze({
  // A connection of its own per stream (see the header comment).
  'grpc.use_local_subchannel_pool': 1,
  'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
  // TLS: no SNI from an IP address (RFC 6066 forbids it; Node warns); the server is checked by
  // its certificate (checkServerIdentity), not by this name.
  'grpc.ssl_target_name_override': 'xds.palisade.invalid',
});

export class AdsClient extends EventEmitter<AdsClientEvents> {
  #config: AdsClientConfig;
  readonly #backoff: ExponentialBackoff;
  readonly #store = new SubscriptionStore();
  readonly #host: SessionHost;
  #phase: 'new' | 'started' | 'closed' = 'new';
  #grpc: InstanceType<typeof AdsServiceClient> | undefined;
  #session: Session | undefined;
  #connected = false;
  #retryTimer: NodeJS.Timeout | undefined;

  /** Validates the options; throws PAL_ERR_XDS_CLIENT_INVALID_OPTION naming every bad one. Does not connect. */
  constructor(options: AdsClientOptions) {
    super();
    const { config, backoff } = resolveOptions(options);
    this.#config = config;
    this.#backoff = backoff;
    this.#host = {
      store: this.#store,
      node: () => this.#config.node,
      validators: config.validators,
      accepted: (session, typeUrl, resources, info) => {
        if (session !== this.#session) return;
        this.#backoff.reset();
        this.emit('update', typeUrl, resources, info);
      },
      rejected: (session, typeUrl, error) => {
        if (session === this.#session) this.emit('nack', typeUrl, error);
      },
      responded: (session) => this.#markConnected(session),
      ended: (session, reason) => this.#ended(session, reason),
    };
  }

  /** The validated, frozen options; `node` is the current one (see setNode). */
  get config(): AdsClientConfig {
    return this.#config;
  }

  /**
   * Replaces the node (e.g. new metadata such as readiness). Validated as the node option:
   * throws PAL_ERR_XDS_CLIENT_INVALID_OPTION for a bad one, keeping the old. If a stream is
   * open, the node is sent at once on one request for a subscribed type, which the server
   * takes as no ACK/NACK and answers with nothing; with nothing subscribed yet it goes on the
   * first subscription's request. With no stream open, the next stream opens with it, as
   * does every reconnect.
   */
  setNode(node: MessageInitShape<typeof NodeSchema>): void {
    if (this.#phase === 'closed') throw new ClientClosedError('setNode');
    const resolved = resolveNode(node);
    if (typeof resolved === 'string') throw new InvalidOptionError(`invalid node: ${resolved}`);
    this.#config = Object.freeze({ ...this.#config, node: resolved });
    this.#session?.nodeChanged();
  }

  /**
   * Replaces the channel credentials for the next connection (e.g. a renewed client
   * certificate); the stream that is up keeps its connection, as TLS does.
   */
  setCredentials(credentials: ChannelCredentials): void {
    if (this.#phase === 'closed') throw new ClientClosedError('setCredentials');
    if (!(credentials instanceof ChannelCredentials)) throw new InvalidOptionError('credentials must be a grpc-js ChannelCredentials');
    this.#config = Object.freeze({ ...this.#config, credentials });
  }

  /** True while a stream is up (between 'connected' and 'disconnected'). */
  get connected(): boolean {
    return this.#connected;
  }

  /** Opens the stream; subscriptions made before are sent on it. A second call does nothing. */
  start(): void {
    if (this.#phase === 'closed') throw new ClientClosedError('start');
    if (this.#phase === 'started') return;
    this.#phase = 'started';
    this.#connect();
  }

  /**
   * Subscribes to resources of a type: names, or '*' for all of them (wildcard). Adds to
   * what is subscribed already; kept across reconnects. Throws PAL_ERR_XDS_UNKNOWN_TYPE for
   * a type URL the registry does not know, PAL_ERR_XDS_CLIENT_INVALID_ARGUMENT for bad names.
   */
  subscribe(typeUrl: string, names: readonly string[] | '*'): void {
    if (this.#phase === 'closed') throw new ClientClosedError('subscribe');
    const change = this.#store.subscribe(typeUrl, names);
    if (change.subscribe.length > 0) this.#session?.subscriptionChanged(typeUrl, change, this.#store.get(typeUrl));
  }

  /**
   * Removes names (or '*') from a subscription. Held resources no longer subscribed are
   * dropped from the state at once, without an 'update'.
   */
  unsubscribe(typeUrl: string, names: readonly string[] | '*'): void {
    if (this.#phase === 'closed') throw new ClientClosedError('unsubscribe');
    const change = this.#store.unsubscribe(typeUrl, names);
    if (change.unsubscribe.length > 0) this.#session?.subscriptionChanged(typeUrl, change, this.#store.get(typeUrl));
  }

  /** The accepted state of a type: empty with version '' before any. Throws PAL_ERR_XDS_UNKNOWN_TYPE. */
  state(typeUrl: string): TypeState {
    getResourceType(typeUrl);
    const rec = this.#store.get(typeUrl);
    return { version: rec?.version ?? '', resources: rec?.resources ?? EMPTY };
  }

  /** Ends the stream, stops reconnecting and closes the channel: no timer or socket is left. Idempotent. */
  close(): void {
    if (this.#phase === 'closed') return;
    this.#phase = 'closed';
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const session = this.#session;
    this.#session = undefined;
    session?.cancel();
    this.#grpc?.close();
    this.#grpc = undefined;
    if (this.#connected) {
      this.#connected = false;
      this.emit('disconnected', 'client closed');
    }
  }

  #connect(): void {
    this.#retryTimer = undefined;
    if (this.#phase !== 'started') return;
    const grpc = new AdsServiceClient(this.#config.address, this.#config.credentials, CHANNEL_OPTIONS);
    this.#grpc = grpc;
    const session = this.#config.protocol === 'sotw'
      ? new SotwSession(this.#host, grpc.streamAggregatedResources!() as ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>)
      : new DeltaSession(this.#host, grpc.deltaAggregatedResources!() as ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>);
    this.#session = session;
    session.open();
    this.#watchReady(session, grpc.getChannel());
  }

  /** Marks the session connected when its channel, a connection of its own, becomes READY. */
  #watchReady(session: Session, channel: ReturnType<InstanceType<typeof AdsServiceClient>['getChannel']>): void {
    const check = (): void => {
      if (session !== this.#session || session.done || this.#connected) return;
      const state = channel.getConnectivityState(false);
      if (state === connectivityState.READY) this.#markConnected(session);
      else if (state !== connectivityState.SHUTDOWN) channel.watchConnectivityState(state, Infinity, check);
    };
    check();
  }

  #markConnected(session: Session): void {
    if (session !== this.#session || this.#connected) return;
    this.#connected = true;
    this.emit('connected');
  }

  #ended(session: Session, reason: string): void {
    if (session !== this.#session) return;
    this.#session = undefined;
    this.#grpc?.close();
    this.#grpc = undefined;
    if (this.#connected) {
      this.#connected = false;
      this.emit('disconnected', reason);
    }
    // A 'disconnected' listener may have closed the client.
    if (this.#phase !== 'started') return;
    this.#retryTimer = setTimeout(() => this.#connect(), this.#backoff.next());
  }
}
