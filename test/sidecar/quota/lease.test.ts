/**
 * Token leases of GLOBAL buckets (lease.ts) on a real redis-server: a lease hit makes no Redis
 * round trip (counted with INFO commandstats), leases end with their window, shrink as the
 * bucket empties, one consume per key is in flight, a refused lease gives back what the window
 * could not hold, and a held lease outlives a Redis outage until its window ends. Also the
 * bootstrap's `quota.redis.lease`: on by default, off with `lease: false`.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { LimitBuckets, type LimitSpec } from '../../../sidecar/quota/limit-buckets.ts';
import { LEASE_DEFAULTS, type LeaseConfig } from '../../../sidecar/quota/lease.ts';
import { parseQuotaBootstrap } from '../../../sidecar/quota/quota-bootstrap.ts';
import { RedisStore } from '../../../sidecar/quota/redis-store.ts';
import { startRedis, type TestRedis } from '../../helpers/redis.ts';
import { until } from '../../helpers/until.ts';

const spec = (o: Partial<LimitSpec>): LimitSpec => ({ tokens: 5, intervalSeconds: 60, burst: 0, fallbackTokens: 5, scope: 'GLOBAL', ...o });
const KEY = 'q|l|t=acme';
const REDIS_KEY = `palisade:quota:${KEY}`;

describe('GLOBAL buckets with token leases (real redis-server)', () => {
  let redis: TestRedis;
  const stores: RedisStore[] = [];

  async function store(lease: LeaseConfig | null): Promise<RedisStore> {
    const s = await RedisStore.connect({ address: redis.address, nodes: [], cluster: false, keyPrefix: 'palisade:quota:', timeoutMs: 200, passwordFile: null, lease }, pino({ level: 'silent' }));
    stores.push(s);
    await until('redis connected', () => s.connected, 5000);
    return s;
  }

  /** Script calls (rate-limiter-flexible's consume and reward) Redis ran since the last reset. */
  async function scriptCalls(): Promise<number> {
    const info = await redis.cli('INFO', 'commandstats');
    let n = 0;
    for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) n += Number(m[1]);
    return n;
  }
  const counter = async () => Number(await redis.cli('GET', REDIS_KEY));

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) s.close();
    if (redis !== undefined) await redis.restart();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('admits from a held lease with no Redis round trip, and goes to Redis when it is used up', async () => {
    const b = new LimitBuckets(spec({ tokens: 10_000 }), await store({ maxFraction: 0.01, maxTokens: 1000 }));
    // Remaining unknown: one token; then 1% of the 9999 remaining: 99 (the check's and a lease of 98).
    expect((await b.consumeLeased(KEY)).kind).toBe('ok');
    expect(await b.consumeLeased(KEY)).toMatchObject({ kind: 'ok', remaining: 9900 + 98 });
    expect(await counter()).toBe(100);
    await redis.cli('CONFIG', 'RESETSTAT');
    for (let i = 0; i < 98; i++) expect((await b.consumeLeased(KEY)).kind).toBe('ok');
    expect(await scriptCalls()).toBe(0);
    expect(await counter()).toBe(100);
    expect((await b.consumeLeased(KEY)).kind).toBe('ok');
    expect(await scriptCalls()).toBe(1);
    expect(await counter()).toBe(199);
  });

  it('shrinks leases as the bucket empties, asking one token at a time near the limit, and admits exactly the limit', async () => {
    const b = new LimitBuckets(spec({ tokens: 100 }), await store({ maxFraction: 0.5, maxTokens: 1000 }));
    const kinds: string[] = [];
    const sizes: number[] = [];
    let last = 0;
    for (let i = 0; i < 110; i++) {
      kinds.push((await b.consumeLeased(KEY)).kind);
      const now = await counter();
      if (now !== last) sizes.push(now - last);
      last = now;
    }
    expect(kinds.filter((k) => k === 'ok')).toHaveLength(100);
    expect(kinds.slice(100)).toEqual(Array(10).fill('over'));
    // floor(remaining / 2), one when remaining <= that, one while refused.
    expect(sizes).toEqual([1, 49, 25, 12, 6, 3, 2, 1, 1, ...Array(10).fill(1)]);
  });

  it('ends a lease with its window: the next check goes to Redis in the new window', async () => {
    const b = new LimitBuckets(spec({ tokens: 1000, intervalSeconds: 1 }), await store({ maxFraction: 0.5, maxTokens: 100 }));
    await b.consumeLeased(KEY);
    await b.consumeLeased(KEY);
    expect(await counter()).toBe(101);
    await until('the window to close in Redis', async () => (await redis.cli('EXISTS', REDIS_KEY)) === '0', 5000, 20);
    expect((await b.consumeLeased(KEY)).kind).toBe('ok');
    // The 99 leased tokens were not used in the new window: a fresh count with one token.
    expect(await counter()).toBe(1);
  });

  it('keeps one lease request in flight per key: concurrent misses wait for it and share its lease', async () => {
    const b = new LimitBuckets(spec({ tokens: 10_000 }), await store({ maxFraction: 0.01, maxTokens: 1000 }));
    await b.consumeLeased(KEY);
    await redis.cli('CONFIG', 'RESETSTAT');
    const outcomes = await Promise.all(Array.from({ length: 50 }, () => b.consumeLeased(KEY)));
    expect(outcomes.every((o) => o.kind === 'ok')).toBe(true);
    expect(await scriptCalls()).toBe(1);
    expect(await counter()).toBe(100);
  });

  it('admits exactly the limit to concurrent checks of a small bucket (one-token checks go side by side)', async () => {
    const b = new LimitBuckets(spec({ tokens: 3 }), await store({ maxFraction: 0.5, maxTokens: 1000 }));
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => b.consumeLeased(KEY)));
    expect(outcomes.filter((o) => o.kind === 'ok')).toHaveLength(3);
    expect(outcomes.filter((o) => o.kind === 'over')).toHaveLength(7);
  });

  it('keeps what the window could hold of a refused lease and gives the rest back', async () => {
    const b = new LimitBuckets(spec({ tokens: 100 }), await store({ maxFraction: 0.5, maxTokens: 1000 }));
    expect((await b.consumeLeased(KEY)).kind).toBe('ok');
    // Another sidecar takes 90 tokens: this one still believes 99 remain and asks for 49.
    await redis.cli('INCRBY', REDIS_KEY, '90');
    const kinds: string[] = [];
    for (let i = 0; i < 12; i++) kinds.push((await b.consumeLeased(KEY)).kind);
    // 9 tokens were left: the refused consume of 49 keeps them and gives 40 back.
    expect(kinds).toEqual([...Array(9).fill('ok'), 'over', 'over', 'over']);
    expect(await counter()).toBe(103);
  });

  it('admits from a held lease while Redis is down until the lease is used up, then answers store-error', async () => {
    const s = await store({ maxFraction: 0.01, maxTokens: 1000 });
    const b = new LimitBuckets(spec({ tokens: 10_000 }), s);
    await b.consumeLeased(KEY);
    await b.consumeLeased(KEY);
    await redis.stop();
    await until('redis seen down', () => !s.connected, 5000);
    for (let i = 0; i < 98; i++) expect((await b.consumeLeased(KEY)).kind).toBe('ok');
    expect((await b.consumeLeased(KEY)).kind).toBe('store-error');
  });

  it('leaves burst limits and consume() (the rate limit service) on the plain path', async () => {
    const s = await store({ maxFraction: 0.5, maxTokens: 1000 });
    const bursty = new LimitBuckets(spec({ tokens: 100, burst: 10 }), s);
    await bursty.consumeLeased(KEY);
    await bursty.consumeLeased(KEY);
    expect(await counter()).toBe(2);
    expect(bursty.leases).toBe(0);
    const plain = new LimitBuckets(spec({ tokens: 100 }), s);
    await plain.consume('other');
    await plain.consume('other');
    expect(await redis.cli('GET', 'palisade:quota:other')).toBe('2');
  });

  it('takes the plain path for keys past the cap of live leases per limit', async () => {
    const b = new LimitBuckets(spec({ tokens: 1000 }), await store({ maxFraction: 0.5, maxTokens: 1000 }), 2);
    for (const k of ['a', 'b', 'c']) for (let i = 0; i < 3; i++) await b.consumeLeased(k);
    expect(b.leases).toBe(2);
    expect(await redis.cli('GET', 'palisade:quota:c')).toBe('3');
    expect(Number(await redis.cli('GET', 'palisade:quota:a'))).toBeGreaterThan(3);
  });

  /** A store connected with the bootstrap's parse of `quota.redis` (this redis-server's address plus `fields`). */
  async function storeFromBootstrap(fields: Record<string, unknown>): Promise<RedisStore> {
    const parsed = parseQuotaBootstrap({ redis: { address: redis.address, timeout: 200, ...fields } }, (p, m) => {
      throw new Error(`${p}: ${m}`);
    });
    const s = await RedisStore.connect(parsed.redis!, pino({ level: 'silent' }));
    stores.push(s);
    await until('redis connected', () => s.connected, 5000);
    return s;
  }

  it('is on by default (no quota.redis.lease): checks after the first take from a lease of 1% of the remaining tokens', async () => {
    const b = new LimitBuckets(spec({ tokens: 10_000 }), await storeFromBootstrap({}));
    for (let i = 0; i < 3; i++) expect((await b.consumeLeased(KEY)).kind).toBe('ok');
    // One token, then 99 (the check's and a lease of 98) of which the third check took one.
    expect(await counter()).toBe(100);
    expect(b.leases).toBe(1);
  });

  it('is off with quota.redis.lease: false: every check is one consume of one token', async () => {
    const b = new LimitBuckets(spec({ tokens: 10_000 }), await storeFromBootstrap({ lease: false }));
    expect((await b.consumeLeased(KEY)).kind).toBe('ok');
    await redis.cli('CONFIG', 'RESETSTAT');
    for (let i = 0; i < 5; i++) expect((await b.consumeLeased(KEY)).kind).toBe('ok');
    expect(await counter()).toBe(6);
    expect(await scriptCalls()).toBe(5);
    expect(b.leases).toBe(0);
  });
});

describe('bootstrap quota.redis.lease', () => {
  const parse = (lease: unknown) => {
    const errors: string[] = [];
    const r = parseQuotaBootstrap({ redis: { address: '127.0.0.1:6379', ...(lease !== undefined ? { lease } : {}) } }, (p, m) => void errors.push(`${p}: ${m}`));
    return { lease: r.redis?.lease, errors };
  };
  const MESSAGE = 'quota.redis.lease: must be a mapping (maxFraction, maxTokens), true (on, defaults) or false (off), got';

  it.each([
    ['absent', undefined, LEASE_DEFAULTS],
    ['true', true, LEASE_DEFAULTS],
    ['an empty mapping', {}, LEASE_DEFAULTS],
    ['maxFraction only', { maxFraction: 0.1 }, { maxFraction: 0.1, maxTokens: 1000 }],
    ['maxTokens only', { maxTokens: 50 }, { maxFraction: 0.01, maxTokens: 50 }],
    ['both fields', { maxFraction: 1, maxTokens: 1_000_000 }, { maxFraction: 1, maxTokens: 1_000_000 }],
    ['false', false, null],
  ])('accepts lease %s as %j', (_name, lease, expected) => {
    const r = parse(lease);
    expect(r).toEqual({ lease: expected, errors: [] });
    if (r.lease) expect(Object.isFrozen(r.lease)).toBe(true);
  });

  it('defaults to maxFraction 0.01 and maxTokens 1000', () => {
    expect(LEASE_DEFAULTS).toEqual({ maxFraction: 0.01, maxTokens: 1000 });
  });

  it.each([
    [{ maxFraction: 0 }, 'quota.redis.lease.maxFraction: must be a number over 0 and at most 1, got 0'],
    [{ maxFraction: 1.5 }, 'quota.redis.lease.maxFraction: must be a number over 0 and at most 1, got 1.5'],
    [{ maxFraction: '1%' }, 'quota.redis.lease.maxFraction: must be a number over 0 and at most 1, got "1%"'],
    [{ maxTokens: 2.5 }, 'quota.redis.lease.maxTokens: must be an integer 1..1000000, got 2.5'],
    [{ maxTokens: 0 }, 'quota.redis.lease.maxTokens: must be an integer 1..1000000, got 0'],
    [{ size: 3 }, 'quota.redis.lease.size: unknown field; known fields: maxFraction, maxTokens'],
    ['big', `${MESSAGE} "big"`],
    ['off', `${MESSAGE} "off"`],
    [0, `${MESSAGE} 0`],
    [null, `${MESSAGE} null`],
    [[], `${MESSAGE} []`],
  ])('refuses lease %j naming the field and the value', (lease, error) => {
    expect(parse(lease)).toEqual({ lease: undefined, errors: [error] });
  });
});
