import { afterEach, describe, expect, it } from 'vitest';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpListener } from '../../../sidecar/listeners/http-listener.ts';
import { RequestTracer } from '../../../sidecar/telemetry/tracing.ts';
import { traceHeadersOf, type TraceHeaders } from '../../../sidecar/telemetry/trace-headers.ts';
import { attachFacts } from '../../../sidecar/telemetry/request-facts.ts';
import type { RequestRecord } from '../../../sidecar/telemetry/request-record.ts';

/** A minimal OTLP/HTTP JSON receiver: counts the spans of each export by trace id. */
function receiver(): Promise<{ server: Server; url: string; traceIds: string[] }> {
  const traceIds: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      const doc = JSON.parse(body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<{ traceId: string }> }> }> };
      for (const rs of doc.resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) traceIds.push(s.traceId);
      res.end('{}');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, traceIds })));
}

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** A listener whose handler starts a span per request and answers with the trace headers the upstream request would carry. */
async function tracedListener(tracer: RequestTracer): Promise<number> {
  const l = new HttpListener('outbound', (req, res) => {
    const span = tracer.start(req, 'outbound', req.method ?? 'GET', req.url ?? '/', req.headers.host ?? '');
    const headers = traceHeadersOf(req) ?? {};
    const facts = attachFacts(req);
    res.end(JSON.stringify(headers));
    tracer.end(span, { status: 200, facts } as unknown as RequestRecord);
  });
  closers.push(() => l.close());
  return l.listen('127.0.0.1', 0);
}

function call(port: number, headers: Record<string, string> = {}): Promise<TraceHeaders> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(JSON.parse(body) as TraceHeaders));
    });
    req.on('error', reject);
    req.end();
  });
}

async function setup(sampleRate: number) {
  const r = await receiver();
  closers.push(() => new Promise((resolve) => r.server.close(resolve)));
  const tracer = new RequestTracer({ config: { otlpEndpoint: r.url, sampleRate }, service: 'web', namespace: 'default', instance: 'web-1' });
  closers.push(() => tracer.close());
  return { r, tracer, port: await tracedListener(tracer) };
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

describe('RequestTracer', () => {
  it('follows a sampled parent even at sampleRate 0, keeping its trace id and tracestate', async () => {
    const { r, tracer, port } = await setup(0);
    const h = await call(port, { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'congo=t61rcWkgMzE' });
    const m = TRACEPARENT.exec(h.traceparent!)!;
    expect(m[1]).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(m[2]).not.toBe('b7ad6b7169203331');
    expect(m[3]).toBe('01');
    expect(h.tracestate).toBe('congo=t61rcWkgMzE');
    await tracer.flush();
    expect(r.traceIds).toHaveLength(1);
  });

  it('does not record an unsampled parent at sampleRate 100, and passes the context on unsampled', async () => {
    const { r, tracer, port } = await setup(100);
    const h = await call(port, { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00' });
    const m = TRACEPARENT.exec(h.traceparent!)!;
    expect(m[1]).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(m[3]).toBe('00');
    await tracer.flush();
    expect(r.traceIds).toEqual([]);
  });

  it.each([
    ['no traceparent', {}],
    ['a malformed traceparent', { traceparent: '00-zzzz-b7ad6b7169203331-01' }],
    ['an all-zero trace id', { traceparent: '00-00000000000000000000000000000000-b7ad6b7169203331-01' }],
  ])('starts a new trace for %s: sampled at 100, not at 0', async (_what, headers) => {
    const on = await setup(100);
    const h = await call(on.port, headers);
    const m = TRACEPARENT.exec(h.traceparent!)!;
    expect(m[1]).not.toBe('00000000000000000000000000000000');
    expect(m[3]).toBe('01');
    await on.tracer.flush();
    expect(on.r.traceIds).toHaveLength(1);

    const off = await setup(0);
    const h0 = await call(off.port, headers);
    expect(TRACEPARENT.exec(h0.traceparent!)![3]).toBe('00');
    await off.tracer.flush();
    expect(off.r.traceIds).toEqual([]);
  });
});
