/**
 * Owns the runtime UpstreamClusters of the sidecar and keeps them in step with the snapshots.
 *
 *   apply(snapshot) ─┬─ new name         → new UpstreamCluster
 *                    ├─ config changed   → cluster.update(config): pools, counters and
 *                    │                     outlier state are kept
 *                    └─ name gone        → draining: still returned by get() for `drainMs`
 *                                          (requests on the previous snapshot may pick it),
 *                                          then close()d gracefully (requests in flight finish)
 *
 * A draining cluster that a later snapshot brings back is updated and kept, not recreated.
 * "Changed" is object identity of the ClusterConfig: compileSnapshot reuses the object when
 * the resource versions are unchanged. Drain timers are unref'd.
 */
import type { ClusterConfig } from '../upstream/cluster-config.ts';
import { UpstreamCluster, type ClusterStats, type UpstreamClusterOptions } from '../upstream/upstream-cluster.ts';
import type { SidecarSnapshot } from './sidecar-snapshot.ts';

/** How long a removed cluster stays gettable before it is closed, ms. */
export const DEFAULT_DRAIN_MS = 5000;

export interface ApplyOptions {
  /** Grace period for removed clusters, ms (integer >= 0). Default DEFAULT_DRAIN_MS. */
  readonly drainMs?: number;
}

/** A cluster in `/clusters`: its stats, and whether it is draining (removed, not yet closed). */
export type ManagedClusterStats = ClusterStats & { readonly draining: boolean };

interface Draining {
  readonly cluster: UpstreamCluster;
  readonly timer: ReturnType<typeof setTimeout>;
}

export class ClusterManager {
  readonly #options: UpstreamClusterOptions;
  readonly #active = new Map<string, UpstreamCluster>();
  readonly #draining = new Map<string, Draining>();
  /** Closes in progress (drained clusters), awaited by close(). */
  readonly #closing = new Set<Promise<void>>();
  #closed = false;

  /** @param options passed to every UpstreamCluster it creates. */
  constructor(options: UpstreamClusterOptions = {}) {
    this.#options = options;
  }

  /**
   * Makes the clusters match `snapshot.clusterConfigs`. Throws RangeError for a bad
   * `drainMs`, Error after close().
   */
  apply(snapshot: SidecarSnapshot, options: ApplyOptions = {}): void {
    if (this.#closed) throw new Error('the cluster manager is closed');
    const drainMs = options.drainMs ?? DEFAULT_DRAIN_MS;
    if (!Number.isInteger(drainMs) || drainMs < 0) throw new RangeError(`drainMs must be a non-negative integer, got ${drainMs}`);
    const configs = snapshot.clusterConfigs;
    for (const [name, config] of configs) {
      const current = this.#active.get(name);
      if (current) {
        if (current.config !== config) current.update(config);
        continue;
      }
      const draining = this.#draining.get(name);
      if (draining) {
        clearTimeout(draining.timer);
        this.#draining.delete(name);
        if (draining.cluster.config !== config) draining.cluster.update(config);
        this.#active.set(name, draining.cluster);
      } else {
        this.#active.set(name, this.#create(config));
      }
    }
    for (const [name, cluster] of this.#active) {
      if (configs.has(name)) continue;
      this.#active.delete(name);
      const timer = setTimeout(() => {
        this.#draining.delete(name);
        this.#track(cluster.close());
      }, drainMs);
      timer.unref();
      this.#draining.set(name, { cluster, timer });
    }
  }

  /** The cluster for `name`, draining ones included; undefined when unknown or closed. */
  get(name: string): UpstreamCluster | undefined {
    return this.#active.get(name) ?? this.#draining.get(name)?.cluster;
  }

  /** Names of the clusters of the last applied snapshot, sorted. */
  names(): string[] {
    return [...this.#active.keys()].sort();
  }

  /** Every cluster, active and draining, sorted by name. */
  stats(): ManagedClusterStats[] {
    const out: ManagedClusterStats[] = [];
    for (const c of this.#active.values()) out.push({ ...c.stats(), draining: false });
    for (const d of this.#draining.values()) out.push({ ...d.cluster.stats(), draining: true });
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * Closes every cluster gracefully (requests in flight finish) and cancels drain timers;
   * resolves when every pool is closed. Idempotent.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const d of this.#draining.values()) {
      clearTimeout(d.timer);
      this.#track(d.cluster.close());
    }
    this.#draining.clear();
    for (const c of this.#active.values()) this.#track(c.close());
    this.#active.clear();
    await Promise.all(this.#closing);
  }

  #create(config: ClusterConfig): UpstreamCluster {
    return new UpstreamCluster(config, this.#options);
  }

  #track(p: Promise<void>): void {
    const done = p.catch(() => {}).finally(() => void this.#closing.delete(done));
    this.#closing.add(done);
  }
}
