import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { connect as connectH2 } from 'node:http2';
import pino from 'pino';
import { HttpListener, type RequestHandler } from '../../../sidecar/listeners/http-listener.ts';
import { factsOf, flag } from '../../../sidecar/telemetry/request-facts.ts';
import { RequestTelemetry } from '../../../sidecar/telemetry/request-telemetry.ts';
import { SidecarMetrics } from '../../../sidecar/telemetry/metrics.ts';
import type { RequestRecord } from '../../../sidecar/telemetry/request-record.ts';
import { until } from '../../helpers/until.ts';
import { parseExposition, valueOf } from './prometheus-text.ts';

const listeners: HttpListener[] = [];
afterEach(async () => {
  await Promise.all(listeners.splice(0).map((l) => l.close()));
});

function telemetry(): RequestTelemetry {
  const source = { listeners: () => ({}), connections: () => ({}), clusters: () => [], policies: () => null, certificateNotAfter: () => null, xds: () => null, lastConfigUpdate: () => null };
  return new RequestTelemetry({ metrics: new SidecarMetrics({ source }), accessLog: null, tracer: null, logger: pino({ level: 'silent' }) });
}

async function serve(t: RequestTelemetry, name: string, handler: RequestHandler): Promise<number> {
  const l = new HttpListener(name, t.wrap(name, handler));
  listeners.push(l);
  return l.listen('127.0.0.1', 0);
}

function send(port: number, o: { method?: string; path?: string; body?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path ?? '/', headers: o.headers ?? {}, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

describe('RequestTelemetry', () => {
  it('attaches facts before the handler runs and hands one record per request to every sink', async () => {
    const t = telemetry();
    const records: RequestRecord[] = [];
    t.addSink((r) => records.push(r));
    const port = await serve(t, 'inbound', (req, res) => {
      const facts = factsOf(req)!;
      facts.route = 'r';
      facts.cluster = 'c';
      flag(req, 'UT');
      req.resume();
      req.on('end', () => {
        res.writeHead(201, { 'content-type': 'text/plain', 'content-length': 7 });
        res.end('created');
      });
    });
    expect(await send(port, { method: 'POST', path: '/orders?x=1', body: 'hello', headers: { host: 'api:9090', 'user-agent': 'ua', 'x-request-id': 'rid', 'x-forwarded-for': '10.1.1.1' } })).toEqual({ status: 201, body: 'created' });
    await until('a record', () => records.length === 1);
    const r = records[0]!;
    expect(r).toMatchObject({
      listener: 'inbound', method: 'POST', path: '/orders?x=1', authority: 'api:9090', protocol: 'HTTP/1.1', status: 201, requestId: 'rid',
      userAgent: 'ua', forwardedFor: '10.1.1.1', remoteAddress: '127.0.0.1', bytesIn: 5, traceId: null,
    });
    expect(r.facts).toMatchObject({ route: 'r', cluster: 'c', flags: ['UT'] });
    // Body bytes only (the declared length of a reply no stage counted), not the head.
    expect(r.bytesOut).toBe(7);
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
    expect(Math.abs(r.startTime - Date.now())).toBeLessThan(60_000);
    const f = parseExposition(await t.metrics.text());
    expect(valueOf(f, 'palisade_requests_total', { listener: 'inbound', route: 'r', cluster: 'c', code_class: '2xx', method: 'POST' })).toBe(1);
    expect(valueOf(f, 'palisade_upstream_errors_total', { listener: 'inbound', cluster: 'c', reason: 'timeout' })).toBe(1);
  });

  it('records a request whose client went away before the answer with status 0 and flag DC', async () => {
    const t = telemetry();
    const records: RequestRecord[] = [];
    t.addSink((r) => records.push(r));
    let arrived!: () => void;
    const seen = new Promise<void>((resolve) => (arrived = resolve));
    const port = await serve(t, 'outbound', () => arrived());
    const req = request({ host: '127.0.0.1', port, path: '/hang', agent: false });
    req.on('error', () => undefined);
    req.end();
    await seen;
    req.destroy();
    await until('a record', () => records.length === 1);
    expect(records[0]).toMatchObject({ listener: 'outbound', status: 0, path: '/hang' });
    expect(records[0]!.facts.flags).toEqual(['DC']);
  });

  it('reads HTTP/2 requests: protocol, authority and declared sizes', async () => {
    const t = telemetry();
    const records: RequestRecord[] = [];
    t.addSink((r) => records.push(r));
    const port = await serve(t, 'inbound', (req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-length': 2 });
        res.end('ok');
      });
    });
    const session = connectH2(`http://127.0.0.1:${port}`);
    await new Promise<void>((resolve, reject) => {
      const s = session.request({ ':method': 'PUT', ':path': '/h2', ':authority': 'api.default', 'content-length': '3' });
      s.on('response', () => undefined);
      s.on('data', () => undefined);
      s.on('end', () => resolve());
      s.on('error', reject);
      s.end('abc');
    });
    session.close();
    await until('a record', () => records.length === 1);
    expect(records[0]).toMatchObject({ protocol: 'HTTP/2', method: 'PUT', authority: 'api.default', status: 200, bytesIn: 3, bytesOut: 2 });
  });

  it('keeps serving when a sink throws, and stops calling a removed sink', async () => {
    const t = telemetry();
    let calls = 0;
    t.addSink(() => {
      throw new Error('broken sink');
    });
    const remove = t.addSink(() => calls++);
    const good: RequestRecord[] = [];
    t.addSink((r) => good.push(r));
    const port = await serve(t, 'inbound', (_req, res) => res.end('ok'));
    expect((await send(port)).status).toBe(200);
    await until('first record', () => good.length === 1);
    remove();
    expect((await send(port)).status).toBe(200);
    await until('second record', () => good.length === 2);
    expect(calls).toBe(1);
  });

  it('counts the body bytes a stage wrote and the request body bytes read, not heads or chunk framing', async () => {
    const t = telemetry();
    const records: RequestRecord[] = [];
    t.addSink((r) => records.push(r));
    const port = await serve(t, 'outbound', (req, res) => {
      req.resume();
      req.on('end', () => {
        // As the forwarder does: each body chunk written is counted on the facts.
        const facts = factsOf(req)!;
        facts.bytesSent = 0;
        res.writeHead(200, { 'content-type': 'text/plain' });
        for (const c of ['he', 'llo']) {
          facts.bytesSent += c.length;
          res.write(c);
        }
        res.end();
      });
    });
    const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.write('abc');
      req.end('defg');
    });
    expect(reply).toEqual({ status: 200, body: 'hello' });
    await until('a record', () => records.length === 1);
    expect(records[0]).toMatchObject({ bytesIn: 7, bytesOut: 5 });
    const f = parseExposition(await t.metrics.text());
    expect(Number(f.get('palisade_response_size_bytes')!.metrics[0]!.sum)).toBe(5);
  });

  it('catches a throw while recording (metrics, access log, span): the listener keeps serving and logs the first failure', async () => {
    const logged: string[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => logged.push(line) });
    const source = { listeners: () => ({}), connections: () => ({}), clusters: () => [], policies: () => null, certificateNotAfter: () => null, xds: () => null, lastConfigUpdate: () => null };
    class BrokenMetrics extends SidecarMetrics {
      override observe(): void {
        throw new Error('metrics bug');
      }
    }
    const t = new RequestTelemetry({ metrics: new BrokenMetrics({ source }), accessLog: null, tracer: null, logger });
    const port = await serve(t, 'inbound', (_req, res) => res.end('ok'));
    for (let i = 0; i < 3; i++) expect(await send(port)).toEqual({ status: 200, body: 'ok' });
    await until('three failures', () => t.errors === 3);
    expect(logged).toHaveLength(1);
    expect(JSON.parse(logged[0]!)).toMatchObject({ level: 50, failures: 1, err: { message: 'metrics bug' } });
  });
});
