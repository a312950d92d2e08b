/**
 * One upstream cluster at run time: its hosts (one undici Pool each), the load balancer,
 * the circuit breakers and the outlier detector, all built from a `ClusterConfig` and
 * updated in place when a new one arrives.
 *
 * A request's life, as the router drives it:
 *
 *   if (!cluster.circuit.tryAcquireRequest()) → 503, overflow
 *   const host = cluster.pick()                 → null: 503, no healthy upstream
 *   cluster.startRequest(host)
 *   host.pool.request(...)  → cluster.reportResult(host, statusCode)
 *                          or cluster.reportResult(host, classifyUpstreamError(err))
 *   … response body streamed (or the attempt abandoned)
 *   cluster.endRequest(host)
 *   cluster.circuit.releaseRequest()
 *
 * Every `startRequest` is paired with exactly one `endRequest`, and at most one
 * `reportResult` in between. A host's `activeRequests` (least-request balancing) counts from
 * `startRequest` to `endRequest`, so a long streaming response keeps its host busy, as Envoy's
 * `rq_active` does.
 *
 * Connections: `max_connections` (or `per_host_thresholds` max_connections when set) caps
 * each endpoint's Pool, so the cluster-wide number of connections can reach hosts ×
 * max_connections; Envoy counts the limit over the whole cluster. HTTP/1.1 pools never
 * negotiate HTTP/2; HTTP/2 pools speak h2c with prior knowledge.
 *
 * Upstream TLS: an endpoint whose config carries `tls` (compile-transport-socket.ts) gets a
 * pool whose connector is an UpstreamTlsTransport (tls-connector.ts), one per distinct TLS
 * config, reading the certificate and bundle from `options.secrets` at each new connection.
 * A host whose TLS config changes gets a new pool (the old one closes gracefully); a secrets
 * change does not touch pools, it reaches new connections only.
 *
 * Timers: one `setInterval` for outlier sweeps and, for STRICT_DNS, one `setTimeout` chain
 * for re-resolution; both unref'd. Nothing is timed per request.
 *
 * DNS: STRICT_DNS host names are resolved with dns.lookup here (never at compile), each
 * address becoming a host that inherits the endpoint's weight, locality and priority; a
 * failed resolution keeps the last answer. `ready` settles after the first round. A
 * LOGICAL_DNS cluster has a single host whose pool connects to the name itself, so the
 * system resolver picks the address for each new connection, as Envoy's LOGICAL_DNS does.
 */
import { isIP } from 'node:net';
import { Pool } from 'undici';
import type { TlsSecrets } from '../tls/secrets.ts';
import type { ClusterConfig, DiscoveryType, EndpointHealth, LbPolicy, UpstreamProtocol, UpstreamTlsConfig } from './cluster-config.ts';
import { UpstreamTlsTransport, type UpstreamTlsStats } from './tls-connector.ts';
import { CircuitBreaker, type CircuitBreakerStats } from './circuit-breaker.ts';
import { hostKey } from './compile-cluster.ts';
import { Host } from './host.ts';
import { LoadBalancer, type LoadBalancerState } from './load-balancer.ts';
import { OutlierDetector, type OutlierDetectionStats, type UpstreamResult } from './outlier-detector.ts';
import { resolveAddresses, type Resolve } from './resolve-addresses.ts';

export interface UpstreamClusterOptions {
  /** [0, 1); for balancing, enforcing rolls and jitter. Default Math.random. */
  readonly random?: () => number;
  /** Resolves STRICT_DNS names. Default: dns.lookup (resolve-addresses.ts). */
  readonly resolve?: Resolve;
  /** Makes an endpoint's pool. Default: `new Pool(origin, options)`. */
  readonly createPool?: (origin: string, options: Pool.Options) => Pool;
  /**
   * The sidecar's TLS material (SDS `default` and `ROOTCA`), read at each new upstream TLS
   * connection. Without it, endpoints whose TLS needs an SDS secret fail to connect
   * (PAL_ERR_SIDECAR_UPSTREAM_TLS_SECRET); inline certificates and CAs work.
   */
  readonly secrets?: TlsSecrets;
}

/** One endpoint in `/clusters`. */
export interface HostStats {
  readonly address: string;
  readonly port: number;
  readonly hostname: string;
  readonly weight: number;
  readonly priority: number;
  readonly locality: { readonly region: string; readonly zone: string; readonly subZone: string };
  /** EDS health status. */
  readonly healthStatus: EndpointHealth;
  /** What the balancer makes of it. */
  readonly health: 'healthy' | 'degraded' | 'unhealthy' | 'ejected';
  /** Epoch ms from which an ejected host may be re-admitted; null when not ejected. */
  readonly ejectedUntil: number | null;
  readonly timesEjected: number;
  readonly activeRequests: number;
  readonly consecutive5xx: number;
  readonly totalRequests: number;
  readonly totalErrors: number;
}

export interface ClusterStats {
  readonly name: string;
  readonly discoveryType: DiscoveryType;
  readonly lbPolicy: LbPolicy;
  readonly protocol: UpstreamProtocol;
  /** The priority traffic goes to, null when no host is usable. */
  readonly activePriority: number | null;
  readonly circuitBreakers: CircuitBreakerStats;
  /** Envoy's `retry_or_shadow_abandoned`: bodies past the retry buffer limit. */
  readonly retryOrShadowAbandoned: number;
  readonly outlierDetection: OutlierDetectionStats | null;
  /** Upstream TLS handshakes, resumed ones and failures; present once the cluster has had a TLS endpoint. */
  readonly tls?: Readonly<UpstreamTlsStats>;
  readonly hosts: readonly HostStats[];
}

/** undici's Pool reads `useH2c` at the top level (its connector needs it); its types omit it. */
type PoolOptions = Pool.Options & { useH2c?: boolean };

export class UpstreamCluster {
  readonly circuit: CircuitBreaker;
  /** Settles once the hosts are known: at once, or after the first STRICT_DNS resolution. */
  readonly ready: Promise<void>;
  #config: ClusterConfig;
  #hosts: Host[] = [];
  readonly #lb: LoadBalancer;
  #detector: OutlierDetector | null = null;
  /** STRICT_DNS: host name → last good answer. */
  readonly #resolved = new Map<string, string[]>();
  #dnsTimer: ReturnType<typeof setTimeout> | null = null;
  #dnsRound = 0;
  #closed = false;
  /** Pools of removed hosts (or replaced pools), closing gracefully. */
  readonly #retiring = new Map<Pool, Promise<void>>();
  readonly #random: () => number;
  readonly #resolve: Resolve;
  readonly #createPool: (origin: string, options: Pool.Options) => Pool;
  readonly #secrets: TlsSecrets | null;
  /** One per distinct TLS config (UpstreamTlsConfig.key) in use. */
  readonly #transports = new Map<string, UpstreamTlsTransport>();
  readonly #tlsStats: UpstreamTlsStats = { handshakes: 0, resumed: 0, failures: 0 };
  #hadTls = false;

  constructor(config: ClusterConfig, options: UpstreamClusterOptions = {}) {
    this.#config = config;
    this.#random = options.random ?? Math.random;
    this.#resolve = options.resolve ?? resolveAddresses;
    this.#createPool = options.createPool ?? ((origin, o) => new Pool(origin, o));
    this.#secrets = options.secrets ?? null;
    this.#lb = new LoadBalancer(this.#random);
    this.circuit = new CircuitBreaker(config.circuitBreakers);
    this.#syncDetector();
    this.#applyEndpoints();
    this.ready = config.discoveryType === 'STRICT_DNS' ? this.#resolveAll() : Promise.resolve();
  }

  get name(): string {
    return this.#config.name;
  }

  get config(): ClusterConfig {
    return this.#config;
  }

  /** Every host of the cluster, usable or not. */
  get hosts(): readonly Host[] {
    return this.#hosts;
  }

  /** Which priority and hosts take traffic now. */
  get loadBalancerState(): LoadBalancerState {
    return this.#lb.state;
  }

  /**
   * The host for the next request, or null when no host is usable (all ejected,
   * unhealthy, unresolved, or the cluster is closed). Allocates nothing.
   */
  pick(): Host | null {
    return this.#lb.pick();
  }

  /**
   * Envoy's `retry_or_shadow_abandoned`: requests whose body outgrew the retry buffer
   * (`per_request_buffer_limit_bytes`), so they could no longer be retried. The router counts here.
   */
  retryOrShadowAbandoned = 0;

  /** Counts a request as started on `host` (least-request balancing reads it until `endRequest`). */
  startRequest(host: Host): void {
    host.activeRequests++;
    host.totalRequests++;
  }

  /**
   * The outcome of a request started with `startRequest`: an HTTP status (at response
   * headers), or how it failed without one. Feeds outlier detection (which may eject the host
   * at once). The request stays active until `endRequest`.
   */
  reportResult(host: Host, result: UpstreamResult): void {
    if (typeof result !== 'number' || result >= 500) host.totalErrors++;
    const d = this.#detector;
    if (d !== null && !host.removed) d.report(host, result);
  }

  /** Ends a request started with `startRequest`: its response body is over, or it was abandoned. */
  endRequest(host: Host): void {
    if (host.activeRequests > 0) host.activeRequests--;
  }

  /**
   * Takes a new config for the same cluster. Hosts that stay (same address and port) keep
   * their pool (unless connection settings changed), counters and outlier state; new ones
   * get a pool; removed ones have theirs closed gracefully. Counters of the circuit
   * breakers carry over.
   */
  update(config: ClusterConfig): void {
    if (this.#closed) throw new Error(`cluster ${JSON.stringify(this.#config.name)} is closed`);
    this.#config = config;
    this.circuit.thresholds = config.circuitBreakers;
    this.#syncDetector();
    if (config.discoveryType !== 'STRICT_DNS') {
      this.#resolved.clear();
      this.#dnsRound++;
      if (this.#dnsTimer !== null) clearTimeout(this.#dnsTimer);
      this.#dnsTimer = null;
    } else {
      const names = this.#dnsNames();
      for (const n of this.#resolved.keys()) if (!names.has(n)) this.#resolved.delete(n);
    }
    this.#applyEndpoints();
    if (config.discoveryType === 'STRICT_DNS') void this.#resolveAll();
  }

  stats(): ClusterStats {
    const c = this.#config;
    const d = this.#detector;
    return {
      name: c.name,
      discoveryType: c.discoveryType,
      lbPolicy: c.lbPolicy,
      protocol: c.protocol,
      activePriority: this.#lb.state.priority,
      circuitBreakers: this.circuit.stats(),
      retryOrShadowAbandoned: this.retryOrShadowAbandoned,
      outlierDetection: d === null ? null : d.stats(),
      ...(this.#hadTls ? { tls: { ...this.#tlsStats } } : {}),
      hosts: this.#hosts.map((h) => ({
        address: h.address,
        port: h.port,
        hostname: h.hostname,
        weight: h.weight,
        priority: h.priority,
        locality: { region: h.locality.region, zone: h.locality.zone, subZone: h.locality.subZone },
        healthStatus: h.health,
        health: h.ejected ? 'ejected' : h.usable ? 'healthy' : h.health === 'DEGRADED' ? 'degraded' : 'unhealthy',
        ejectedUntil: d === null ? null : d.ejectedUntil(h),
        timesEjected: h.timesEjected,
        activeRequests: h.activeRequests,
        consecutive5xx: h.consecutive5xx,
        totalRequests: h.totalRequests,
        totalErrors: h.totalErrors,
      })),
    };
  }

  /**
   * Stops handing out hosts and timers, and closes every pool gracefully: requests in
   * flight finish, then the connections close. Resolves when all pools are closed.
   */
  async close(): Promise<void> {
    this.#shutdown();
    for (const h of this.#hosts) this.#retire(h.pool);
    await Promise.all(this.#retiring.values());
  }

  /** The same as `close()`, named for the admin `/drain` path. */
  drain(): Promise<void> {
    return this.close();
  }

  /** Stops at once: every pool is destroyed, requests in flight fail. */
  async destroy(): Promise<void> {
    this.#shutdown();
    const pools = new Set<Pool>([...this.#retiring.keys(), ...this.#hosts.map((h) => h.pool)]);
    await Promise.all([...pools].map((p) => p.destroy().catch(() => {})));
    await Promise.all(this.#retiring.values());
  }

  #shutdown(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#dnsRound++;
    if (this.#dnsTimer !== null) clearTimeout(this.#dnsTimer);
    this.#dnsTimer = null;
    this.#detector?.close();
    this.#lb.rebuild([], this.#config);
  }

  #syncDetector(): void {
    const od = this.#config.outlierDetection;
    if (od === null) {
      if (this.#detector !== null) {
        this.#detector.close();
        this.#detector = null;
        for (const h of this.#hosts) {
          h.ejected = false;
          h.consecutive5xx = h.consecutiveGatewayFailure = h.consecutiveLocalOriginFailure = 0;
        }
      }
    } else if (this.#detector === null) {
      this.#detector = new OutlierDetector(this.#config.name, od, () => this.#rebuild(), this.#random);
      this.#detector.setHosts(this.#hosts);
    } else {
      this.#detector.update(od);
    }
  }

  #rebuild(): void {
    if (!this.#closed) this.#lb.rebuild(this.#hosts, this.#config);
  }

  #poolOptions(): PoolOptions {
    const c = this.#config;
    const o: PoolOptions = {
      connections: c.circuitBreakers.perHostMaxConnections ?? c.circuitBreakers.maxConnections,
      connectTimeout: c.connectTimeoutMs,
      allowH2: c.protocol === 'http2',
    };
    if (c.protocol === 'http2') o.useH2c = true;
    if (c.maxRequestsPerConnection !== null) o.maxRequestsPerClient = c.maxRequestsPerConnection;
    if (c.discoveryType === 'LOGICAL_DNS' && c.dns !== null) {
      if (c.dns.lookupFamily === 'V4_ONLY') o.connect = { family: 4 };
      else if (c.dns.lookupFamily === 'V6_ONLY') o.connect = { family: 6 };
    }
    return o;
  }

  #newPool(key: string, options: PoolOptions): Pool {
    const pool = this.#createPool(`http://${key}`, options);
    pool.on('connect', () => void this.circuit.connections++);
    pool.on('disconnect', () => {
      if (this.circuit.connections > 0) this.circuit.connections--;
    });
    return pool;
  }

  #retire(pool: Pool): void {
    if (this.#retiring.has(pool)) return;
    const done = pool.close().catch(() => {}).finally(() => void this.#retiring.delete(pool));
    this.#retiring.set(pool, done);
  }

  /** Host names of the config's endpoints that need resolving. */
  #dnsNames(): Set<string> {
    const names = new Set<string>();
    for (const l of this.#config.localities) for (const e of l.endpoints) if (isIP(e.address) === 0) names.add(e.address);
    return names;
  }

  /** Pool options and their stamp for one host: the cluster's, plus a TLS connector when the endpoint has TLS. */
  #hostPoolOptions(key: string, base: PoolOptions, baseKey: string, tls: UpstreamTlsConfig | undefined, used: Map<string, UpstreamTlsTransport>): { options: PoolOptions; poolKey: string } {
    if (tls === undefined) return { options: base, poolKey: baseKey };
    let t = used.get(tls.key) ?? this.#transports.get(tls.key);
    if (t === undefined) t = new UpstreamTlsTransport(this.#config.name, tls, this.#secrets, this.#tlsStats);
    used.set(tls.key, t);
    const c = this.#config;
    const { useH2c: _unused, ...rest } = base;
    return { options: { ...rest, connect: t.connector(key, c.protocol === 'http2', c.connectTimeoutMs) }, poolKey: `${baseKey}|tls:${tls.key}` };
  }

  /** Makes the host list match the config (and, for STRICT_DNS, the latest answers). */
  #applyEndpoints(): void {
    const c = this.#config;
    const base = this.#poolOptions();
    const baseKey = JSON.stringify(base);
    const used = new Map<string, UpstreamTlsTransport>();
    const old = new Map(this.#hosts.map((h) => [h.key, h]));
    const next: Host[] = [];
    const seen = new Set<string>();
    for (const loc of c.localities) {
      for (const ep of loc.endpoints) {
        const byName = c.discoveryType === 'STRICT_DNS' && isIP(ep.address) === 0;
        const addresses = byName ? (this.#resolved.get(ep.address) ?? []) : [ep.address];
        const hostname = ep.hostname || (byName ? ep.address : '');
        for (const address of addresses) {
          const key = hostKey(address, ep.port);
          if (seen.has(key)) continue;
          seen.add(key);
          const { options, poolKey } = this.#hostPoolOptions(key, base, baseKey, ep.tls, used);
          let h = old.get(key);
          if (h) {
            old.delete(key);
            h.weight = ep.weight;
            h.health = ep.health;
            h.hostname = hostname;
            h.locality = loc;
            h.priority = loc.priority;
            if (h.poolKey !== poolKey) {
              this.#retire(h.pool);
              h.pool = this.#newPool(key, options);
              h.poolKey = poolKey;
            }
          } else {
            h = new Host(address, ep.port, key, this.#newPool(key, options), poolKey, ep.weight, ep.health, hostname, loc);
          }
          next.push(h);
        }
      }
    }
    for (const h of old.values()) {
      h.removed = true;
      this.#retire(h.pool);
    }
    this.#hosts = next;
    this.#transports.clear();
    for (const [k, t] of used) {
      this.#transports.set(k, t);
      t.forgetHosts(seen);
    }
    if (used.size > 0) this.#hadTls = true;
    this.#detector?.setHosts(next);
    this.#rebuild();
  }

  /** Resolves every STRICT_DNS name once, applies what changed, schedules the next round. */
  async #resolveAll(): Promise<void> {
    const round = ++this.#dnsRound;
    if (this.#dnsTimer !== null) clearTimeout(this.#dnsTimer);
    this.#dnsTimer = null;
    const dns = this.#config.dns;
    if (dns === null) return;
    let failed = false;
    const answers = new Map<string, string[]>();
    await Promise.all([...this.#dnsNames()].map(async (name) => {
      try {
        answers.set(name, await this.#resolve(name, dns.lookupFamily));
      } catch {
        failed = true; // keep the last good answer, as Envoy does
      }
    }));
    if (round !== this.#dnsRound || this.#closed) return;
    let changed = false;
    for (const [name, addresses] of answers) {
      const before = this.#resolved.get(name);
      if (!before || before.length !== addresses.length || before.some((a, i) => a !== addresses[i])) {
        this.#resolved.set(name, addresses);
        changed = true;
      }
    }
    if (changed) this.#applyEndpoints();
    this.#dnsTimer = setTimeout(() => void this.#resolveAll(), failed ? dns.failureRefreshRateMs : dns.refreshRateMs);
    this.#dnsTimer.unref();
  }
}
