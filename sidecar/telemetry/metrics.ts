/**
 * The sidecar's Prometheus metrics: one prom-client Registry per sidecar (never the global
 * default: several sidecars may share a process in tests), served by the admin listener at
 * `/metrics` and `/stats/prometheus` (text format 0.0.4).
 *
 * Two kinds of family:
 *   - per request (observe(record), called by the telemetry wrapper once a response is over):
 *     request count, duration, sizes, upstream errors by reason, retries.
 *     Labels are bounded (listener, code class, normalized method) except route, cluster and
 *     names, which go through a LabelBudget per family: past `maxSeriesPerMetric` label
 *     sets, new ones collapse into `other`.
 *   - on scrape (collect): gauges and counters read from the stats() objects the sidecar
 *     already keeps (listeners, clusters and their circuit breakers and outlier detectors,
 *     authz, xDS, identity). Nothing is counted twice on the request path. Their labels come
 *     from configuration (cluster and policy names), not from requests.
 *
 * docs/operations.md lists every family.
 */
import { AggregatorRegistry, Counter, Gauge, Registry, type Aggregator } from 'prom-client';
import { HotCounter, HotHistogram, type CounterCell, type HistogramCell } from './hot-families.ts';
import type { ListenerStats } from '../listeners/http-listener.ts';
import type { ClusterStats } from '../upstream/upstream-cluster.ts';
import { CODE_CLASS_COUNT, codeClassIndex, codeClass, LabelBudget, METHOD_COUNT, methodIndex, normalizeMethod, OTHER } from './label-budget.ts';
import type { RequestRecord } from './request-record.ts';
import type { ResponseFlag } from './request-facts.ts';

/** Duration buckets, seconds: 100 µs (a local reply) to 10 s. */
export const DURATION_BUCKETS_SECONDS = Object.freeze([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
/** Body size buckets, bytes: 64 B to 16 MiB. */
export const SIZE_BUCKETS_BYTES = Object.freeze([64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216]);

/** The route or cluster label of a request that had none (no route matched, an unnamed route, a local reply before routing). */
export const NONE = 'none';

/** Upstream error reasons by the response flag that records them. */
const UPSTREAM_ERROR_REASONS: Readonly<Partial<Record<ResponseFlag, string>>> = Object.freeze({
  UF: 'connect_failure',
  UC: 'reset',
  UT: 'timeout',
  UO: 'overflow',
  UH: 'no_healthy_upstream',
  NC: 'no_cluster',
  URX: 'retry_limit_exceeded',
});

/** A registry's metrics as JSON (prom-client getMetricsAsJSON): what workers send their primary. */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** Policy decision stats as Authorizer.stats() has them, per policy name. */
export interface PolicyStatsView {
  readonly allowed: number;
  readonly denied: number;
  readonly errors: number;
  readonly dryRunDenied: number;
  readonly cache: { readonly hits: number; readonly misses: number; readonly size: number } | null;
}

/** xDS stream counters as SidecarXds.stats() has them. */
export interface XdsStatsView {
  readonly connected: boolean;
  readonly updates: Readonly<Record<string, number>>;
  readonly nacks: Readonly<Record<string, number>>;
  /** The accepted version of each resource kind in force (listeners, routes, clusters, endpoints) and of the whole snapshot. */
  readonly versions?: Readonly<Record<string, string>>;
}

/** What the on-scrape families read; each is called once per scrape. */
export interface MetricsSource {
  listeners(): Readonly<Record<string, ListenerStats>>;
  /** Downstream connections open now, by listener. */
  connections(): Readonly<Record<string, number>>;
  clusters(): readonly ClusterStats[];
  /** Per policy in force; null when authz is not running here. */
  policies(): Readonly<Record<string, PolicyStatsView>> | null;
  /** The workload certificate's notAfter; null without one. */
  certificateNotAfter(): Date | null;
  /** Null when this process has no xDS stream (a worker). */
  xds(): XdsStatsView | null;
  /** Epoch ms of the last configuration swap; null before the first. */
  lastConfigUpdate(): number | null;
  /** Quota check results so far by quota name then result (QuotaGate.decisions); absent: no quota gate here. */
  quotaDecisions?(): ReadonlyMap<string, Readonly<Partial<Record<string, number>>>>;
}

interface Snapshot {
  readonly listeners: Readonly<Record<string, ListenerStats>>;
  readonly connections: Readonly<Record<string, number>>;
  readonly clusters: readonly ClusterStats[];
  readonly policies: Readonly<Record<string, PolicyStatsView>> | null;
  readonly notAfter: Date | null;
  readonly xds: XdsStatsView | null;
  readonly lastConfigUpdate: number | null;
}

/** The per-request families of one label set, kept so a request costs one Map lookup. */
interface RequestSeries {
  readonly requests: CounterCell;
  readonly duration: HistogramCell;
}

/** The size series of one listener. */
interface ListenerSeries {
  readonly requestSize: HistogramCell;
  readonly responseSize: HistogramCell;
}

export interface SidecarMetricsOptions {
  /** Label sets per family before new ones collapse into `other`. Default 1000. */
  readonly maxSeriesPerMetric?: number;
  readonly source: MetricsSource;
  /** Access log lines dropped so far (its buffer was full); absent without an access log: no family. */
  readonly accessLogDropped?: () => number;
}

export class SidecarMetrics {
  readonly registry = new Registry();
  readonly #source: MetricsSource;
  #snap: Snapshot | null = null;
  readonly #budgets: LabelBudget[] = [];
  readonly #requestBudget: LabelBudget;
  readonly #durationBudget: LabelBudget;
  readonly #errorBudget: LabelBudget;
  readonly #retryBudget: LabelBudget;
  /**
   * Per-request series by listener, route and cluster, then one slot per code class × method:
   * a request costs three Map lookups and an array read, no key string. Only admitted label
   * sets are stored (a spent budget adds nothing here).
   */
  readonly #series = new Map<string, Map<string, Map<string, (RequestSeries | undefined)[]>>>();
  readonly #byListener = new Map<string, ListenerSeries>();
  readonly #requests: HotCounter;
  readonly #duration: HotHistogram;
  readonly #requestSize: HotHistogram;
  readonly #responseSize: HotHistogram;
  readonly #upstreamErrors: HotCounter;
  readonly #retries: HotCounter;

  constructor(options: SidecarMetricsOptions) {
    this.#source = options.source;
    const max = options.maxSeriesPerMetric ?? 1000;
    const budget = (name: string) => {
      const b = new LabelBudget(name, max);
      this.#budgets.push(b);
      return b;
    };
    const registers = [this.registry];
    this.#requestBudget = budget('palisade_requests_total');
    this.#durationBudget = budget('palisade_request_duration_seconds');
    this.#errorBudget = budget('palisade_upstream_errors_total');
    this.#retryBudget = budget('palisade_upstream_retries_total');

    this.#requests = new HotCounter({ name: 'palisade_requests_total', help: 'Requests answered, by listener, route, cluster, response code class and method.', labelNames: ['listener', 'route', 'cluster', 'code_class', 'method'], registers });
    this.#duration = new HotHistogram({ name: 'palisade_request_duration_seconds', help: 'From request arrival to the end of the response, seconds.', labelNames: ['listener', 'route', 'cluster', 'code_class'], buckets: [...DURATION_BUCKETS_SECONDS], registers });
    this.#requestSize = new HotHistogram({ name: 'palisade_request_size_bytes', help: 'Request body bytes read from the downstream.', labelNames: ['listener'], buckets: [...SIZE_BUCKETS_BYTES], registers });
    this.#responseSize = new HotHistogram({ name: 'palisade_response_size_bytes', help: 'Response body bytes written downstream.', labelNames: ['listener'], buckets: [...SIZE_BUCKETS_BYTES], registers });
    this.#upstreamErrors = new HotCounter({ name: 'palisade_upstream_errors_total', help: 'Requests that failed upstream, by reason (connect_failure, reset, timeout, overflow, no_healthy_upstream, no_cluster, retry_limit_exceeded).', labelNames: ['listener', 'cluster', 'reason'], registers });
    this.#retries = new HotCounter({ name: 'palisade_upstream_retries_total', help: 'Upstream retries (attempts beyond the first).', labelNames: ['cluster'], registers });
    // Every check of every quota counting a request (not only the deciding one), read from the gate at scrape time; labels from configuration.
    const source = this.#source;
    new Counter({
      name: 'palisade_quota_decisions_total', help: 'Quota check results (every quota counting a request), by quota and result.', labelNames: ['quota', 'result'], registers,
      collect() {
        this.reset();
        for (const [quota, results] of source.quotaDecisions?.() ?? []) for (const [result, n] of Object.entries(results)) if (n !== undefined) this.inc({ quota, result }, n);
      },
    });

    const budgets = this.#budgets;
    new Counter({
      name: 'palisade_metric_label_overflow_total', help: 'Observations whose new label set was collapsed into "other" because the family reached maxSeriesPerMetric.', labelNames: ['metric'], registers,
      collect() {
        this.reset();
        for (const b of budgets) this.inc({ metric: b.metric }, b.overflowed);
      },
    });
    this.#registerCollected(registers);
    const dropped = options.accessLogDropped;
    if (dropped !== undefined) {
      new Counter({
        name: 'palisade_access_log_dropped_total', help: 'Access log lines dropped because the log buffer was full (stdout or the disk stalled).', registers,
        collect() {
          this.reset();
          this.inc(dropped());
        },
      });
    }
  }

  /** Counts one finished request. */
  observe(r: RequestRecord): void {
    const f = r.facts;
    const route = f.route === null || f.route === '' ? NONE : f.route;
    const cluster = f.cluster ?? NONE;
    const slot = codeClassIndex(r.status) * METHOD_COUNT + methodIndex(r.method);
    let s = this.#series.get(r.listener)?.get(route)?.get(cluster)?.[slot];
    if (s === undefined) {
      const listener = r.listener;
      const cls = codeClass(r.status);
      const method = normalizeMethod(r.method);
      const own = this.#requestBudget.admit(`${listener}\0${route}\0${cluster}\0${cls}\0${method}`);
      const lr = own || route === NONE ? route : OTHER;
      const lc = own || cluster === NONE ? cluster : OTHER;
      const dOwn = this.#durationBudget.admit(`${listener}\0${lr}\0${lc}\0${cls}`);
      s = {
        requests: this.#requests.cell({ listener, route: lr, cluster: lc, code_class: cls, method }),
        duration: this.#duration.cell(dOwn ? { listener, route: lr, cluster: lc, code_class: cls } : { listener, route: lr === NONE ? NONE : OTHER, cluster: lc === NONE ? NONE : OTHER, code_class: cls }),
      };
      // Collapsed sets are not remembered under the new key: the next request with it is counted as an overflow too.
      if (own) this.#slotsOf(listener, route, cluster)[slot] = s;
    }
    s.requests.value++;
    this.#duration.observe(s.duration, r.durationMs / 1000);
    const ls = this.#listenerSeries(r.listener);
    this.#requestSize.observe(ls.requestSize, r.bytesIn);
    this.#responseSize.observe(ls.responseSize, r.bytesOut);
    const flags = f.flags;
    for (let i = 0; i < flags.length; i++) {
      const reason = UPSTREAM_ERROR_REASONS[flags[i]!];
      if (reason === undefined) continue;
      const c = this.#errorBudget.admit(`${r.listener}\0${cluster}\0${reason}`) ? cluster : OTHER;
      this.#upstreamErrors.inc({ listener: r.listener, cluster: c, reason });
    }
    if (f.attempts > 1) this.#retries.inc({ cluster: this.#retryBudget.admit(cluster) ? cluster : OTHER }, f.attempts - 1);
  }

  /**
   * Forgets the clusters no longer configured (called on a configuration swap): their label
   * sets leave the cardinality budgets (the room is free again) and their per-request series
   * leave the exposition (prom-client remove()). `none` and `other` are never forgotten.
   */
  retainClusters(configured: (cluster: string) => boolean): void {
    const stale = (c: string | undefined) => c !== undefined && c !== NONE && c !== OTHER && !configured(c);
    for (const byRoute of this.#series.values()) {
      for (const byCluster of byRoute.values()) for (const c of byCluster.keys()) if (stale(c)) byCluster.delete(c);
    }
    for (const key of this.#requestBudget.forget((k) => stale(k.split('\0')[2]))) {
      const [listener, route, cluster, code_class, method] = key.split('\0') as [string, string, string, string, string];
      this.#requests.remove({ listener, route, cluster, code_class, method });
    }
    for (const key of this.#durationBudget.forget((k) => stale(k.split('\0')[2]))) {
      const [listener, route, cluster, code_class] = key.split('\0') as [string, string, string, string];
      this.#duration.remove({ listener, route, cluster, code_class });
    }
    for (const key of this.#errorBudget.forget((k) => stale(k.split('\0')[1]))) {
      const [listener, cluster, reason] = key.split('\0') as [string, string, string];
      this.#upstreamErrors.remove({ listener, cluster, reason });
    }
    for (const cluster of this.#retryBudget.forget((k) => stale(k))) this.#retries.remove({ cluster });
  }

  /** The series slots of (listener, route, cluster), made on first use. */
  #slotsOf(listener: string, route: string, cluster: string): (RequestSeries | undefined)[] {
    let byRoute = this.#series.get(listener);
    if (byRoute === undefined) this.#series.set(listener, (byRoute = new Map()));
    let byCluster = byRoute.get(route);
    if (byCluster === undefined) byRoute.set(route, (byCluster = new Map()));
    let slots = byCluster.get(cluster);
    if (slots === undefined) byCluster.set(cluster, (slots = new Array<RequestSeries | undefined>(CODE_CLASS_COUNT * METHOD_COUNT).fill(undefined)));
    return slots;
  }

  /** The size series of a listener, made once per listener name. */
  #listenerSeries(listener: string): ListenerSeries {
    let l = this.#byListener.get(listener);
    if (l === undefined) {
      const labels = { listener };
      this.#byListener.set(listener, (l = { requestSize: this.#requestSize.cell(labels), responseSize: this.#responseSize.cell(labels) }));
    }
    return l;
  }

  /** The exposition (text format 0.0.4). */
  async text(): Promise<string> {
    this.#snap = this.#read();
    try {
      return await this.registry.metrics();
    } finally {
      this.#snap = null;
    }
  }

  /** The metrics as JSON (prom-client getMetricsAsJSON), for a `--workers N` primary to aggregate. */
  async json(): Promise<MetricsJson> {
    this.#snap = this.#read();
    try {
      return await this.registry.getMetricsAsJSON();
    } finally {
      this.#snap = null;
    }
  }

  #read(): Snapshot {
    const s = this.#source;
    return { listeners: s.listeners(), connections: s.connections(), clusters: s.clusters(), policies: s.policies(), notAfter: s.certificateNotAfter(), xds: s.xds(), lastConfigUpdate: s.lastConfigUpdate() };
  }

  /** The on-scrape families; each reads the snapshot taken for this scrape. */
  #registerCollected(registers: Registry[]): void {
    const snap = (): Snapshot | null => this.#snap;
    const counter = <L extends string>(name: string, help: string, labelNames: L[], fill: (s: Snapshot, set: (labels: Partial<Record<L, string>>, v: number) => void) => void) =>
      new Counter<L>({
        name, help, labelNames, registers,
        collect() {
          this.reset();
          const s = snap();
          if (s !== null) fill(s, (labels, v) => this.inc(labels, v));
        },
      });
    const gauge = <L extends string>(name: string, help: string, labelNames: L[], fill: (s: Snapshot, set: (labels: Partial<Record<L, string>>, v: number) => void) => void, aggregator: Aggregator = 'sum') =>
      new Gauge<L>({
        name, help, labelNames, registers, aggregator,
        collect() {
          this.reset();
          const s = snap();
          if (s !== null) fill(s, (labels, v) => this.set(labels, v));
        },
      });

    gauge('palisade_active_requests', 'Requests in flight, by listener.', ['listener'], (s, set) => {
      for (const [name, l] of Object.entries(s.listeners)) set({ listener: name }, l.inFlight);
    });
    gauge('palisade_active_connections', 'Downstream connections open now, by listener.', ['listener'], (s, set) => {
      for (const [name, n] of Object.entries(s.connections)) set({ listener: name }, n);
    });
    counter('palisade_listener_rejected_total', 'Malformed or timed-out requests the listener refused itself (400/408/426/431/501), by listener.', ['listener'], (s, set) => {
      for (const [name, l] of Object.entries(s.listeners)) set({ listener: name }, l.rejected);
    });
    counter('palisade_tls_handshakes_total', 'TLS handshakes completed on a listener (resumed ones included).', ['listener'], (s, set) => {
      for (const [name, l] of Object.entries(s.listeners)) if (l.tls !== null) set({ listener: name }, l.tls.handshakes);
    });
    counter('palisade_tls_sessions_resumed_total', 'TLS handshakes that resumed a session.', ['listener'], (s, set) => {
      for (const [name, l] of Object.entries(s.listeners)) if (l.tls !== null) set({ listener: name }, l.tls.resumed);
    });
    counter('palisade_tls_refused_total', 'Connections refused: a failed handshake or peer check, or plaintext on a STRICT listener.', ['listener', 'reason'], (s, set) => {
      for (const [name, l] of Object.entries(s.listeners)) {
        if (l.tls === null) continue;
        set({ listener: name, reason: 'handshake' }, l.tls.refused);
        set({ listener: name, reason: 'plaintext' }, l.tls.plaintextRefused);
      }
    });
    gauge('palisade_certificate_expiry_seconds', 'Seconds until the workload certificate (X.509-SVID) expires; absent without one.', [], (s, set) => {
      if (s.notAfter !== null) set({}, (s.notAfter.getTime() - Date.now()) / 1000);
    }, 'min');

    gauge('palisade_upstream_active_requests', 'Requests in flight to a cluster (circuit breaker view).', ['cluster'], (s, set) => {
      for (const c of s.clusters) set({ cluster: c.name }, c.circuitBreakers.activeRequests);
    });
    gauge('palisade_upstream_connections', 'Open upstream connections, by cluster.', ['cluster'], (s, set) => {
      for (const c of s.clusters) set({ cluster: c.name }, c.circuitBreakers.connections);
    });
    counter('palisade_circuit_breaker_overflows_total', 'Requests refused by a circuit breaker, by cluster and limit (requests, pending, retries).', ['cluster', 'limit'], (s, set) => {
      for (const c of s.clusters) {
        const cb = c.circuitBreakers;
        set({ cluster: c.name, limit: 'requests' }, cb.requestOverflows);
        set({ cluster: c.name, limit: 'pending' }, cb.pendingOverflows);
        set({ cluster: c.name, limit: 'retries' }, cb.retryOverflows);
      }
    });
    gauge('palisade_circuit_breaker_open', '1 while a circuit breaker limit is reached (nothing remains), by cluster and limit.', ['cluster', 'limit'], (s, set) => {
      for (const c of s.clusters) {
        const r = c.circuitBreakers.remaining;
        set({ cluster: c.name, limit: 'requests' }, r.requests <= 0 ? 1 : 0);
        set({ cluster: c.name, limit: 'pending' }, r.pending <= 0 ? 1 : 0);
        set({ cluster: c.name, limit: 'retries' }, r.retries <= 0 ? 1 : 0);
      }
    });
    counter('palisade_outlier_ejections_total', 'Hosts ejected by outlier detection, by cluster.', ['cluster'], (s, set) => {
      for (const c of s.clusters) if (c.outlierDetection !== null) set({ cluster: c.name }, c.outlierDetection.ejectionsEnforcedTotal);
    });
    gauge('palisade_outlier_ejections_active', 'Hosts ejected now, by cluster.', ['cluster'], (s, set) => {
      for (const c of s.clusters) if (c.outlierDetection !== null) set({ cluster: c.name }, c.outlierDetection.ejectionsActive);
    });
    gauge('palisade_upstream_hosts', 'Endpoints of a cluster, by health (healthy, degraded, unhealthy, ejected).', ['cluster', 'health'], (s, set) => {
      for (const c of s.clusters) {
        const n = { healthy: 0, degraded: 0, unhealthy: 0, ejected: 0 };
        for (const h of c.hosts) n[h.health]++;
        for (const [health, v] of Object.entries(n)) set({ cluster: c.name, health }, v);
      }
    });

    counter('palisade_policy_decisions_total', 'Authorization decisions of the policies in force, by policy and decision (allow, deny, error, dry_run_deny).', ['policy', 'decision'], (s, set) => {
      if (s.policies === null) return;
      for (const [name, p] of Object.entries(s.policies)) {
        set({ policy: name, decision: 'allow' }, p.allowed);
        set({ policy: name, decision: 'deny' }, p.denied);
        set({ policy: name, decision: 'error' }, p.errors);
        set({ policy: name, decision: 'dry_run_deny' }, p.dryRunDenied);
      }
    });
    counter('palisade_policy_decision_cache_hits_total', 'Decision cache hits, by policy (the cache of the bundle revision in force).', ['policy'], (s, set) => {
      if (s.policies === null) return;
      for (const [name, p] of Object.entries(s.policies)) if (p.cache !== null) set({ policy: name }, p.cache.hits);
    });
    counter('palisade_policy_decision_cache_misses_total', 'Decision cache misses, by policy.', ['policy'], (s, set) => {
      if (s.policies === null) return;
      for (const [name, p] of Object.entries(s.policies)) if (p.cache !== null) set({ policy: name }, p.cache.misses);
    });

    gauge('palisade_xds_connected', '1 while the xDS stream to the control plane is up; absent in workers.', [], (s, set) => {
      if (s.xds !== null) set({}, s.xds.connected ? 1 : 0);
    }, 'max');
    counter('palisade_xds_updates_total', 'xDS updates accepted, by type URL.', ['type_url'], (s, set) => {
      if (s.xds !== null) for (const [t, v] of Object.entries(s.xds.updates)) set({ type_url: t }, v);
    });
    counter('palisade_xds_nacks_total', 'xDS updates refused (NACKed), by type URL.', ['type_url'], (s, set) => {
      if (s.xds !== null) for (const [t, v] of Object.entries(s.xds.nacks)) set({ type_url: t }, v);
    });
    gauge('palisade_xds_version_info', 'The configuration version in force (1, labelled), by resource kind; kind "snapshot" is the hash of the whole applied snapshot.', ['kind', 'version'], (s, set) => {
      if (s.xds?.versions !== undefined) for (const [kind, version] of Object.entries(s.xds.versions)) set({ kind, version }, 1);
    }, 'max');
    gauge('palisade_xds_last_update_timestamp_seconds', 'Unix time of the last configuration applied (snapshot swap); absent before the first.', [], (s, set) => {
      if (s.lastConfigUpdate !== null) set({}, s.lastConfigUpdate / 1000);
    }, 'max');
  }
}

/**
 * One exposition from several registries' JSON (a `--workers N` primary's own and each
 * worker's): counters and histograms summed, gauges as each declares (sum by default; the
 * certificate expiry takes the minimum, timestamps and `connected` the maximum).
 */
export function aggregateMetrics(parts: readonly MetricsJson[]): Promise<string> {
  return AggregatorRegistry.aggregate([...parts]).metrics();
}

/** A MetricsSource with nothing of its own but an xDS stream (a `--workers N` primary). */
export function xdsOnlySource(xds: () => XdsStatsView | null, lastConfigUpdate: () => number | null): MetricsSource {
  return { listeners: () => ({}), connections: () => ({}), clusters: () => [], policies: () => null, certificateNotAfter: () => null, xds, lastConfigUpdate };
}
