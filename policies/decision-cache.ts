/**
 * A bounded LRU of decisions keyed by (bundle revision, the values of the Policy's
 * `cache_keys` in the input). The Policy declares which input fields its decision depends
 * on, e.g. ["attributes.source.principal", "attributes.request.http.method", "parsed_path"];
 * two requests equal on those fields get the same decision without evaluating.
 *
 *   const cache = DecisionCache.tryNew({ cacheKeys: policy.cache_keys });   // at config time
 *   const key = cache.keyFor(engine.revision, input);
 *   let d = cache.get(key);
 *   if (d === undefined) { d = engine.evaluate(input); cache.set(key, d); }
 *
 * Keys: each dotted path is split once into an accessor; the key is the JSON of the revision
 * and of each value, joined by "\n". JSON.stringify escapes every control character, so "\n"
 * cannot occur inside a part and distinct values give distinct keys; a missing value is the
 * empty part, which no JSON text is. Object values compare by JSON text: the same fields in
 * another order are a (harmless) miss. Error decisions are not cached: a transient failure
 * must not outlive its request.
 *
 * LRU on a Map: insertion order is recency, the oldest key is evicted. O(1). A hit re-inserts
 * its key only when at least half the capacity was inserted since it last was: a hot key is
 * then not moved on every request (two Map operations per hit), and still cannot reach the
 * old end unrefreshed — an entry hit at least once every maxEntries/2 insertions is never
 * evicted, so eviction is least-recently-used within a factor of two.
 */
import type { Decision } from './decision.ts';
import { PolicyInvalidOptionError } from './errors.ts';

export interface DecisionCacheOptions {
  /** Dotted paths into the input (`attributes.source.principal`, `parsed_path`, `parsed_path.0`); at least one. */
  readonly cacheKeys: readonly string[];
  /** Maximum entries, 1..10 000 000. Default 10 000. */
  readonly maxEntries?: number;
}

export const DEFAULT_MAX_ENTRIES = 10_000;

type Accessor = (input: unknown) => unknown;

interface Entry {
  readonly decision: Decision;
  /** The insertion count when this entry was last (re)inserted. */
  at: number;
}

/** Compiles a dotted path into a walk over its segments; array indexes are plain segments. */
function accessor(path: string): Accessor {
  const segments = path.split('.');
  return (input) => {
    let v = input;
    for (let i = 0; i < segments.length; i++) {
      if (typeof v !== 'object' || v === null) return undefined;
      const s = segments[i]!;
      if (!Object.hasOwn(v, s)) return undefined;
      v = (v as Record<string, unknown>)[s];
    }
    return v;
  };
}

/**
 * One key part, cheap for the common values and never ambiguous: a string is `s` + itself, an
 * array of strings `a` + its items joined by U+0001, anything else (or a string holding the
 * separators) `j` + its JSON, `u` for undefined. Parts are joined by "\n", which only JSON
 * (escaped) could otherwise contain.
 */
export function keyPart(v: unknown): string {
  if (typeof v === 'string') return v.includes('\n') ? `j${JSON.stringify(v)}` : `s${v}`;
  if (v === undefined) return 'u';
  if (Array.isArray(v)) {
    let out = 'a';
    for (let i = 0; i < v.length; i++) {
      const item: unknown = v[i];
      if (typeof item !== 'string' || item.includes('\n') || item.includes('\u0001')) return `j${JSON.stringify(v)}`;
      out += i === 0 ? item : `\u0001${item}`;
    }
    return out;
  }
  return `j${JSON.stringify(v)}`;
}

export class DecisionCache {
  readonly maxEntries: number;
  readonly cacheKeys: readonly string[];
  /** Lookups answered from the cache. */
  hits = 0;
  /** Lookups that were not. */
  misses = 0;
  readonly #accessors: readonly Accessor[];
  readonly #entries = new Map<string, Entry>();
  /** Insertions so far: an entry's `at` is this count when it was last (re)inserted. */
  #clock = 0;
  /** Insertions after which a hit moves its key to the recent end again. */
  readonly #refreshAfter: number;
  /** The last revision keyFrom saw and its key part: a policy's revision changes only with its bundle. */
  #revision = '';
  #revisionPart = keyPart('');

  private constructor(cacheKeys: readonly string[], maxEntries: number) {
    this.cacheKeys = Object.freeze([...cacheKeys]);
    this.maxEntries = maxEntries;
    this.#accessors = cacheKeys.map(accessor);
    this.#refreshAfter = Math.max(1, Math.floor(maxEntries / 2));
  }

  /** A cache, or the problems with the options: an empty `cacheKeys` means "no decision cache". */
  static tryNew(options: DecisionCacheOptions): { valid: true; result: DecisionCache } | { valid: false; errors: string[] } {
    const errors: string[] = [];
    const max = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    if (!Number.isInteger(max) || max < 1 || max > 10_000_000) errors.push(`maxEntries must be an integer in 1..10000000, got ${max}`);
    if (options.cacheKeys.length === 0) errors.push('cacheKeys must name at least one input path');
    options.cacheKeys.forEach((k, i) => {
      if (typeof k !== 'string' || k === '' || k.split('.').some((s) => s === '')) errors.push(`cacheKeys[${i}] must be a dotted path like "attributes.source.principal", got ${JSON.stringify(k)}`);
    });
    return errors.length > 0 ? { valid: false, errors } : { valid: true, result: new DecisionCache(options.cacheKeys, max) };
  }

  /** Like tryNew, throwing PolicyInvalidOptionError (`PAL_ERR_POLICY_INVALID_OPTION`). */
  static create(options: DecisionCacheOptions): DecisionCache {
    const r = DecisionCache.tryNew(options);
    if (!r.valid) throw new PolicyInvalidOptionError(r.errors.join('; '));
    return r.result;
  }

  /** The cache key of `input` under bundle `revision`. */
  keyFor(revision: string, input: unknown): string {
    let key = keyPart(revision);
    for (let i = 0; i < this.#accessors.length; i++) key += `\n${keyPart(this.#accessors[i]!(input))}`;
    return key;
  }

  /**
   * The same key read by `readers` (one per cache key, in cacheKeys order, each giving the
   * keyPart of its value) from `source`, for a caller that reads them without building the input.
   */
  keyFrom<S>(revision: string, readers: readonly ((source: S) => string)[], source: S): string {
    if (revision !== this.#revision) {
      this.#revision = revision;
      this.#revisionPart = keyPart(revision);
    }
    let key = this.#revisionPart;
    for (let i = 0; i < readers.length; i++) key += `\n${readers[i]!(source)}`;
    return key;
  }

  /** The cached decision for `key`, marking it most recently used; counts a hit or a miss. */
  get(key: string): Decision | undefined {
    const e = this.#entries.get(key);
    if (e === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    if (this.#clock - e.at >= this.#refreshAfter) {
      e.at = ++this.#clock;
      this.#entries.delete(key);
      this.#entries.set(key, e);
    }
    return e.decision;
  }

  /** Caches `decision` (not error decisions), evicting the least recently used entry past maxEntries. */
  set(key: string, decision: Decision): void {
    if (decision.error) return;
    this.#entries.delete(key);
    this.#entries.set(key, { decision, at: ++this.#clock });
    if (this.#entries.size > this.maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Empties the cache (counters are kept). */
  clear(): void {
    this.#entries.clear();
  }
}
