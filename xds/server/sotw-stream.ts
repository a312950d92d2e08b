/**
 * One state-of-the-world ADS stream (StreamAggregatedResources).
 *
 * Per type URL it keeps the client's subscription and what was last sent. Rules, from the
 * xDS protocol and the known bugs of other servers:
 * - A request whose response_nonce is not the latest sent for its type is stale: it is not
 *   an ACK or NACK. Its resource_names are still taken (SotW requests carry the whole set),
 *   and the answer is owed against what was last *sent*, so the ACK of the latest response
 *   triggers it: a stale nonce never leaves a subscription unanswered.
 * - A NACKed version is not resent; the stream waits for a newer one.
 * - Names subscribed before they exist are remembered; they go out when they appear.
 * - A response goes out only when its content (version = hash of the resources it
 *   carries) or the requested set differs from the last one sent.
 * - Make-before-break: types are pushed CDS → EDS → LDS → RDS, and clusters dropped from
 *   CDS stay in it until the listeners and routes sent after them are ACKed or NACKed.
 */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { DiscoveryRequest } from '../gen/envoy/service/discovery/v3/discovery_pb.js';
import type { CachedResource } from '../cache/cached-resource.ts';
import { subscriptionKey, type Snapshot } from '../cache/snapshot.ts';
import { encodeSotwBody, withNonce } from '../cache/response-bytes.ts';
import { findResourceType, pushOrder } from '../resources/registry.ts';
import { CLUSTER_TYPE_URL } from '../resources/type-urls.ts';
import { StreamBase, type StreamDeps } from './stream-base.ts';

interface TypeState {
  /** null = wildcard. */
  names: Set<string> | null;
  /** subscriptionKey(names), kept in step with names so pushes need not rebuild it. */
  namesKey: string;
  /** Legacy wildcard (first request had no names); stays while requests keep no names. */
  legacyWildcard: boolean;
  sentVersion: string | undefined;
  sentNonce: string | undefined;
  sentNamesKey: string | undefined;
  /** Awaiting ACK/NACK of the last response. */
  inFlight: boolean;
  /** The nonce last answered: a later request repeating it (a subscription change) is no new ACK. */
  answeredNonce: string | undefined;
  nackedVersion: string | undefined;
  /** CDS only: clusters kept past their removal until later types settle. */
  lingering: Map<string, CachedResource> | undefined;
  lastSentResources: ReadonlyMap<string, CachedResource> | undefined;
}

const WILDCARD = '*';

export class SotwStream extends StreamBase<DiscoveryRequest, Uint8Array> {
  /** Kept in push order (CDS → EDS → LDS → RDS) so a push iterates it as is. */
  #types = new Map<string, TypeState>();

  constructor(call: ServerDuplexStream<DiscoveryRequest, Uint8Array>, deps: StreamDeps) {
    super(call, deps, 'sotw');
  }

  protected onRequest(req: DiscoveryRequest): void {
    const type = this.admit(req.node, req.typeUrl, 'DiscoveryRequest');
    if (!type) return;
    if (req.resourceNames.length > 0) this.deps.callbacks.onResourceNames?.(this.info, req.typeUrl, req.resourceNames);
    let ts = this.#types.get(req.typeUrl);
    const first = ts === undefined;
    if (!ts) {
      ts = {
        names: null, namesKey: '*', legacyWildcard: false, sentVersion: undefined, sentNonce: undefined, sentNamesKey: undefined,
        inFlight: false, answeredNonce: undefined, nackedVersion: undefined, lingering: undefined, lastSentResources: undefined,
      };
      this.#types.set(req.typeUrl, ts);
      this.#types = new Map([...this.#types].sort(([a], [b]) => pushOrder(a, b)));
    }
    this.#updateSubscription(ts, req.resourceNames, first, type.fullState);

    const stale = req.responseNonce !== '' && req.responseNonce !== ts.sentNonce;
    if (stale) return;
    if (req.responseNonce !== '' && req.responseNonce !== ts.answeredNonce) {
      ts.inFlight = false;
      ts.answeredNonce = req.responseNonce;
      if (req.errorDetail) {
        ts.nackedVersion = ts.sentVersion;
        this.deps.callbacks.onNack?.(this.info, req.typeUrl, ts.sentVersion ?? '', req.responseNonce, req.errorDetail.message);
      } else {
        this.deps.callbacks.onAck?.(this.info, req.typeUrl, req.versionInfo, req.responseNonce);
      }
    }
    const snap = this.snapshot();
    if (!snap) return;
    this.#maybeSend(req.typeUrl, ts, snap);
    if (req.typeUrl !== CLUSTER_TYPE_URL) this.#maybeRetireClusters(snap);
  }

  protected onSnapshot(snapshot: Snapshot): void {
    for (const [typeUrl, ts] of this.#types) this.#maybeSend(typeUrl, ts, snapshot);
  }

  #updateSubscription(ts: TypeState, names: readonly string[], first: boolean, fullState: boolean): void {
    // Most requests are ACKs repeating the subscription: keep it (and its key) as is.
    if (ts.names !== null && names.length > 0 && names.length === ts.names.size && names.every((n) => ts.names!.has(n))) return;
    if (names.length === 0) {
      if (first && fullState) ts.legacyWildcard = true;
      ts.names = ts.legacyWildcard ? null : new Set();
      // Unsubscribed from every name: the client dropped what it had, so a later
      // subscription to the same names at the same version must be answered again.
      if (ts.names !== null) ts.sentNamesKey = undefined;
    } else {
      ts.legacyWildcard = false;
      ts.names = names.includes(WILDCARD) ? null : new Set(names);
    }
    ts.namesKey = subscriptionKey(ts.names);
  }

  #maybeSend(typeUrl: string, ts: TypeState, snap: Snapshot): void {
    if (this.backedUp) return;
    if (ts.names !== null && ts.names.size === 0) return;
    const type = findResourceType(typeUrl)!;
    const namesKey = ts.namesKey;
    const sotw = snap.sotw(typeUrl, ts.names, namesKey);
    const count = sotw.count;
    let { version, body } = sotw;
    // For RDS/EDS/SDS an absent resource means "not sent", not "deleted": an empty
    // response says nothing, so named subscriptions wait until a named resource exists.
    if (!type.fullState && count === 0) return;
    if (version === ts.nackedVersion && namesKey === ts.sentNamesKey) return;

    let current = snap.resources(typeUrl);
    if (typeUrl === CLUSTER_TYPE_URL) {
      const kept = this.#clustersToKeep(ts, snap);
      if (kept.size > 0) {
        const merged = new Map(current);
        for (const [n, r] of kept) if (ts.names === null || ts.names.has(n)) merged.set(n, r);
        const picked = [...merged.values()].filter((r) => ts.names === null || ts.names.has(r.name));
        version = `${version}+${kept.size}`;
        body = encodeSotwBody(typeUrl, version, picked);
        current = merged;
      }
      ts.lingering = kept.size > 0 ? kept : undefined;
    }
    if (version === ts.sentVersion && namesKey === ts.sentNamesKey) return;

    const nonce = this.nextNonce();
    this.write(withNonce(body, nonce));
    ts.sentVersion = version;
    ts.sentNonce = nonce;
    ts.sentNamesKey = namesKey;
    ts.inFlight = true;
    if (typeUrl === CLUSTER_TYPE_URL) ts.lastSentResources = current;
    this.deps.callbacks.onResponse?.(this.info, typeUrl, version, nonce, count);
  }

  /** Clusters sent before and absent now, kept while later types have not settled. */
  #clustersToKeep(ts: TypeState, snap: Snapshot): Map<string, CachedResource> {
    const kept = new Map<string, CachedResource>();
    if (!ts.lastSentResources || this.#laterTypesSettled(snap)) return kept;
    const now = snap.resources(CLUSTER_TYPE_URL);
    for (const [name, r] of ts.lastSentResources) if (!now.has(name)) kept.set(name, r);
    return kept;
  }

  /** True when every type after CDS has been sent the snapshot's content and answered. */
  #laterTypesSettled(snap: Snapshot): boolean {
    for (const [typeUrl, ts] of this.#types) {
      if (pushOrder(typeUrl, CLUSTER_TYPE_URL) <= 0) continue;
      if (ts.names !== null && ts.names.size === 0) continue;
      if (ts.inFlight) return false;
      const want = snap.sotw(typeUrl, ts.names, ts.namesKey);
      if (ts.sentVersion !== want.version && ts.nackedVersion !== want.version) return false;
    }
    return true;
  }

  #maybeRetireClusters(snap: Snapshot): void {
    const cds = this.#types.get(CLUSTER_TYPE_URL);
    if (!cds?.lingering || cds.inFlight) return;
    if (!this.#laterTypesSettled(snap)) return;
    this.#maybeSend(CLUSTER_TYPE_URL, cds, snap);
  }
}
