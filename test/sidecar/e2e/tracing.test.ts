/**
 * Trace context across two sidecars, everything real on loopback: client → sidecar A (web)
 * outbound → sidecar B (api) inbound → the api workload, with an in-test OTLP/HTTP receiver
 * (a plain node:http server decoding the JSON export) collecting both sidecars' spans.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { parseBootstrap } from '../../../sidecar/bootstrap/bootstrap.ts';
import { Sidecar, type SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { startControlPlane, type TestControlPlane } from '../../helpers/control-plane.ts';
import { servicesYaml } from '../../helpers/services-yaml.ts';
import { until } from '../../helpers/until.ts';

interface Upstream { server: Server; port: number; seen: IncomingHttpHeaders[] }

function httpServer(body: string): Promise<Upstream> {
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    res.end(body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, seen })));
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

function get(address: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = request({ host: address.slice(0, i), port: Number(address.slice(i + 1)), path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

interface ReceivedSpan {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: number;
  readonly attributes: Record<string, unknown>;
}

/** OTLP/JSON ids are hex (the spec); older exporters sent base64: accept both. */
function hexId(v: string | undefined): string {
  if (v === undefined || v === '') return '';
  return /^[0-9a-f]+$/.test(v) && (v.length === 32 || v.length === 16) ? v : Buffer.from(v, 'base64').toString('hex');
}

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
const valueOf = (v: AnyValue) => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.boolValue ?? v.doubleValue);

/** An OTLP/HTTP traces receiver: POST /v1/traces with a JSON ExportTraceServiceRequest. */
function otlpReceiver(): Promise<{ server: Server; url: string; spans: ReceivedSpan[]; contentTypes: string[] }> {
  const spans: ReceivedSpan[] = [];
  const contentTypes: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      contentTypes.push(String(req.headers['content-type']));
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans: Array<{
          resource: { attributes: Array<{ key: string; value: AnyValue }> };
          scopeSpans: Array<{ spans: Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: Array<{ key: string; value: AnyValue }> }> }>;
        }>;
      };
      for (const rs of body.resourceSpans) {
        const service = String(valueOf(rs.resource.attributes.find((a) => a.key === 'service.name')!.value));
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            spans.push({
              service, traceId: hexId(s.traceId), spanId: hexId(s.spanId), parentSpanId: hexId(s.parentSpanId), name: s.name, kind: s.kind,
              attributes: Object.fromEntries((s.attributes ?? []).map((a) => [a.key, valueOf(a.value)])),
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, spans, contentTypes })));
}

const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;

describe('tracing across two sidecars', () => {
  let cp: TestControlPlane;
  let api: Upstream;
  let web: Upstream;
  let receiver: Awaited<ReturnType<typeof otlpReceiver>>;
  let a: Sidecar;
  let b: Sidecar;
  let aAddr: SidecarAddresses;

  async function startSidecar(id: string, service: string, workloadPort: number): Promise<{ sidecar: Sidecar; addresses: SidecarAddresses }> {
    const parsed = parseBootstrap({
      node: { id, service },
      inbound: { address: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1' },
      workload: { address: `127.0.0.1:${workloadPort}` },
      outbound: { address: '127.0.0.1', port: 0 },
      admin: { address: '127.0.0.1', port: 0 },
      controlPlane: { address: cp.address },
      telemetry: { tracing: { otlpEndpoint: receiver.url, sampleRate: 100 } },
    });
    if (!parsed.valid) throw new Error(parsed.errors.join('\n'));
    const sidecar = new Sidecar({ bootstrap: parsed.result, logger: pino({ level: 'silent' }), version: 'test', drainTimeoutMs: 2000 });
    const addresses = await sidecar.start();
    await sidecar.whenReady();
    return { sidecar, addresses };
  }

  beforeAll(async () => {
    api = await httpServer('api');
    web = await httpServer('web');
    receiver = await otlpReceiver();
    cp = await startControlPlane({ 'services.yaml': servicesYaml({ name: 'web', port: 8080 }, { name: 'api', port: 9090 }) });
    ({ sidecar: a, addresses: aAddr } = await startSidecar('web-1', 'web', web.port));
    ({ sidecar: b } = await startSidecar('api-1', 'api', api.port));
    // api's endpoints are sidecar B's inbound once it registered.
    await until('api through the mesh', async () => (await get(aAddr.outbound, '/warmup', { host: 'api:9090' })).status === 200);
    api.seen.length = 0;
  }, 30_000);

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await cp?.close();
    for (const s of [api, web, receiver]) if (s) await closeServer(s.server);
  });

  it('continues the client trace: the workload sees the same trace id, and B’s span is the child of A’s', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const clientSpan = '00f067aa0ba902b7';
    expect(await get(aAddr.outbound, '/orders', { host: 'api:9090', traceparent: `00-${traceId}-${clientSpan}-01`, tracestate: 'vendor=abc' })).toEqual({ status: 200, body: 'api' });
    const seen = api.seen.at(-1)!;
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(seen.traceparent));
    expect(m).not.toBeNull();
    expect(m![1]).toBe(traceId);
    expect(seen.tracestate).toBe('vendor=abc');

    await Promise.all([a.telemetry.tracer!.flush(), b.telemetry.tracer!.flush()]);
    const spans = await until('both spans', () => {
      const s = receiver.spans.filter((x) => x.traceId === traceId);
      return s.length >= 2 ? s : undefined;
    });
    expect(receiver.contentTypes.every((c) => c.startsWith('application/json'))).toBe(true);
    expect(spans).toHaveLength(2);
    const spanA = spans.find((s) => s.service === 'web')!;
    const spanB = spans.find((s) => s.service === 'api')!;
    expect(spanA).toMatchObject({ kind: SPAN_KIND_CLIENT, parentSpanId: clientSpan, name: 'outbound GET' });
    expect(spanB).toMatchObject({ kind: SPAN_KIND_SERVER, parentSpanId: spanA.spanId, name: 'inbound GET' });
    // The workload's parent is B's span: the context went on from the last hop.
    expect(m![2]).toBe(spanB.spanId);
    expect(spanA.attributes).toMatchObject({ 'http.request.method': 'GET', 'url.path': '/orders', 'http.response.status_code': 200, 'palisade.cluster': 'outbound|9090||api.default' });
    expect(spanB.attributes).toMatchObject({ 'http.response.status_code': 200, 'palisade.listener': 'inbound' });
  });

  it('starts a trace for a request that has none, shared by both sidecars and the workload', async () => {
    expect((await get(aAddr.outbound, '/fresh', { host: 'api:9090' })).status).toBe(200);
    const seen = api.seen.at(-1)!;
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(seen.traceparent));
    expect(m).not.toBeNull();
    await Promise.all([a.telemetry.tracer!.flush(), b.telemetry.tracer!.flush()]);
    const spans = await until('both spans of the new trace', () => {
      const s = receiver.spans.filter((x) => x.traceId === m![1]);
      return s.length >= 2 ? s : undefined;
    });
    const spanA = spans.find((s) => s.service === 'web')!;
    const spanB = spans.find((s) => s.service === 'api')!;
    expect(spanA.parentSpanId).toBe('');
    expect(spanB.parentSpanId).toBe(spanA.spanId);
    expect(m![2]).toBe(spanB.spanId);
  });
});
