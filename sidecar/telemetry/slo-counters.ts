/**
 * Per-SLO request counters in the sidecar, reported to the control plane as LRS load.
 *
 * The control plane's SLO engine (control/slo/) judges objectives from what every sidecar
 * reports; the sidecar only counts, per SLO name and cluster: requests (`total`), failed
 * requests (`errors`: 5xx or a local failure flag) and requests slower than the SLO's latency
 * threshold (`slow`). Each report carries the deltas since the previous one as LRS
 * `load_metric_stats` named `palisade.slo/<percent-encoded SLO name>/<total|errors|slow>`,
 * with `num_requests_finished_with_metric` = the delta (and `total_metric_value` the same).
 *
 * Counting costs two Map lookups and three additions per request; entries are created on a
 * route's first request and dropped after a report in which they were idle.
 */
import type { SloRoute } from '../routing/route-action.ts';

/** The LRS metric name prefix of SLO counters. */
export const SLO_METRIC_PREFIX = 'palisade.slo/';

/** One named load figure for the LRS reporter (sidecar/telemetry/load-reporter.ts): a delta since the last report. */
export interface NamedLoad {
  cluster: string;
  metric: string;
  count: number;
  value: number;
}

/** What the counters read of a finished request (the telemetry wrapper's record). */
export interface SloRequestRecord {
  /** `outbound` or `inbound`: only outbound requests are counted (an SLO is on an RDS route). */
  readonly listener: string;
  /** The response status; 0 when none was sent. */
  readonly status: number;
  readonly durationMs: number;
  readonly facts: {
    /** The RDS route name, null when none matched. */
    readonly route: string | null;
    readonly cluster: string | null;
    readonly flags: readonly string[];
  };
}

/** Response flags of a request that failed on the proxy's side, whatever its status. */
const FAILURE_FLAGS: ReadonlySet<string> = new Set(['UF', 'UO', 'NC', 'UH', 'UT', 'URX', 'UC']);

class Counts {
  total = 0;
  errors = 0;
  slow = 0;
}

/** Whether a finished request counts against availability: a 5xx, or a proxy-side failure flag. */
export function isSloError(status: number, flags: readonly string[]): boolean {
  if (status >= 500) return true;
  for (let i = 0; i < flags.length; i++) if (FAILURE_FLAGS.has(flags[i]!)) return true;
  return false;
}

/** The LRS metric name of one counter. */
export function sloMetricName(slo: string, counter: 'total' | 'errors' | 'slow'): string {
  return `${SLO_METRIC_PREFIX}${encodeURIComponent(slo)}/${counter}`;
}

export class SloCounters {
  /** SLO name → cluster → counts since the last report. */
  readonly #counts = new Map<string, Map<string, Counts>>();
  readonly #resolve: (routeName: string) => SloRoute | null;

  /**
   * `resolve` maps an RDS route name (request facts' `route`) to its SLO, e.g.
   * `(name) => currentRouteTable.sloRoute(name)`; it is called once per request that matched a route.
   */
  constructor(resolve: (routeName: string) => SloRoute | null) {
    this.#resolve = resolve;
  }

  /** Counts one request toward `slo`. `cluster` null (no cluster picked, e.g. an injected abort): the route's. */
  observe(slo: SloRoute, cluster: string | null, error: boolean, durationMs: number): void {
    let byCluster = this.#counts.get(slo.name);
    if (byCluster === undefined) this.#counts.set(slo.name, byCluster = new Map());
    const c = cluster ?? slo.cluster;
    let counts = byCluster.get(c);
    if (counts === undefined) byCluster.set(c, counts = new Counts());
    counts.total++;
    if (error) counts.errors++;
    if (slo.latencyThresholdMs !== null && durationMs > slo.latencyThresholdMs) counts.slow++;
  }

  /** A telemetry sink (`RequestTelemetry.addSink`): counts an outbound request whose route has an SLO. */
  readonly record = (record: SloRequestRecord): void => {
    const route = record.facts.route;
    if (route === null || record.listener !== 'outbound') return;
    const slo = this.#resolve(route);
    if (slo === null) return;
    this.observe(slo, record.facts.cluster, isSloError(record.status, record.facts.flags), record.durationMs);
  };

  /**
   * The load source for the LRS reporter: every non-zero counter since the last call, then
   * zeroed. Entries idle since the last call are dropped.
   */
  readonly loads = (): NamedLoad[] => {
    const out: NamedLoad[] = [];
    for (const [name, byCluster] of this.#counts) {
      for (const [cluster, c] of byCluster) {
        if (c.total === 0) {
          byCluster.delete(cluster);
          continue;
        }
        out.push({ cluster, metric: sloMetricName(name, 'total'), count: c.total, value: c.total });
        if (c.errors > 0) out.push({ cluster, metric: sloMetricName(name, 'errors'), count: c.errors, value: c.errors });
        if (c.slow > 0) out.push({ cluster, metric: sloMetricName(name, 'slow'), count: c.slow, value: c.slow });
        c.total = c.errors = c.slow = 0;
      }
      if (byCluster.size === 0) this.#counts.delete(name);
    }
    return out;
  };
}
