/** WorkerPool with real worker processes on loopback. */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../../../control/log.ts';
import { parseBootstrap, type SidecarBootstrap } from '../../../sidecar/bootstrap/bootstrap.ts';
import { compileSnapshot } from '../../../sidecar/config/sidecar-snapshot.ts';
import { encodeConfig } from '../../../sidecar/workers/messages.ts';
import { WorkerPool } from '../../../sidecar/workers/worker-pool.ts';
import { fixtureInput } from '../config/fixtures.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

async function workload(): Promise<number> {
  const server: Server = createServer((req, res) => {
    req.resume();
    res.end('workload');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return (server.address() as AddressInfo).port;
}

function bootstrap(workloadPort: number, inboundPort = 0): SidecarBootstrap {
  const r = parseBootstrap({
    node: { id: 'pool-test', service: 'web' },
    controlPlane: { address: '127.0.0.1:1' },
    inbound: { address: '127.0.0.1', port: inboundPort },
    workload: { address: `127.0.0.1:${workloadPort}` },
    outbound: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
  });
  if (!r.valid) throw new Error(r.errors.join('; '));
  return r.result;
}

function pool(b: SidecarBootstrap, size: number): WorkerPool {
  const p = new WorkerPool({ size, bootstrap: b, logger: createLogger('silent'), logLevel: 'silent', version: 'test', drainTimeoutMs: 1000 });
  cleanups.push(() => p.close());
  return p;
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function config() {
  const input = fixtureInput();
  const r = compileSnapshot(input);
  if (!r.valid) throw new Error(r.errors.join('; '));
  return encodeConfig(input, r.result.version);
}

/** Resolves when every worker reported `version` applied. */
function allApplied(p: WorkerPool, version: string): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (p.workers().every((w) => w.version === version)) {
        p.off('applied', check);
        resolve();
      }
    };
    p.on('applied', check);
    check();
  });
}

describe('WorkerPool', () => {
  it('starts every worker on the one port the first bound for port 0, and they serve it', async () => {
    const p = pool(bootstrap(await workload()), 2);
    const ports = await p.start();
    expect(ports.inbound).toBeGreaterThan(0);
    expect(ports.outbound).toBeGreaterThan(0);
    expect(p.ports).toEqual(ports);
    const workers = p.workers();
    expect(workers.map((w) => [w.index, w.state, w.restarts, w.version])).toEqual([[0, 'running', 0, null], [1, 'running', 0, null]]);
    expect(new Set(workers.map((w) => w.pid)).size).toBe(2);
    expect(await get(ports.inbound, '/')).toEqual({ status: 200, body: 'workload' });
    // Not configured yet: the outbound listener answers as the single-process sidecar does.
    expect(await get(ports.outbound, '/')).toEqual({ status: 503, body: 'not ready' });
  });

  it('sends a configuration to every worker, which applies the same version', async () => {
    const p = pool(bootstrap(await workload()), 2);
    await p.start();
    expect(p.allApplied).toBe(false);
    const c = config();
    const applied = allApplied(p, c.version);
    p.broadcast(c);
    await applied;
    expect(p.allApplied).toBe(true);
    expect(p.workers().map((w) => [w.version, w.complete])).toEqual([[c.version, true], [c.version, true]]);
    const dumps = await p.query('config_dump');
    expect(dumps.map((d) => (d.body as { version: string; ready: boolean }).version)).toEqual([c.version, c.version]);
  });

  it('restarts a killed worker in its slot, configured before it listens', async () => {
    const p = pool(bootstrap(await workload()), 2);
    const ports = await p.start();
    const c = config();
    const applied = allApplied(p, c.version);
    p.broadcast(c);
    await applied;
    const old = p.workers()[1]!.pid!;
    const exited = new Promise<[number, number | null, string | null]>((resolve) => p.once('exit', (...a) => resolve(a)));
    const restarted = new Promise<number>((resolve) => p.once('restarted', (index) => resolve(index)));
    process.kill(old, 'SIGKILL');
    expect(await exited).toEqual([1, null, 'SIGKILL']);
    // The other worker holds the port meanwhile.
    expect(await get(ports.inbound, '/')).toEqual({ status: 200, body: 'workload' });
    expect(await restarted).toBe(1);
    const w = p.workers()[1]!;
    expect(w.pid).not.toBe(old);
    expect([w.state, w.restarts, w.version, w.complete]).toEqual(['running', 1, c.version, true]);
  });

  it('drains every worker: they exit and are not restarted', async () => {
    const p = pool(bootstrap(await workload()), 2);
    await p.start();
    const pids = p.workers().map((w) => w.pid!);
    expect(await p.drain(1000)).toBe(true);
    expect(p.workers().map((w) => [w.state, w.pid])).toEqual([['exited', null], ['exited', null]]);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
  });

  it('refuses a port another process listens on with SO_REUSEPORT instead of sharing it, leaving no worker', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen({ host: '127.0.0.1', port: 0, reusePort: true }, resolve));
    cleanups.push(() => new Promise((resolve) => taken.close(() => resolve())));
    const port = (taken.address() as AddressInfo).port;
    const p = pool(bootstrap(await workload(), port), 2);
    await expect(p.start()).rejects.toMatchObject({
      code: 'PAL_ERR_SIDECAR_WORKER_START',
      message: `sidecar worker 0 could not start: inbound 127.0.0.1:${port}: listen EADDRINUSE: address already in use 127.0.0.1:${port}`,
    });
    expect(p.workers().map((w) => [w.state, w.pid])).toEqual([['exited', null], ['exited', null]]);
  });

  it('fails to start with PAL_ERR_SIDECAR_WORKER_START naming the cause when a worker cannot bind', async () => {
    const r = parseBootstrap({
      node: { id: 'pool-test', service: 'web' },
      inbound: { address: '192.0.2.1', port: 0 },
      workload: { address: `127.0.0.1:${await workload()}` },
      outbound: { address: '127.0.0.1', port: 0 },
    });
    if (!r.valid) throw new Error(r.errors.join('; '));
    const p = pool(r.result, 2);
    await expect(p.start()).rejects.toMatchObject({
      code: 'PAL_ERR_SIDECAR_WORKER_START',
      message: expect.stringMatching(/^sidecar worker 0 could not start: EADDRNOTAVAIL: listen EADDRNOTAVAIL: address not available 192\.0\.2\.1/),
    });
    expect(p.workers().map((w) => [w.state, w.pid])).toEqual([['exited', null], ['exited', null]]);
  });
});
