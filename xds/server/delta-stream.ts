/**
 * One incremental ADS stream (DeltaAggregatedResources).
 *
 * Per type URL it keeps the subscription and what the client holds (name → version, from
 * initial_resource_versions on reconnect and from what was sent). A push sends only the
 * resources whose version differs from the client's, and removed_resources for the ones it
 * holds that are gone. Rules:
 * - resource_names_subscribe/unsubscribe are honoured on every request, whatever its
 *   nonce: only the ACK/NACK reading of a request depends on the nonce.
 * - A NACK rejects the whole response, so the client still holds what it held before:
 *   the server rolls its record back. A NACKed single resource is not resent until its
 *   version changes; the resources of a NACKed multi-resource response are retried one
 *   per response, which tells the good ones from the bad one without resending in a loop.
 * - A name subscribed before it exists is told absent (removed_resources) once, and sent
 *   when it appears.
 * - Wildcard: legacy (first request subscribes nothing) for LDS/CDS, or an explicit "*".
 */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { DeltaDiscoveryRequest } from '../gen/envoy/service/discovery/v3/discovery_pb.js';
import type { CachedResource } from '../cache/cached-resource.ts';
import type { Snapshot } from '../cache/snapshot.ts';
import { encodeDelta } from '../cache/response-bytes.ts';
import { pushOrder } from '../resources/registry.ts';
import { StreamBase, type StreamDeps } from './stream-base.ts';

/** Client holds a name known to be absent (it was told so). */
const ABSENT = '';
const WILDCARD = '*';

interface Sent {
  version: string;
  /** Each resource sent: its name, the version sent, and what the client held before. */
  resources: Array<[name: string, version: string, prior: string | undefined]>;
}

interface TypeState {
  wildcard: boolean;
  names: Set<string>;
  /** What the client holds: name → version, ABSENT when told it does not exist. */
  held: Map<string, string>;
  /** Sent and not yet answered, by nonce. */
  outstanding: Map<string, Sent>;
  /** name → a version the client refused on its own: not resent until it changes. */
  nacked: Map<string, string>;
  /** Names from a refused multi-resource response, to be retried one per response. */
  retrySingly: Set<string>;
}

export class DeltaStream extends StreamBase<DeltaDiscoveryRequest, Uint8Array> {
  /** Kept in push order (CDS → EDS → LDS → RDS) so a push iterates it as is. */
  #types = new Map<string, TypeState>();

  constructor(call: ServerDuplexStream<DeltaDiscoveryRequest, Uint8Array>, deps: StreamDeps) {
    super(call, deps, 'delta');
  }

  protected onRequest(req: DeltaDiscoveryRequest): void {
    const type = this.admit(req.node, req.typeUrl, 'DeltaDiscoveryRequest');
    if (!type) return;
    if (req.resourceNamesSubscribe.length > 0) this.deps.callbacks.onResourceNames?.(this.info, req.typeUrl, req.resourceNamesSubscribe);
    let ts = this.#types.get(req.typeUrl);
    if (!ts) {
      ts = { wildcard: false, names: new Set(), held: new Map(), outstanding: new Map(), nacked: new Map(), retrySingly: new Set() };
      this.#types.set(req.typeUrl, ts);
      this.#types = new Map([...this.#types].sort(([a], [b]) => pushOrder(a, b)));
      if (type.fullState && req.resourceNamesSubscribe.length === 0) ts.wildcard = true;
      for (const [name, version] of Object.entries(req.initialResourceVersions)) ts.held.set(name, version);
    }
    for (const name of req.resourceNamesSubscribe) {
      if (name === WILDCARD) ts.wildcard = true;
      else ts.names.add(name);
    }
    for (const name of req.resourceNamesUnsubscribe) {
      if (name === WILDCARD) {
        ts.wildcard = false;
        // The client drops what only the wildcard gave it.
        for (const held of [...ts.held.keys()]) if (!ts.names.has(held)) this.#forget(ts, held);
      } else {
        ts.names.delete(name);
        if (!ts.wildcard) this.#forget(ts, name);
      }
    }

    if (req.responseNonce !== '') {
      const sent = ts.outstanding.get(req.responseNonce);
      if (sent !== undefined) {
        ts.outstanding.delete(req.responseNonce);
        if (req.errorDetail) {
          this.#rollBack(ts, sent);
          this.deps.callbacks.onNack?.(this.info, req.typeUrl, sent.version, req.responseNonce, req.errorDetail.message);
        } else {
          this.deps.callbacks.onAck?.(this.info, req.typeUrl, sent.version, req.responseNonce);
        }
      }
    }
    const snap = this.snapshot();
    if (snap) this.#maybeSend(req.typeUrl, ts, snap);
  }

  #forget(ts: TypeState, name: string): void {
    ts.held.delete(name);
    ts.nacked.delete(name);
    ts.retrySingly.delete(name);
  }

  /** The client refused a response and kept what it had: so does our record of it. */
  #rollBack(ts: TypeState, sent: Sent): void {
    for (const [name, version, prior] of sent.resources) {
      if (ts.held.get(name) !== version) continue;
      if (prior === undefined) ts.held.delete(name);
      else ts.held.set(name, prior);
      if (sent.resources.length === 1) {
        ts.nacked.set(name, version);
        ts.retrySingly.delete(name);
      } else {
        ts.retrySingly.add(name);
      }
    }
  }

  protected onSnapshot(snapshot: Snapshot): void {
    for (const [typeUrl, ts] of this.#types) this.#maybeSend(typeUrl, ts, snapshot);
  }

  #maybeSend(typeUrl: string, ts: TypeState, snap: Snapshot): void {
    if (this.backedUp) return;
    const all = snap.resources(typeUrl);
    const send: CachedResource[] = [];
    const singles: CachedResource[] = [];
    const removed: string[] = [];
    const consider = (name: string): void => {
      const r = all.get(name);
      const held = ts.held.get(name);
      if (r) {
        if (held === r.version || ts.nacked.get(name) === r.version) return;
        if (ts.retrySingly.has(name)) singles.push(r);
        else send.push(r);
      } else if (held !== ABSENT) {
        removed.push(name);
      }
    };
    if (ts.wildcard) for (const name of all.keys()) consider(name);
    for (const name of ts.names) if (!ts.wildcard || !all.has(name)) consider(name);
    // Held resources that left the subscription's view entirely (wildcard removals).
    for (const name of ts.held.keys()) {
      if (!all.has(name) && !ts.names.has(name) && ts.held.get(name) !== ABSENT) removed.push(name);
    }
    if (send.length > 0 || removed.length > 0) this.#send(typeUrl, ts, snap, send, removed);
    for (const r of singles) {
      ts.retrySingly.delete(r.name);
      this.#send(typeUrl, ts, snap, [r], []);
    }
  }

  #send(typeUrl: string, ts: TypeState, snap: Snapshot, send: CachedResource[], removed: string[]): void {
    const nonce = this.nextNonce();
    const version = snap.version(typeUrl);
    this.write(encodeDelta(typeUrl, version, send, removed, nonce));
    const resources: Sent['resources'] = send.map((r) => [r.name, r.version, ts.held.get(r.name)]);
    for (const r of send) ts.held.set(r.name, r.version);
    for (const name of removed) {
      if (ts.names.has(name)) ts.held.set(name, ABSENT);
      else ts.held.delete(name);
    }
    ts.outstanding.set(nonce, { version, resources });
    if (ts.outstanding.size > 64) ts.outstanding.delete(ts.outstanding.keys().next().value!);
    this.deps.callbacks.onResponse?.(this.info, typeUrl, version, nonce, send.length);
  }
}
