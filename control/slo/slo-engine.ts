/**
 * The control plane's SLO engine: sidecars count requests per SLO (sidecar/telemetry/
 * slo-counters.ts) and report the deltas over LRS; the engine adds each report into per-SLO
 * rings of time buckets and, on every tick (a sixth of a bucket) and every read of its status
 * or metrics, computes burn rates over
 * the workbook's windows (burn-rate.ts), keeps one alert state per SLO, objective and
 * severity, logs each firing and resolved transition once, and sets its Prometheus gauges.
 *
 *   LRS report ─▶ ingest ─▶ fine ring (resolution buckets, 3d)   ─▶ burn rates ─▶ alerts ─▶ log
 *                        └▶ coarse ring (1h buckets, SLO window) ─▶ budget left      └────▶ gauges
 *
 * Time scale N (a test and demo aid) divides every duration by N: with 60, an hour of
 * windows passes in a minute and a 30d budget window in 12 hours. Thresholds do not change.
 *
 * Objectives come from the desired state (`state()`), recomputed only when it changes. Load
 * for an SLO name the state does not declare is ignored, so a sidecar cannot grow the
 * engine's memory or the metrics' label sets.
 */
import { Gauge, Registry } from 'prom-client';
import type { DesiredState } from '../config/state.ts';
import type { Logger } from '../log.ts';
import {
  BURN_WINDOWS, burnRate, DEFAULT_RULES, ruleThreshold, SEVERITIES, WINDOW_LABELS,
  type BurnRateRule, type Severity, type WindowLabel,
} from './burn-rate.ts';
import { CountRing, type WindowCounts } from './count-ring.ts';
import { InvalidSloOptionError } from './errors.ts';
import { sloObjectives, type ObjectiveKind, type SloObjective } from './objectives.ts';

/** The LRS metric name prefix the sidecars' SLO counters report under (sidecar/telemetry/slo-counters.ts). */
export const SLO_METRIC_PREFIX = 'palisade.slo/';

const HOUR_MS = 3_600_000;

/** Just what the engine reads of an LRS `ClusterStats` (envoy.config.endpoint.v3). */
export interface ClusterStatsLike {
  readonly upstreamLocalityStats: ReadonlyArray<{
    readonly loadMetricStats: ReadonlyArray<LoadMetricLike>;
    readonly upstreamEndpointStats?: ReadonlyArray<{ readonly loadMetricStats: ReadonlyArray<LoadMetricLike> }>;
  }>;
}

interface LoadMetricLike {
  readonly metricName: string;
  readonly numRequestsFinishedWithMetric: bigint | number;
}

export const SLO_ENGINE_DEFAULTS = Object.freeze({
  timeScale: 1,
  resolutionMs: 60_000,
  minRequests: 20,
});

export interface SloEngineOptions {
  /** The desired state in force (e.g. `() => controlPlane.state`); objectives are read from its Routes. */
  state: () => DesiredState | undefined;
  logger: Logger;
  /** Divides every window, the resolution and the budget window: 60 makes an hour a minute. ≥ 1; default 1. */
  timeScale?: number;
  /** Bucket width of the burn-rate windows, ms before scaling; 1000..300000, default 60000 (one minute). */
  resolutionMs?: number;
  /**
   * A rule fires only with at least this many requests in its short window; ≥ 1, default 20.
   * Independently, a rule never fires on a single bad request: both windows must stay above
   * the threshold with one bad request taken away.
   */
  minRequests?: number;
  /** The alert rules; default the workbook's (DEFAULT_RULES). */
  rules?: readonly BurnRateRule[];
  /** The clock, ms since the epoch; default Date.now. */
  now?: () => number;
}

export interface AlertState {
  readonly severity: Severity;
  firing: boolean;
  /** When it last started firing (ISO 8601), while firing; null otherwise. */
  since: string | null;
  /** While firing: the first rule (long/short windows) that holds now; null when not firing. */
  rule: string | null;
}

export interface ObjectiveStatus {
  route: string;
  objective: ObjectiveKind;
  /** Target in percent (99.9). */
  target: number;
  /** Latency objectives: the threshold, ms; null for availability. */
  thresholdMs: number | null;
  /** The error-budget window, ms, unscaled. */
  windowMs: number;
  /** 1 - (bad share over the budget window) / budget: 1 untouched, 0 spent, negative overspent. */
  budgetRemaining: number;
  /** Requests and bad requests over the budget window. */
  requests: number;
  bad: number;
  /** Burn rate per window label (5m … 3d; each window divided by the time scale). */
  burnRates: Record<WindowLabel, number>;
  alerts: AlertState[];
}

export interface SloStatus {
  timeScale: number;
  /** Evaluated at, ISO 8601. */
  at: string;
  objectives: ObjectiveStatus[];
}

class RouteState {
  readonly fine: CountRing;
  readonly coarse: CountRing;
  /** The burn-rate windows' sums of the last evaluation, in WINDOW_LABELS order (reused). */
  readonly sums: WindowCounts[] = WINDOW_LABELS.map(() => ({ total: 0, errors: 0, slow: 0 }));

  constructor(resolutionMs: number, longestMs: number, hourMs: number, windowMs: number) {
    this.fine = new CountRing(resolutionMs, longestMs);
    this.coarse = new CountRing(hourMs, windowMs);
  }
}

class ObjectiveState {
  readonly objective: SloObjective;
  readonly alerts: AlertState[];
  /** The last evaluation; null before the first. */
  last: ObjectiveStatus | null = null;

  constructor(objective: SloObjective) {
    this.objective = objective;
    this.alerts = SEVERITIES.map((severity) => ({ severity, firing: false, since: null, rule: null }));
  }
}

export class SloEngine {
  readonly registry = new Registry();
  readonly timeScale: number;
  readonly #state: () => DesiredState | undefined;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #resolutionMs: number;
  readonly #minRequests: number;
  readonly #rules: readonly BurnRateRule[];
  /** Scaled window lengths by label. */
  readonly #windows: Record<WindowLabel, number>;
  /** The same, in WINDOW_LABELS order (ascending). */
  readonly #spans: readonly number[];
  readonly #burnGauge: Gauge<'route' | 'objective' | 'window'>;
  readonly #alertGauge: Gauge<'route' | 'objective' | 'severity'>;
  readonly #budgetGauge: Gauge<'route' | 'objective'>;
  #seenState: DesiredState | undefined;
  readonly #routes = new Map<string, RouteState>();
  #objectives: ObjectiveState[] = [];
  #timer: NodeJS.Timeout | null = null;

  constructor(options: SloEngineOptions) {
    const timeScale = options.timeScale ?? SLO_ENGINE_DEFAULTS.timeScale;
    if (!(Number.isFinite(timeScale) && timeScale >= 1)) throw new InvalidSloOptionError(`timeScale must be a number >= 1, got ${String(timeScale)}`);
    const resolutionMs = options.resolutionMs ?? SLO_ENGINE_DEFAULTS.resolutionMs;
    if (!(Number.isFinite(resolutionMs) && resolutionMs >= 1000 && resolutionMs <= 300_000)) {
      throw new InvalidSloOptionError(`resolutionMs must be between 1000 and 300000, got ${String(resolutionMs)}`);
    }
    const minRequests = options.minRequests ?? SLO_ENGINE_DEFAULTS.minRequests;
    if (!(Number.isInteger(minRequests) && minRequests >= 1)) throw new InvalidSloOptionError(`minRequests must be an integer >= 1, got ${String(minRequests)}`);
    this.timeScale = timeScale;
    this.#state = options.state;
    this.#log = options.logger;
    this.#now = options.now ?? Date.now;
    this.#resolutionMs = resolutionMs / timeScale;
    this.#minRequests = minRequests;
    this.#rules = options.rules ?? DEFAULT_RULES;
    this.#windows = Object.fromEntries(WINDOW_LABELS.map((l) => [l, BURN_WINDOWS[l] / timeScale])) as Record<WindowLabel, number>;
    this.#spans = WINDOW_LABELS.map((l) => this.#windows[l]);
    this.#burnGauge = new Gauge({
      name: 'palisade_slo_burn_rate', help: 'Error-budget burn rate of an SLO objective over a window (1 spends the budget exactly over the SLO window)',
      labelNames: ['route', 'objective', 'window'], registers: [this.registry],
    });
    this.#alertGauge = new Gauge({
      name: 'palisade_slo_alert_firing', help: '1 while a multi-window burn-rate alert of an SLO objective fires, else 0',
      labelNames: ['route', 'objective', 'severity'], registers: [this.registry],
    });
    this.#budgetGauge = new Gauge({
      name: 'palisade_slo_error_budget_remaining_ratio', help: 'Share of the error budget left over the SLO window (negative when overspent)',
      labelNames: ['route', 'objective'], registers: [this.registry],
    });
  }

  /** Evaluates six times per bucket (every 10 s at the default resolution, scaled) until close(). */
  start(): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => this.evaluate(), Math.max(50, this.#resolutionMs / 6));
    this.#timer.unref();
  }

  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /**
   * Adds one LRS report (the `report` event of the LRS server: the node's ClusterStats and
   * when it arrived); the next evaluation sees it. Metrics not named `palisade.slo/<SLO>/<total|errors|slow>`
   * and SLOs the configuration does not declare are ignored.
   */
  ingest(clusterStats: readonly ClusterStatsLike[], receivedAt: Date = new Date(this.#now())): void {
    this.#sync();
    const at = receivedAt.getTime();
    const sums = new Map<string, { total: number; errors: number; slow: number }>();
    const take = (m: LoadMetricLike) => {
      if (!m.metricName.startsWith(SLO_METRIC_PREFIX)) return;
      const rest = m.metricName.slice(SLO_METRIC_PREFIX.length);
      const slash = rest.lastIndexOf('/');
      if (slash <= 0) return;
      const counter = rest.slice(slash + 1);
      if (counter !== 'total' && counter !== 'errors' && counter !== 'slow') return;
      let name: string;
      try {
        name = decodeURIComponent(rest.slice(0, slash));
      } catch {
        return;
      }
      if (!this.#routes.has(name)) return;
      const n = Number(m.numRequestsFinishedWithMetric);
      if (!(n > 0) || !Number.isFinite(n)) return;
      let s = sums.get(name);
      if (s === undefined) sums.set(name, s = { total: 0, errors: 0, slow: 0 });
      s[counter] += n;
    };
    for (const cluster of clusterStats) {
      for (const locality of cluster.upstreamLocalityStats) {
        for (const m of locality.loadMetricStats) take(m);
        for (const e of locality.upstreamEndpointStats ?? []) for (const m of e.loadMetricStats) take(m);
      }
    }
    for (const [name, s] of sums) {
      const r = this.#routes.get(name)!;
      r.fine.add(at, s.total, s.errors, s.slow);
      r.coarse.add(at, s.total, s.errors, s.slow);
    }
  }

  /** Recomputes burn rates, budgets and alert states now; logs transitions; updates the gauges. */
  evaluate(): SloStatus {
    this.#sync();
    const now = this.#now();
    const at = new Date(now).toISOString();
    this.#burnGauge.reset();
    this.#alertGauge.reset();
    this.#budgetGauge.reset();
    for (const r of this.#routes.values()) r.fine.sumMany(now, this.#spans, r.sums);
    for (const o of this.#objectives) {
      const obj = o.objective;
      const r = this.#routes.get(obj.route)!;
      const badOf = (c: { errors: number; slow: number }) => (obj.objective === 'availability' ? c.errors : c.slow);
      const totals = {} as Record<WindowLabel, number>;
      const bads = {} as Record<WindowLabel, number>;
      const burnRates = {} as Record<WindowLabel, number>;
      for (let k = 0; k < WINDOW_LABELS.length; k++) {
        const label = WINDOW_LABELS[k]!;
        const c = r.sums[k]!;
        totals[label] = c.total;
        bads[label] = badOf(c);
        burnRates[label] = burnRate(bads[label], c.total, obj.target);
        this.#burnGauge.set({ route: obj.route, objective: obj.objective, window: label }, burnRates[label]);
      }
      const budget = r.coarse.sum(now, obj.windowMs / this.timeScale);
      const bad = badOf(budget);
      const budgetRemaining = budget.total > 0 ? 1 - burnRate(bad, budget.total, obj.target) : 1;
      this.#budgetGauge.set({ route: obj.route, objective: obj.objective }, budgetRemaining);

      for (const alert of o.alerts) {
        const hit = this.#rules.find((rule) => rule.severity === alert.severity && this.#fires(rule, obj, bads, totals));
        this.#transition(obj, alert, hit ?? null, burnRates, at);
        this.#alertGauge.set({ route: obj.route, objective: obj.objective, severity: alert.severity }, alert.firing ? 1 : 0);
      }
      o.last = {
        route: obj.route, objective: obj.objective, target: obj.percent, thresholdMs: obj.thresholdMs, windowMs: obj.windowMs,
        budgetRemaining, requests: budget.total, bad, burnRates, alerts: o.alerts.map((a) => ({ ...a })),
      };
    }
    return { timeScale: this.timeScale, at, objectives: this.#objectives.map((o) => o.last!) };
  }

  /** The last evaluation of every objective, evaluating first (for `GET /api/v1/slo`). */
  status(): SloStatus {
    return this.evaluate();
  }

  /** Both windows burn above the threshold, even with one bad request fewer, and the short one saw minRequests requests. */
  #fires(rule: BurnRateRule, obj: SloObjective, bad: Record<WindowLabel, number>, total: Record<WindowLabel, number>): boolean {
    const threshold = ruleThreshold(rule, obj.windowMs);
    if (total[rule.short] < this.#minRequests) return false;
    return burnRate(bad[rule.long] - 1, total[rule.long], obj.target) > threshold && burnRate(bad[rule.short] - 1, total[rule.short], obj.target) > threshold;
  }

  #transition(obj: SloObjective, alert: AlertState, rule: BurnRateRule | null, burn: Record<WindowLabel, number>, at: string): void {
    const fields = { route: obj.route, objective: obj.objective, severity: alert.severity, target: obj.percent };
    if (rule !== null && alert.firing) alert.rule = `${rule.long}/${rule.short}`;
    if (rule !== null && !alert.firing) {
      alert.firing = true;
      alert.since = at;
      alert.rule = `${rule.long}/${rule.short}`;
      const threshold = ruleThreshold(rule, obj.windowMs);
      this.#log.warn({ ...fields, rule: alert.rule, threshold, burnRateLong: burn[rule.long], burnRateShort: burn[rule.short] }, 'SLO burn-rate alert firing');
    } else if (rule === null && alert.firing) {
      const since = alert.since;
      alert.firing = false;
      alert.since = null;
      alert.rule = null;
      this.#log.info({ ...fields, since }, 'SLO burn-rate alert resolved');
    }
  }

  /**
   * Follows the desired state: new SLOs get empty rings; a changed window starts the SLO's
   * rings afresh; removed objectives are dropped, a firing alert of theirs logged as resolved.
   */
  #sync(): void {
    const state = this.#state();
    if (state === this.#seenState) return;
    this.#seenState = state;
    const objectives = state === undefined ? [] : sloObjectives(state);
    const previous = new Map(this.#objectives.map((o) => [`${o.objective.route}\0${o.objective.objective}`, o]));
    const routes = new Map<string, number>();
    for (const o of objectives) routes.set(o.route, o.windowMs);
    for (const name of [...this.#routes.keys()]) if (!routes.has(name)) this.#routes.delete(name);
    for (const [name, windowMs] of routes) {
      const existing = this.#routes.get(name);
      if (existing !== undefined && existing.coarse.size === Math.ceil(windowMs / HOUR_MS) + 1) continue;
      this.#routes.set(name, new RouteState(this.#resolutionMs, this.#windows['3d'], HOUR_MS / this.timeScale, windowMs / this.timeScale));
    }
    this.#objectives = objectives.map((obj) => {
      const key = `${obj.route}\0${obj.objective}`;
      const old = previous.get(key);
      previous.delete(key);
      const next = new ObjectiveState(obj);
      if (old !== undefined) next.alerts.splice(0, next.alerts.length, ...old.alerts);
      return next;
    });
    for (const gone of previous.values()) {
      for (const a of gone.alerts) {
        if (!a.firing) continue;
        this.#log.info({ route: gone.objective.route, objective: gone.objective.objective, severity: a.severity, target: gone.objective.percent, since: a.since, reason: 'objective removed from the configuration' }, 'SLO burn-rate alert resolved');
      }
    }
  }
}
