/**
 * The primary process of a `palisade sidecar --workers N` (N >= 2).
 *
 *   primary (this)                                    workers 0..N-1 (worker-main.ts)
 *   ├─ admin listener (/ready /config_dump /stats     ├─ inbound  ─┐ same ports, SO_REUSEPORT:
 *   │  /clusters POST /drain), aggregating workers    ├─ outbound ─┘ the kernel spreads connections
 *   ├─ the one xDS stream (AdsClient: validate,       └─ Sidecar in worker mode: compiles and swaps
 *   │  ACK/NACK), the one node registration              each configuration it is sent, reports
 *   ├─ ConfigStore: compiles each update once to          the version it applied
 *   │  check it and get its version
 *   └─ WorkerPool ── IPC: every accepted config (protobuf bytes + version) ──► every worker
 *
 * Consistency: only a configuration the primary compiled successfully is sent, always the
 * whole set of resources with the primary's snapshot version, and each worker compiles it with
 * the same code, so it arrives at the same version and reports it. The primary is ready (and
 * tells the control plane ready=true, which adds this sidecar as an endpoint) only once its
 * snapshot is complete and every worker has applied a complete configuration.
 *
 * The inbound port registered with the control plane is the one worker 0 bound (the
 * bootstrap may ask for 0); the other workers, and restarted ones, bind that same port.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { AdsClient } from '../../xds/client/ads-client.ts';
import { adminHandler } from '../admin/admin.ts';
import type { SidecarBootstrap } from '../bootstrap/bootstrap.ts';
import { ConfigStore, snapshotInput } from '../config/config-store.ts';
import { SidecarXds, type ApplyOutcome } from '../config/sidecar-xds.ts';
import { selects } from '../authz/authz-config.ts';
import type { Policy } from '../../xds/gen/palisade/v1/policy_pb.js';
import { POLICY_TYPE_URL, QUOTA_TYPE_URL, REQUEST_AUTHENTICATION_TYPE_URL } from '../../xds/resources/type-urls.ts';
import { createQuotaValidator } from '../quota/quota-validator.ts';
import type { RequestAuthentication } from '../../xds/gen/palisade/v1/request_authentication_pb.js';
import { configDumpOf, type SidecarSnapshot } from '../config/sidecar-snapshot.ts';
import { HttpListener } from '../listeners/http-listener.ts';
import { hostKey } from '../upstream/compile-cluster.ts';
import { DEFAULT_DRAIN_TIMEOUT_MS, type SidecarAddresses, type SidecarEvents } from '../sidecar.ts';
import { encodeConfig } from './messages.ts';
import { WorkerPool } from './worker-pool.ts';
import { aggregateMetrics, SidecarMetrics, xdsOnlySource, type MetricsJson, type XdsStatsView } from '../telemetry/metrics.ts';

export interface SidecarPrimaryOptions {
  readonly bootstrap: SidecarBootstrap;
  readonly logger: Logger;
  /** Number of worker processes, >= 1 (the CLI uses the primary for 2 and more). */
  readonly workers: number;
  /** The workers' log level. Default "info". */
  readonly logLevel?: string;
  /** Reported to the control plane as the user agent version. Default "dev". */
  readonly version?: string;
  /** How long drain() lets the workers' requests in flight take, ms. Default DEFAULT_DRAIN_TIMEOUT_MS. */
  readonly drainTimeoutMs?: number;
}

type Phase = 'new' | 'starting' | 'running' | 'draining' | 'closed';

/** Sums numbers leaf by leaf over objects of the same shape (listener stats of several workers). */
function sumStats(items: readonly unknown[]): unknown {
  const first = items[0];
  if (typeof first === 'number') return items.reduce<number>((a, v) => a + (typeof v === 'number' ? v : 0), 0);
  if (typeof first !== 'object' || first === null || Array.isArray(first)) return first;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(first)) out[key] = sumStats(items.map((i) => (i as Record<string, unknown> | null)?.[key]));
  return out;
}

export class SidecarPrimary extends EventEmitter<SidecarEvents> {
  readonly store = new ConfigStore();
  readonly pool: WorkerPool;
  readonly #b: SidecarBootstrap;
  readonly #log: Logger;
  readonly #version: string;
  readonly #drainTimeoutMs: number;
  readonly #admin = new HttpListener('admin');
  #xds: SidecarXds | null = null;
  /** The primary's own metrics (its xDS stream); /metrics adds every worker's to them. */
  readonly #metrics: SidecarMetrics;
  #lastSwapAt: number | null = null;
  #phase: Phase = 'new';
  #ready = false;
  #inboundPort = 0;
  #addresses: SidecarAddresses | null = null;
  #drained: Promise<boolean> | null = null;
  #closing: Promise<void> | null = null;

  constructor(options: SidecarPrimaryOptions) {
    super();
    this.#b = options.bootstrap;
    this.#log = options.logger;
    this.#version = options.version ?? 'dev';
    this.#drainTimeoutMs = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
    if (!Number.isInteger(this.#drainTimeoutMs) || this.#drainTimeoutMs < 0) {
      throw new RangeError(`drainTimeoutMs must be a non-negative integer, got ${this.#drainTimeoutMs}`);
    }
    if (this.#b.identity !== null) {
      // The SVID's private key is generated in, and never leaves, one process; workers would each need it.
      throw new Error('--workers cannot be combined with a bootstrap identity section yet: run an mTLS sidecar as one process (--workers 1)');
    }
    this.#metrics = new SidecarMetrics({
      maxSeriesPerMetric: this.#b.telemetry.metrics.maxSeriesPerMetric,
      source: xdsOnlySource(() => (this.#xds?.stats(null) ?? null) as XdsStatsView | null, () => this.#lastSwapAt),
    });
    this.pool = new WorkerPool({
      size: options.workers, bootstrap: this.#b, logger: this.#log, logLevel: options.logLevel ?? 'info',
      version: this.#version, drainTimeoutMs: this.#drainTimeoutMs,
    });
    this.pool.on('applied', () => this.#checkReady());
    this.#admin.setHandler(adminHandler({
      isReady: () => this.ready,
      configDump: () => this.configDump(),
      clusters: () => this.clusterStats(),
      stats: () => this.stats(),
      drain: () => this.drain(),
      metrics: () => this.metrics(),
    }));
  }

  /** True once the primary's snapshot is complete and every worker applied a complete one, until drain/close. */
  get ready(): boolean {
    return this.#ready && this.#phase === 'running';
  }

  get addresses(): SidecarAddresses | null {
    return this.#addresses;
  }

  /**
   * Binds the admin listener, starts the workers (which bind inbound and outbound) and
   * connects to the control plane; resolves with the addresses, not waiting for the
   * configuration. Rejects (everything stopped) when a listener or a worker cannot start.
   */
  async start(): Promise<SidecarAddresses> {
    if (this.#phase !== 'new') throw new Error(`the sidecar cannot start: it is ${this.#phase}`);
    this.#phase = 'starting';
    const b = this.#b;
    try {
      const adminPort = await this.#admin.listen(b.admin.address, b.admin.port);
      const ports = await this.pool.start();
      this.#inboundPort = ports.inbound;
      this.#addresses = {
        inbound: hostKey(b.inbound.address, ports.inbound),
        outbound: hostKey(b.outbound.address, ports.outbound),
        admin: hostKey(b.admin.address, adminPort),
      };
    } catch (err) {
      await this.close();
      throw err;
    }
    if (this.#phase !== 'starting') throw new Error('the sidecar was closed while starting');

    try {
      this.#xds = new SidecarXds({
        bootstrap: b, inboundPort: this.#inboundPort, version: this.#version, logger: this.#log, apply: (client) => this.#apply(client),
        // Policies are evaluated by a single-process sidecar only: one selecting this workload is NACKed, never silently skipped.
        validators: {
          [POLICY_TYPE_URL]: (r) => (selects(r as Policy, b.node.service) ? [`${(r as Policy).name}: a sidecar with --workers N does not enforce policies yet; run this workload's sidecar as one process (--workers 1)`] : []),
          [REQUEST_AUTHENTICATION_TYPE_URL]: (r) => {
            const ra = r as RequestAuthentication;
            return ra.services.length === 0 || ra.services.includes(b.node.service)
              ? [`${ra.name}: a sidecar with --workers N does not verify JWTs yet; run this workload's sidecar as one process (--workers 1)`]
              : [];
          },
          // Per-process buckets would multiply a quota by N: one selecting this workload is NACKed.
          [QUOTA_TYPE_URL]: createQuotaValidator({ service: b.node.service, namespace: b.node.namespace, redis: b.quota.redis !== null, workers: this.pool.size }),
        },
        onPolicies: () => undefined,
        onRequestAuthentications: () => undefined,
        onQuotas: () => undefined,
      });
    } catch (err) {
      await this.close();
      throw err;
    }
    this.#phase = 'running';
    this.#log.info({ ...this.#addresses, workers: this.pool.size, node: b.node.id, service: `${b.node.namespace}/${b.node.service}` }, 'sidecar started');
    return this.#addresses!;
  }

  /** Compiles the update once here; sends it to every worker only when it is valid and new. */
  #apply(client: AdsClient): ApplyOutcome {
    if (this.#phase === 'closed') return { valid: true };
    const input = snapshotInput(client);
    const prev = this.store.current;
    const r = this.store.apply(input);
    if (!r.valid) return r;
    const next = this.store.current!;
    if (next === prev) return r;
    this.#lastSwapAt = Date.now();
    this.pool.broadcast(encodeConfig(input, next.version));
    this.#log.debug({ version: next.version, complete: next.complete, missing: next.missing }, 'configuration sent to the workers');
    this.#checkReady();
    return r;
  }

  /** Ready once the primary's snapshot is complete and every worker applied a complete configuration. */
  #checkReady(): void {
    const current = this.store.current;
    if (this.#ready || this.#phase !== 'running' || current === null || !current.complete || !this.pool.allApplied) return;
    this.#ready = true;
    this.#xds?.setReady(true);
    this.#log.info({ version: current.version, workers: this.pool.size }, 'sidecar ready');
    this.emit('ready', current);
  }

  /**
   * Reports not ready to the control plane and drains every worker (they stop accepting and
   * finish their requests in flight within the deadline, then exit). Resolves true when they
   * all finished in time. Idempotent.
   */
  drain(deadlineMs = this.#drainTimeoutMs): Promise<boolean> {
    if (this.#drained) return this.#drained;
    if (this.#phase === 'running' || this.#phase === 'starting') this.#phase = 'draining';
    this.#log.info({ deadlineMs, workers: this.pool.size }, 'draining');
    if (this.#phase === 'draining') this.#xds?.setReady(false);
    this.#drained = this.pool.drain(deadlineMs).then((finished) => {
      this.#log.info({ finished }, 'drained');
      return finished;
    });
    return this.#drained;
  }

  /** Stops everything: the workers (killed), the xDS stream, the admin listener. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#phase = 'closed';
    this.#ready = false;
    this.#xds?.close();
    await Promise.all([this.pool.close(), this.#admin.close()]);
  }

  /** /config_dump: the primary's snapshot and, per worker, the version it applied. */
  configDump(): unknown {
    const s: SidecarSnapshot | null = this.store.current;
    const workers = this.pool.workers().map((w) => ({ index: w.index, pid: w.pid, state: w.state, version: w.version, complete: w.complete }));
    return {
      ...configDumpOf(this.#b.node, this.ready, s),
      inbound: { workload: this.#b.workload.address },
      workers,
      /** Every worker runs the primary's snapshot version. */
      consistent: s !== null && workers.every((w) => w.version === s.version),
    };
  }

  /** /clusters: each worker's upstream clusters (their pools, health and ejections are per process). */
  async clusterStats(): Promise<unknown> {
    const replies = await this.pool.query('clusters');
    return { workers: replies.map(({ index, pid, state, body, error }) => ({ index, pid, state, ...(error !== undefined ? { error } : body as object) })) };
  }

  /**
   * /metrics: every worker's registry (asked over IPC) and the primary's own (xDS), merged:
   * counters and histograms summed. A worker that does not answer is left out of that scrape,
   * and a restarted worker's counters start from 0 again (Prometheus' rate() treats both as a
   * counter reset).
   */
  async metrics(): Promise<string> {
    const replies = await this.pool.query('metrics');
    const parts: MetricsJson[] = [await this.#metrics.json()];
    for (const r of replies) if (r.error === undefined && Array.isArray(r.body)) parts.push(r.body as MetricsJson);
    return aggregateMetrics(parts);
  }

  /** /stats: the listeners summed over the workers and per worker, and the primary's xDS stream. */
  async stats(): Promise<unknown> {
    const replies = await this.pool.query('stats');
    const workers = replies.map(({ index, pid, state, restarts, version, body, error }) => ({
      index, pid, state, restarts, version,
      ...(error !== undefined ? { error } : { listeners: (body as { listeners?: unknown } | null)?.listeners ?? null }),
    }));
    const answered = workers.filter((w) => 'listeners' in w && w.listeners !== null).map((w) => (w as { listeners: unknown }).listeners);
    return {
      ready: this.ready,
      listeners: answered.length > 0 ? sumStats(answered) : null,
      workers,
      xds: this.#xds?.stats(this.store.current?.version ?? null) ?? null,
    };
  }
}
