/**
 * Request telemetry end to end: a real control plane, a sidecar with an access log file, a
 * workload, an upstream service and a service whose only endpoint refuses connections. The
 * admin /metrics exposition and the access log lines are checked against the requests made.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { parseBootstrap } from '../../../sidecar/bootstrap/bootstrap.ts';
import { Sidecar, type SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { startControlPlane, type TestControlPlane } from '../../helpers/control-plane.ts';
import { servicesYaml } from '../../helpers/services-yaml.ts';
import { until } from '../../helpers/until.ts';
import { parseExposition, sumOf, valueOf } from '../telemetry/prometheus-text.ts';

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

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = await httpServer('');
  await closeServer(s.server);
  return s.port;
}

interface Reply { status: number; body: string; headers: IncomingHttpHeaders }

function get(address: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = request({ host: address.slice(0, i), port: Number(address.slice(i + 1)), path, method, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('sidecar request telemetry', () => {
  let cp: TestControlPlane;
  let api: Upstream;
  let web: Upstream;
  let sidecar: Sidecar;
  let addresses: SidecarAddresses;
  let dir: string;
  let logFile: string;
  let downPort: number;

  beforeAll(async () => {
    api = await httpServer('api');
    web = await httpServer('web');
    downPort = await closedPort();
    dir = mkdtempSync(join(tmpdir(), 'palisade-telemetry-'));
    logFile = join(dir, 'access.log');
    cp = await startControlPlane({
      'services.yaml': servicesYaml({ name: 'web', port: 8080 }, { name: 'api', port: 9090, endpointPorts: [api.port] }, { name: 'down', port: 7070, endpointPorts: [downPort] }),
    });
    const parsed = parseBootstrap({
      node: { id: 'web-1', service: 'web' },
      inbound: { address: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1' },
      workload: { address: `127.0.0.1:${web.port}` },
      outbound: { address: '127.0.0.1', port: 0 },
      admin: { address: '127.0.0.1', port: 0 },
      controlPlane: { address: cp.address },
      telemetry: { accessLog: { path: logFile, sampleRate: 100 } },
    });
    if (!parsed.valid) throw new Error(parsed.errors.join('\n'));
    sidecar = new Sidecar({ bootstrap: parsed.result, logger: pino({ level: 'silent' }), version: 'test', drainTimeoutMs: 2000 });
    addresses = await sidecar.start();
    await sidecar.whenReady();

    for (let i = 0; i < 3; i++) expect((await get(addresses.outbound, `/hello/${i}`, { host: 'api:9090', 'user-agent': 'telemetry-test' })).status).toBe(200);
    expect((await get(addresses.outbound, '/', { host: 'nowhere:1' })).status).toBe(404);
    expect((await get(addresses.outbound, '/', { host: 'down:7070' })).status).toBe(503);
    expect((await get(addresses.outbound, '/', { host: 'api:9090' }, 'POST')).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await get(addresses.inbound, '/x', { host: 'web.default:8080', 'x-request-id': `in-${i}` })).status).toBe(200);
  }, 30_000);

  afterAll(async () => {
    await sidecar?.close();
    await cp?.close();
    if (api) await closeServer(api.server);
    if (web) await closeServer(web.server);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves a valid Prometheus exposition at /metrics and /stats/prometheus with exact request counts', async () => {
    const r = await get(addresses.admin, '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const f = parseExposition(r.body);
    const apiCluster = 'outbound|9090||api.default';
    expect(sumOf(f, 'palisade_requests_total', { listener: 'outbound', cluster: apiCluster, code_class: '2xx', method: 'GET' })).toBe(3);
    expect(sumOf(f, 'palisade_requests_total', { listener: 'outbound', cluster: apiCluster, code_class: '2xx', method: 'POST' })).toBe(1);
    expect(valueOf(f, 'palisade_requests_total', { listener: 'outbound', route: 'none', cluster: 'none', code_class: '4xx', method: 'GET' })).toBe(1);
    expect(sumOf(f, 'palisade_requests_total', { listener: 'outbound', cluster: 'outbound|7070||down.default', code_class: '5xx' })).toBe(1);
    expect(sumOf(f, 'palisade_requests_total', { listener: 'inbound', cluster: `inbound|${web.port}||web`, code_class: '2xx', method: 'GET' })).toBe(2);
    expect(sumOf(f, 'palisade_requests_total')).toBe(8);
    expect(sumOf(f, 'palisade_request_duration_seconds')).toBe(8);
    expect(sumOf(f, 'palisade_response_size_bytes', { listener: 'inbound' })).toBe(2);
    expect(sumOf(f, 'palisade_upstream_errors_total', { listener: 'outbound', cluster: 'outbound|7070||down.default', reason: 'connect_failure' })).toBe(1);
    expect(valueOf(f, 'palisade_active_requests', { listener: 'outbound' })).toBe(0);
    expect(valueOf(f, 'palisade_xds_connected')).toBe(1);
    expect(sumOf(f, 'palisade_xds_updates_total')).toBeGreaterThanOrEqual(4);
    expect(sumOf(f, 'palisade_xds_nacks_total')).toBe(0);
    expect(valueOf(f, 'palisade_xds_last_update_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 60);
    // The version in force, as /config_dump reports it.
    const dump = JSON.parse((await get(addresses.admin, '/config_dump')).body) as { version: string };
    expect(valueOf(f, 'palisade_xds_version_info', { kind: 'snapshot', version: dump.version })).toBe(1);
    expect(sumOf(f, 'palisade_xds_version_info')).toBe(5);
    expect(f.has('palisade_upstream_hosts')).toBe(true);
    expect(valueOf(f, 'palisade_upstream_hosts', { cluster: apiCluster, health: 'healthy' })).toBe(1);
    const envoyName = await get(addresses.admin, '/stats/prometheus');
    expect(envoyName.status).toBe(200);
    expect(parseExposition(envoyName.body).has('palisade_requests_total')).toBe(true);
  });

  it('writes one JSON access log line per request with status, flags, cluster, upstream host and request id', async () => {
    const lines = await until('8 access log lines', () => {
      const l = readFileSync(logFile, 'utf8').split('\n').filter((x) => x !== '');
      return l.length >= 8 ? l.map((x) => JSON.parse(x) as Record<string, unknown>) : undefined;
    });
    expect(lines).toHaveLength(8);
    const ok = lines.filter((l) => l.listener === 'outbound' && l.response_code === 200 && l.method === 'GET');
    expect(ok.map((l) => l.path)).toEqual(['/hello/0', '/hello/1', '/hello/2']);
    expect(ok[0]).toMatchObject({
      protocol: 'HTTP/1.1', response_flags: '-', authority: 'api:9090', upstream_cluster: 'outbound|9090||api.default', upstream_host: `127.0.0.1:${api.port}`,
      user_agent: 'telemetry-test', attempts: 1, principal: null, policy: null, trace_id: null,
    });
    // The request id the upstream saw is the one logged.
    expect(ok[0]!.request_id).toBe(api.seen[0]!['x-request-id']);
    expect(lines.find((l) => l.authority === 'nowhere:1')).toMatchObject({ response_code: 404, response_flags: 'NR', upstream_cluster: null, attempts: 0 });
    const down = lines.find((l) => l.authority === 'down:7070')!;
    expect(down).toMatchObject({ response_code: 503, upstream_cluster: 'outbound|7070||down.default', upstream_host: `127.0.0.1:${downPort}` });
    expect(String(down.response_flags).split(',')).toContain('UF');
    const inbound = lines.filter((l) => l.listener === 'inbound');
    expect(inbound.map((l) => [l.response_code, l.request_id, l.upstream_cluster])).toEqual([[200, 'in-0', `inbound|${web.port}||web`], [200, 'in-1', `inbound|${web.port}||web`]]);
    for (const l of lines) expect(typeof l.duration).toBe('number');
  });

  it('passes traceparent and tracestate through untouched when tracing is off', async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const before = api.seen.length;
    expect((await get(addresses.outbound, '/traced', { host: 'api:9090', traceparent, tracestate: 'vendor=1' })).status).toBe(200);
    expect(api.seen[before]).toMatchObject({ traceparent, tracestate: 'vendor=1' });
  });
});
