import { afterEach, describe, expect, it } from 'vitest';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OverloadManager } from '../../../sidecar/overload/overload-manager.ts';
import { parseOverloadConfig, type OverloadConfig } from '../../../sidecar/overload/overload-config.ts';
import { attachFacts } from '../../../sidecar/telemetry/request-facts.ts';
import { until } from '../../helpers/until.ts';

function config(v: Record<string, unknown>): OverloadConfig {
  const errors: string[] = [];
  const c = parseOverloadConfig(v, (p, m) => errors.push(`${p}: ${m}`));
  if (c === null) throw new Error(errors.join('\n'));
  return c;
}

/** Sources the test sets by hand. */
function sources() {
  const s = { connections: 0, active: 0, heap: 0 };
  return { s, sources: { connections: () => s.connections, activeRequests: () => s.active, heapUsed: () => s.heap } };
}

describe('OverloadManager', () => {
  let manager: OverloadManager | null = null;
  let server: Server | null = null;
  afterEach(async () => {
    manager?.close();
    manager = null;
    if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = null;
  });

  it('reports the highest monitor pressure, capped at 100, refreshed only by a sample', () => {
    const { s, sources: src } = sources();
    manager = new OverloadManager(config({ maxHeapBytes: 1000, maxConnections: 10, maxActiveRequests: 4 }), src);
    s.heap = 500;
    s.connections = 7;
    s.active = 1;
    manager.sample();
    expect(manager.pressure()).toBe(70);
    s.heap = 5000;
    expect(manager.pressure()).toBe(70);
    manager.sample();
    expect(manager.pressure()).toBe(100);
    expect(manager.stats().monitors).toEqual({
      heap: { value: 5000, max: 1000, pressure: 100 },
      connections: { value: 7, max: 10, pressure: 70 },
      activeRequests: { value: 1, max: 4, pressure: 25 },
      eventLoopDelay: null,
    });
  });

  it('sheds from shedAt on heap or active requests, not on connections (those are refused at accept)', () => {
    const { s, sources: src } = sources();
    manager = new OverloadManager(config({ maxHeapBytes: 100, maxConnections: 10, shedAt: 90 }), src);
    s.connections = 10;
    s.heap = 89;
    manager.sample();
    expect(manager.shedding).toBe(false);
    expect(manager.pressure()).toBe(100);
    s.heap = 90;
    manager.sample();
    expect(manager.shedding).toBe(true);
  });

  it('refuses connections from stopAcceptingAt percent of maxConnections, live (not sampled)', () => {
    const { s, sources: src } = sources();
    manager = new OverloadManager(config({ maxConnections: 10, stopAcceptingAt: 50 }), src);
    s.connections = 4;
    expect(manager.admitConnection()).toBe(true);
    s.connections = 5;
    expect(manager.admitConnection()).toBe(false);
    expect(manager.stats().refusedConnections).toBe(1);
  });

  it('samples on start, so a tiny heap limit sheds from the first request', () => {
    manager = new OverloadManager(config({ maxHeapBytes: 1 }), { connections: () => 0, activeRequests: () => 0 });
    expect(manager.shedding).toBe(false);
    manager.start();
    expect(manager.shedding).toBe(true);
    expect(manager.stats().monitors.heap!.value).toBeGreaterThan(1);
  });

  it('measures the event-loop delay between samples', async () => {
    manager = new OverloadManager(config({ maxEventLoopDelayMs: 1000, refreshIntervalMs: 60_000 }), { connections: () => 0, activeRequests: () => 0 });
    manager.start();
    // The histogram's timer arms on the next turn of the loop: block after it runs.
    await new Promise((r) => setTimeout(r, 30));
    const until = Date.now() + 120;
    while (Date.now() < until) { /* block the loop */ }
    await new Promise((r) => setTimeout(r, 30));
    manager.sample();
    expect(manager.stats().monitors.eventLoopDelay!.value).toBeGreaterThanOrEqual(100);
  });

  it('answers a shed request 503 "overloaded" with x-palisade-overloaded and flag OM; counts inbound and outbound apart', async () => {
    const { s, sources: src } = sources();
    const m = new OverloadManager(config({ maxHeapBytes: 10 }), src);
    manager = m;
    s.heap = 10;
    m.sample();
    const flags: string[][] = [];
    server = createServer((req, res) => {
      const facts = attachFacts(req);
      res.once('close', () => flags.push(facts.flags));
      const shed = req.url === '/in' ? m.shedInbound(req, res) : m.shedOutbound(req, res);
      if (!shed) res.end('ok');
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const get = (path: string) => new Promise<{ status: number; body: string; header: unknown }>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body, header: res.headers['x-palisade-overloaded'] }));
      }).on('error', reject).end();
    });
    expect(await get('/in')).toEqual({ status: 503, body: 'overloaded', header: 'true' });
    expect(await get('/out')).toEqual({ status: 503, body: 'overloaded', header: 'true' });
    expect(flags).toEqual([['OM'], ['OM']]);
    s.heap = 1;
    m.sample();
    expect(await get('/in')).toMatchObject({ status: 200, body: 'ok' });
    expect(m.stats()).toMatchObject({ shedding: false, shed: { inbound: 1, outbound: 1 } });
  });

  it('sheds inbound on the live in-flight count, between samples', async () => {
    let inFlight = 0;
    // maxActiveRequests 2, shedAt 95: two in flight is 100%, so a third is shed; no sample runs meanwhile.
    const m = new OverloadManager(config({ maxActiveRequests: 2, refreshIntervalMs: 60_000 }), { connections: () => 0, activeRequests: () => inFlight });
    manager = m;
    m.start();
    const held: Array<() => void> = [];
    server = createServer((req, res) => {
      inFlight++;
      res.once('close', () => inFlight--);
      if (!m.shedInbound(req, res)) held.push(() => res.end('ok'));
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const get = () => new Promise<number>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      }).on('error', reject).end();
    });
    const first = [get(), get()];
    await until('two requests held', () => held.length === 2);
    expect(await get()).toBe(503);
    expect(m.shedding).toBe(false);
    for (const f of held.splice(0)) f();
    expect(await Promise.all(first)).toEqual([200, 200]);
    const again = get();
    await until('the request held', () => held.length === 1);
    for (const f of held.splice(0)) f();
    expect(await again).toBe(200);
    expect(m.stats().shed).toEqual({ inbound: 1, outbound: 0 });
  });
});
