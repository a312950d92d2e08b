/**
 * The buckets of one Quota limit: what `tokens`, `interval`, `burst` and `fallback_tokens`
 * mean, on rate-limiter-flexible.
 *
 * A bucket (one per distinct descriptor value, see bucket-key.ts) counts requests in fixed
 * windows of `interval` seconds; a window opens with the first request that finds none open
 * and closes `interval` later (rate-limiter-flexible's counter with a TTL):
 *
 *   - in one window, the first `tokens` requests are admitted from the main counter;
 *   - with `burst` > 0, requests over `tokens` draw on a burst reserve of `burst` requests
 *     per burst window of BURST_WINDOW_INTERVALS × `interval` (BurstyRateLimiter); so over
 *     any burst window at most BURST_WINDOW_INTERVALS × `tokens` + `burst` requests pass,
 *     and one interval may see up to `tokens` + `burst`;
 *   - a refused request does not consume the reserve of a later window: when the window
 *     closes, `tokens` requests are admitted again.
 *
 * LOCAL: the counters live in this process (RateLimiterMemory). GLOBAL: in Redis
 * (RateLimiterRedis; key = quota.redis.keyPrefix + bucket key, the burst reserve's
 * keyPrefix + "burst:" + bucket key; a ':' ends the prefix), so every sidecar shares them.
 * When Redis does not answer (down, not ready, timeout) the outcome is `store-error`: the
 * gate then admits through a local fallback
 * bucket of `fallback_tokens` (0: `tokens`) per `interval` (FAIL_OPEN, as rate-limiter-flexible's
 * insuranceLimiter, done here so each request knows it was a fallback decision) or refuses
 * (FAIL_CLOSED).
 *
 * GLOBAL without burst, with bootstrap `quota.redis.lease`: consumeLeased() takes from a token
 * lease this sidecar holds for the key when it can (lease.ts); burst limits and the rate limit
 * service (consume()) always go to Redis.
 *
 * Instances are reused across pushes while a limit's numbers and scope are unchanged (see
 * compile-quotas.ts), so counters survive an unrelated configuration change.
 */
import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { Leases } from './lease.ts';
import type { RedisStore } from './redis-store.ts';

/** The burst reserve refills once per this many intervals. */
export const BURST_WINDOW_INTERVALS = 10;

/**
 * Live LOCAL buckets per limit (and per GLOBAL limit's fallback buckets) past which requests
 * with a descriptor value that has no bucket yet share the limit's overflow bucket (see
 * hasRoom). rate-limiter-flexible's memory store keeps a record and a timer per bucket until
 * its window closes; this bounds both.
 */
export const MAX_LOCAL_BUCKETS_PER_LIMIT = 100_000;

/**
 * rate-limiter-flexible's RateLimiterMemory record store (lib/component/MemoryStorage): one Map
 * entry (and timer) per live key; incrby is synchronous (RateLimiterMemory.consume wraps it in
 * a promise).
 */
interface MemoryStorage {
  readonly _storage?: Map<string, unknown>;
  incrby?(key: string, value: number, durationSeconds: number): { consumedPoints: number; msBeforeNext: number };
}

function storageOf(limiter: RateLimiterMemory): Required<MemoryStorage> {
  const m = (limiter as unknown as { _memoryStorage?: MemoryStorage })._memoryStorage;
  if (!(m?._storage instanceof Map) || typeof m.incrby !== 'function') {
    throw new Error('rate-limiter-flexible RateLimiterMemory no longer keeps its records in _memoryStorage (_storage, incrby); update limit-buckets.ts');
  }
  return m as Required<MemoryStorage>;
}

const recordsOf = (limiter: RateLimiterMemory) => storageOf(limiter)._storage;

export interface LimitSpec {
  readonly tokens: number;
  /** Whole seconds, 1..86400. */
  readonly intervalSeconds: number;
  readonly burst: number;
  /** Fallback tokens per interval while Redis is unreachable (GLOBAL); already defaulted (0 → tokens). */
  readonly fallbackTokens: number;
  readonly scope: 'LOCAL' | 'GLOBAL';
}

/** A bucket's answer. `remaining`: requests left in the current window; `resetSeconds`: until it closes (ceil, >= 1 when refused). */
export type BucketOutcome =
  | { readonly kind: 'ok'; readonly remaining: number; readonly resetSeconds: number; readonly fallback: boolean }
  | { readonly kind: 'over'; readonly remaining: 0; readonly resetSeconds: number; readonly fallback: boolean }
  | { readonly kind: 'store-error'; readonly error: unknown };

type Limiter = Pick<RateLimiterMemory, 'consume'> | BurstyRateLimiter;

/** Identifies a limit's counting rules: buckets are kept across pushes while it is the same. */
export function limitSignature(s: LimitSpec): string {
  return `${s.scope}:${s.tokens}/${s.intervalSeconds}s+${s.burst}:fb${s.fallbackTokens}`;
}

const seconds = (ms: number) => Math.max(0, Math.ceil(ms / 1000));

export class LimitBuckets {
  readonly spec: LimitSpec;
  readonly signature: string;
  readonly #limiter: Limiter;
  readonly #fallback: RateLimiterMemory | null;
  /** The live records of the in-process counters the cap applies to (LOCAL: main then burst; GLOBAL: the fallback's). */
  readonly #records: readonly Map<string, unknown>[];
  readonly #maxBuckets: number;
  /** LOCAL without burst: the main counters' store, counted synchronously (takeNow); else null. */
  readonly #now: Required<MemoryStorage> | null;
  /** GLOBAL without burst with quota.redis.lease: the token leases; else null. */
  readonly #leases: Leases | null;

  constructor(spec: LimitSpec, store: RedisStore | null, maxBuckets = MAX_LOCAL_BUCKETS_PER_LIMIT) {
    this.spec = spec;
    this.#maxBuckets = maxBuckets;
    this.signature = limitSignature(spec);
    const { tokens, intervalSeconds: duration, burst } = spec;
    const burstDuration = duration * BURST_WINDOW_INTERVALS;
    if (spec.scope === 'GLOBAL') {
      if (store === null) throw new Error('a GLOBAL limit needs the quota store (bootstrap quota.redis)');
      // rate-limiter-flexible joins keyPrefix and key with ':': keys are `<prefix>:<key>`, `<prefix>:burst:<key>`.
      const prefix = store.config.keyPrefix.endsWith(':') ? store.config.keyPrefix.slice(0, -1) : store.config.keyPrefix;
      const common = { storeClient: store.client, rejectIfRedisNotReady: true };
      const main = new RateLimiterRedis({ ...common, points: tokens, duration, keyPrefix: prefix });
      this.#limiter = burst > 0
        ? new BurstyRateLimiter(main, new RateLimiterRedis({ ...common, points: burst, duration: burstDuration, keyPrefix: `${prefix}:burst` }))
        : main;
      this.#fallback = new RateLimiterMemory({ points: spec.fallbackTokens, duration, keyPrefix: '' });
      this.#records = [recordsOf(this.#fallback)];
      this.#now = null;
      const lease = store.config.lease ?? null;
      this.#leases = lease !== null && burst === 0 ? new Leases(main, tokens, lease, maxBuckets) : null;
    } else {
      const main = new RateLimiterMemory({ points: tokens, duration, keyPrefix: '' });
      const reserve = burst > 0 ? new RateLimiterMemory({ points: burst, duration: burstDuration, keyPrefix: '' }) : null;
      this.#limiter = reserve !== null ? new BurstyRateLimiter(main, reserve) : main;
      this.#fallback = null;
      this.#records = reserve !== null ? [recordsOf(main), recordsOf(reserve)] : [recordsOf(main)];
      this.#now = reserve === null ? storageOf(main) : null;
      this.#leases = null;
    }
  }

  /** Live in-process buckets (LOCAL: the main counters'; GLOBAL: the fallback's). */
  get size(): number {
    return this.#records[0]!.size;
  }

  /**
   * False when `key` has no live in-process bucket and the limit already has maxBuckets of
   * them (in any of its counters): the request should take from the overflow bucket instead.
   * GLOBAL limits always have room in Redis (keys expire with their window); only their
   * fallback buckets are capped, and only while the store is down (consumeFallback's caller
   * asks).
   */
  hasRoom(key: string): boolean {
    // The size first: a cheap compare in the common case, the lookup only near the cap.
    for (const r of this.#records) if (r.size >= this.#maxBuckets && !r.has(key)) return false;
    return true;
  }

  /** True when takeNow answers (LOCAL without burst). */
  get answersNow(): boolean {
    return this.#now !== null;
  }

  /**
   * consume(), answered synchronously when it can be (LOCAL without burst: what
   * RateLimiterMemory.consume does inside its promise, with no blockDuration or execEvenly);
   * null otherwise (then call consume()).
   */
  takeNow(key: string, points = 1): Exclude<BucketOutcome, { kind: 'store-error' }> | null {
    const store = this.#now;
    if (store === null) return null;
    const r = store.incrby(key, points, this.spec.intervalSeconds);
    return r.consumedPoints > this.spec.tokens
      ? { kind: 'over', remaining: 0, resetSeconds: Math.max(1, seconds(r.msBeforeNext)), fallback: false }
      : { kind: 'ok', remaining: this.spec.tokens - r.consumedPoints, resetSeconds: seconds(r.msBeforeNext), fallback: false };
  }

  /** Takes `points` tokens (default one) from the bucket `key`. Never rejects. */
  consume(key: string, points = 1): Promise<BucketOutcome> {
    return this.#limiter.consume(key, points).then(
      (r) => ({ kind: 'ok', remaining: r.remainingPoints, resetSeconds: seconds(r.msBeforeNext), fallback: false }),
      (r: unknown) => r instanceof RateLimiterRes
        ? { kind: 'over', remaining: 0, resetSeconds: Math.max(1, seconds(r.msBeforeNext)), fallback: false }
        : { kind: 'store-error', error: r },
    );
  }

  /** One token from `key`: from this sidecar's lease of it when leases are on (see lease.ts), else consume(key). */
  consumeLeased(key: string): Promise<BucketOutcome> {
    return this.#leases !== null ? this.#leases.consume(key) : this.consume(key);
  }

  /** Keys with a lease state (0 without leases). */
  get leases(): number {
    return this.#leases?.size ?? 0;
  }

  /** The local fallback bucket of a GLOBAL limit (FAIL_OPEN while Redis is unreachable). */
  consumeFallback(key: string, points = 1): Promise<BucketOutcome> {
    const fb = this.#fallback;
    if (fb === null) return this.consume(key, points);
    return fb.consume(key, points).then(
      (r) => ({ kind: 'ok', remaining: r.remainingPoints, resetSeconds: seconds(r.msBeforeNext), fallback: true }),
      (r: unknown) => r instanceof RateLimiterRes
        ? { kind: 'over', remaining: 0, resetSeconds: Math.max(1, seconds(r.msBeforeNext)), fallback: true }
        : { kind: 'store-error', error: r },
    );
  }
}
