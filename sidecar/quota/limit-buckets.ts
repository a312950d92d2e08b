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
 * Instances are reused across pushes while a limit's numbers and scope are unchanged (see
 * compile-quotas.ts), so counters survive an unrelated configuration change.
 */
import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { RedisStore } from './redis-store.ts';

/** The burst reserve refills once per this many intervals. */
export const BURST_WINDOW_INTERVALS = 10;

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

  constructor(spec: LimitSpec, store: RedisStore | null) {
    this.spec = spec;
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
    } else {
      const main = new RateLimiterMemory({ points: tokens, duration, keyPrefix: '' });
      this.#limiter = burst > 0 ? new BurstyRateLimiter(main, new RateLimiterMemory({ points: burst, duration: burstDuration, keyPrefix: '' })) : main;
      this.#fallback = null;
    }
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
