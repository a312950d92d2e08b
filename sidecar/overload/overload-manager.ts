/**
 * The sidecar's overload manager, after Envoy's: resource monitors sampled on one shared
 * interval (never per request), each turned into a pressure (value / limit, as a percentage,
 * capped at 100), and actions at thresholds.
 *
 *   every refreshIntervalMs (unref'd timer):
 *     heap            v8 used_heap_size / maxHeapBytes
 *     connections     downstream connections (inbound + outbound) / maxConnections
 *     activeRequests  inbound requests in flight (to the workload) / maxActiveRequests
 *     eventLoopDelay  the longest delay perf_hooks monitorEventLoopDelay saw in the interval / maxEventLoopDelayMs
 *     → pressure() = the highest (0..100), read by the quota gate's priority shedding
 *     → shedding = max(heap, activeRequests, eventLoopDelay) >= shedAt
 *
 *   request (inbound and outbound, before anything else): one field read (`shedding`); inbound
 *     with maxActiveRequests also compares the live in-flight count (exact, not sampled), so a
 *     burst between two samples cannot pass the limit
 *       → shed: 503 `overloaded`, `x-palisade-overloaded: true`, response flag OM
 *           (Envoy: 503 "envoy overloaded", `x-envoy-overloaded: true`)
 *   connection (inbound and outbound listeners, at accept): live count >= stopAcceptingAt % of
 *     maxConnections → closed at once, counted in `refusedConnections`
 *
 * The connections monitor drives connection refusal, not shedding: at the connection limit the
 * connections already open keep being served. Outbound requests are shed on the sidecar's own
 * pressure (heap, event loop) and on the workload's (active requests) alike: a sidecar whose
 * workload is saturated stops taking new work on its behalf too.
 *
 * The admin listener (/ready, /stats) is never shed or refused: it is not wired here.
 */
import { getHeapStatistics } from 'node:v8';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { DownstreamRequest, DownstreamResponse } from '../listeners/http-listener.ts';
import { flag } from '../telemetry/request-facts.ts';
import type { OverloadConfig } from './overload-config.ts';

export const OVERLOADED_BODY = 'overloaded';
export const OVERLOADED_HEADER = 'x-palisade-overloaded';

export type MonitorName = 'heap' | 'connections' | 'activeRequests' | 'eventLoopDelay';

/** One monitor in /stats: the last sampled value, its limit, and the pressure (percent, capped at 100). */
export interface MonitorStats {
  readonly value: number;
  readonly max: number;
  readonly pressure: number;
}

export interface OverloadStats {
  /** The highest monitor pressure at the last sample, 0..100. */
  pressure: number;
  /** Null for a monitor that is not configured. */
  monitors: Record<MonitorName, MonitorStats | null>;
  /** Whether new requests are being shed (as of the last sample). */
  shedding: boolean;
  shed: { inbound: number; outbound: number };
  refusedConnections: number;
}

export interface OverloadSources {
  /** Downstream connections open now (inbound + outbound listeners). */
  connections(): number;
  /** Inbound requests in flight now, the one being decided included. */
  activeRequests(): number;
  /** V8 heap used, bytes. Default: v8.getHeapStatistics().used_heap_size. */
  heapUsed?(): number;
}

const RESPONSE_HEADERS = Object.freeze({ 'content-type': 'text/plain', 'content-length': OVERLOADED_BODY.length, [OVERLOADED_HEADER]: 'true' });

function ratio(value: number, max: number): number {
  const p = (value / max) * 100;
  return p >= 100 ? 100 : p > 0 ? p : 0;
}

export class OverloadManager {
  readonly config: OverloadConfig;
  /** True while new requests are shed: refreshed by the sampler, read by every request. */
  shedding = false;
  readonly #sources: OverloadSources;
  readonly #heapUsed: () => number;
  #timer: ReturnType<typeof setInterval> | null = null;
  #histogram: ReturnType<typeof monitorEventLoopDelay> | null = null;
  #pressure = 0;
  readonly #values: Record<MonitorName, number> = { heap: 0, connections: 0, activeRequests: 0, eventLoopDelay: 0 };
  #shedInbound = 0;
  #shedOutbound = 0;
  #refused = 0;
  /** The live active-requests limit: shed when the requests in flight before this one reach it. */
  readonly #activeLimit: number;
  /** The live connection limit: refuse when the open connections reach it. */
  readonly #connectionLimit: number;

  constructor(config: OverloadConfig, sources: OverloadSources) {
    this.config = config;
    this.#sources = sources;
    this.#heapUsed = sources.heapUsed ?? (() => getHeapStatistics().used_heap_size);
    this.#activeLimit = config.maxActiveRequests === null ? Infinity : (config.shedAt / 100) * config.maxActiveRequests;
    this.#connectionLimit = config.maxConnections === null ? Infinity : (config.stopAcceptingAt / 100) * config.maxConnections;
  }

  /** Samples once now, then every refreshIntervalMs until close(). Idempotent. */
  start(): void {
    if (this.#timer !== null) return;
    if (this.config.maxEventLoopDelayMs !== null) {
      this.#histogram = monitorEventLoopDelay({ resolution: 10 });
      this.#histogram.enable();
    }
    this.sample();
    this.#timer = setInterval(() => this.sample(), this.config.refreshIntervalMs);
    this.#timer.unref();
  }

  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#histogram?.disable();
    this.#histogram = null;
  }

  /** Reads every configured monitor and recomputes pressure() and shedding (the interval calls it; tests may too). */
  sample(): void {
    const c = this.config;
    const v = this.#values;
    let shed = 0;
    if (c.maxHeapBytes !== null) {
      v.heap = this.#heapUsed();
      shed = Math.max(shed, ratio(v.heap, c.maxHeapBytes));
    }
    if (c.maxActiveRequests !== null) {
      v.activeRequests = this.#sources.activeRequests();
      shed = Math.max(shed, ratio(v.activeRequests, c.maxActiveRequests));
    }
    if (c.maxEventLoopDelayMs !== null && this.#histogram !== null) {
      const h = this.#histogram;
      v.eventLoopDelay = h.count > 0 ? h.max / 1e6 : 0;
      h.reset();
      shed = Math.max(shed, ratio(v.eventLoopDelay, c.maxEventLoopDelayMs));
    }
    let all = shed;
    if (c.maxConnections !== null) {
      v.connections = this.#sources.connections();
      all = Math.max(all, ratio(v.connections, c.maxConnections));
    }
    this.#pressure = all;
    this.shedding = shed >= c.shedAt;
  }

  /**
   * The highest pressure of the configured monitors at the last sample, percent 0..100 (the
   * quota gate sheds low-priority requests by it).
   */
  pressure(): number {
    return this.#pressure;
  }

  /**
   * The inbound check, first on the request path: answers 503 `overloaded` and returns true
   * when the request is shed. Exact for maxActiveRequests (the listener's live in-flight count).
   */
  shedInbound(req: DownstreamRequest, res: DownstreamResponse): boolean {
    if (!this.shedding && (this.#activeLimit === Infinity || this.#sources.activeRequests() - 1 < this.#activeLimit)) return false;
    this.#shedInbound++;
    reply(req, res);
    return true;
  }

  /** The outbound check: answers 503 `overloaded` and returns true while shedding. */
  shedOutbound(req: DownstreamRequest, res: DownstreamResponse): boolean {
    if (!this.shedding) return false;
    this.#shedOutbound++;
    reply(req, res);
    return true;
  }

  /** At accept: false (counted) when the open connections reach stopAcceptingAt % of maxConnections. */
  admitConnection(): boolean {
    if (this.#connectionLimit === Infinity || this.#sources.connections() < this.#connectionLimit) return true;
    this.#refused++;
    return false;
  }

  stats(): OverloadStats {
    const c = this.config;
    const v = this.#values;
    const m = (value: number, max: number | null): MonitorStats | null => (max === null ? null : { value, max, pressure: ratio(value, max) });
    return {
      pressure: this.#pressure,
      monitors: {
        heap: m(v.heap, c.maxHeapBytes),
        connections: m(v.connections, c.maxConnections),
        activeRequests: m(v.activeRequests, c.maxActiveRequests),
        eventLoopDelay: m(v.eventLoopDelay, c.maxEventLoopDelayMs),
      },
      shedding: this.shedding,
      shed: { inbound: this.#shedInbound, outbound: this.#shedOutbound },
      refusedConnections: this.#refused,
    };
  }
}

function reply(req: DownstreamRequest, res: DownstreamResponse): void {
  flag(req, 'OM');
  // The request body is not read: let it drain so HTTP/1 keep-alive survives (Node discards it).
  res.writeHead(503, RESPONSE_HEADERS);
  res.end(OVERLOADED_BODY);
}
