/**
 * Token leases of GLOBAL buckets (bootstrap `quota.redis.lease`; on by default, off with
 * `lease: false`): fewer Redis round trips per check.
 *
 * A lease is a count of tokens this sidecar already took from a Redis bucket for the bucket's
 * current window, valid until that window ends (now − send time + the answer's msBeforeNext,
 * so it ends no later than the Redis key does). A check that finds tokens in its key's lease
 * takes one and is admitted with no round trip. A check that finds none makes one consume of
 * `n` tokens: n = clamp(floor(remaining × maxFraction), 1, maxTokens), from the remaining count of
 * the last answer in this window (n = 1 when unknown or when remaining ≤ n), so leases shrink as
 * the bucket empties and near the limit every check goes to Redis with n = 1. The check uses one
 * token, the rest become the lease.
 *
 * rate-limiter-flexible's consume increments the counter even when it refuses; a refused
 * multi-token consume (other sidecars took tokens since the last answer) gives back at once
 * (reward, the same Lua upsert with −points, TTL kept) the part the window could not hold and
 * keeps the part it could, so a refused lease never costs the window tokens (if the reward
 * itself fails the window is over-counted: fewer admitted, never more).
 *
 * One lease consume (n > 1) in flight per key: concurrent misses wait for it, then take from the
 * lease it brought, or share its answer when it was a refusal or a store error. Checks whose
 * size is one token (no remaining known yet, or near the limit) go to Redis side by side, as
 * without leases. Store errors are the
 * caller's failure mode as without leases; a lease already held stays valid until its window
 * ends. At most `maxLeases` keys hold a lease state per limit; past it (after dropping ended
 * ones, at most once a second) a check takes the plain path (one token, one round trip).
 */
import { RateLimiterRes, type RateLimiterRedis } from 'rate-limiter-flexible';
import type { BucketOutcome } from './limit-buckets.ts';

/** A validated `quota.redis.lease`. */
export interface LeaseConfig {
  /** Share of the last known remaining tokens one lease may take, (0, 1]. */
  readonly maxFraction: number;
  /** Most tokens one lease takes. */
  readonly maxTokens: number;
}

export const LEASE_DEFAULTS: LeaseConfig = Object.freeze({ maxFraction: 0.01, maxTokens: 1000 });

interface Lease {
  /** Unused leased tokens. */
  tokens: number;
  /** Epoch ms the window of `tokens` and `remaining` ends. */
  until: number;
  /** The bucket's remaining tokens in Redis after the last answer. */
  remaining: number;
}

/** Waiting misses share the in-flight answer when it admitted nobody else (refused, store error); null: look at the lease again. */
type Flight = Promise<BucketOutcome | null>;

const seconds = (ms: number) => Math.max(0, Math.ceil(ms / 1000));
const SWEEP_INTERVAL_MS = 1000;

export class Leases {
  readonly #limiter: RateLimiterRedis;
  readonly #tokens: number;
  readonly #config: LeaseConfig;
  readonly #max: number;
  readonly #leases = new Map<string, Lease>();
  readonly #inflight = new Map<string, Flight>();
  #swept = 0;

  constructor(limiter: RateLimiterRedis, tokens: number, config: LeaseConfig, maxLeases: number) {
    this.#limiter = limiter;
    this.#tokens = tokens;
    this.#config = config;
    this.#max = maxLeases;
  }

  /** Keys with a lease state (ended ones included until swept). */
  get size(): number {
    return this.#leases.size;
  }

  /** One token from `key`'s lease, synchronously; null: none held (call consume). */
  take(key: string): BucketOutcome | null {
    const l = this.#leases.get(key);
    if (l === undefined || l.tokens === 0) return null;
    const left = l.until - Date.now();
    if (left <= 0) return null;
    l.tokens--;
    return { kind: 'ok', remaining: l.remaining + l.tokens, resetSeconds: seconds(left), fallback: false };
  }

  /** One token from `key`: from its lease, else through one (shared) Redis consume. Never rejects. */
  consume(key: string): Promise<BucketOutcome> {
    const hit = this.take(key);
    return hit !== null ? Promise.resolve(hit) : this.#miss(key);
  }

  async #miss(key: string): Promise<BucketOutcome> {
    for (;;) {
      const hit = this.take(key);
      if (hit !== null) return hit;
      const flight = this.#inflight.get(key);
      if (flight === undefined) break;
      const shared = await flight;
      if (shared !== null) return shared;
    }
    if (!this.#leases.has(key) && this.#leases.size >= this.#max && !this.#sweep()) return this.#consume(key, 1).then((r) => r.outcome);
    // One token is no lease: such checks go to Redis side by side, as without leases.
    if (this.#size(this.#leases.get(key), Date.now()) === 1) return this.#lease(key);
    let done!: (o: BucketOutcome | null) => void;
    this.#inflight.set(key, new Promise<BucketOutcome | null>((resolve) => { done = resolve; }));
    let shared: BucketOutcome | null = null;
    try {
      const o = await this.#lease(key);
      if (o.kind !== 'ok') shared = o;
      return o;
    } finally {
      this.#inflight.delete(key);
      done(shared);
    }
  }

  /** Drops ended leases (at most once per SWEEP_INTERVAL_MS); true when there is room again. */
  #sweep(): boolean {
    const now = Date.now();
    if (now - this.#swept >= SWEEP_INTERVAL_MS) {
      this.#swept = now;
      for (const [k, l] of this.#leases) if (l.until <= now) this.#leases.delete(k);
    }
    return this.#leases.size < this.#max;
  }

  /** The lease size for `key` now: see the header. */
  #size(l: Lease | undefined, now: number): number {
    if (l === undefined || l.until <= now) return 1;
    const n = Math.min(this.#config.maxTokens, Math.max(1, Math.floor(l.remaining * this.#config.maxFraction)));
    return l.remaining <= n ? 1 : n;
  }

  async #lease(key: string): Promise<BucketOutcome> {
    const sent = Date.now();
    const n = this.#size(this.#leases.get(key), sent);
    const { outcome, kept, consumed } = await this.#consume(key, n);
    if (outcome.kind === 'store-error') return outcome;
    let l = this.#leases.get(key);
    if (l === undefined) {
      l = { tokens: 0, until: 0, remaining: 0 };
      this.#leases.set(key, l);
    }
    // Answers of one window may overlap (one-token checks beside a lease): keep the tokens held and the lowest remaining.
    const same = l.until > sent;
    const remaining = Math.max(0, this.#tokens - consumed);
    l.remaining = same ? Math.min(l.remaining, remaining) : remaining;
    l.tokens = (same ? l.tokens : 0) + (outcome.kind === 'ok' ? kept - 1 : 0);
    l.until = sent + outcome.resetMs;
    return outcome.kind === 'ok'
      ? { kind: 'ok', remaining: l.remaining + l.tokens, resetSeconds: seconds(outcome.resetMs), fallback: false }
      : { kind: 'over', remaining: 0, resetSeconds: Math.max(1, seconds(outcome.resetMs)), fallback: false };
  }

  /**
   * Takes `n` tokens in one consume; a refused n > 1 keeps what the window could hold and gives
   * the rest back. `kept`: tokens taken (>= 1 when ok); `consumed`: the window's count after it.
   */
  async #consume(key: string, n: number): Promise<{ outcome: BucketOutcome & { resetMs: number }; kept: number; consumed: number }> {
    try {
      const r = await this.#limiter.consume(key, n);
      return { outcome: { kind: 'ok', remaining: r.remainingPoints, resetSeconds: seconds(r.msBeforeNext), fallback: false, resetMs: r.msBeforeNext }, kept: n, consumed: r.consumedPoints };
    } catch (r) {
      if (!(r instanceof RateLimiterRes)) return { outcome: { kind: 'store-error', error: r, resetMs: 0 } as BucketOutcome & { resetMs: number }, kept: 0, consumed: 0 };
      const room = n > 1 ? Math.max(0, Math.min(n, this.#tokens - (r.consumedPoints - n))) : 0;
      let consumed = r.consumedPoints;
      if (n > 1) {
        try {
          const back = await this.#limiter.reward(key, n - room);
          consumed = back.consumedPoints;
        } catch {
          // The window stays over-counted by n − room: fewer admitted, never more.
        }
      }
      if (room >= 1) {
        return { outcome: { kind: 'ok', remaining: Math.max(0, this.#tokens - consumed), resetSeconds: seconds(r.msBeforeNext), fallback: false, resetMs: r.msBeforeNext }, kept: room, consumed };
      }
      return { outcome: { kind: 'over', remaining: 0, resetSeconds: Math.max(1, seconds(r.msBeforeNext)), fallback: false, resetMs: r.msBeforeNext }, kept: 0, consumed };
    }
  }
}
