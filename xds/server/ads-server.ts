/**
 * The ADS server: StreamAggregatedResources (SotW) and DeltaAggregatedResources over
 * grpc-js, serving whatever the SnapshotCache holds for each stream's node group.
 */
import { shutdownGracefully } from './shutdown.ts';
import { Server, ServerCredentials, type ServerDuplexStream, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Node } from '../gen/envoy/config/core/v3/base_pb.js';
import type { DeltaDiscoveryRequest, DiscoveryRequest } from '../gen/envoy/service/discovery/v3/discovery_pb.js';
import type { SnapshotCache } from '../cache/snapshot-cache.ts';
import { ADS_SERVICE } from '../transport/ads-service.ts';
import type { ServerCallbacks, StreamAuthorizer, StreamInfo } from './callbacks.ts';
import { DeltaStream } from './delta-stream.ts';
import { SotwStream } from './sotw-stream.ts';
import type { StreamDeps } from './stream-base.ts';

export interface AdsServerOptions {
  cache: SnapshotCache;
  /**
   * Node → group key. Default: node.cluster, or "default". `info` is the stream's (its
   * peer certificate, for groups per authenticated identity); called once the stream is authorized.
   */
  nodeGroup?: (node: Node, info: StreamInfo) => string;
  /** Called when a stream first needs a group's snapshot; may set it synchronously. */
  ensureGroup?: (group: string, node: Node) => void;
  callbacks?: ServerCallbacks;
  /** Server credentials; insecure (plaintext) by default, for loopback. */
  credentials?: ServerCredentials;
  /** Refuses streams whose node the peer may not speak for (e.g. by its SVID); none: all served. */
  authorize?: StreamAuthorizer;
}

export class AdsServer {
  readonly #server: Server;
  readonly #deps: StreamDeps;
  readonly #credentials: ServerCredentials;
  readonly #streams = new Set<SotwStream | DeltaStream>();

  constructor(options: AdsServerOptions) {
    this.#deps = {
      cache: options.cache,
      nodeGroup: options.nodeGroup ?? ((node) => node.cluster || 'default'),
      ensureGroup: options.ensureGroup,
      callbacks: options.callbacks ?? {},
      onClosed: (stream) => this.#streams.delete(stream as SotwStream | DeltaStream),
      authorize: options.authorize,
    };
    this.#credentials = options.credentials ?? ServerCredentials.createInsecure();
    this.#server = new Server({
      // Proxies hold their stream for hours; keepalive finds dead peers.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
      'grpc.max_send_message_length': 64 * 1024 * 1024,
    });
    this.#server.addService(ADS_SERVICE, {
      streamAggregatedResources: (call: ServerDuplexStream<DiscoveryRequest, Uint8Array>) => this.#track(new SotwStream(call, this.#deps)),
      deltaAggregatedResources: (call: ServerDuplexStream<DeltaDiscoveryRequest, Uint8Array>) =>
        this.#track(new DeltaStream(call, this.#deps)),
    });
  }

  /**
   * Serves another gRPC service on the same server, ports and credentials (e.g. LRS next to
   * ADS). Call before listen().
   */
  addService(service: ServiceDefinition, implementation: UntypedServiceImplementation): void {
    this.#server.addService(service, implementation);
  }

  #track(stream: SotwStream | DeltaStream): void {
    if (!stream.closed) this.#streams.add(stream);
  }

  get streamCount(): number {
    return this.#streams.size;
  }

  /**
   * Binds `host:port` (port 0 picks one) and resolves with the bound port. Another call binds
   * another port of the same server, e.g. a plaintext one next to the mTLS one
   * (`credentials`; default the server's).
   */
  listen(address: string, credentials: ServerCredentials = this.#credentials): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
    });
  }

  /** Stops accepting, ends every stream, and resolves once the server is shut down. */
  async close(graceMs = 1000): Promise<void> {
    for (const s of [...this.#streams]) s.end('server shutting down');
    await shutdownGracefully(this.#server, graceMs);
  }
}
