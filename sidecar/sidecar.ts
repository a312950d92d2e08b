/**
 * The Palisade sidecar: one workload's proxy, configured over xDS.
 *
 *   start()
 *     1. inbound listener binds (bootstrap inbound; port 0 allowed) → the port it advertises
 *     2. admin and outbound listeners bind (outbound answers 503 "not ready" until step 5)
 *     3. AdsClient (SotW) with node = sidecarNode(b, inboundPort, ready=false); CDS '*', LDS '*'
 *     4. every accepted update: EDS follows the EDS clusters CDS names, RDS the route
 *        configurations the listeners name; ConfigStore recompiles; each swap is applied to
 *        the ClusterManager
 *     5. first complete snapshot: ready (/ready 200), the node is re-sent with ready=true (the
 *        control plane adds this sidecar as an endpoint of its Service), outbound serves
 *
 * Outbound: each request takes `store.current` once and keeps it; its route table is the one
 * the snapshot's outbound listener names (the listener on the bootstrap's outbound port, else
 * the first listener). Absolute-form targets (`GET http://api:9090/x`, the proxy used as an
 * HTTP proxy) are routed by the URL's host and path; origin-form by the Host header.
 *
 * Inbound: every request goes to the workload (bootstrap workload.address) through a STATIC
 * (or STRICT_DNS, for a hostname) cluster `inbound|<workload port>||<service>` and a
 * catch-all route, with the same forwarder. Plain HTTP: mTLS is issue #5.
 *
 * Worker mode (`worker` option; `--workers N`, sidecar/workers/): no admin listener and no xDS
 * stream; inbound and outbound bind the ports the primary gives with SO_REUSEPORT, and the
 * configuration arrives through `store.apply()` (possibly before start(): a restarted worker
 * binds already configured and ready).
 *
 * drain(): stops accepting on inbound and outbound, tells the control plane it is not ready,
 * and waits for the requests in flight (up to the drain deadline). close(): stops
 * everything at once and leaves no handle behind.
 */
import type { WorkloadIdentity } from './identity/enroll.ts';
import { enrollWorkloadTls } from './identity/xds-credentials.ts';
import type { WorkloadTls } from './identity/workload-tls.ts';
import { TlsSecrets } from './tls/secrets.ts';
import { InboundAuthz } from './authz/inbound-authz.ts';
import { ExtAuthzServer } from './authz/ext-authz-server.ts';
import { createPolicyValidator, loadVerificationKeys } from './authz/policy-validator.ts';
import { POLICY_TYPE_URL, QUOTA_TYPE_URL, REQUEST_AUTHENTICATION_TYPE_URL } from '../xds/resources/type-urls.ts';
import { QuotaGate } from './quota/quota-gate.ts';
import { createQuotaValidator } from './quota/quota-validator.ts';
import { RedisStore } from './quota/redis-store.ts';
import { RateLimitServer } from './quota/rls-server.ts';
import { attachFacts, factsOf } from './telemetry/request-facts.ts';
import { createRequestAuthenticationValidator } from './authn/request-authentication-validator.ts';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { DurationSchema } from '@bufbuild/protobuf/wkt';
import type { Logger } from 'pino';
import { ClusterSchema, Cluster_DiscoveryType, type Cluster } from '../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { RouteConfigurationSchema } from '../xds/gen/envoy/config/route/v3/route_pb.js';
import type { SidecarBootstrap } from './bootstrap/bootstrap.ts';
import { ClusterManager } from './config/cluster-manager.ts';
import { ConfigStore } from './config/config-store.ts';
import { SidecarXds } from './config/sidecar-xds.ts';
import { configDumpOf, type SidecarSnapshot } from './config/sidecar-snapshot.ts';
import { createForwarder, type Forwarder } from './proxy/forward.ts';
import { createUpgrader, INBOUND_UPGRADE_TYPES, refuseUpgrade } from './proxy/upgrade.ts';
import { compileRouteTable, type RouteTable } from './routing/route-table.ts';
import { compileCluster, hostKey } from './upstream/compile-cluster.ts';
import { UpstreamCluster } from './upstream/upstream-cluster.ts';
import { HttpListener, type DownstreamRequest, type DownstreamResponse, type RequestHandler, type UpgradeHandler } from './listeners/http-listener.ts';
import { adminHandler } from './admin/admin.ts';
import { OverloadManager } from './overload/overload-manager.ts';
import { createRequestTelemetry } from './telemetry/sidecar-telemetry.ts';
import type { RequestTelemetry } from './telemetry/request-telemetry.ts';
import { UsageMeter } from './telemetry/usage-meter.ts';
import { SloCounters } from './telemetry/slo-counters.ts';
import { LoadReporter } from './telemetry/load-reporter.ts';
import { tenantSettings } from './telemetry/tenant.ts';
import type { PolicyStatsView, XdsStatsView } from './telemetry/metrics.ts';

/** Default deadline for requests in flight when draining, ms. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 5000;

export interface SidecarOptions {
  /** A validated bootstrap (loadBootstrap). */
  readonly bootstrap: SidecarBootstrap;
  readonly logger: Logger;
  /** Reported to the control plane as the user agent version. Default "dev". */
  readonly version?: string;
  /** How long drain() waits for requests in flight, ms. Default DEFAULT_DRAIN_TIMEOUT_MS. */
  readonly drainTimeoutMs?: number;
  // --- workers (sidecar/workers/) ---
  /**
   * Run as one worker process of a `--workers N` sidecar: bind inbound and outbound on these
   * ports with SO_REUSEPORT (0: any, the primary then hands the bound port to the other
   * workers), no admin listener, no xDS stream (the primary feeds `store.apply()`).
   */
  readonly worker?: { readonly inboundPort: number; readonly outboundPort: number };
  // --- end workers ---
  /** Overload pressure 0..100 for the quotas' priority shedding (the overload manager). Default: always 0. */
  readonly pressure?: () => number;
}

/** Where the listeners are bound (host:port). */
export interface SidecarAddresses {
  readonly inbound: string;
  readonly outbound: string;
  readonly admin: string;
  /** The ext_authz gRPC server (bootstrap extAuthz), host:port; absent when not served. */
  readonly extAuthz?: string;
  /** Envoy's rate limit service (bootstrap rateLimitService), host:port; absent when not served. */
  readonly rateLimitService?: string;
}

export type SidecarEvents = {
  /** The first complete configuration is applied and the outbound listener serves. */
  ready: [snapshot: SidecarSnapshot];
};

type Phase = 'new' | 'starting' | 'running' | 'draining' | 'closed';

export class Sidecar extends EventEmitter<SidecarEvents> {
  readonly store = new ConfigStore();
  /** TLS material by SDS name (`default`: this workload's SVID, `ROOTCA`: the mesh trust), read at each new handshake. */
  readonly secrets = new TlsSecrets();
  readonly clusters = new ClusterManager({ secrets: this.secrets });
  /** The enrolled identity and its renewal (bootstrap identity section); null: a plaintext mesh. */
  #tls: WorkloadTls | null = null;
  readonly #b: SidecarBootstrap;
  readonly #log: Logger;
  readonly #version: string;
  readonly #drainTimeoutMs: number;
  /** Worker mode (SidecarOptions.worker): null for a single-process sidecar. */
  readonly #worker: { readonly inboundPort: number; readonly outboundPort: number } | null;
  /** Replaced in start() by a TLS listener when the sidecar enrolls. */
  #inbound = new HttpListener('inbound');
  /** Replaced by a new, unbound one when LDS removes the outbound listener (the old one drains). */
  #outbound = new HttpListener('outbound');
  /** Outbound listeners draining after LDS removed them; closed at once by close(). */
  readonly #retiring = new Set<HttpListener>();
  /** Whether the current snapshot has the outbound listener (and its routes); false while it is away. */
  #outboundInLds = true;
  #outboundPort = 0;
  readonly #admin = new HttpListener('admin');
  /** Metrics, access log, traces and sinks for every inbound and outbound request (issue #7). */
  readonly telemetry: RequestTelemetry;
  /** Usage per tenant and route of every request (issue #7), reported over LRS. */
  readonly usage = new UsageMeter();
  /**
   * The LRS stream to the control plane (ADS's address and credentials): carries `usage`, and
   * named metrics added with `loadReporter.addSource()`. Started with the xDS stream; workers have none.
   */
  readonly loadReporter: LoadReporter;
  /** The outbound handler with telemetry around it. */
  readonly #outboundHandler: RequestHandler;
  /** Epoch ms of the last configuration swap, for palisade_xds_last_update_timestamp_seconds. */
  #lastSwapAt: number | null = null;
  readonly #inboundCluster: UpstreamCluster;
  readonly #inboundTable: RouteTable;
  readonly #outboundForwarder: Forwarder;
  readonly #inboundForwarder: Forwarder;
  readonly #outboundUpgrade: UpgradeHandler;
  readonly #inboundUpgrade: UpgradeHandler;
  /** The Policies that judge inbound requests (issue #6). */
  readonly #authz: InboundAuthz;
  /** The overload manager (bootstrap overload; sidecar/overload/); null when not configured: then nothing is checked. */
  readonly #overload: OverloadManager | null;
  /** The listeners' accept gate: the overload manager's stop-accepting action; null without one. */
  readonly #connectionGate: (() => boolean) | null;
  /** The Quotas that count inbound requests, after authz (issue #7). */
  readonly #quotas: QuotaGate;
  /** The store of GLOBAL quotas (bootstrap quota.redis); null without one, and in workers. */
  #quotaStore: RedisStore | null = null;
  /** Envoy ext_authz for the namespace's Policies (bootstrap extAuthz); null when not served, and in workers. */
  #extAuthz: ExtAuthzServer | null = null;
  /** Envoy's rate limit service for the namespace's Quotas (bootstrap rateLimitService); null when not served, and in workers. */
  #rateLimitService: RateLimitServer | null = null;
  #xds: SidecarXds | null = null;
  #phase: Phase = 'new';
  /** The outbound listener's route table in store.current, found once per swap, not per request. */
  #outboundTable: RouteTable | undefined;
  /** The upgrade types (`upgrade_configs`) of that listener's HCM. */
  #outboundUpgrades: readonly string[] = [];
  #ready = false;
  #inboundPort = 0;
  #addresses: SidecarAddresses | null = null;
  #drained: Promise<boolean> | null = null;
  #closing: Promise<void> | null = null;

  /** Throws for a workload address the inbound cluster cannot be built from. */
  constructor(options: SidecarOptions) {
    super();
    this.#b = options.bootstrap;
    this.#log = options.logger;
    this.#version = options.version ?? 'dev';
    this.#drainTimeoutMs = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
    this.#worker = options.worker ?? null;
    this.telemetry = createRequestTelemetry(this.#b, this.#log, {
      listeners: () => ({ inbound: this.#inbound.stats(), outbound: this.#outbound.stats() }),
      connections: () => ({ inbound: this.#inbound.connections, outbound: this.#outbound.connections }),
      clusters: () => [...this.clusters.stats(), this.#inboundCluster.stats()],
      policies: () => (this.#authz.stats() as { policies: Record<string, PolicyStatsView> }).policies,
      certificateNotAfter: () => this.#tls?.identity.notAfter ?? null,
      xds: () => {
        const stats = this.#xds?.stats(null) as Omit<XdsStatsView, 'versions'> | undefined;
        if (stats === undefined) return null;
        const current = this.store.current;
        if (current === null) return stats;
        const versions: Record<string, string> = { snapshot: current.version };
        for (const [kind, v] of Object.entries(current.versions)) versions[kind] = v.version;
        return { ...stats, versions };
      },
      lastConfigUpdate: () => this.#lastSwapAt,
      quotaDecisions: () => this.#quotas.decisions(),
    });
    this.#outboundHandler = this.telemetry.wrap('outbound', (req, res) => {
      this.usage.stamp(req.headers, factsOf(req));
      this.#handleOutbound(req, res);
    });
    const usage = this.usage;
    this.telemetry.addSink((record) => usage.record(record));
    this.loadReporter = new LoadReporter({
      meter: usage,
      target: () => {
        const c = this.#xds!.client.config;
        return { address: c.address, credentials: c.credentials, node: c.node };
      },
    });
    this.loadReporter.on('sourceError', (err) => this.#log.warn({ err }, 'a load report source failed; its loads are skipped this interval'));
    // Per-route SLO counters (outbound routes with a `palisade.slo` objective), reported over LRS.
    const slo = new SloCounters((name) => this.#outboundTable?.sloRoute(name) ?? null);
    this.telemetry.addSink(slo.record);
    this.loadReporter.addSource(slo.loads);
    if (!Number.isInteger(this.#drainTimeoutMs) || this.#drainTimeoutMs < 0) {
      throw new RangeError(`drainTimeoutMs must be a non-negative integer, got ${this.#drainTimeoutMs}`);
    }
    const { cluster, route } = inboundResources(this.#b);
    const compiled = compileCluster(cluster, undefined);
    if (!compiled.valid) throw new Error(`inbound cluster ${cluster.name}: ${compiled.errors.join('; ')}`);
    const table = compileRouteTable(route);
    if (!table.valid) throw new Error(`inbound route ${route.name}: ${table.errors.join('; ')}`);
    this.#inboundCluster = new UpstreamCluster(compiled.result);
    this.#inboundTable = table.result;
    this.#outboundForwarder = createForwarder({ getCluster: (name) => this.clusters.get(name) });
    const inboundName = cluster.name;
    const inboundCluster = this.#inboundCluster;
    this.#inboundForwarder = createForwarder({ getCluster: (name) => (name === inboundName ? inboundCluster : undefined) });
    // Upgrades (WebSocket): inbound always lets them through to the workload; outbound as its HCM says.
    const inboundUpgrader = createUpgrader({ getCluster: (name) => (name === inboundName ? inboundCluster : undefined) });
    this.#authz = new InboundAuthz({
      service: this.#b.node.service, logger: this.#log.child({ component: 'authz' }), ownPrincipal: () => this.#tls?.identity.spiffeId ?? null,
      // Workers get no xDS stream of their own: only the single-process sidecar waits for it.
      authentication: this.#worker === null,
      // The ext_authz server judges by every Policy of the namespace, not only this Service's.
      namespacePolicies: this.#b.extAuthz !== null && this.#worker === null,
    });
    const overload = this.#b.overload === null ? null : new OverloadManager(this.#b.overload, {
      connections: () => this.#inbound.connections + this.#outbound.connections,
      activeRequests: () => this.#inbound.inFlight,
    });
    this.#overload = overload;
    this.#connectionGate = overload === null || overload.config.maxConnections === null ? null : () => overload.admitConnection();
    this.#quotas = new QuotaGate({
      service: this.#b.node.service, namespace: this.#b.node.namespace, logger: this.#log.child({ component: 'quota' }),
      // The rate limit service judges by every Quota of the namespace, not only this Service's.
      namespaceQuotas: this.#b.rateLimitService !== null && this.#worker === null,
      ...(options.pressure !== undefined ? { pressure: options.pressure } : overload !== null ? { pressure: () => overload.pressure() } : {}),
    });
    const readyCheck = () => {
      // The first policies (and quotas) in force may be what readiness waited for.
      const current = this.store.current;
      if (!this.#ready && current?.complete === true && this.#phase === 'running') this.#onSwap(current);
    };
    this.#authz.on('applied', readyCheck);
    this.#quotas.on('applied', readyCheck);
    this.#inboundUpgrade = this.telemetry.wrapUpgrade('inbound', (req, socket, head, respond) => this.#authz.gateUpgrade(req, socket, respond,
      () => this.#quotas.gateUpgrade(req, socket, respond, () => inboundUpgrader.upgrade(req, socket, head, this.#inboundTable, INBOUND_UPGRADE_TYPES, respond))));
    this.#wireInbound(this.#inbound);
    const outboundUpgrader = createUpgrader({ getCluster: (name) => this.clusters.get(name) });
    this.#outboundUpgrade = this.telemetry.wrapUpgrade('outbound', (req, socket, head, respond) => {
      const table = this.#ready ? this.#outboundTable : undefined;
      if (table === undefined) refuseUpgrade(socket, respond, 503, this.#ready ? 'no route configuration' : 'not ready');
      else outboundUpgrader.upgrade(req, socket, head, table, this.#outboundUpgrades, respond);
    });
    this.#outbound.setUpgradeHandler(this.#outboundUpgrade);
    this.#outbound.setConnectionGate(this.#connectionGate);
    this.#admin.setHandler(adminHandler({
      isReady: () => this.ready,
      configDump: () => this.configDump(),
      clusters: () => this.clusterStats(),
      stats: () => this.stats(),
      drain: () => this.drain(),
      metrics: () => this.telemetry.metrics.text(),
    }));
    // Registered here, not in start(): a worker may be configured before it binds.
    this.store.on('swap', (next) => {
      this.#lastSwapAt = Date.now();
      // Renamed or removed clusters: their metric series go, and their room in the label budgets comes back.
      this.telemetry.metrics.retainClusters((c) => next.clusterConfigs.has(c) || c === inboundName);
      this.#onSwap(next);
    });
  }

  #wireInbound(l: HttpListener): void {
    l.setConnectionGate(this.#connectionGate);
    l.setHandler(this.telemetry.wrap('inbound', (req, res) => {
      this.usage.stamp(req.headers, factsOf(req));
      // The overload manager first, before authz: a shed request costs one field read.
      if (this.#overload !== null && this.#overload.shedInbound(req, res)) return;
      // jwt_claim descriptors read the verified token from the request's facts (authz sets them).
      if (this.#quotas.config.quotas.length > 0 && factsOf(req) === undefined) attachFacts(req);
      this.#authz.gate(req, res, () => this.#quotas.gate(req, res, () => this.#inboundForwarder.handle(req, res, this.#inboundTable)));
    }));
    l.setUpgradeHandler(this.#inboundUpgrade);
  }

  /** The workload's X.509-SVID once enrolled (bootstrap identity); null without one. */
  get identity(): WorkloadIdentity | null {
    return this.#tls?.identity ?? null;
  }

  /**
   * Renews the workload certificate now (as at half-life): new handshakes, inbound and
   * outbound, use the new one; live connections keep theirs. Resolves when done or failed
   * (a failure is logged and retried on the usual schedule). A no-op without an identity.
   */
  renewIdentity(): Promise<void> {
    return this.#tls?.renewNow() ?? Promise.resolve();
  }

  /** The mesh mTLS mode inbound enforces: STRICT (mTLS only) until a MeshConfig says PERMISSIVE; null for a plaintext sidecar. */
  get meshMode(): 'STRICT' | 'PERMISSIVE' | null {
    return this.#tls === null ? null : (this.#xds?.meshMode ?? 'STRICT');
  }

  /**
   * Enrolls (bootstrap identity section) before anything binds, so the inbound listener
   * terminates mTLS with the SVID from its first connection: STRICT refuses plaintext until a
   * MeshConfig says PERMISSIVE. Renewals and trust pushes reach new handshakes.
   */
  async #enroll(): Promise<void> {
    const tls = await enrollWorkloadTls(this.#b, this.#log, this.secrets);
    if (tls === null) return;
    this.#tls = tls;
    this.#inbound = new HttpListener('inbound', null, { tls: tls.listenerTls(), plaintext: 'refuse' });
    this.#wireInbound(this.#inbound);
    const refresh = () => {
      try {
        this.#inbound.setTls(tls.listenerTls());
      } catch (err) {
        this.#log.error({ err }, 'the inbound listener kept its previous certificate');
      }
    };
    tls.on('renewed', refresh);
    tls.on('trust', refresh);
    tls.start();
  }

  /** True once the first complete configuration is applied, until drain/close. */
  get ready(): boolean {
    return this.#ready && this.#phase === 'running';
  }

  /** The bound addresses; null before start() resolves. */
  get addresses(): SidecarAddresses | null {
    return this.#addresses;
  }

  /** Resolves when ready (the first complete snapshot applied). */
  whenReady(): Promise<SidecarSnapshot> {
    return this.#ready && this.store.current ? Promise.resolve(this.store.current) : new Promise((resolve) => this.once('ready', resolve));
  }

  /**
   * Binds the listeners and connects to the control plane; resolves with the bound
   * addresses, not waiting for the configuration (see whenReady and /ready).
   */
  async start(): Promise<SidecarAddresses> {
    if (this.#phase !== 'new') throw new Error(`the sidecar cannot start: it is ${this.#phase}`);
    this.#phase = 'starting';
    const b = this.#b;
    try {
      if (this.#worker === null) await this.#enroll();
      // --- workers: a worker binds the primary's ports with SO_REUSEPORT and has no admin listener ---
      const w = this.#worker;
      const reuse = { reusePort: w !== null };
      this.#inboundPort = await this.#inbound.listen(b.inbound.address, w?.inboundPort ?? b.inbound.port, reuse);
      const adminPort = w !== null ? 0 : await this.#admin.listen(b.admin.address, b.admin.port);
      const outboundPort = await this.#outbound.listen(b.outbound.address, w?.outboundPort ?? b.outbound.port, reuse);
      this.#outboundPort = outboundPort;
      // --- end workers ---
      let extAuthz: string | undefined;
      if (w === null && b.extAuthz !== null) {
        const authz = this.#authz;
        this.#extAuthz = new ExtAuthzServer({ config: () => authz.namespaceConfig ?? authz.config, logger: this.#log.child({ component: 'ext-authz' }) });
        extAuthz = hostKey(b.extAuthz.address, await this.#extAuthz.listen(b.extAuthz.address, b.extAuthz.port));
      }
      let rateLimitService: string | undefined;
      if (w === null && b.rateLimitService !== null) {
        const quotas = this.#quotas;
        this.#rateLimitService = new RateLimitServer({ config: () => quotas.namespaceConfig ?? quotas.config, ready: () => quotas.ready, logger: this.#log.child({ component: 'rate-limit-service' }) });
        rateLimitService = hostKey(b.rateLimitService.address, await this.#rateLimitService.listen(b.rateLimitService.address, b.rateLimitService.port));
      }
      this.#addresses = {
        inbound: hostKey(b.inbound.address, this.#inboundPort),
        outbound: hostKey(b.outbound.address, outboundPort),
        admin: w !== null ? '' : hostKey(b.admin.address, adminPort),
        ...(extAuthz !== undefined ? { extAuthz } : {}),
        ...(rateLimitService !== undefined ? { rateLimitService } : {}),
      };
    } catch (err) {
      await this.close();
      throw err;
    }
    if (this.#phase !== 'starting') throw new Error('the sidecar was closed while starting');
    this.#overload?.start();
    // --- workers: no xDS stream; the configuration comes from the primary ---
    if (this.#worker !== null) {
      this.#phase = 'running';
      if (this.#ready) this.emit('ready', this.store.current!);
      return this.#addresses!;
    }
    // --- end workers ---

    try {
      const policyKeys = await loadVerificationKeys(b.policy.verificationKeys);
      if (b.quota.redis !== null) {
        this.#quotaStore = await RedisStore.connect(b.quota.redis, this.#log.child({ component: 'quota' }));
        this.#quotas.useStore(this.#quotaStore);
      }
      this.#xds = new SidecarXds({
        bootstrap: b, inboundPort: this.#inboundPort, version: this.#version, logger: this.#log, tls: this.#tls,
        apply: (client) => this.store.applyFrom(client),
        validators: {
          [POLICY_TYPE_URL]: createPolicyValidator(policyKeys), [REQUEST_AUTHENTICATION_TYPE_URL]: createRequestAuthenticationValidator(),
          [QUOTA_TYPE_URL]: createQuotaValidator({ service: b.node.service, namespace: b.node.namespace, redis: b.quota.redis !== null }),
        },
        onPolicies: (policies) => void this.#authz.apply(policies),
        onRequestAuthentications: (resources) => this.#authz.applyAuthentication(resources),
        onQuotas: (quotas) => this.#quotas.apply(quotas),
        // A sidecar without an identity serves plaintext only: the mode has nothing to enforce there.
        onMeshMode: (mode) => {
          if (this.#tls !== null) this.#inbound.setPlaintext(mode === 'PERMISSIVE' ? 'accept' : 'refuse');
        },
        onMetering: (metering) => this.usage.setSettings(tenantSettings(metering)),
      });
      this.loadReporter.start();
    } catch (err) {
      await this.close();
      throw err;
    }
    this.#phase = 'running';
    this.#log.info({ ...this.#addresses, node: b.node.id, service: `${b.node.namespace}/${b.node.service}` }, 'sidecar started');
    return this.#addresses!;
  }

  #onSwap(next: SidecarSnapshot): void {
    const listener = next.listeners.find((l) => l.port === this.#b.outbound.port) ?? next.listeners[0];
    this.#outboundTable = listener === undefined ? undefined : next.routeTables.get(listener.routeConfigName);
    this.#outboundUpgrades = listener?.upgradeTypes ?? [];
    if (this.#phase === 'closed') return;
    try {
      this.clusters.apply(next);
    } catch (err) {
      this.#log.error({ err }, 'applying clusters failed');
      return;
    }
    this.#log.debug({ version: next.version, complete: next.complete, missing: next.missing }, 'configuration applied');
    // Removed: the listener left LDS. Back: the listener is in LDS and its routes arrived (warm).
    const inLds = this.#outboundInLds ? listener !== undefined : this.#outboundTable !== undefined;
    // A worker may get its configuration before start() ('new'): it binds ready.
    // Ready needs the policies in force too: nothing reaches the workload unjudged.
    if (!next.complete || this.#ready || this.#phase === 'draining' || (this.#worker === null && (!this.#authz.ready || !this.#quotas.ready))) {
      this.#followLds(inLds);
      return;
    }
    this.#ready = true;
    this.#outbound.setHandler(this.#outboundHandler);
    if (this.#phase !== 'running') return;
    this.#xds?.setReady(true);
    this.#log.info({ version: next.version }, 'sidecar ready');
    this.emit('ready', next);
    this.#followLds(inLds);
  }

  /**
   * As Envoy does with a listener LDS removes: the outbound listener stops accepting, its
   * requests in flight get the drain timeout to finish, then it closes; when LDS has it again
   * and its routes have arrived (Envoy's listener warming), it binds the same port again. A
   * listener whose route configuration is only missing for a moment (renamed) is not removed.
   * The inbound listener is the bootstrap's and stays.
   */
  #followLds(inLds: boolean): void {
    if (!this.#ready || this.#phase !== 'running' || inLds === this.#outboundInLds) return;
    this.#outboundInLds = inLds;
    const b = this.#b;
    if (!inLds) {
      const old = this.#outbound;
      this.#outbound = new HttpListener('outbound');
      this.#outbound.setUpgradeHandler(this.#outboundUpgrade);
    this.#outbound.setConnectionGate(this.#connectionGate);
      this.#retiring.add(old);
      this.#log.warn({ port: this.#outboundPort }, 'the outbound listener left LDS: draining it');
      void old.drain(this.#drainTimeoutMs).then((finished) => {
        this.#retiring.delete(old);
        this.#log.info({ port: this.#outboundPort, finished }, 'the outbound listener drained and closed');
      });
      return;
    }
    const l = this.#outbound;
    l.setHandler(this.#outboundHandler);
    l.listen(b.outbound.address, this.#outboundPort, { reusePort: this.#worker !== null }).then(
      () => this.#log.info({ port: this.#outboundPort }, 'the outbound listener is back in LDS: listening again'),
      (err: unknown) => this.#log.error({ err, port: this.#outboundPort }, 'the outbound listener could not bind again'),
    );
  }

  #handleOutbound(req: DownstreamRequest, res: DownstreamResponse): void {
    if (this.#overload !== null && this.#overload.shedOutbound(req, res)) return;
    const table = this.#outboundTable;
    if (table === undefined) {
      localReply(res, 503, 'no route configuration');
      return;
    }
    const target = req.url ?? '/';
    if (!target.startsWith('/') && target !== '*') {
      // Absolute form: the workload uses the sidecar as its HTTP proxy.
      let url: URL;
      try {
        url = new URL(target);
      } catch {
        localReply(res, 400, 'bad request target');
        return;
      }
      if (url.protocol !== 'http:') {
        localReply(res, 400, `unsupported scheme ${url.protocol}`);
        return;
      }
      req.headers.host = url.host;
      req.url = `${url.pathname}${url.search}`;
    }
    this.#outboundForwarder.handle(req, res, table);
  }

  /**
   * Stops accepting on inbound and outbound, reports not ready to the control plane and
   * waits for the requests in flight, at most the drain timeout. Resolves true when they all
   * finished. Idempotent.
   */
  drain(deadlineMs = this.#drainTimeoutMs): Promise<boolean> {
    if (this.#drained) return this.#drained;
    if (this.#phase === 'running' || this.#phase === 'starting') this.#phase = 'draining';
    this.#log.info({ deadlineMs }, 'draining');
    if (this.#phase === 'draining') this.#xds?.setReady(false);
    this.#drained = Promise.all([this.#inbound.drain(deadlineMs), this.#outbound.drain(deadlineMs)]).then(([a, b]) => {
      this.#log.info({ finished: a && b }, 'drained');
      return a && b;
    });
    return this.#drained;
  }

  /** Stops everything: listeners (requests in flight are cut), the xDS stream, the upstream pools. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#phase = 'closed';
    this.#ready = false;
    this.#xds?.close();
    this.#tls?.close();
    this.#authz.close();
    this.#overload?.close();
    this.#quotas.close();
    this.#quotaStore?.close();
    this.store.removeAllListeners('swap');
    await Promise.all([this.#inbound.close(), this.#outbound.close(), this.#admin.close(), this.#extAuthz?.close(), this.#rateLimitService?.close(), ...[...this.#retiring].map((l) => l.close())]);
    // Usage counted since the last report (the requests just cut included) goes out before the LRS stream closes.
    await this.loadReporter.flushAndClose(500);
    await Promise.all([this.clusters.close(), this.#inboundCluster.close(), this.telemetry.close()]);
  }

  /** /config_dump. */
  configDump(): unknown {
    return { ...configDumpOf(this.#b.node, this.ready, this.store.current), inbound: { cluster: this.#inboundCluster.config.name, workload: this.#b.workload.address } };
  }

  /** /clusters: the xDS clusters and the inbound one. */
  clusterStats(): unknown {
    return { clusters: this.clusters.stats(), inbound: this.#inboundCluster.stats() };
  }

  /** /stats. */
  stats(): unknown {
    return {
      ready: this.ready,
      listeners: { inbound: this.#inbound.stats(), outbound: this.#outbound.stats() },
      identity: this.#tls === null ? null : {
        spiffeId: this.#tls.identity.spiffeId, notAfter: this.#tls.identity.notAfter.toISOString(), renewAt: this.#tls.identity.renewAt.toISOString(),
        meshMode: this.meshMode, revokedSerials: this.secrets.validation()?.revokedSerials.size ?? 0,
      },
      xds: this.#xds?.stats(this.store.current?.version ?? null) ?? null,
      authz: this.#authz.stats(),
      quota: this.#quotas.stats(),
      usage: { ...this.usage.stats(), reporter: this.loadReporter.stats() },
      overload: this.#overload?.stats() ?? null,
      fault: this.#outboundForwarder.faultStats(),
      accessLog: this.telemetry.accessLog === null ? null : { dropped: this.telemetry.accessLog.dropped },
      ...(this.#extAuthz !== null ? { extAuthz: this.#extAuthz.stats() } : {}),
      ...(this.#rateLimitService !== null ? { rateLimitService: this.#rateLimitService.stats() } : {}),
    };
  }
}

/** The STATIC (or STRICT_DNS) cluster to the workload and a catch-all route to it. */
function inboundResources(b: SidecarBootstrap): { cluster: Cluster; route: ReturnType<typeof create<typeof RouteConfigurationSchema>> } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(b.workload.address);
  if (!m) throw new Error(`workload.address must be host:port, got ${JSON.stringify(b.workload.address)}`);
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  const name = `inbound|${port}||${b.node.service}`;
  const cluster = create(ClusterSchema, {
    name,
    connectTimeout: create(DurationSchema, { seconds: 5n }),
    clusterDiscoveryType: { case: 'type', value: isIP(host) === 0 ? Cluster_DiscoveryType.STRICT_DNS : Cluster_DiscoveryType.STATIC },
    loadAssignment: {
      clusterName: name,
      endpoints: [{
        lbEndpoints: [{
          hostIdentifier: {
            case: 'endpoint',
            value: { address: { address: { case: 'socketAddress', value: { address: host, portSpecifier: { case: 'portValue', value: port } } } } },
          },
        }],
      }],
    },
  });
  const route = create(RouteConfigurationSchema, {
    name,
    virtualHosts: [{
      name: 'inbound', domains: ['*'],
      routes: [{
        match: { pathSpecifier: { case: 'prefix', value: '/' } },
        action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: name } } },
      }],
    }],
  });
  return { cluster, route };
}

function localReply(res: DownstreamResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
