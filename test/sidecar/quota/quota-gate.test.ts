/**
 * The quota gate in front of a real HTTP server on 127.0.0.1: its decisions, answers and the
 * request facts it fills for telemetry (quota, route, response flags). GLOBAL quotas point at
 * a port where no Redis listens, for the store-error outcomes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import pino from 'pino';
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
  store = await RedisStore.connect({ address: `127.0.0.1:${await deadPort()}`, nodes: [], cluster: false, keyPrefix: 'palisade:quota:', timeoutMs: 50, passwordFile: null }, logger);
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
    gate.gate(req, res, () => res.end('ok'));
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
