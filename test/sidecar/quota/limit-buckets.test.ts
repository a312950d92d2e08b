/**
 * Bucket semantics (limit-buckets.ts), LOCAL in memory and GLOBAL in a real redis-server:
 * counts of admitted requests per window, the burst reserve, windows reopening after the
 * interval, buckets shared through Redis, and the store-error outcome when Redis is gone.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LimitBuckets, type LimitSpec } from '../../../sidecar/quota/limit-buckets.ts';
import { RedisStore } from '../../../sidecar/quota/redis-store.ts';
import { startRedis, startRedisCluster, type TestRedis } from '../../helpers/redis.ts';
import { until } from '../../helpers/until.ts';

const spec = (o: Partial<LimitSpec>): LimitSpec => ({ tokens: 5, intervalSeconds: 60, burst: 0, fallbackTokens: 5, scope: 'LOCAL', ...o });

async function take(b: LimitBuckets, key: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await b.consume(key)).kind);
  return out;
}

const admitted = (kinds: string[]) => kinds.filter((k) => k === 'ok').length;

describe('LOCAL buckets', () => {
  it('admits `tokens` requests per window and refuses the rest, reporting remaining and reset', async () => {
    const b = new LimitBuckets(spec({ tokens: 3 }), null);
    const first = await b.consume('k');
    expect(first).toEqual({ kind: 'ok', remaining: 2, resetSeconds: 60, fallback: false });
    expect(await take(b, 'k', 3)).toEqual(['ok', 'ok', 'over']);
    const over = await b.consume('k');
    expect(over.kind).toBe('over');
    expect(over.kind === 'over' && over.resetSeconds).toBeGreaterThanOrEqual(59);
  });

  it('keeps one bucket per key', async () => {
    const b = new LimitBuckets(spec({ tokens: 2 }), null);
    expect(await take(b, 'a', 3)).toEqual(['ok', 'ok', 'over']);
    expect(await take(b, 'b', 3)).toEqual(['ok', 'ok', 'over']);
  });

  it('spends the burst reserve beyond `tokens` once, not again in the next window', async () => {
    const b = new LimitBuckets(spec({ tokens: 2, burst: 1, intervalSeconds: 1 }), null);
    expect(await take(b, 'k', 4)).toEqual(['ok', 'ok', 'ok', 'over']);
    // The window reopens after the interval: `tokens` again, the reserve still spent (it refills every 10 intervals).
    await until('the next window', async () => (await b.consume('k')).kind === 'ok', 5000, 50);
    expect(await take(b, 'k', 2)).toEqual(['ok', 'over']);
  });

  it('has every token back once the interval has passed', async () => {
    const b = new LimitBuckets(spec({ tokens: 4, intervalSeconds: 1 }), null);
    expect(admitted(await take(b, 'k', 6))).toBe(4);
    await until('the next window', async () => (await b.consume('k')).kind === 'ok', 5000, 50);
    expect(await take(b, 'k', 4)).toEqual(['ok', 'ok', 'ok', 'over']);
  });
});

describe('synchronous LOCAL answers (takeNow)', () => {
  it('counts in the same buckets as consume(), with the same answers, for LOCAL limits without burst', async () => {
    const b = new LimitBuckets(spec({ tokens: 2 }), null);
    expect(b.answersNow).toBe(true);
    expect(b.takeNow('k')).toEqual({ kind: 'ok', remaining: 1, resetSeconds: 60, fallback: false });
    expect(await b.consume('k')).toEqual({ kind: 'ok', remaining: 0, resetSeconds: 60, fallback: false });
    const over = b.takeNow('k');
    expect(over).toMatchObject({ kind: 'over', remaining: 0, fallback: false });
    expect(over!.resetSeconds).toBeGreaterThanOrEqual(59);
    expect((await b.consume('k')).kind).toBe('over');
  });

  it('does not answer for limits with burst (the reserve is asked through its promise)', () => {
    const b = new LimitBuckets(spec({ tokens: 2, burst: 1 }), null);
    expect(b.answersNow).toBe(false);
    expect(b.takeNow('k')).toBeNull();
  });
});

describe('live LOCAL bucket cap', () => {
  it('has room for a new key until the limit holds maxBuckets live buckets, and always for a live one', async () => {
    const b = new LimitBuckets(spec({ tokens: 2 }), null, 3);
    for (const k of ['a', 'b', 'c']) {
      expect(b.hasRoom(k)).toBe(true);
      await b.consume(k);
    }
    expect(b.size).toBe(3);
    expect(b.hasRoom('d')).toBe(false);
    expect(b.hasRoom('a')).toBe(true);
  });

  it('frees room when a bucket\'s window closes', async () => {
    const b = new LimitBuckets(spec({ tokens: 2, intervalSeconds: 1 }), null, 1);
    await b.consume('a');
    expect(b.hasRoom('b')).toBe(false);
    await until('the window of a to close', () => b.hasRoom('b'), 5000, 50);
    expect(b.size).toBe(0);
  });

  it('caps the burst reserve\'s buckets too', async () => {
    const b = new LimitBuckets(spec({ tokens: 1, burst: 5, intervalSeconds: 1 }), null, 1);
    expect(await take(b, 'a', 2)).toEqual(['ok', 'ok']);
    // a's main window closes, its burst reserve (10 intervals) stays: still no room for b.
    await until('the main window of a to close', () => b.size === 0, 5000, 50);
    expect(b.hasRoom('b')).toBe(false);
    expect(b.hasRoom('a')).toBe(true);
  });
});

describe('GLOBAL buckets (real redis-server)', () => {
  let redis: TestRedis;
  const stores: RedisStore[] = [];
  const log = pino({ level: 'silent' });

  async function store(logger = log): Promise<RedisStore> {
    const s = await RedisStore.connect({ address: redis.address, nodes: [], cluster: false, keyPrefix: 'palisade:quota:', timeoutMs: 200, passwordFile: null, lease: null }, logger);
    stores.push(s);
    await until('redis connected', () => s.connected, 5000);
    return s;
  }

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

  it('shares one bucket between sidecars through Redis, under keyPrefix + bucket key', async () => {
    const a = new LimitBuckets(spec({ tokens: 6, scope: 'GLOBAL' }), await store());
    const b = new LimitBuckets(spec({ tokens: 6, scope: 'GLOBAL' }), await store());
    const kinds: string[] = [];
    for (let i = 0; i < 5; i++) kinds.push((await a.consume('q|l|t=acme')).kind, (await b.consume('q|l|t=acme')).kind);
    expect(admitted(kinds)).toBe(6);
    expect(await redis.cli('GET', 'palisade:quota:q|l|t=acme')).toBe('10');
  });

  it('keeps the burst reserve in Redis too, under keyPrefix + "burst:" (a ":" ends a prefix without one)', async () => {
    const s = await RedisStore.connect({ address: redis.address, nodes: [], cluster: false, keyPrefix: 'pq', timeoutMs: 200, passwordFile: null, lease: null }, log);
    stores.push(s);
    await until('redis connected', () => s.connected, 5000);
    const b = new LimitBuckets(spec({ tokens: 2, burst: 2, scope: 'GLOBAL' }), s);
    expect(await take(b, 'k', 5)).toEqual(['ok', 'ok', 'ok', 'ok', 'over']);
    expect(await redis.cli('GET', 'pq:k')).toBe('5');
    expect(await redis.cli('GET', 'pq:burst:k')).toBe('3');
  });

  it('answers store-error when Redis is down, and uses Redis again once it is back, logging each transition once', async () => {
    const lines: string[] = [];
    const s = await store(pino({ level: 'info' }, { write: (l: string) => void lines.push((JSON.parse(l) as { msg: string }).msg) }));
    const b = new LimitBuckets(spec({ tokens: 2, fallbackTokens: 1, scope: 'GLOBAL' }), s);
    expect((await b.consume('k')).kind).toBe('ok');
    await redis.stop();
    await until('redis seen down', () => !s.connected, 5000);
    expect((await b.consume('k')).kind).toBe('store-error');
    // The local fallback bucket: fallback_tokens per interval.
    expect([(await b.consumeFallback('k')).kind, (await b.consumeFallback('k')).kind]).toEqual(['ok', 'over']);
    await redis.restart();
    await until('redis seen back', () => s.connected, 10_000, 20);
    // A fresh Redis (no persistence): the bucket starts over.
    expect(await take(b, 'k', 3)).toEqual(['ok', 'ok', 'over']);
    expect(s.stats().outages).toBe(1);
    expect(lines).toEqual(['quota store connected', 'quota store unreachable: GLOBAL quotas apply their failure mode', 'quota store reachable again: GLOBAL quotas use it']);
  });
});

describe('GLOBAL buckets on a Redis Cluster (three real redis-server masters)', () => {
  let cluster: Awaited<ReturnType<typeof startRedisCluster>>;
  const stores: RedisStore[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 30_000);
  afterAll(async () => {
    for (const s of stores) s.close();
    await cluster?.stop();
  });

  it('shares buckets between sidecars through the cluster', async () => {
    const connect = async () => {
      const s = await RedisStore.connect({ address: null, nodes: cluster.nodes, cluster: true, keyPrefix: 'palisade:quota:', timeoutMs: 500, passwordFile: null, lease: null }, pino({ level: 'silent' }));
      stores.push(s);
      await until('cluster connected', () => s.connected, 10_000, 20);
      return s;
    };
    const [s1, s2] = [await connect(), await connect()];
    const a = new LimitBuckets(spec({ tokens: 3, scope: 'GLOBAL' }), s1);
    const b = new LimitBuckets(spec({ tokens: 3, scope: 'GLOBAL' }), s2);
    for (const key of ['q|l|t=acme', 'q|l|t=globex', 'q|l|t=initech']) {
      const kinds = [];
      for (let i = 0; i < 3; i++) kinds.push((await a.consume(key)).kind, (await b.consume(key)).kind);
      expect(admitted(kinds)).toBe(3);
    }
  });
});

describe('a Redis that requires a password (quota.redis.passwordFile)', () => {
  let redis: TestRedis;
  let dir: string;
  let store: RedisStore | null = null;

  beforeAll(async () => {
    redis = await startRedis(['--requirepass', 'quota-secret']);
    dir = await mkdtemp(join(tmpdir(), 'palisade-redis-pass-'));
  });
  afterAll(async () => {
    store?.close();
    await redis?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('authenticates with the first line of the password file', async () => {
    const file = join(dir, 'redis.pass');
    await writeFile(`${file}.tmp`, 'quota-secret\nignored\n');
    await rename(`${file}.tmp`, file);
    store = await RedisStore.connect({ address: redis.address, nodes: [], cluster: false, keyPrefix: 'palisade:quota:', timeoutMs: 200, passwordFile: file, lease: null }, pino({ level: 'silent' }));
    await until('redis connected', () => store!.connected, 5000);
    const b = new LimitBuckets(spec({ tokens: 1, scope: 'GLOBAL' }), store);
    expect(await take(b, 'k', 2)).toEqual(['ok', 'over']);
  });

  it('refuses to start with a password file it cannot read, naming the field', async () => {
    await expect(RedisStore.connect({ address: redis.address, nodes: [], cluster: false, keyPrefix: 'p:', timeoutMs: 50, passwordFile: join(dir, 'missing'), lease: null }, pino({ level: 'silent' })))
      .rejects.toThrow(/^quota\.redis\.passwordFile: cannot read .*missing/);
  });
});
