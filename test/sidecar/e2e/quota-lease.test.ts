/**
 * GLOBAL quotas with token leases (bootstrap quota.redis.lease) end to end: three `palisade
 * sidecar` processes share one real redis-server, configured by a real ADS server, with a real
 * workload behind them. Over a limit large enough that leases hold many tokens, the sidecars
 * admit the limit within ±2% and never more, with far fewer Redis round trips than requests.
 * An in-process sidecar with the default configuration (no quota.redis.lease: leases on) keeps
 * admitting from the lease it holds when Redis is killed, and only then fails open through the
 * fallback bucket or fails closed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Sidecar, SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { httpRequest } from '../../helpers/http.ts';
import { startRedis, type TestRedis } from '../../helpers/redis.ts';
import { until } from '../../helpers/until.ts';
import { quota, Quota_FailureMode, Quota_Scope } from '../quota/fixtures.ts';
import { closeServer, QuotaXds, SERVICE, startSidecar, startWorkload } from '../quota/quota-mesh.ts';

const CLI = join(import.meta.dirname, '../../../cli/main.ts');
const LIMIT = 3000;
const REQUESTS = 3600;

let redis: TestRedis;
let xds: QuotaXds;
let dir: string;
let workload: { server: Server; port: number; hits: () => number };
const children: ChildProcess[] = [];
let processes: string[] = [];
/** An in-process sidecar with the default quota.redis (no `lease`: leases on, 1% / 1000 tokens). */
let defaults: { sidecar: Sidecar; addresses: SidecarAddresses };

interface Counters { allowed: number; limited: number; storeErrors: number; fallbackUsed: number }
function defaultsStats(): { redis: { connected: boolean; outages: number }; quotas: Record<string, { limits: Record<string, Counters> }> } {
  return (defaults.sidecar.stats() as { quota: ReturnType<typeof defaultsStats> }).quota;
}

/** A `palisade sidecar` process with leases on; resolves with its inbound address once ready. */
async function spawnLeasing(id: string): Promise<string> {
  const file = join(dir, `${id}.json`);
  const doc = {
    node: { id, service: SERVICE },
    inbound: { address: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1' },
    workload: { address: `127.0.0.1:${workload.port}` },
    outbound: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    controlPlane: { address: xds.address },
    quota: { redis: { address: redis.address, timeout: 200, lease: { maxFraction: 0.05, maxTokens: 1000 } } },
  };
  await writeFile(`${file}.tmp`, JSON.stringify(doc));
  await rename(`${file}.tmp`, file);
  const child = spawn(process.execPath, [CLI, 'sidecar', '--bootstrap', file, '--log-level', 'warn', '--drain-timeout', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`sidecar ${id} did not get ready: ${out}`)), 90_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /inbound (127\.0\.0\.1:\d+), outbound [\s\S]*palisade sidecar: ready/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sidecar ${id} exited ${code}: ${out}`));
    });
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-lease-'));
  redis = await startRedis();
  workload = await startWorkload();
  xds = await QuotaXds.start();
  xds.push([
    quota('leased', { tokens: LIMIT, interval: 600 }, { scope: Quota_Scope.GLOBAL, routes: [{ name: 'leased', pathPrefix: '/leased' }] }),
    quota('open', { tokens: 10_000, interval: 600, fallback: 4 }, { scope: Quota_Scope.GLOBAL, routes: [{ name: 'open', pathPrefix: '/open' }] }),
    quota('closed', { tokens: 10_000, interval: 600 }, { scope: Quota_Scope.GLOBAL, failureMode: Quota_FailureMode.FAIL_CLOSED, routes: [{ name: 'closed', pathPrefix: '/closed' }] }),
  ]);
  processes = await Promise.all([1, 2, 3].map((i) => spawnLeasing(`web-${i}`)));
  defaults = await startSidecar(xds.address, workload.port, { id: 'web-defaults', redis: redis.address });
  await until('the in-process sidecar connected to redis', () => defaultsStats().redis.connected, 10_000);
}, 150_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await defaults?.sidecar.close();
  await xds?.close();
  if (workload !== undefined) await closeServer(workload.server);
  await redis?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('GLOBAL quotas with token leases', () => {
  it('admits the limit within 2% and never more across three sidecar processes, with fewer Redis round trips than requests', async () => {
    await redis.cli('CONFIG', 'RESETSTAT');
    const before = workload.hits();
    const perSidecar = [0, 0, 0];
    let admitted = 0;
    let next = 0;
    // 30 in flight, round robin over the three processes.
    const worker = async () => {
      for (let i = next++; i < REQUESTS; i = next++) {
        const j = i % 3;
        const r = await httpRequest(processes[j]!, { method: 'GET', path: '/leased', headers: { 'x-tenant': 'acme' } });
        expect([200, 429]).toContain(r.status);
        if (r.status === 200) {
          admitted++;
          perSidecar[j]!++;
        }
      }
    };
    await Promise.all(Array.from({ length: 30 }, worker));
    expect(admitted).toBeLessThanOrEqual(LIMIT);
    expect(admitted).toBeGreaterThanOrEqual(LIMIT * 0.98);
    expect(workload.hits() - before).toBe(admitted);
    expect(perSidecar.every((n) => n > 0)).toBe(true);
    const stats = await redis.cli('INFO', 'commandstats');
    let scripts = 0;
    for (const m of stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) scripts += Number(m[1]);
    // Leases of many tokens: far fewer consumes than requests.
    expect(scripts).toBeGreaterThan(0);
    expect(scripts).toBeLessThan(REQUESTS / 2);
  });

  it('with the default configuration, spends the lease it holds while Redis is down, then fails open through the fallback bucket or fails closed', async () => {
    const call = (path: string) => httpRequest(defaults.addresses.inbound, { method: 'GET', path, headers: { 'x-tenant': 'acme' } });
    // Default lease (maxFraction 0.01): one token (remaining unknown), then 1% of the 9999
    // remaining, 99: the check's token and a lease of 98, counted in Redis already.
    for (const path of ['/open', '/closed']) for (let i = 0; i < 2; i++) expect((await call(path)).status).toBe(200);
    expect(await redis.cli('GET', 'palisade:quota:default/open|per-tenant|tenant=acme')).toBe('100');
    expect(await redis.cli('GET', 'palisade:quota:default/closed|per-tenant|tenant=acme')).toBe('100');
    await redis.stop();

    // FAIL_OPEN: the 98 leased tokens, then fallback_tokens = 4 of the next 10; at most lease + fallback.
    const open: number[] = [];
    for (let i = 0; i < 108; i++) open.push((await call('/open')).status);
    expect(open.slice(0, 98)).toEqual(Array(98).fill(200));
    expect(open.slice(98).filter((s) => s === 200)).toHaveLength(4);
    expect(open.slice(98).filter((s) => s === 429)).toHaveLength(6);
    expect(defaultsStats().quotas['default/open']!.limits['per-tenant']).toMatchObject({ allowed: 2 + 98 + 4, limited: 6, storeErrors: 10, fallbackUsed: 10 });

    // FAIL_CLOSED: the 98 leased tokens, then 429 for every check once the lease is spent.
    const closed: number[] = [];
    for (let i = 0; i < 98; i++) closed.push((await call('/closed')).status);
    expect(closed).toEqual(Array(98).fill(200));
    for (let i = 0; i < 3; i++) {
      const refused = await call('/closed');
      expect(refused.status).toBe(429);
      expect(refused.body).toBe('quota default/closed (limit per-tenant) cannot be checked: its store is unreachable');
    }
    expect(defaultsStats().quotas['default/closed']!.limits['per-tenant']).toMatchObject({ allowed: 100, limited: 3, storeErrors: 3, fallbackUsed: 0 });
    expect(defaultsStats().redis).toEqual({ connected: false, outages: 1 });
  });
});
