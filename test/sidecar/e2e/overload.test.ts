/**
 * The overload manager end to end: real sidecars (bootstrap `overload`) against a real control
 * plane, with a real workload on loopback that holds requests until told.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import pino from 'pino';
import { parseBootstrap } from '../../../sidecar/bootstrap/bootstrap.ts';
import { Sidecar, type SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { startControlPlane, type TestControlPlane } from '../../helpers/control-plane.ts';
import { httpGet, httpRequest } from '../../helpers/http.ts';
import { webAndApiYaml } from '../../helpers/services-yaml.ts';
import { until } from '../../helpers/until.ts';

async function startSidecar(controlPlane: string, workloadPort: number, overload: Record<string, unknown>): Promise<{ sidecar: Sidecar; addresses: SidecarAddresses }> {
  const parsed = parseBootstrap({
    node: { id: 'web-1', service: 'web' },
    inbound: { address: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1' },
    workload: { address: `127.0.0.1:${workloadPort}` },
    outbound: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    controlPlane: { address: controlPlane },
    overload,
  });
  if (!parsed.valid) throw new Error(parsed.errors.join('\n'));
  const sidecar = new Sidecar({ bootstrap: parsed.result, logger: pino({ level: 'silent' }), version: 'test', drainTimeoutMs: 2000 });
  const addresses = await sidecar.start();
  await sidecar.whenReady();
  return { sidecar, addresses };
}

const listen = (s: Server) => new Promise<number>((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
const close = (s: Server) => {
  s.closeAllConnections();
  return new Promise<void>((resolve) => s.close(() => resolve()));
};

interface OverloadStats {
  pressure: number;
  shedding: boolean;
  shed: { inbound: number; outbound: number };
  refusedConnections: number;
  monitors: Record<string, { value: number; max: number; pressure: number } | null>;
}

/** A raw HTTP/1.1 connection: connects, and answers whether the listener kept it open or closed it. */
function rawConnection(address: string): Promise<Socket> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const s = connect({ host: address.slice(0, i), port: Number(address.slice(i + 1)) }, () => resolve(s));
    s.on('error', reject);
  });
}

/** Sends one GET on `socket` and reads the status line of the answer; null when the connection closes first. */
function getOn(socket: Socket, host: string): Promise<string | null> {
  return new Promise((resolve) => {
    let data = '';
    const onData = (d: Buffer) => {
      data += d.toString();
      // The status line of this answer (leftovers of an earlier answer's body are skipped).
      const m = /HTTP\/1\.1 \d{3} [^\r]*\r\n/.exec(data);
      if (m !== null) {
        socket.off('data', onData);
        resolve(m[0].slice(0, -2));
      }
    };
    socket.on('data', onData);
    socket.once('close', () => resolve(null));
    socket.on('error', () => resolve(null));
    socket.write(`GET / HTTP/1.1\r\nhost: ${host}\r\n\r\n`);
  });
}

describe('palisade sidecar, overload manager', () => {
  let cp: TestControlPlane;
  let api: Server;
  let apiPort: number;
  let web: Server;
  let webPort: number;
  /** Requests the workload is holding, answered by release(). */
  const held: ServerResponse[] = [];
  let workloadSaw = 0;
  let sidecar: Sidecar | null = null;

  const release = () => {
    for (const res of held.splice(0)) res.end('web');
  };

  beforeAll(async () => {
    web = createServer((req: IncomingMessage, res: ServerResponse) => {
      workloadSaw++;
      req.resume();
      if (req.url === '/slow') held.push(res);
      else res.end('web');
    });
    api = createServer((_req, res) => res.end('api'));
    webPort = await listen(web);
    apiPort = await listen(api);
    cp = await startControlPlane({ 'services.yaml': webAndApiYaml(apiPort) });
  }, 30_000);

  afterEach(async () => {
    release();
    await sidecar?.close();
    sidecar = null;
  });

  afterAll(async () => {
    await cp?.close();
    for (const s of [api, web]) if (s) await close(s);
  });

  const overloadStats = async (admin: string) => (JSON.parse((await httpGet(admin, '/stats')).body) as { overload: OverloadStats }).overload;

  it('answers requests beyond maxActiveRequests 503 overloaded (OM) while the workload is busy; the workload never sees them', async () => {
    const started = await startSidecar(cp.address, webPort, { maxActiveRequests: 2, refreshIntervalMs: 60_000 });
    sidecar = started.sidecar;
    const { inbound, admin } = started.addresses;
    workloadSaw = 0;
    const slow = [httpGet(inbound, '/slow', { host: 'web' }), httpGet(inbound, '/slow', { host: 'web' })];
    await until('the workload holds two requests', () => held.length === 2);
    const shed = await httpRequest(inbound, { method: 'GET', path: '/slow', headers: { host: 'web' } });
    expect(shed.status).toBe(503);
    expect(shed.body).toBe('overloaded');
    expect(shed.headers['x-palisade-overloaded']).toBe('true');
    expect(await httpGet(inbound, '/', { host: 'web' })).toEqual({ status: 503, body: 'overloaded' });
    expect(workloadSaw).toBe(2);
    expect((await overloadStats(admin)).shed).toEqual({ inbound: 2, outbound: 0 });
    release();
    expect(await Promise.all(slow)).toEqual([{ status: 200, body: 'web' }, { status: 200, body: 'web' }]);
    // Below the limit again: served.
    expect(await httpGet(inbound, '/', { host: 'web' })).toEqual({ status: 200, body: 'web' });
    expect(workloadSaw).toBe(3);
  });

  it('sheds inbound and outbound requests past a tiny heap limit, and /ready and /stats still answer', async () => {
    const started = await startSidecar(cp.address, webPort, { maxHeapBytes: 1 });
    sidecar = started.sidecar;
    const { inbound, outbound, admin } = started.addresses;
    workloadSaw = 0;
    expect(await httpGet(inbound, '/', { host: 'web' })).toEqual({ status: 503, body: 'overloaded' });
    expect(await httpGet(outbound, '/', { host: 'api:9090' })).toEqual({ status: 503, body: 'overloaded' });
    expect(workloadSaw).toBe(0);
    expect((await httpGet(admin, '/ready')).status).toBe(200);
    const stats = await overloadStats(admin);
    expect(stats).toMatchObject({ pressure: 100, shedding: true, shed: { inbound: 1, outbound: 1 }, refusedConnections: 0 });
    expect(stats.monitors.heap).toMatchObject({ max: 1, pressure: 100 });
    expect(stats.monitors.connections).toBeNull();
  });

  it('refuses connections beyond maxConnections and keeps serving the ones it has', async () => {
    const started = await startSidecar(cp.address, webPort, { maxConnections: 2, refreshIntervalMs: 60_000 });
    sidecar = started.sidecar;
    const { inbound, outbound, admin } = started.addresses;
    const a = await rawConnection(inbound);
    const b = await rawConnection(outbound);
    try {
      await until('both connections counted', async () => (await overloadStats(admin)).refusedConnections === 0 && (await getOn(a, 'web')) === 'HTTP/1.1 200 OK');
      const c = await rawConnection(outbound);
      expect(await getOn(c, 'api:9090')).toBeNull();
      c.destroy();
      expect((await overloadStats(admin)).refusedConnections).toBe(1);
      // The admitted connections are served as before (admin is never limited).
      expect(await getOn(b, 'api:9090')).toBe('HTTP/1.1 200 OK');
      expect(await getOn(a, 'web')).toBe('HTTP/1.1 200 OK');
      // One closes: a new connection is admitted again.
      a.destroy();
      await until('a connection slot is free', async () => {
        const d = await rawConnection(inbound);
        const status = await getOn(d, 'web');
        d.destroy();
        return status === 'HTTP/1.1 200 OK';
      });
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('costs nothing when not configured: no overload section in /stats', async () => {
    const started = await startSidecar(cp.address, webPort, undefined as never);
    sidecar = started.sidecar;
    const stats = JSON.parse((await httpGet(started.addresses.admin, '/stats')).body) as { overload: unknown };
    expect(stats.overload).toBeNull();
    expect(await httpGet(started.addresses.inbound, '/', { host: 'web' })).toEqual({ status: 200, body: 'web' });
  });
});
