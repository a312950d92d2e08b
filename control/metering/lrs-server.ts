/**
 * The control plane's LRS endpoint (issue #7): envoy.service.load_stats.v3.LoadReportingService
 * StreamLoadStats, served on the xDS gRPC server (same ports, TLS and stream authorizer as ADS).
 *
 *   → LoadStatsRequest{node}          authorized as an ADS stream is (PERMISSION_DENIED if not)
 *   ← LoadStatsResponse{send_all_clusters: true, load_reporting_interval: the Mesh's}
 *   → LoadStatsRequest{cluster_stats} each one a `report` event (node, stats, receivedAt)
 *
 * A new interval (the Mesh's metering.reportInterval changed) is sent to every open stream.
 * The first request must carry the node; later ones may (Envoy sends it only first).
 */
import { EventEmitter } from 'node:events';
import { create } from '@bufbuild/protobuf';
import { DurationSchema } from '@bufbuild/protobuf/wkt';
import { status, type ServerDuplexStream, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Node } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { ClusterStats } from '../../xds/gen/envoy/config/endpoint/v3/load_report_pb.js';
import {
  LoadStatsResponseSchema, type LoadStatsRequest, type LoadStatsResponse,
} from '../../xds/gen/envoy/service/load_stats/v3/lrs_pb.js';
import type { StreamAuthorizer, StreamInfo } from '../../xds/server/callbacks.ts';
import { LRS_METHOD_PATH, LRS_SERVICE } from '../../xds/transport/lrs-service.ts';

export { LRS_METHOD_PATH, LRS_SERVICE };

export type LoadReportEvents = {
  /** One LoadStatsRequest with cluster stats from an authorized stream. Listeners must not throw. */
  report: [node: Node, stats: ClusterStats[], receivedAt: Date];
};

export interface LrsServerOptions {
  /** The reporting interval asked of every stream, ms, read when a stream starts and on setInterval(). */
  readonly intervalMs: () => number;
  /** Who may report for which node (ADS's authorizer); none: every stream. */
  readonly authorize?: StreamAuthorizer;
  /** A stream refused or broken, for the log. */
  readonly onRefused?: (peer: string, reason: string) => void;
}

interface LrsStream {
  readonly call: ServerDuplexStream<LoadStatsRequest, LoadStatsResponse>;
  node: Node | undefined;
}

let nextStreamId = 1;

export class LrsServer extends EventEmitter<LoadReportEvents> {
  readonly #o: LrsServerOptions;
  readonly #streams = new Set<LrsStream>();
  #lastInterval = 0;
  #reports = 0;

  constructor(options: LrsServerOptions) {
    super();
    this.#o = options;
  }

  /** The handlers to add to the xDS gRPC server (AdsServer.addService(LRS_SERVICE, …)). */
  get implementation(): UntypedServiceImplementation {
    return { streamLoadStats: (call: ServerDuplexStream<LoadStatsRequest, LoadStatsResponse>) => this.#serve(call) };
  }

  get streamCount(): number {
    return this.#streams.size;
  }

  /** Reports received since start. */
  get reports(): number {
    return this.#reports;
  }

  /** Sends the current interval to every open stream if it changed (a Mesh update). */
  refreshInterval(): void {
    const ms = this.#o.intervalMs();
    if (ms === this.#lastInterval) return;
    this.#lastInterval = ms;
    for (const s of this.#streams) if (s.node !== undefined) s.call.write(this.#response(ms));
  }

  /** Ends every stream (status OK), so a server shutdown does not wait for them. */
  close(): void {
    for (const s of [...this.#streams]) {
      this.#streams.delete(s);
      s.call.end();
    }
  }

  #response(ms: number): LoadStatsResponse {
    return create(LoadStatsResponseSchema, {
      sendAllClusters: true,
      loadReportingInterval: create(DurationSchema, { seconds: BigInt(Math.floor(ms / 1000)), nanos: Math.round(ms % 1000) * 1_000_000 }),
    });
  }

  #serve(call: ServerDuplexStream<LoadStatsRequest, LoadStatsResponse>): void {
    const stream: LrsStream = { call, node: undefined };
    this.#streams.add(stream);
    const cert = call.getAuthContext().sslPeerCertificate;
    const info: StreamInfo = {
      id: nextStreamId++, protocol: 'sotw', peer: call.getPeer(), openedAt: new Date(),
      peerCertificate: cert !== undefined && cert.raw !== undefined ? cert : null, node: undefined, group: undefined,
    };
    const fail = (code: number, details: string) => {
      this.#streams.delete(stream);
      this.#o.onRefused?.(info.peer, details);
      call.emit('error', Object.assign(new Error(details), { code, details }));
    };
    call.on('data', (req: LoadStatsRequest) => {
      if (!this.#streams.has(stream)) return;
      if (req.node !== undefined && (stream.node === undefined || req.node.id !== stream.node.id)) {
        const reason = this.#o.authorize?.(req.node, info) ?? null;
        if (reason !== null) return fail(status.PERMISSION_DENIED, reason);
        const first = stream.node === undefined;
        stream.node = req.node;
        info.node = req.node;
        if (first) {
          this.#lastInterval = this.#o.intervalMs();
          call.write(this.#response(this.#lastInterval));
        }
      }
      if (stream.node === undefined) return fail(status.INVALID_ARGUMENT, 'the first LoadStatsRequest must carry a node');
      if (req.clusterStats.length === 0) return;
      this.#reports++;
      this.emit('report', stream.node, req.clusterStats, new Date());
    });
    const gone = () => this.#streams.delete(stream);
    call.on('end', () => {
      gone();
      call.end();
    });
    call.on('error', gone);
    call.on('close', gone);
  }
}
