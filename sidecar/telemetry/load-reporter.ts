/**
 * The sidecar's LRS client (issue #7): Envoy's LoadReportingService.StreamLoadStats to the
 * control plane, on the ADS stream's address and credentials.
 *
 *   stream opens → LoadStatsRequest{node}            (node advertises envoy.lrs.supports_send_all_clusters)
 *   ← LoadStatsResponse{clusters | send_all_clusters, load_reporting_interval}
 *   every interval: take the usage meter and every named-metric source → pending
 *                   → LoadStatsRequest{cluster_stats} when a stream is up
 *
 * The timer runs whether or not a stream is up, so each interval starts the meter's tenant
 * budget afresh. Counts are deltas since the last report. `pending` is cleared only once a
 * report is handed to a live stream; a tick without a stream, or a write that fails, keeps (or
 * puts back) the counts, which go out merged into the next report. (LRS has no
 * acknowledgement: a report written to a connection that breaks before the server reads it
 * is not seen again.)
 *
 * Per cluster: total_issued_requests = requests finished in the interval, total_error_requests
 * = 5xx responses that were not denials, total_successful_requests = the rest,
 * total_requests_in_progress = 0 (the meter sees requests when they end); usage as
 * load_metric_stats `palisade.usage/<tenant>/<route>/<requests|bytes_in|bytes_out|denied|errors>`
 * (tenant and route percent-encoded; num_requests_finished_with_metric = the requests,
 * total_metric_value = the sum), plus whatever the sources add (`palisade.slo/...`).
 */
import { EventEmitter } from 'node:events';
import { create } from '@bufbuild/protobuf';
import { DurationSchema, type Duration } from '@bufbuild/protobuf/wkt';
import { makeGenericClientConstructor, type ChannelCredentials, type ChannelOptions, type ClientDuplexStream, type StatusObject } from '@grpc/grpc-js';
import type { Node } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { NodeSchema } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { ClusterStatsSchema, type ClusterStats } from '../../xds/gen/envoy/config/endpoint/v3/load_report_pb.js';
import {
  LoadStatsRequestSchema, type LoadStatsRequest, type LoadStatsResponse,
} from '../../xds/gen/envoy/service/load_stats/v3/lrs_pb.js';
import { ExponentialBackoff, type BackoffOptions } from '../../xds/client/backoff.ts';
import { LRS_SERVICE } from '../../xds/transport/lrs-service.ts';
import { DEFAULT_BACKOFF } from '../../xds/client/options.ts';
import type { UsageCounter, UsageMeter } from './usage-meter.ts';

/** One named metric of a cluster for the next report: `count` requests carried it, `value` is their sum. */
export interface NamedLoad {
  readonly cluster: string;
  readonly metric: string;
  readonly count: number;
  readonly value: number;
}

/** Returns the deltas since its last call; called once per report interval. */
export type LoadSource = () => readonly NamedLoad[];

/** Where and as whom to report: the ADS stream's (read at each new stream). */
export interface LoadReporterTarget {
  readonly address: string;
  readonly credentials: ChannelCredentials;
  readonly node: Node;
}

export interface LoadReporterOptions {
  readonly target: () => LoadReporterTarget;
  /** The usage meter whose counters each report carries; null: sources only. */
  readonly meter?: UsageMeter | null;
  /** The interval before the control plane names one, ms. Default 10 000. */
  readonly initialIntervalMs?: number;
  /** Reconnect backoff (the ADS client's defaults). */
  readonly backoff?: Partial<BackoffOptions>;
}

export type LoadReporterEvents = {
  connected: [];
  disconnected: [reason: string];
  /** A report was handed to the stream. */
  report: [stats: ClusterStats[]];
  /** A source threw (its loads are skipped for that interval). */
  sourceError: [err: Error];
};

export interface LoadReporterStats {
  readonly connected: boolean;
  readonly intervalMs: number;
  readonly reports: number;
  /** Intervals whose counts were kept for the next report (no stream, or a failed write). */
  readonly deferred: number;
  /** Metric values dropped because MAX_PENDING_METRICS were held. */
  readonly droppedMetrics: number;
  readonly pendingClusters: number;
}

/** The client feature that asks the server for send_all_clusters (Envoy's name). */
export const SEND_ALL_CLUSTERS_FEATURE = 'envoy.lrs.supports_send_all_clusters';
/** Prefix of the usage metric names. */
export const USAGE_METRIC_PREFIX = 'palisade.usage/';
const DEFAULT_INTERVAL_MS = 10_000;
/**
 * Named metrics held for the next report, at most: while the control plane is unreachable the
 * counts of many intervals add up; past this, metrics of names not yet held are dropped (and
 * counted in stats().droppedMetrics) rather than let memory grow without bound.
 */
export const MAX_PENDING_METRICS = 200_000;
/** The shortest interval obeyed, ms: a server asking for less gets this. */
export const MIN_INTERVAL_MS = 50;


const LrsClient = makeGenericClientConstructor(LRS_SERVICE, 'LoadReportingService');
const CHANNEL_OPTIONS: Partial<ChannelOptions> = Object.freeze({
  'grpc.use_local_subchannel_pool': 1,
  // As the ADS client: no SNI from an IP; the server is checked by its certificate.
  'grpc.ssl_target_name_override': 'xds.palisade.invalid',
});

/** `palisade.usage/<tenant>/<route>/<counter>`, tenant and route percent-encoded. */
export function usageMetricName(tenant: string, route: string, counter: 'requests' | 'bytes_in' | 'bytes_out' | 'denied' | 'errors'): string {
  return `${USAGE_METRIC_PREFIX}${encodeURIComponent(tenant)}/${encodeURIComponent(route)}/${counter}`;
}

interface PendingCluster {
  issued: number;
  errors: number;
  /** metric name → [count, value] */
  readonly metrics: Map<string, [number, number]>;
  /** Start of the interval the counts cover (the last report of this cluster), ms. */
  since: number;
}

export class LoadReporter extends EventEmitter<LoadReporterEvents> {
  readonly #target: () => LoadReporterTarget;
  readonly #meter: UsageMeter | null;
  readonly #backoff: ExponentialBackoff;
  readonly #sources = new Set<LoadSource>();
  #pending = new Map<string, PendingCluster>();
  #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #client: InstanceType<typeof LrsClient> | undefined;
  #call: ClientDuplexStream<LoadStatsRequest, LoadStatsResponse> | undefined;
  /** What the server asked for: null before its first response; 'all' for send_all_clusters. */
  #wanted: ReadonlySet<string> | 'all' | null = null;
  #phase: 'new' | 'started' | 'closed' = 'new';
  #reports = 0;
  #deferred = 0;
  #pendingMetrics = 0;
  #droppedMetrics = 0;

  constructor(options: LoadReporterOptions) {
    super();
    this.#target = options.target;
    this.#meter = options.meter ?? null;
    const interval = options.initialIntervalMs ?? DEFAULT_INTERVAL_MS;
    if (!Number.isFinite(interval) || interval < MIN_INTERVAL_MS) throw new RangeError(`initialIntervalMs must be at least ${MIN_INTERVAL_MS}, got ${interval}`);
    this.#intervalMs = interval;
    const b = ExponentialBackoff.tryNew({ ...DEFAULT_BACKOFF, ...options.backoff });
    if (!b.valid) throw new RangeError(`backoff: ${b.errors.join('; ')}`);
    this.#backoff = b.result;
  }

  /** Adds a named-metric source; returns its removal. */
  addSource(source: LoadSource): () => void {
    this.#sources.add(source);
    return () => this.#sources.delete(source);
  }

  get connected(): boolean {
    return this.#wanted !== null;
  }

  get intervalMs(): number {
    return this.#intervalMs;
  }

  /** Opens the stream and starts the interval timer. A second call does nothing. */
  start(): void {
    if (this.#phase !== 'new') return;
    this.#phase = 'started';
    this.#schedule();
    this.#connect();
  }

  /** Stops the timer and the stream; counts not yet reported are dropped. Idempotent. */
  close(): void {
    if (this.#phase === 'closed') return;
    this.#phase = 'closed';
    clearInterval(this.#timer);
    clearTimeout(this.#retry);
    const call = this.#call;
    this.#call = undefined;
    call?.cancel();
    this.#client?.close();
    this.#client = undefined;
    if (this.#wanted !== null) {
      this.#wanted = null;
      this.emit('disconnected', 'client closed');
    }
  }

  /**
   * A last report, then close: with a stream up, the counts since the last report are sent and
   * the stream half-closed; resolves when the server has ended it, or after `timeoutMs`. Without
   * one, closes at once (those counts are dropped).
   */
  async flushAndClose(timeoutMs = 1000): Promise<void> {
    const call = this.#call;
    if (this.#phase !== 'started' || call === undefined || this.#wanted === null) {
      this.close();
      return;
    }
    this.flush();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      timer.unref();
      call.once('status', () => {
        clearTimeout(timer);
        resolve();
      });
      call.end();
    });
    this.close();
  }

  /** Takes this interval's counts and reports them now (the timer does this every interval). */
  flush(): void {
    this.#collect();
    this.#send();
  }

  stats(): LoadReporterStats {
    return { connected: this.connected, intervalMs: this.#intervalMs, reports: this.#reports, deferred: this.#deferred, droppedMetrics: this.#droppedMetrics, pendingClusters: this.#pending.size };
  }

  #schedule(): void {
    clearInterval(this.#timer);
    this.#timer = setInterval(() => this.flush(), this.#intervalMs);
    this.#timer.unref();
  }

  #connect(): void {
    this.#retry = undefined;
    if (this.#phase !== 'started') return;
    const target = this.#target();
    const node = create(NodeSchema, { ...target.node, clientFeatures: [...new Set([...target.node.clientFeatures, SEND_ALL_CLUSTERS_FEATURE])] });
    const client = new LrsClient(target.address, target.credentials, CHANNEL_OPTIONS);
    this.#client = client;
    const call = client.streamLoadStats!() as ClientDuplexStream<LoadStatsRequest, LoadStatsResponse>;
    this.#call = call;
    call.on('data', (res: LoadStatsResponse) => {
      if (call === this.#call) this.#onResponse(res);
    });
    call.on('error', () => {}); // 'status' reports every end
    call.on('status', (s: StatusObject) => {
      if (call === this.#call) this.#ended(`${s.code === 0 ? 'server ended the stream' : s.details}`);
    });
    call.write(create(LoadStatsRequestSchema, { node }));
  }

  #onResponse(res: LoadStatsResponse): void {
    const first = this.#wanted === null;
    this.#wanted = res.sendAllClusters ? 'all' : new Set(res.clusters);
    this.#backoff.reset();
    const ms = durationMs(res.loadReportingInterval);
    const interval = ms === null ? this.#intervalMs : Math.max(MIN_INTERVAL_MS, ms);
    if (interval !== this.#intervalMs) {
      this.#intervalMs = interval;
      this.#schedule();
    }
    if (first) {
      this.emit('connected');
      // Counts kept while no stream was up go out at once.
      if (this.#pending.size > 0) this.#send();
    }
  }

  #ended(reason: string): void {
    this.#call = undefined;
    this.#client?.close();
    this.#client = undefined;
    if (this.#wanted !== null) {
      this.#wanted = null;
      this.emit('disconnected', reason);
    }
    if (this.#phase !== 'started') return;
    this.#retry = setTimeout(() => this.#connect(), this.#backoff.next());
    this.#retry.unref();
  }

  /** Moves the meter's counters and every source's loads into `pending`. */
  #collect(): void {
    const now = Date.now();
    if (this.#meter !== null) for (const c of this.#meter.take()) this.#addUsage(c, now);
    for (const source of this.#sources) {
      let loads: readonly NamedLoad[];
      try {
        loads = source();
      } catch (err) {
        this.emit('sourceError', err as Error);
        continue;
      }
      for (const l of loads) this.#addMetric(this.#entry(l.cluster, now), l.metric, l.count, l.value);
    }
  }

  #entry(cluster: string, now: number): PendingCluster {
    let e = this.#pending.get(cluster);
    if (e === undefined) {
      e = { issued: 0, errors: 0, metrics: new Map(), since: now - this.#intervalMs };
      this.#pending.set(cluster, e);
    }
    return e;
  }

  #addMetric(e: PendingCluster, metric: string, count: number, value: number): void {
    const m = e.metrics.get(metric);
    if (m === undefined) {
      if (this.#pendingMetrics >= MAX_PENDING_METRICS) {
        this.#droppedMetrics++;
        return;
      }
      this.#pendingMetrics++;
      e.metrics.set(metric, [count, value]);
    } else {
      m[0] += count;
      m[1] += value;
    }
  }

  #addUsage(c: UsageCounter, now: number): void {
    const e = this.#entry(c.cluster, now);
    e.issued += c.requests;
    e.errors += c.errors;
    const n = c.requests;
    this.#addMetric(e, usageMetricName(c.tenant, c.route, 'requests'), n, n);
    this.#addMetric(e, usageMetricName(c.tenant, c.route, 'bytes_in'), n, c.bytesIn);
    this.#addMetric(e, usageMetricName(c.tenant, c.route, 'bytes_out'), n, c.bytesOut);
    this.#addMetric(e, usageMetricName(c.tenant, c.route, 'denied'), n, c.denied);
    this.#addMetric(e, usageMetricName(c.tenant, c.route, 'errors'), n, c.errors);
  }

  /** Sends `pending` on the live stream, or keeps it for the next interval. */
  #send(): void {
    const call = this.#call;
    const wanted = this.#wanted;
    if (this.#pending.size === 0) return;
    if (call === undefined || wanted === null) {
      this.#deferred++;
      return;
    }
    const now = Date.now();
    const sent = new Map<string, PendingCluster>();
    const stats: ClusterStats[] = [];
    const locality = this.#target().node.locality;
    for (const [cluster, e] of this.#pending) {
      // Clusters the server did not ask for are not reported (as Envoy does); their counts are dropped.
      if (wanted !== 'all' && !wanted.has(cluster)) continue;
      sent.set(cluster, e);
      stats.push(create(ClusterStatsSchema, {
        clusterName: cluster,
        loadReportInterval: msDuration(now - e.since),
        upstreamLocalityStats: [{
          ...(locality !== undefined ? { locality } : {}),
          totalIssuedRequests: BigInt(e.issued),
          totalErrorRequests: BigInt(e.errors),
          totalSuccessfulRequests: BigInt(e.issued - e.errors),
          totalRequestsInProgress: 0n,
          loadMetricStats: [...e.metrics].map(([metricName, [count, value]]) => ({ metricName, numRequestsFinishedWithMetric: BigInt(count), totalMetricValue: value })),
        }],
      }));
    }
    this.#pending = new Map();
    this.#pendingMetrics = 0;
    if (stats.length === 0) return;
    try {
      call.write(create(LoadStatsRequestSchema, { clusterStats: stats }), (err?: Error | null) => {
        if (err) this.#putBack(sent);
      });
    } catch {
      this.#putBack(sent);
      return;
    }
    this.#reports++;
    this.emit('report', stats);
  }

  /** A failed write: its counts go into the next report. */
  #putBack(sent: Map<string, PendingCluster>): void {
    this.#deferred++;
    for (const [cluster, e] of sent) {
      const cur = this.#pending.get(cluster);
      if (cur === undefined) {
        this.#pending.set(cluster, e);
        this.#pendingMetrics += e.metrics.size;
        continue;
      }
      cur.issued += e.issued;
      cur.errors += e.errors;
      cur.since = Math.min(cur.since, e.since);
      for (const [m, [count, value]] of e.metrics) this.#addMetric(cur, m, count, value);
    }
  }
}

function durationMs(d: Duration | undefined): number | null {
  if (d === undefined) return null;
  const ms = Number(d.seconds) * 1000 + d.nanos / 1e6;
  return ms > 0 ? ms : null;
}

function msDuration(ms: number): Duration {
  const whole = Math.max(0, Math.round(ms));
  return create(DurationSchema, { seconds: BigInt(Math.floor(whole / 1000)), nanos: (whole % 1000) * 1_000_000 });
}
