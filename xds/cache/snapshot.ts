/**
 * A consistent, versioned set of resources for one node group. Immutable once built: the
 * server reads it from many streams at once, and the SotW response bodies it memoizes
 * (everything but the nonce) are shared by every stream with the same subscription.
 */
import { createHash } from 'node:crypto';
import type { Message } from '@bufbuild/protobuf';
import { getResourceType } from '../resources/registry.ts';
import { CachedResource } from './cached-resource.ts';
import { encodeSotwBody } from './response-bytes.ts';

export interface SotwBody {
  /** version_info: hash over the (name, version) pairs the body carries. */
  readonly version: string;
  /** DiscoveryResponse bytes without the nonce field. */
  readonly body: Uint8Array;
  /** How many resources the body carries. */
  readonly count: number;
}

const EMPTY: ReadonlyMap<string, CachedResource> = new Map();
const MEMO_LIMIT = 256;

export class Snapshot {
  readonly #byType: Map<string, Map<string, CachedResource>>;
  readonly #typeVersions = new Map<string, string>();
  /** type URL → subscription key → body. Keys are the streams' own stable strings. */
  readonly #sotwMemo = new Map<string, Map<string, SotwBody>>();

  constructor(byType: Map<string, Map<string, CachedResource>>) {
    this.#byType = byType;
  }

  /**
   * Builds a snapshot from decoded resources per type URL. `previous` lets unchanged
   * resources keep their CachedResource (no re-marshalling) when the caller passes the
   * same message objects.
   */
  static fromResources(resources: Record<string, readonly Message[]>, previous?: Snapshot): Snapshot {
    const byType = new Map<string, Map<string, CachedResource>>();
    for (const [typeUrl, list] of Object.entries(resources)) {
      const type = getResourceType(typeUrl);
      const prior = previous ? previous.#byType.get(typeUrl) : undefined;
      const map = new Map<string, CachedResource>();
      for (const message of list) {
        const name = type.nameOf(message);
        if (map.has(name)) throw new Error(`duplicate ${type.shortName} resource name ${JSON.stringify(name)}`);
        const old = prior?.get(name);
        map.set(name, old && old.message === message ? old : new CachedResource(name, type.schema, message));
      }
      byType.set(typeUrl, new Map([...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
    }
    return new Snapshot(byType);
  }

  /** True when both hold the same resources at the same versions (so no stream needs a push). */
  sameContent(other: Snapshot): boolean {
    const mine = this.typeUrls().filter((t) => this.resources(t).size > 0).sort();
    const theirs = other.typeUrls().filter((t) => other.resources(t).size > 0).sort();
    if (mine.join('\n') !== theirs.join('\n')) return false;
    return mine.every((t) => this.version(t) === other.version(t));
  }

  typeUrls(): string[] {
    return [...this.#byType.keys()];
  }

  resources(typeUrl: string): ReadonlyMap<string, CachedResource> {
    return this.#byType.get(typeUrl) ?? EMPTY;
  }

  /** Version of the whole type: a hash of every (name, version) pair, '' when empty. */
  version(typeUrl: string): string {
    let v = this.#typeVersions.get(typeUrl);
    if (v === undefined) {
      v = hashPairs(this.resources(typeUrl).values());
      this.#typeVersions.set(typeUrl, v);
    }
    return v;
  }

  /**
   * The SotW response body for a subscription: every resource of the type (names = null,
   * wildcard) or the named ones that exist. Memoized per (type, names).
   */
  sotw(typeUrl: string, names: ReadonlySet<string> | null, namesKey: string = subscriptionKey(names)): SotwBody {
    let byNames = this.#sotwMemo.get(typeUrl);
    if (!byNames) this.#sotwMemo.set(typeUrl, (byNames = new Map()));
    let memo = byNames.get(namesKey);
    if (memo) return memo;
    const all = this.resources(typeUrl);
    let picked: CachedResource[];
    if (names === null) picked = [...all.values()];
    else {
      picked = [];
      for (const name of [...names].sort()) {
        const r = all.get(name);
        if (r) picked.push(r);
      }
    }
    const version = names === null ? this.version(typeUrl) : hashPairs(picked);
    memo = { version, body: encodeSotwBody(typeUrl, version, picked), count: picked.length };
    if (byNames.size >= MEMO_LIMIT) byNames.clear();
    byNames.set(namesKey, memo);
    return memo;
  }
}

/** A canonical key for a subscription: '*' for wildcard, else the sorted names. */
export function subscriptionKey(names: ReadonlySet<string> | null): string {
  return names === null ? '*' : [...names].sort().join('\n');
}

function hashPairs(resources: Iterable<CachedResource>): string {
  const h = createHash('sha256');
  let any = false;
  for (const r of resources) {
    h.update(r.name).update('\0').update(r.version).update('\n');
    any = true;
  }
  return any ? h.digest('hex').slice(0, 16) : '';
}
