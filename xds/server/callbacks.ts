import type { PeerCertificate } from 'node:tls';
import type { Node } from '../gen/envoy/config/core/v3/base_pb.js';

/** What the server knows of one ADS stream; handed to every callback. */
export interface StreamInfo {
  /** Unique per server process, increasing. */
  readonly id: number;
  readonly protocol: 'sotw' | 'delta';
  /** The peer's address as grpc-js reports it (e.g. "ipv4:127.0.0.1:51234"). */
  readonly peer: string;
  readonly openedAt: Date;
  /**
   * The peer's TLS certificate when the stream runs over TLS and the client sent one (its
   * `subjectaltname` holds the SPIFFE ID of an SVID); null otherwise.
   */
  readonly peerCertificate: PeerCertificate | null;
  /** Set from the first request that carries one. */
  node: Node | undefined;
  group: string | undefined;
}

/**
 * Hooks into the stream lifecycle, as go-control-plane's server Callbacks. All optional;
 * they run synchronously on the event loop, so keep them cheap.
 */
export interface ServerCallbacks {
  onStreamOpen?(info: StreamInfo): void;
  /** The first request with a node arrived and the stream joined its node group. */
  onStreamNode?(info: StreamInfo): void;
  /** A later request carried the node again; info.node is the new one (the group stays). */
  onStreamNodeUpdate?(info: StreamInfo): void;
  onStreamClosed?(info: StreamInfo, reason: string): void;
  onResponse?(info: StreamInfo, typeUrl: string, version: string, nonce: string, resourceCount: number): void;
  onAck?(info: StreamInfo, typeUrl: string, version: string, nonce: string): void;
  onNack?(info: StreamInfo, typeUrl: string, version: string, nonce: string, error: string): void;
  /**
   * A request named resources: SotW the whole subscribed set, delta the names it adds.
   * Called after the stream joined its group, before the request is answered.
   */
  onResourceNames?(info: StreamInfo, typeUrl: string, names: readonly string[]): void;
  /** A request that was not understood: unknown type URL, missing node. */
  onIgnoredRequest?(info: StreamInfo, typeUrl: string, reason: string): void;
}

/**
 * Decides whether a stream may be served for `node`: null allows it, a string refuses it
 * (the stream ends with PERMISSION_DENIED and that reason). Called on the first request
 * carrying a node and again whenever a later request carries a node.
 */
export type StreamAuthorizer = (node: Node, info: StreamInfo) => string | null;
