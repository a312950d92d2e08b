/**
 * The sidecar end to end, everything real on loopback: a control plane, a workload, an
 * upstream service and the Sidecar in-process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, request, type Server } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import pino from 'pino';
import { parseBootstrap } from '../../../sidecar/bootstrap/bootstrap.ts';
import { Sidecar } from '../../../sidecar/sidecar.ts';
import { startControlPlane, type TestControlPlane } from '../../helpers/control-plane.ts';
import { until } from '../../helpers/until.ts';
import { webAndApiYaml } from '../../helpers/services-yaml.ts';

/** Answers `body`; `/slow` answers after 300 ms. */
function httpServer(body: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    req.resume();
    if (req.url === '/slow') setTimeout(() => res.end(body), 300);
    else res.end(body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port })));
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

interface Reply { status: number; body: string }

/** One request on a fresh connection; `path` may be absolute-form. */
function get(address: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function refuses(address: string): Promise<boolean> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const s = connect(Number(address.slice(i + 1)), address.slice(0, i));
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

/**
 * A TCP gate in front of the control plane: connections wait, unanswered, until open(), so
 * the sidecar is observably unconfigured first.
 */
async function gate(target: () => string) {
  let isOpen = false;
  const waiting: Socket[] = [];
  const sockets = new Set<Socket>();
  const pipe = (s: Socket) => {
    const [host, port] = target().split(':');
    const up = connect(Number(port), host!);
    sockets.add(up);
    s.pipe(up).pipe(s);
    up.on('error', () => s.destroy());
    s.on('error', () => up.destroy());
    up.on('close', () => sockets.delete(up));
  };
  const server = createTcpServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    if (isOpen) pipe(s);
    else waiting.push(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    open() {
      isOpen = true;
      for (const s of waiting.splice(0)) pipe(s);
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const SERVICES = webAndApiYaml;

describe('palisade sidecar, end to end', () => {
  let cp: TestControlPlane;
  let api: { server: Server; port: number };
  let web: { server: Server; port: number };
  let sidecar: Sidecar;
  let addresses: { inbound: string; outbound: string; admin: string };
  let readyBefore: Reply;
  let outboundBefore: Reply;
  let serversBefore: number;
  let cpGate: Awaited<ReturnType<typeof gate>>;

  const tcpServers = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;

  beforeAll(async () => {
    api = await httpServer('api');
    web = await httpServer('web');
    cp = await startControlPlane({ 'services.yaml': SERVICES(api.port) });
    cpGate = await gate(() => cp.address);
    serversBefore = tcpServers();
    const parsed = parseBootstrap({
      node: { id: 'web-1', service: 'web' },
      inbound: { address: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1' },
      workload: { address: `127.0.0.1:${web.port}` },
      outbound: { address: '127.0.0.1', port: 0 },
      admin: { address: '127.0.0.1', port: 0 },
      controlPlane: { address: cpGate.address },
    });
    if (!parsed.valid) throw new Error(parsed.errors.join('\n'));
    sidecar = new Sidecar({ bootstrap: parsed.result, logger: pino({ level: 'silent' }), version: 'test', drainTimeoutMs: 2000 });
    addresses = await sidecar.start();
    readyBefore = await get(addresses.admin, '/ready');
    outboundBefore = await get(addresses.outbound, '/', { host: 'api:9090' });
    cpGate.open();
    await sidecar.whenReady();
  }, 30_000);

  afterAll(async () => {
    await sidecar?.close();
    await cpGate?.close();
    await cp?.close();
    if (api) await closeServer(api.server);
    if (web) await closeServer(web.server);
  });

  it('is not ready before its first configuration and ready after it', async () => {
    expect(readyBefore.status).toBe(503);
    expect(readyBefore.body).toContain('not ready');
    expect(outboundBefore).toEqual({ status: 503, body: 'not ready' });
    const r = await get(addresses.admin, '/ready');
    expect(r).toEqual({ status: 200, body: 'ready\n' });
  });

  it('is registered with the control plane as a serving endpoint of default/web', async () => {
    const inboundPort = Number(addresses.inbound.split(':')[1]);
    const reg = await until('registration', () => cp.cp.registry.list().find((e) => e.nodeId === 'web-1' && e.serving));
    expect(reg.service).toBe('default/web');
    expect(reg.ready).toBe(true);
    expect(reg.endpoint).toMatchObject({ address: '127.0.0.1', port: inboundPort });
  });

  it('routes outbound requests by Host header and as an HTTP proxy (absolute form)', async () => {
    expect(await get(addresses.outbound, '/hello', { host: 'api.default:9090' })).toEqual({ status: 200, body: 'api' });
    expect(await get(addresses.outbound, '/hello', { host: 'api:9090' })).toEqual({ status: 200, body: 'api' });
    expect(await get(addresses.outbound, 'http://api.default:9090/hello')).toEqual({ status: 200, body: 'api' });
    expect((await get(addresses.outbound, '/', { host: 'nowhere:1' })).status).toBe(404);
  });

  it('forwards inbound requests to the workload', async () => {
    expect(await get(addresses.inbound, '/x', { host: 'web.default:8080' })).toEqual({ status: 200, body: 'web' });
  });

  it('reaches itself through the mesh once registered: outbound web → EDS → inbound → workload', async () => {
    const r = await until('web through the mesh', async () => {
      const x = await get(addresses.outbound, '/', { host: 'web:8080' });
      return x.status === 200 ? x : undefined;
    });
    expect(r.body).toBe('web');
  });

  it('shows its configuration in /config_dump and its clusters in /clusters', async () => {
    const dump = JSON.parse((await get(addresses.admin, '/config_dump')).body);
    expect(dump.complete).toBe(true);
    expect(dump.version).toMatch(/^[0-9a-f]{16}$/);
    expect(dump.listeners).toContainEqual(expect.objectContaining({ name: '127.0.0.1_15001', routeConfigName: 'outbound' }));
    expect(dump.routeConfigs).toContain('outbound');
    expect(dump.versions.listeners.resources.map((r: { name: string }) => r.name)).toContain('127.0.0.1_15001');
    expect(dump.versions.routes.resources.map((r: { name: string }) => r.name)).toEqual(['outbound']);
    const clusters = JSON.parse((await get(addresses.admin, '/clusters')).body);
    expect(clusters.clusters.map((c: { name: string }) => c.name)).toContain('outbound|9090||api.default');
    expect(clusters.inbound.name).toBe(`inbound|${web.port}||web`);
  });

  it('counts requests, response classes and xDS updates in /stats', async () => {
    const stats = JSON.parse((await get(addresses.admin, '/stats')).body);
    expect(stats.listeners.outbound.requests).toBeGreaterThanOrEqual(4);
    expect(stats.listeners.outbound.responses['2xx']).toBeGreaterThanOrEqual(3);
    expect(stats.listeners.outbound.responses['4xx']).toBeGreaterThanOrEqual(1);
    expect(stats.listeners.inbound.responses['2xx']).toBeGreaterThanOrEqual(1);
    expect(stats.xds.connected).toBe(true);
    expect(Object.values(stats.xds.updates as Record<string, number>).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(4);
    expect(stats.xds.nacks).toEqual({});
    expect((await get(addresses.admin, '/nope')).status).toBe(404);
    expect((await get(addresses.admin, '/drain')).status).toBe(405);
  });

  it('drains on POST /drain: stops accepting, finishes in flight, then reports drained; close() leaves no listener behind', async () => {
    const slow = get(addresses.inbound, '/slow');
    await until('a request in flight', async () => {
      const stats = JSON.parse((await get(addresses.admin, '/stats')).body);
      return stats.listeners.inbound.inFlight === 1 ? true : undefined;
    });
    const r = await get(addresses.admin, '/drain', {}, 'POST');
    expect(r).toEqual({ status: 200, body: 'drained\n' });
    expect(await slow).toEqual({ status: 200, body: 'web' });
    await until('deregistration', () => cp.cp.registry.list().find((e) => e.nodeId === 'web-1' && !e.ready));
    expect(await refuses(addresses.inbound)).toBe(true);
    expect(await refuses(addresses.outbound)).toBe(true);
    expect((await get(addresses.admin, '/ready')).status).toBe(503);
    await sidecar.close();
    expect(await refuses(addresses.admin)).toBe(true);
    expect(tcpServers()).toBe(serversBefore);
  });
});
