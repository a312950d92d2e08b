/**
 * bench/proxy — starting things: the upstream (nginx or node:http) and each target under test
 * (direct, the Palisade sidecar with its control plane, nginx, HAProxy, http-proxy-3, fastify),
 * each its own process on 127.0.0.1, optionally pinned to CPUs (PIN=1), plus the HTTP checks
 * that a started process answers.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';

import { freePort } from '../common/free-port.ts';
import { makeTempDir, removeTempDir } from '../common/temp-dirs.ts';
import { Child } from '../xds-scale/child.ts';
import { haproxyConf, nginxProxyConf, nginxUpstreamConf, sidecarBootstrap, UPSTREAM_SERVICE, UPSTREAM_SERVICE_PORT, writePalisadeConfig } from './configs.ts';
import type { BenchEnvironment, TargetName } from './environment.ts';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const HERE = join(REPO, 'bench', 'proxy');
const PALISADE_CLI = join(REPO, 'cli', 'main.ts');
const REPO_NODE = join(REPO, 'node_modules', '.bin', 'node');
export const NODE = existsSync(REPO_NODE) ? REPO_NODE : process.execPath;
export const NGINX = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
export const HAPROXY = existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : 'haproxy';

/**
 * With PIN=1 the proxy under test runs alone on the last CPU and the load generator and the
 * upstream on the others (taskset execs the command, so the pid stays the command's).
 */
type Role = 'proxy' | 'driver';
let pinning = false;

/** Turns CPU pinning (PIN=1) on or off for every process started from now on. */
export function setPinning(on: boolean): void {
  pinning = on;
}

export function pinned(role: Role, command: string, args: string[]): [string, string[]] {
  if (!pinning) return [command, args];
  const n = cpus().length;
  if (n < 2) return [command, args];
  const set = role === 'proxy' ? String(n - 1) : n === 2 ? '0' : `0-${n - 2}`;
  return ['taskset', ['-c', set, command, ...args]];
}

/** A child's whole life is capped at this (it is SIGKILLed past it). */
export const CHILD_DEADLINE_MS = 60 * 60_000;

/** A config directory under the OS temp dir, removed on the way out whatever happens. */
export function tempDir(name: string): string {
  return makeTempDir(`palisade-bench-proxy-${name}-`);
}

interface Answer {
  status: number;
  body: string;
}

async function get(url: string, host: string): Promise<Answer> {
  const res = await request(url, { headers: { host }, headersTimeout: 2000, bodyTimeout: 2000 });
  return { status: res.statusCode, body: await res.body.text() };
}

/** Polls `url` until it answers 200 (and, when given, exactly `body`); throws with the last answer past the timeout. */
async function waitFor200(url: string, host: string, child: Child | null, timeoutMs: number, body: string | null = null): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    if (child !== null && !child.isAlive) throw new Error(`${url} never answered: ${child.describe()}`);
    try {
      const a = await get(url, host);
      if (a.status === 200 && (body === null || a.body === body)) return;
      last = `HTTP ${a.status}, ${a.body.length} bytes: ${JSON.stringify(a.body.slice(0, 80))}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`${url} (Host ${host}): no 200${body === null ? '' : ` with the ${body.length}-byte body`} after ${timeoutMs} ms (last: ${last})${child === null ? '' : `; ${child.describe()}`}`);
}

// ---------------------------------------------------------------------------
// The upstream and the targets

export interface Running {
  readonly name: string;
  /** Where the load goes. */
  readonly url: string;
  /** Host header sent with every request. */
  readonly host: string;
  /** The process doing the proxying (CPU is measured on its tree); null for direct. */
  readonly pid: number | null;
  stop(): Promise<void>;
}

/** Stops `child`, then removes its config directory. */
function stopAndRemove(child: Child, dir: string): () => Promise<void> {
  return async () => {
    await child.stop();
    removeTempDir(dir);
  };
}

async function startNginx(name: string, role: Role, conf: (prefix: string, port: number) => string): Promise<{ child: Child; port: number; stop: () => Promise<void> }> {
  const dir = tempDir(name);
  const port = await freePort();
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, conf(dir, port));
  // With `daemon off` and `master_process` on, the master stays in front; the worker is its child (CPU is summed over the tree).
  const child = new Child(name, ...pinned(role, NGINX, ['-c', file, '-p', dir, '-g', 'daemon off;']), { deadlineMs: CHILD_DEADLINE_MS });
  return { child, port, stop: stopAndRemove(child, dir) };
}

export async function startUpstream(env: BenchEnvironment, body: string): Promise<Running> {
  if (env.upstream === 'nginx') {
    const { child, port, stop } = await startNginx('upstream', 'driver', (prefix, p) => nginxUpstreamConf(prefix, p, body));
    const url = `http://127.0.0.1:${port}/`;
    await waitFor200(url, 'upstream', child, 10_000, body);
    return { name: 'upstream', url, host: 'upstream', pid: child.pid, stop };
  }
  const child = new Child('upstream', ...pinned('driver', NODE, [join(HERE, 'node-servers.ts'), 'upstream', String(env.bodyBytes)]), { cwd: REPO, deadlineMs: CHILD_DEADLINE_MS });
  const ready = await child.waitForEvent('ready', 15_000);
  const url = `http://127.0.0.1:${Number(ready.port)}/`;
  await waitFor200(url, 'upstream', child, 10_000, body);
  return { name: 'upstream', url, host: 'upstream', pid: child.pid, stop: () => child.stop() };
}

export interface SidecarOptions {
  /** Extra node flags for the sidecar process (e.g. --cpu-prof). */
  nodeFlags?: string[];
}

export async function startSidecar(upstreamPort: number, body: string, options: SidecarOptions = {}): Promise<Running & { adminUrl: string; sidecarChild: Child; spawnedAt: number }> {
  const dir = tempDir('palisade');
  const configDir = join(dir, 'config');
  writePalisadeConfig(configDir, upstreamPort);
  const [xdsPort, cpAdminPort] = [await freePort(), await freePort()];
  const control = new Child('palisade-control', NODE, [
    PALISADE_CLI, 'control', '--config', configDir,
    '--xds-address', `127.0.0.1:${xdsPort}`, '--admin-address', `127.0.0.1:${cpAdminPort}`, '--log-level', 'warn',
  ], { cwd: REPO, deadlineMs: CHILD_DEADLINE_MS });
  let sidecar: Child | null = null;
  const stop = async () => {
    await sidecar?.stop(10_000);
    await control.stop();
    removeTempDir(dir);
  };
  try {
    await waitFor200(`http://127.0.0.1:${cpAdminPort}/ready`, `127.0.0.1:${cpAdminPort}`, control, 30_000);
    const bootstrap = join(dir, 'bootstrap.yaml');
    // The sidecar's own workload is never called here; point it at the upstream.
    writeFileSync(bootstrap, sidecarBootstrap(`127.0.0.1:${xdsPort}`, upstreamPort));
    const spawnedAt = performance.now();
    sidecar = new Child('palisade-sidecar', ...pinned('proxy', NODE, [
      ...(options.nodeFlags ?? []), PALISADE_CLI, 'sidecar', '--bootstrap', bootstrap, '--log-level', 'warn', '--drain-timeout', '1s',
    ]), { cwd: REPO, deadlineMs: CHILD_DEADLINE_MS, echoStderr: true });
    const addresses = await sidecar.waitForLine('the sidecar\'s addresses', 30_000, (line) => {
      const m = /outbound (\S+), admin http:\/\/(\S+),/.exec(line);
      return m === null ? undefined : { outbound: m[1]!, admin: m[2]! };
    });
    const adminUrl = `http://${addresses.admin}`;
    await waitFor200(`${adminUrl}/ready`, addresses.admin, sidecar, 30_000);
    const host = `${UPSTREAM_SERVICE}:${UPSTREAM_SERVICE_PORT}`;
    const url = `http://${addresses.outbound}/`;
    // Ready means configured; the first request may still race the endpoint's arrival.
    await waitFor200(url, host, sidecar, 10_000, body);
    return { name: 'sidecar', url, host, pid: sidecar.pid, adminUrl, sidecarChild: sidecar, spawnedAt, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * A proxy just spawned as `child`: waits for its address (`address`), then for a 200 through it
 * (Host `upstream`); on any failure calls `stop` and rethrows.
 */
async function proxyTarget(name: TargetName, child: Child, stop: () => Promise<void>, address: () => Promise<string>): Promise<Running> {
  try {
    const url = await address();
    await waitFor200(url, 'upstream', child, 10_000);
    return { name, url, host: 'upstream', pid: child.pid, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export async function startTarget(name: TargetName, upstream: Running, upstreamPort: number, body: string): Promise<Running> {
  switch (name) {
    case 'direct':
      return { name, url: upstream.url, host: upstream.host, pid: null, stop: async () => {} };
    case 'sidecar':
      return startSidecar(upstreamPort, body);
    case 'nginx': {
      const { child, port, stop } = await startNginx('nginx-proxy', 'proxy', (prefix, p) => nginxProxyConf(prefix, p, upstreamPort));
      return proxyTarget(name, child, stop, async () => `http://127.0.0.1:${port}/`);
    }
    case 'haproxy': {
      const dir = tempDir('haproxy');
      const port = await freePort();
      const cfg = join(dir, 'haproxy.cfg');
      writeFileSync(cfg, haproxyConf(port, upstreamPort));
      // -db: stay in the foreground; -W would add a master process.
      const child = new Child('haproxy', ...pinned('proxy', HAPROXY, ['-f', cfg, '-db']), { deadlineMs: CHILD_DEADLINE_MS });
      return proxyTarget(name, child, stopAndRemove(child, dir), async () => `http://127.0.0.1:${port}/`);
    }
    case 'http-proxy-3':
    case 'fastify': {
      const child = new Child(name, ...pinned('proxy', NODE, [join(HERE, 'node-servers.ts'), name, `http://127.0.0.1:${upstreamPort}`]), { cwd: REPO, deadlineMs: CHILD_DEADLINE_MS });
      return proxyTarget(name, child, () => child.stop(), async () => {
        const ready = await child.waitForEvent('ready', 30_000);
        return `http://127.0.0.1:${Number(ready.port)}/`;
      });
    }
  }
}
