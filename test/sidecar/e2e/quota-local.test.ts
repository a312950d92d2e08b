/**
 * LOCAL quotas end to end: a real ADS server pushes Quotas to an in-process sidecar in front
 * of a real workload; requests go to the sidecar's inbound listener over HTTP/1.1 and HTTP/2
 * (h2c). Counts are deterministic: sequential requests within one long window, or polling for
 * the next window without timing assertions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as h2connect } from 'node:http2';
import { WebSocket } from 'ws';
import { QUOTA_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import type { Server } from 'node:http';
import type { Sidecar, SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { httpRequest } from '../../helpers/http.ts';
import { until } from '../../helpers/until.ts';
import { quota, Quota_Scope } from '../quota/fixtures.ts';
import { closeServer, QuotaXds, startSidecar, startWorkload } from '../quota/quota-mesh.ts';

let xds: QuotaXds;
let workload: { server: Server; port: number; hits: () => number };
let sc: { sidecar: Sidecar; addresses: SidecarAddresses };
let pressure = 0;

const header = (h: string) => ({ source: { case: 'header' as const, value: h } });

/** The quotas in force for the whole file; each test uses its own path prefix (its own quota). */
const QUOTAS = [
  quota('accuracy', { tokens: 50, interval: 60 }, { routes: [{ name: 'accuracy', pathPrefix: '/accuracy' }] }),
  quota('reset', { tokens: 5, interval: 1 }, { routes: [{ name: 'reset', pathPrefix: '/reset' }] }),
  quota('shadow', { tokens: 3, interval: 60 }, { routes: [{ name: 'shadow', pathPrefix: '/shadow' }], shadow: true }),
  quota('headers', { tokens: 2, interval: 60 }, { routes: [{ name: 'headers', pathPrefix: '/headers' }] }),
  quota('tiers', {}, {
    routes: [{ name: 'tiers', pathPrefix: '/tiers', methods: ['GET'] }],
    limits: [
      { name: 'gold', match: { tenant: 'gold' }, tokens: 4n, interval: { seconds: 60n } },
      { name: 'others', tokens: 1n, interval: { seconds: 60n } },
    ],
  }),
  quota('ws', { tokens: 1, interval: 60 }, { routes: [{ name: 'ws', pathPrefix: '/ws' }] }),
  quota('shed', { tokens: 1000, interval: 60 }, {
    routes: [{ name: 'shed', pathPrefix: '/shed' }],
    priorityAttribute: header('x-priority'),
    priorityClasses: [{ name: 'low', values: ['low'], shedAtPercent: 50 }, { name: 'high', values: ['high'], shedAtPercent: 90 }, { name: 'critical', values: ['critical'] }],
    defaultPriorityClass: 'low',
  }),
];

function call(path: string, headers: Record<string, string> = {}) {
  return httpRequest(sc.addresses.inbound, { method: 'GET', path, headers: { 'x-tenant': 'acme', ...headers } });
}

interface QuotaStats { quotas: Record<string, { limits: Record<string, { allowed: number; limited: number; shadowLimited: number }>; shed: Record<string, number> }> }
const stats = () => (sc.sidecar.stats() as { quota: QuotaStats }).quota;

beforeAll(async () => {
  workload = await startWorkload();
  xds = await QuotaXds.start();
  xds.push(QUOTAS);
  sc = await startSidecar(xds.address, workload.port, { pressure: () => pressure });
}, 30_000);

afterAll(async () => {
  await sc?.sidecar.close();
  await xds?.close();
  if (workload !== undefined) await closeServer(workload.server);
});

describe('LOCAL quotas on the sidecar', () => {
  it('admits exactly the limit of 150 sequential requests in one window, refusing the rest before the workload', async () => {
    const before = workload.hits();
    const statuses: number[] = [];
    for (let i = 0; i < 150; i++) statuses.push((await call('/accuracy')).status);
    const admitted = statuses.filter((s) => s === 200).length;
    expect(admitted).toBe(50);
    expect(statuses.filter((s) => s === 429)).toHaveLength(100);
    // ±2% of the limit is the contract; the count is exact here.
    expect(Math.abs(admitted - 50)).toBeLessThanOrEqual(1);
    expect(workload.hits() - before).toBe(50);
    expect(stats().quotas['default/accuracy']!.limits['per-tenant']).toMatchObject({ allowed: 50, limited: 100 });
  });

  it('keeps one bucket per descriptor value', async () => {
    for (let i = 0; i < 50; i++) await call('/accuracy', { 'x-tenant': 'other' });
    expect((await call('/accuracy', { 'x-tenant': 'other' })).status).toBe(429);
    expect((await call('/accuracy', { 'x-tenant': 'third' })).status).toBe(200);
  });

  it('has the tokens back after the interval', async () => {
    const first: number[] = [];
    for (let i = 0; i < 8; i++) first.push((await call('/reset')).status);
    expect(first.filter((s) => s === 200)).toHaveLength(5);
    await until('the next window', async () => (await call('/reset')).status === 200, 5000, 50);
    const next: number[] = [];
    for (let i = 0; i < 5; i++) next.push((await call('/reset')).status);
    // One token went to the request that found the window open.
    expect(next).toEqual([200, 200, 200, 200, 429]);
  });

  it('shadow mode refuses nothing and adds no headers, but counts what it would refuse', async () => {
    const replies = [];
    for (let i = 0; i < 10; i++) replies.push(await call('/shadow'));
    expect(replies.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(replies.every((r) => r.headers['ratelimit'] === undefined && r.headers['x-ratelimit-limit'] === undefined)).toBe(true);
    expect(stats().quotas['default/shadow']!.limits['per-tenant']).toMatchObject({ allowed: 3, limited: 0, shadowLimited: 7 });
  });

  it('sets RateLimit-Policy, RateLimit and x-ratelimit-* on allowed responses, and a 429 with Retry-After naming the quota and limit', async () => {
    const ok = await call('/headers');
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('ok /headers');
    expect(ok.headers['x-workload']).toBe('yes');
    expect(ok.headers['ratelimit-policy']).toBe('"headers.per-tenant";q=2;w=60');
    expect(ok.headers['ratelimit']).toMatch(/^"headers\.per-tenant";r=1;t=(60|59)$/);
    expect(ok.headers['x-ratelimit-limit']).toBe('2');
    expect(ok.headers['x-ratelimit-remaining']).toBe('1');
    expect(['59', '60']).toContain(ok.headers['x-ratelimit-reset']);
    expect((await call('/headers')).headers['x-ratelimit-remaining']).toBe('0');
    const refused = await call('/headers');
    expect(refused.status).toBe(429);
    expect(refused.body).toBe('rate limited: quota default/headers, limit per-tenant');
    expect(refused.headers['x-workload']).toBeUndefined();
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(58);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(refused.headers['ratelimit-policy']).toBe('"headers.per-tenant";q=2;w=60');
    expect(refused.headers['ratelimit']).toBe(`"headers.per-tenant";r=0;t=${refused.headers['retry-after']}`);
    expect(refused.headers['x-ratelimit-remaining']).toBe('0');
  });

  it('sets the same headers over HTTP/2: merged into the workload response, and on a 429', async () => {
    const session = h2connect(`http://${sc.addresses.inbound}`);
    try {
      const reply = await new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
        const s = session.request({ ':path': '/tiers', 'x-tenant': 'gold' });
        let headers: Record<string, unknown> = {};
        let body = '';
        s.on('response', (h) => (headers = h));
        s.setEncoding('utf8');
        s.on('data', (d: string) => (body += d));
        s.on('end', () => resolve({ status: Number(headers[':status']), headers, body }));
        s.on('error', reject);
        s.end();
      });
      expect(reply.status).toBe(200);
      expect(reply.body).toBe('ok /tiers');
      expect(reply.headers['x-workload']).toBe('yes');
      expect(reply.headers['ratelimit-policy']).toBe('"tiers.gold";q=4;w=60');
      expect(reply.headers['x-ratelimit-remaining']).toBe('3');
      // The spent /headers bucket: a 429 over HTTP/2 carries the same headers.
      const refused = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const s = session.request({ ':path': '/headers', 'x-tenant': 'acme' });
        s.on('response', (h) => {
          s.resume();
          resolve(h);
        });
        s.on('error', reject);
        s.end();
      });
      expect(refused[':status']).toBe(429);
      expect(Number(refused['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(refused['ratelimit-policy']).toBe('"headers.per-tenant";q=2;w=60');
    } finally {
      session.close();
    }
  });

  it('applies the first limit whose match holds, and leaves unlisted methods alone', async () => {
    expect((await call('/tiers', { 'x-tenant': 'bronze' })).status).toBe(200);
    const second = await call('/tiers', { 'x-tenant': 'bronze' });
    expect(second.status).toBe(429);
    expect(second.body).toBe('rate limited: quota default/tiers, limit others');
    const post = await httpRequest(sc.addresses.inbound, { method: 'POST', path: '/tiers', headers: { 'x-tenant': 'bronze' } });
    expect(post.status).toBe(200);
    expect(post.headers['ratelimit']).toBeUndefined();
  });

  it('sheds priority classes in order as the overload pressure rises, with 503 before the workload', async () => {
    const statusOf = async (p: string) => {
      const r = await call('/shed', { 'x-priority': p });
      return r.status === 503 ? `503 ${r.body}` : String(r.status);
    };
    const round = async () => [await statusOf('low'), await statusOf('high'), await statusOf('critical'), await statusOf('unknown')];
    pressure = 0;
    expect(await round()).toEqual(['200', '200', '200', '200']);
    pressure = 60;
    expect(await round()).toEqual(['503 overloaded: shedding priority class low', '200', '200', '503 overloaded: shedding priority class low']);
    pressure = 95;
    expect(await round()).toEqual(['503 overloaded: shedding priority class low', '503 overloaded: shedding priority class high', '200', '503 overloaded: shedding priority class low']);
    pressure = 0;
    expect(stats().quotas['default/shed']!.shed).toEqual({ low: 4, high: 1 });
  });

  it('judges WebSocket upgrades too: over the limit, 429 and no upgrade reaches the workload', async () => {
    const upgrade = () => new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws://${sc.addresses.inbound}/ws`, { headers: { 'x-tenant': 'acme' } });
      ws.once('open', () => {
        ws.close();
        resolve(101);
      });
      ws.once('unexpected-response', (_req, res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      ws.once('error', reject);
    });
    const before = workload.hits();
    expect(await upgrade()).toBe(101);
    expect(await upgrade()).toBe(429);
    expect(workload.hits() - before).toBe(1);
  });

  it('NACKs a GLOBAL quota on a sidecar without quota.redis and keeps the quotas in force', async () => {
    const nacks = () => ((sc.sidecar.stats() as { xds: { nacks: Record<string, number> } }).xds.nacks[QUOTA_TYPE_URL] ?? 0);
    const before = nacks();
    xds.push([...QUOTAS, quota('everywhere', { tokens: 1 }, { scope: Quota_Scope.GLOBAL })]);
    await until('the NACK', () => nacks() > before, 10_000);
    expect(Object.keys(stats().quotas)).not.toContain('default/everywhere');
    expect((await call('/headers')).status).toBe(429);
  });

  it('keeps the buckets of unchanged limits across a push', async () => {
    const applies = (sc.sidecar.stats() as { quota: { applies: number } }).quota.applies;
    const counters = { ...stats().quotas['default/accuracy']!.limits['per-tenant'] };
    xds.push([...QUOTAS, quota('extra', { tokens: 1 }, { routes: [{ name: 'extra', pathPrefix: '/extra' }] })]);
    await until('the push in force', () => (sc.sidecar.stats() as { quota: { applies: number } }).quota.applies > applies, 10_000);
    // The spent bucket is still spent, and the counters went on from where they were.
    expect((await call('/accuracy')).status).toBe(429);
    expect(stats().quotas['default/accuracy']!.limits['per-tenant']).toMatchObject({ allowed: counters.allowed, limited: counters.limited! + 1 });
    expect((await call('/extra')).status).toBe(200);
    expect((await call('/extra')).status).toBe(429);
  });
});
