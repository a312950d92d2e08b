/**
 * The quota gate in front of a real HTTP server on 127.0.0.1: its decisions, answers and the
 * request facts it fills for telemetry (quota, route, response flags). GLOBAL quotas point at
 * a port where no Redis listens, for the store-error outcomes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import pino from 'pino';
import { withAddedHeaders } from '../../../sidecar/proxy/added-headers.ts';
import { QuotaGate } from '../../../sidecar/quota/quota-gate.ts';
import { RedisStore } from '../../../sidecar/quota/redis-store.ts';
import { attachFacts, type RequestFacts } from '../../../sidecar/telemetry/request-facts.ts';
import { httpRequest } from '../../helpers/http.ts';
import { quota, Quota_FailureMode, Quota_Scope } from './fixtures.ts';

let server: Server;
let address: string;
let gate: QuotaGate;
let store: RedisStore;
let pressure = 0;
const facts: RequestFacts[] = [];
/** Parsed log lines of the gate and the store. */
const logs: { msg: string; quota?: string; shadowLimited?: number }[] = [];
const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as (typeof logs)[number]) });

const header = (h: string) => ({ source: { case: 'header' as const, value: h } });

async function deadPort(): Promise<number> {
  const s = createTcpServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function call(path: string, headers: Record<string, string> = {}) {
  const r = await httpRequest(address, { method: 'GET', path, headers: { 'x-tenant': 'acme', ...headers } });
  return { ...r, facts: facts[facts.length - 1]! };
}

beforeAll(async () => {
  store = await RedisStore.connect({ address: `127.0.0.1:${await deadPort()}`, nodes: [], cluster: false, keyPrefix: 'palisade:quota:', timeoutMs: 50, passwordFile: null, lease: null }, logger);
  gate = new QuotaGate({ service: 'web', namespace: 'default', logger, store, pressure: () => pressure });
  gate.apply([
    quota('local', { tokens: 1 }, { routes: [{ name: 'local-route', pathPrefix: '/local' }] }),
    quota('shadow', { tokens: 1 }, { routes: [{ name: 'shadow', pathPrefix: '/shadow' }], shadow: true }),
    quota('open', { tokens: 5, fallback: 1 }, { scope: Quota_Scope.GLOBAL, routes: [{ name: 'open', pathPrefix: '/open' }] }),
    quota('closed', { tokens: 5 }, { scope: Quota_Scope.GLOBAL, failureMode: Quota_FailureMode.FAIL_CLOSED, routes: [{ name: 'closed', pathPrefix: '/closed' }] }),
    quota('shed', { tokens: 100 }, {
      routes: [{ name: 'shed', pathPrefix: '/shed' }], priorityAttribute: header('x-priority'),
      priorityClasses: [{ name: 'batch', values: ['batch'], shedAtPercent: 10 }],
    }),
    quota('shadow-shed', { tokens: 100 }, {
      routes: [{ name: 'shadow-shed', pathPrefix: '/shadow-shed' }], shadow: true, priorityAttribute: header('x-priority'),
      priorityClasses: [{ name: 'batch', values: ['batch'], shedAtPercent: 10 }],
    }),
    quota('other-service', { tokens: 1 }, { services: ['billing'], routes: [{ name: 'billing', pathPrefix: '/billing' }] }),
  ]);
  server = createServer((req, res) => {
    facts.push(attachFacts(req));
    // The next stage writes the head as every writer after the gate does: with the added headers merged.
    gate.gate(req, res, () => res.writeHead(200, withAddedHeaders(res, {})).end('ok'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  store?.close();
  await new Promise<void>((r) => server.close(() => r()));
});

describe('quota gate', () => {
  it('is ready after the first state, with only the quotas that select its Service', () => {
    expect(gate.ready).toBe(true);
    expect(gate.config.quotas.map((q) => q.name)).toEqual(['default/closed', 'default/local', 'default/open', 'default/shadow', 'default/shadow-shed', 'default/shed']);
  });

  it('records an admitted request and a refused one in the request facts (flag RL on the refusal)', async () => {
    const ok = await call('/local/a');
    expect(ok.status).toBe(200);
    expect(ok.facts).toMatchObject({ route: 'local-route', quota: { name: 'default/local', limit: 'per-tenant', result: 'ok', remaining: 0 }, flags: [] });
    const over = await call('/local/a');
    expect(over.status).toBe(429);
    expect(over.facts).toMatchObject({ route: 'local-route', quota: { name: 'default/local', limit: 'per-tenant', result: 'over', remaining: 0 }, flags: ['RL'] });
  });

  it('records shadow-over without refusing or flagging', async () => {
    await call('/shadow');
    const r = await call('/shadow');
    expect(r.status).toBe(200);
    expect(r.facts).toMatchObject({ quota: { result: 'shadow-over' }, flags: [] });
  });

  it('fails open through the fallback bucket when the store is unreachable, then refuses over it', async () => {
    const first = await call('/open');
    expect(first.status).toBe(200);
    expect(first.facts.quota).toMatchObject({ name: 'default/open', result: 'store-error-open' });
    const second = await call('/open');
    expect(second.status).toBe(429);
    expect(second.facts.flags).toEqual(['RL']);
  });

  it('fails closed with 429, Retry-After 1 and flag RLSE', async () => {
    const r = await call('/closed');
    expect(r.status).toBe(429);
    expect(r.headers['retry-after']).toBe('1');
    expect(r.facts).toMatchObject({ quota: { name: 'default/closed', result: 'store-error-closed' }, flags: ['RLSE'] });
    expect((gate.stats() as { redis: unknown }).redis).toEqual({ connected: false, outages: 1 });
  });

  it('sheds with 503 and flag OM once the pressure reaches the class, taking no token', async () => {
    pressure = 10;
    const r = await call('/shed', { 'x-priority': 'batch' });
    pressure = 0;
    expect(r.status).toBe(503);
    expect(r.body).toBe('overloaded: shedding priority class batch');
    expect(r.facts).toMatchObject({ route: 'shed', quota: { name: 'default/shed', limit: 'batch', result: 'shed' }, flags: ['OM'] });
    const counters = (gate.stats() as { quotas: Record<string, { limits: Record<string, { allowed: number }>; shed: Record<string, number> }> }).quotas['default/shed']!;
    expect(counters).toMatchObject({ limits: { 'per-tenant': { allowed: 0 } }, shed: { batch: 1 } });
  });

  it('logs a shadow limit at most once per interval, however many requests it would refuse', async () => {
    for (let i = 0; i < 5; i++) expect((await call('/shadow')).status).toBe(200);
    const lines = logs.filter((l) => l.msg === 'shadow quota would refuse (not enforced)');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ quota: 'default/shadow', shadowLimited: 1 });
  });

  it('logs the store going down once, not per request or reconnect attempt', async () => {
    for (let i = 0; i < 5; i++) await call('/closed');
    // ioredis keeps retrying the dead port meanwhile (every 100 ms .. 1 s).
    await new Promise((r) => setTimeout(r, 300));
    expect(logs.filter((l) => l.msg.startsWith('quota store unreachable'))).toHaveLength(1);
    expect(logs.filter((l) => l.msg.startsWith('quota store'))).toHaveLength(1);
  });

  it('sheds nothing for a shadow quota, counting what it would shed and taking its token', async () => {
    pressure = 50;
    const r = await call('/shadow-shed', { 'x-priority': 'batch' });
    pressure = 0;
    expect(r.status).toBe(200);
    expect(r.facts).toMatchObject({ quota: { name: 'default/shadow-shed', result: 'ok' }, flags: [] });
    const counters = (gate.stats() as { quotas: Record<string, unknown> }).quotas['default/shadow-shed'];
    expect(counters).toMatchObject({ limits: { 'per-tenant': { allowed: 1 } }, shed: {}, shadowShed: { batch: 1 } });
  });

  it('passes a request no quota applies to without touching its facts', async () => {
    const r = await call('/billing');
    expect(r.status).toBe(200);
    expect(r.facts).toMatchObject({ route: null, quota: null, flags: [] });
    expect(r.headers['ratelimit']).toBeUndefined();
  });
});

describe('quota gate: several limits, bucket cap, forwarder failures', () => {
  let server2: Server;
  let address2: string;
  const logs2: { msg: string; quota?: string; limit?: string; overflowed?: number; err?: { message: string } }[] = [];
  const logger2 = pino({ level: 'info' }, { write: (line: string) => void logs2.push(JSON.parse(line) as (typeof logs2)[number]) });
  const gate2 = new QuotaGate({ service: 'web', namespace: 'default', logger: logger2, maxLocalBuckets: 2 });
  const call2 = (path: string, tenant: string) => httpRequest(address2, { method: 'GET', path, headers: { 'x-tenant': tenant } });

  beforeAll(async () => {
    gate2.apply([
      quota('a-long', { tokens: 1, interval: 3600 }, { routes: [{ name: 'both', pathPrefix: '/both' }] }),
      quota('b-short', { tokens: 1, interval: 60 }, { routes: [{ name: 'both', pathPrefix: '/both' }] }),
      quota('capped', { tokens: 1, interval: 3600 }, { routes: [{ name: 'capped', pathPrefix: '/capped' }] }),
      quota('throws', { tokens: 100 }, { routes: [{ name: 'throws', pathPrefix: '/throws' }] }),
      quota('bursty', { tokens: 2, burst: 3, interval: 60 }, { routes: [{ name: 'bursty', pathPrefix: '/bursty' }] }),
      quota('roomy', { tokens: 100 }, { routes: [{ name: 'roomy', pathPrefix: '/roomy' }] }),
    ]);
    server2 = createServer((req, res) => {
      attachFacts(req);
      let returned = false;
      gate2.gate(req, res, () => {
        if (req.url === '/throws') throw new Error('forwarder bug');
        res.writeHead(200, withAddedHeaders(res, {})).end(returned ? 'ok after' : 'ok during');
      });
      returned = true;
    });
    await new Promise<void>((r) => server2.listen(0, '127.0.0.1', r));
    address2 = `127.0.0.1:${(server2.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    gate2.close();
    await new Promise<void>((r) => server2.close(() => r()));
  });

  it('names each RateLimit-Policy and RateLimit item <quota short name>.<limit>, so same-named limits of two quotas stay apart', async () => {
    const r = await call2('/both', 'names');
    expect(r.status).toBe(200);
    expect(r.headers['ratelimit-policy']).toBe('"a-long.per-tenant";q=1;w=3600, "b-short.per-tenant";q=1;w=60');
    expect(r.headers['ratelimit']).toMatch(/^"a-long\.per-tenant";r=0;t=\d+, "b-short\.per-tenant";r=0;t=\d+$/);
  });

  it('answers a 429 refused by several limits with the Retry-After and x-ratelimit-* of the limit that resets last', async () => {
    const r = await call2('/both', 'names');
    expect(r.status).toBe(429);
    const reset = Number(r.headers['retry-after']);
    expect(reset).toBeGreaterThan(60);
    expect(reset).toBeLessThanOrEqual(3600);
    expect(r.headers['x-ratelimit-reset']).toBe(String(reset));
    expect(r.headers['x-ratelimit-limit']).toBe('1');
    expect(r.body).toBe('rate limited: quota default/a-long, limit per-tenant');
  });

  it('counts new descriptor values past the live bucket cap in one shared overflow bucket, logged once', async () => {
    expect((await call2('/capped', 't1')).status).toBe(200);
    expect((await call2('/capped', 't2')).status).toBe(200);
    // The cap (2) is reached: t3 and t4 share the overflow bucket (1 token).
    expect((await call2('/capped', 't3')).status).toBe(200);
    expect((await call2('/capped', 't4')).status).toBe(429);
    // Live buckets keep counting on their own.
    expect((await call2('/capped', 't1')).status).toBe(429);
    const stats = gate2.stats() as { quotas: Record<string, { limits: Record<string, { overflowed: number; allowed: number; limited: number }> }> };
    expect(stats.quotas['default/capped']!.limits['per-tenant']).toMatchObject({ overflowed: 2, allowed: 3, limited: 2 });
    const lines = logs2.filter((l) => l.msg.startsWith('quota limit has too many live buckets'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ quota: 'default/capped', limit: 'per-tenant', overflowed: 1 });
  });

  it('announces tokens + burst as the quota a window admits (q and x-ratelimit-limit), and admits that many', async () => {
    const replies = [];
    for (let i = 0; i < 6; i++) replies.push(await call2('/bursty', 'b'));
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 429]);
    for (const r of replies) {
      expect(r.headers['ratelimit-policy']).toBe('"bursty.per-tenant";q=5;w=60');
      expect(r.headers['x-ratelimit-limit']).toBe('5');
    }
    // r counts the window's tokens; the burst reserve is not reported (rate-limiter-flexible does not expose it).
    expect(replies.map((r) => r.headers['x-ratelimit-remaining'])).toEqual(['1', '0', '0', '0', '0', '0']);
  });

  it('admits a request counted only by LOCAL buckets without burst before gate() returns, and others once their buckets answer', async () => {
    expect((await call2('/roomy', 'sync')).body).toBe('ok during');
    expect((await call2('/bursty', 'sync')).body).toBe('ok after');
  });

  it('counts the result of every quota that checked a request, not only the deciding one', () => {
    // /both: two requests of tenant "names", each checked by a-long and b-short.
    expect(gate2.decisions().get('default/a-long')).toEqual({ ok: 1, over: 1 });
    expect(gate2.decisions().get('default/b-short')).toEqual({ ok: 1, over: 1 });
    expect(gate2.decisions().get('default/capped')).toEqual({ ok: 3, over: 2 });
  });

  it('answers 500 and logs the error when the forwarder throws after an admitting check', async () => {
    const r = await call2('/throws', 'x');
    expect(r.status).toBe(500);
    expect(logs2.filter((l) => l.msg === 'forwarding a request after its quota check threw').map((l) => l.err?.message)).toEqual(['forwarder bug']);
    expect(logs2.filter((l) => l.msg === 'quota check failed unexpectedly')).toHaveLength(0);
  });
});
