/**
 * The one reference to the sidecar's current snapshot. A request reads `current` once when
 * it starts and keeps that object; an update compiles a new snapshot and swaps the
 * reference, so requests in flight finish on the snapshot they started with.
 *
 * Only valid snapshots are swapped in. Invalid ones (cross-resource inconsistencies: the
 * AdsClient has NACKed resources invalid on their own already) leave `current` as it is and
 * their errors go back to the caller, which decides how to report them.
 */
import { EventEmitter } from 'node:events';
import type { AdsClient } from '../../xds/client/ads-client.ts';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL } from '../../xds/resources/type-urls.ts';
import { compileSnapshot, type SidecarSnapshot, type SnapshotInput, type SnapshotResult } from './sidecar-snapshot.ts';

// Listeners run synchronously during the swap and must not throw.
export type ConfigStoreEvents = {
  /** `current` became `next`; `prev` is the snapshot requests in flight may still use. */
  swap: [next: SidecarSnapshot, prev: SidecarSnapshot | null];
};

export class ConfigStore extends EventEmitter<ConfigStoreEvents> {
  #current: SidecarSnapshot | null = null;
  #firstComplete: Promise<SidecarSnapshot>;
  #resolveComplete!: (s: SidecarSnapshot) => void;

  constructor() {
    super();
    this.#firstComplete = new Promise((resolve) => {
      this.#resolveComplete = resolve;
    });
  }

  /** The snapshot new requests use; null before the first valid one. */
  get current(): SidecarSnapshot | null {
    return this.#current;
  }

  /** Resolves with the first complete snapshot swapped in (readiness). */
  whenComplete(): Promise<SidecarSnapshot> {
    return this.#firstComplete;
  }

  /**
   * Makes `next` current and emits 'swap', unless it has the current version (then nothing
   * happens and false is returned).
   */
  swap(next: SidecarSnapshot): boolean {
    const prev = this.#current;
    if (prev !== null && prev.version === next.version) return false;
    this.#current = next;
    if (next.complete) this.#resolveComplete(next);
    this.emit('swap', next, prev);
    return true;
  }

  /** Compiles `input` against the current snapshot (reusing what is unchanged) and swaps when valid. */
  apply(input: SnapshotInput): SnapshotResult {
    const r = compileSnapshot(input, this.#current ?? undefined);
    if (r.valid) this.swap(r.result);
    return r;
  }

  /** `apply` with the LDS, RDS, CDS and EDS states `client` holds now. */
  applyFrom(client: AdsClient): SnapshotResult {
    return this.apply(snapshotInput(client));
  }
}

/** The LDS, RDS, CDS and EDS states `client` holds now, as a snapshot's input. */
export function snapshotInput(client: AdsClient): SnapshotInput {
  const l = client.state(LISTENER_TYPE_URL);
  const r = client.state(ROUTE_TYPE_URL);
  const c = client.state(CLUSTER_TYPE_URL);
  const e = client.state(ENDPOINT_TYPE_URL);
  return {
    listeners: l.resources, routes: r.resources, clusters: c.resources, endpoints: e.resources,
    typeVersions: { listeners: l.version, routes: r.version, clusters: c.version, endpoints: e.version },
  };
}
