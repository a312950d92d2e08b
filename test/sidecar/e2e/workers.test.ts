/**
 * `palisade sidecar --workers 2` as a user runs it: a real primary process and its real worker
 * processes against an in-process control plane, with backends on loopback. The tests run in
 * order on one sidecar: serving from both workers, a route edit reaching both, a killed worker
 * restarted, and SIGTERM draining everything.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseWorkers } from '../../../cli/commands/sidecar.ts';
import { startControlPlane, type TestControlPlane } from '../../helpers/control-plane.ts';
import { until as untilWithin } from '../../helpers/until.ts';

/** Worker processes take longer to start and restart: 15 s. */
function until<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000): Promise<T> {
  return untilWithin(what, probe, timeoutMs);
}

const ROOT = join(import.meta.dirname, '../../..');
const CLI = join(ROOT, 'cli/main.ts');

interface Reply { status: number; body: string }

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Answers `<name> <path>`; `/slow` after 500 ms. */
async function backend(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    req.resume();
    const reply = () => res.end(`${name} ${req.url}`);
    if (req.url === '/slow') setTimeout(reply, 500);
    else reply();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

const SERVICE = (name: string, port: number) => `apiVersion: palisade.dev/v1
kind: Service
metadata: { name: ${name} }
spec:
  protocol: http
  port: 9090
  endpoints: [{ address: 127.0.0.1, port: ${port} }]
`;

const CONFIG = (ports: { a: number; b: number }, to: 'a' | 'b') => `${SERVICE('api-a', ports.a)}---
${SERVICE('api-b', ports.b)}---
apiVersion: palisade.dev/v1
kind: Route
metadata: { name: shop }
spec:
  hosts: [shop]
  http:
    - name: all
      backends: [{ service: api-${to} }]
`;

interface Started {
  child: ChildProcess;
  exited: Promise<number | null>;
  outbound: number;
  admin: number;
  stderr: () => string;
}

/** Runs `palisade sidecar --workers 2` on a bootstrap in `dir`; resolves once it printed ready. */
async function startSidecar(dir: string, cpAddress: string, workloadPort: number): Promise<Started> {
  const file = join(dir, 'bootstrap.yaml');
  writeFileSync(file, `node: { id: web-workers, service: web }
controlPlane: { address: ${cpAddress} }
inbound: { address: 127.0.0.1, port: 0 }
workload: { address: 127.0.0.1:${workloadPort} }
outbound: { address: 127.0.0.1, port: 0 }
admin: { address: 127.0.0.1, port: 0 }
`);
  const child = spawn(process.execPath, [CLI, 'sidecar', '--bootstrap', file, '--workers', '2', '--log-level', 'warn', '--drain-timeout', '3s'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let out = '';
  const ports = await new Promise<{ outbound: number; admin: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sidecar did not become ready: ${out}${stderr}`)), 25_000);
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /outbound 127\.0\.0\.1:(\d+), admin http:\/\/127\.0\.0\.1:(\d+), control plane [^,]+, 2 workers\n[\s\S]*palisade sidecar: ready/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ outbound: Number(m[1]), admin: Number(m[2]) });
      }
    });
    child.on('exit', (code) => reject(new Error(`sidecar exited ${code}: ${out}${stderr}`)));
  });
  return { child, exited, ...ports, stderr: () => stderr };
}

/** Resolves once no process has `pid`. */
function gone(pid: number): Promise<true> {
  return until(`process ${pid} gone`, () => {
    try {
      process.kill(pid, 0);
      return undefined;
    } catch (err) {
      return (err as { code?: string }).code === 'ESRCH' ? true : undefined;
    }
  }, 10_000);
}

interface ListenerStats { requests: number; responses: Record<string, number>; inFlight: number }
interface WorkerStats { index: number; pid: number | null; state: string; restarts: number; version: string | null; listeners?: { outbound: ListenerStats } }
interface Stats { ready: boolean; listeners: { inbound: ListenerStats; outbound: ListenerStats }; workers: WorkerStats[] }
interface Dump { ready: boolean; version: string | null; complete: boolean; consistent: boolean; workers: Array<{ index: number; pid: number | null; state: string; version: string | null; complete: boolean }> }

describe('parseWorkers', () => {
  it.each([
    ['1', 1], ['2', 2], ['16', 16], ['256', 256], ['auto', Math.min(256, availableParallelism())],
  ])('accepts %j as %d', (value, n) => {
    expect(parseWorkers(value)).toBe(n);
  });

  it.each([['0'], ['-1'], ['+2'], ['2.0'], ['1e2'], [' 2'], ['257'], ['AUTO'], ['']])('refuses %j naming --workers and the value', (value) => {
    expect(() => parseWorkers(value)).toThrow(expect.objectContaining({
      code: 'PAL_ERR_CLI_USAGE',
      message: `--workers must be a positive integer up to 256 or auto, got ${JSON.stringify(value)}`,
    }));
  });
});

describe('palisade sidecar --workers', () => {
  it.each([
    ['0'], ['two'], ['1.5'], ['257'], ['-1'], [''],
  ])('rejects --workers=%j with exit 2 and a message naming --workers', (value) => {
    const r = spawnSync(process.execPath, [CLI, 'sidecar', '--bootstrap', 'x.yaml', `--workers=${value}`], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`palisade sidecar: --workers must be a positive integer up to 256 or auto, got ${JSON.stringify(value)}`);
    expect(r.stderr).toContain('Usage: palisade sidecar');
  });

  it('exits 1 with PAL_ERR_SIDECAR_WORKER_START when a port is taken, rather than sharing it', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen({ host: '127.0.0.1', port: 0, reusePort: true }, resolve));
    const port = (taken.address() as AddressInfo).port;
    const dir = mkdtempSync(join(tmpdir(), 'palisade-sidecar-workers-'));
    try {
      const file = join(dir, 'bootstrap.yaml');
      writeFileSync(file, `node: { service: web }
inbound: { address: 127.0.0.1, port: 0 }
workload: { address: 127.0.0.1:1 }
outbound: { address: 127.0.0.1, port: ${port} }
admin: { address: 127.0.0.1, port: 0 }
`);
      const child = spawn(process.execPath, [CLI, 'sidecar', '--bootstrap', file, '--workers', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      expect(code).toBe(1);
      expect(stderr).toContain(`palisade sidecar: PAL_ERR_SIDECAR_WORKER_START: sidecar worker 0 could not start: outbound 127.0.0.1:${port}: listen EADDRINUSE`);
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('documents --workers with its default in --help', () => {
    const r = spawnSync(process.execPath, [CLI, 'sidecar', '--help'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--workers N|auto');
    expect(r.stdout).toContain('(default 1)');
  });
});

describe('palisade sidecar --workers 2, end to end', () => {
  let cp: TestControlPlane;
  let a: { server: Server; port: number };
  let b: { server: Server; port: number };
  let dir: string;
  let child: ChildProcess;
  let exited: Promise<number | null>;
  let stderr: () => string;
  let outbound: number;
  let admin: number;

  const stats = async () => JSON.parse((await get(admin, '/stats')).body) as Stats;
  const dump = async () => JSON.parse((await get(admin, '/config_dump')).body) as Dump;
  const shop = (path = '/x') => get(outbound, path, { host: 'shop' });
  const served = (s: Stats) => s.workers.map((w) => w.listeners?.outbound.requests ?? -1);

  /** Sends requests, each on a new connection, until every worker served one more than in `before`; returns the replies. */
  async function untilEveryWorkerServes(before: number[], max = 400): Promise<Reply[]> {
    const replies: Reply[] = [];
    for (let i = 0; i < max; i++) {
      replies.push(await shop());
      if (i % 10 === 9 && served(await stats()).every((n, w) => n > before[w]!)) return replies;
    }
    throw new Error(`not every worker served within ${max} requests: ${JSON.stringify(served(await stats()))} (before ${JSON.stringify(before)})`);
  }

  beforeAll(async () => {
    a = await backend('a');
    b = await backend('b');
    cp = await startControlPlane({ 'config.yaml': CONFIG({ a: a.port, b: b.port }, 'a') });
    dir = mkdtempSync(join(tmpdir(), 'palisade-sidecar-workers-'));
    const started = await startSidecar(dir, cp.address, a.port);
    ({ child, exited, stderr, outbound, admin } = started);
  }, 40_000);

  afterAll(async () => {
    child?.kill('SIGKILL');
    for (const s of [a?.server, b?.server]) {
      s?.closeAllConnections();
      await new Promise<void>((resolve) => (s ? s.close(() => resolve()) : resolve()));
    }
    await cp?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is ready once every worker applied the configuration, the versions agreeing in /config_dump', async () => {
    expect(await get(admin, '/ready')).toEqual({ status: 200, body: 'ready\n' });
    const d = await dump();
    expect(d.ready).toBe(true);
    expect(d.complete).toBe(true);
    expect(d.consistent).toBe(true);
    expect(d.workers.map((w) => [w.index, w.state, w.version, w.complete])).toEqual([[0, 'running', d.version, true], [1, 'running', d.version, true]]);
    expect(new Set(d.workers.map((w) => w.pid)).size).toBe(2);
    expect(d.workers.map((w) => w.pid)).not.toContain(child.pid);
  });

  it('serves through the outbound listener from both workers, each counted in /stats and summed', async () => {
    const replies = await untilEveryWorkerServes([0, 0]);
    expect(replies.every((r) => r.status === 200 && r.body === 'a /x')).toBe(true);
    const s = await stats();
    const perWorker = served(s);
    expect(perWorker.every((n) => n > 0)).toBe(true);
    expect(s.listeners.outbound.requests).toBe(perWorker[0]! + perWorker[1]!);
    expect(s.listeners.outbound.responses['2xx']).toBe(perWorker[0]! + perWorker[1]!);
    expect(s.workers.map((w) => [w.index, w.state, w.restarts])).toEqual([[0, 'running', 0], [1, 'running', 0]]);
  });

  it('brings a route edit to every worker: /config_dump agrees on the new version and both serve the new route', async () => {
    const old = (await dump()).version;
    await cp.write('config.yaml', CONFIG({ a: a.port, b: b.port }, 'b'));
    const d = await until('every worker on the new version', async () => {
      const v = await dump();
      return v.version !== old && v.consistent ? v : undefined;
    });
    expect(d.workers.map((w) => w.version)).toEqual([d.version, d.version]);
    expect(d.ready).toBe(true);
    const replies = await untilEveryWorkerServes(served(await stats()));
    expect(replies.filter((r) => r.status !== 200 || r.body !== 'b /x')).toEqual([]);
  });

  it('restarts a SIGKILLed worker with the current configuration while the other keeps the port answering', async () => {
    const before = (await stats()).workers[1]!;
    const version = (await dump()).version;
    process.kill(before.pid!, 'SIGKILL');
    // Once the primary saw the exit, the killed worker's socket is gone: every connection reaches the other.
    const meanwhile: Reply[] = [];
    await until('the worker to be seen dead', async () => ((await stats()).workers[1]!.pid !== before.pid ? true : undefined));
    const after = await until('the worker to be restarted', async () => {
      meanwhile.push(await shop());
      const w = (await stats()).workers[1]!;
      return w.state === 'running' && w.pid !== null && w.pid !== before.pid ? w : undefined;
    });
    expect(meanwhile.filter((r) => r.status !== 200 || r.body !== 'b /x')).toEqual([]);
    expect(meanwhile.length).toBeGreaterThan(0);
    expect([after.restarts, after.version]).toEqual([1, version]);
    const log = stderr().split('\n').filter((l) => l.includes('worker exited; restarting it')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ worker: 1, workerPid: before.pid, code: null, signal: 'SIGKILL', level: 40 });
    // The restarted worker serves.
    const replies = await untilEveryWorkerServes(served(await stats()));
    expect(replies.filter((r) => r.status !== 200 || r.body !== 'b /x')).toEqual([]);
    expect((await dump()).consistent).toBe(true);
  });

  it('on SIGTERM drains every worker, finishing a request in flight, and exits 0 leaving no worker', async () => {
    const pids = (await stats()).workers.map((w) => w.pid!);
    const slow = shop('/slow');
    await until('the slow request in flight', async () => ((await stats()).listeners.outbound.inFlight === 1 ? true : undefined));
    child.kill('SIGTERM');
    expect(await slow).toEqual({ status: 200, body: 'b /slow' });
    expect(await exited).toBe(0);
    for (const pid of pids) expect(await gone(pid)).toBe(true);
  });
});

describe('palisade sidecar --workers 2, when the primary dies', () => {
  it('leaves no worker behind: each drains and exits when its IPC channel closes', async () => {
    const api = await backend('api');
    const cp = await startControlPlane({ 'config.yaml': SERVICE('api', api.port) });
    const dir = mkdtempSync(join(tmpdir(), 'palisade-sidecar-workers-'));
    let started: Started | undefined;
    try {
      started = await startSidecar(dir, cp.address, api.port);
      const s = JSON.parse((await get(started.admin, '/stats')).body) as Stats;
      const pids = s.workers.map((w) => w.pid!);
      expect(pids).toHaveLength(2);
      started.child.kill('SIGKILL');
      expect(await started.exited).toBe(null);
      for (const pid of pids) expect(await gone(pid)).toBe(true);
    } finally {
      started?.child.kill('SIGKILL');
      api.server.closeAllConnections();
      await new Promise<void>((resolve) => api.server.close(() => resolve()));
      await cp.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
