/**
 * GLOBAL quotas end to end, token leases off (`quota.redis.lease: false`, one Redis round trip
 * per check; the default, leases on, is quota-lease.test.ts'): a real redis-server shared by
 * three `palisade sidecar` processes and one in-process sidecar, all configured by a real ADS
 * server; a real workload behind them. The shared bucket admits exactly its limit across the
 * sidecars; with Redis killed mid-load FAIL_OPEN admits through the local fallback bucket only
 * and FAIL_CLOSED answers 429; with Redis back the buckets are global again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Sidecar, SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { httpRequest } from '../../helpers/http.ts';
import { startRedis, type TestRedis } from '../../helpers/redis.ts';
import { until } from '../../helpers/until.ts';
import { quota, Quota_FailureMode, Quota_Scope } from '../quota/fixtures.ts';
import { closeServer, QuotaXds, spawnSidecar, startSidecar, startWorkload } from '../quota/quota-mesh.ts';

let redis: TestRedis;
let xds: QuotaXds;
let dir: string;
let workload: { server: Server; port: number; hits: () => number };
const children: ChildProcess[] = [];
let processes: { inbound: string; admin: string }[] = [];
let local: { sidecar: Sidecar; addresses: SidecarAddresses };

const QUOTAS = [
  quota('global', { tokens: 90, interval: 60 }, { scope: Quota_Scope.GLOBAL, routes: [{ name: 'global', pathPrefix: '/global' }] }),
  quota('open', { tokens: 1000, interval: 60, fallback: 4 }, { scope: Quota_Scope.GLOBAL, routes: [{ name: 'open', pathPrefix: '/open' }] }),
  quota('closed', { tokens: 1000, interval: 60 }, { scope: Quota_Scope.GLOBAL, failureMode: Quota_FailureMode.FAIL_CLOSED, routes: [{ name: 'closed', pathPrefix: '/closed' }] }),
];

const call = (inbound: string, path: string) => httpRequest(inbound, { method: 'GET', path, headers: { 'x-tenant': 'acme' } });

interface Counters { allowed: number; limited: number; storeErrors: number; fallbackUsed: number }
function localStats(): { redis: { connected: boolean; outages: number }; quotas: Record<string, { limits: Record<string, Counters> }> } {
  return (local.sidecar.stats() as { quota: ReturnType<typeof localStats> }).quota;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-quota-'));
  redis = await startRedis();
  workload = await startWorkload();
  xds = await QuotaXds.start();
  xds.push(QUOTAS);
  // lease: false: these cases count one Redis round trip per check (leases: quota-lease.test.ts).
  processes = await Promise.all([1, 2, 3].map((i) => spawnSidecar(dir, `web-${i}`, xds.address, workload.port, redis.address, children, { lease: false })));
  local = await startSidecar(xds.address, workload.port, { id: 'web-4', redis: redis.address, lease: false });
  await until('the in-process sidecar connected to redis', () => localStats().redis.connected, 10_000);
}, 150_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await local?.sidecar.close();
  await xds?.close();
  if (workload !== undefined) await closeServer(workload.server);
  await redis?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('GLOBAL quotas through Redis', () => {
  it('admits exactly the limit across three sidecar processes sharing one redis-server', async () => {
    const before = workload.hits();
    let admitted = 0;
    const perSidecar = [0, 0, 0];
    // 270 requests, round robin over the three processes, three at a time.
    for (let i = 0; i < 90; i++) {
      const replies = await Promise.all(processes.map((p) => call(p.inbound, '/global')));
      replies.forEach((r, j) => {
        expect([200, 429]).toContain(r.status);
        if (r.status === 200) {
          admitted++;
          perSidecar[j]!++;
        }
      });
    }
    // ±2% of the limit is the contract; a shared counter makes it exact.
    expect(admitted).toBe(90);
    expect(workload.hits() - before).toBe(90);
    // Every sidecar admitted some: the bucket is shared, not split.
    expect(perSidecar.every((n) => n > 0)).toBe(true);
    expect(await redis.cli('GET', 'palisade:quota:default/global|per-tenant|tenant=acme')).toBe('270');
  });

  it('fails open through the local fallback bucket when Redis is killed mid-load, and fails closed with 429', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      if (i === 10) await redis.stop();
      statuses.push((await call(local.addresses.inbound, '/open')).status);
    }
    // Before the kill: Redis (1000 tokens). After: fallback_tokens = 4 of the 20.
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(200));
    expect(statuses.slice(10).filter((s) => s === 200)).toHaveLength(4);
    expect(statuses.slice(10).filter((s) => s === 429)).toHaveLength(16);
    expect(localStats().quotas['default/open']!.limits['per-tenant']).toMatchObject({ storeErrors: 20, fallbackUsed: 20 });

    const closed = await call(local.addresses.inbound, '/closed');
    expect(closed.status).toBe(429);
    expect(closed.body).toBe('quota default/closed (limit per-tenant) cannot be checked: its store is unreachable');
    expect(closed.headers['retry-after']).toBe('1');
    // The processes fail open too: their own fallback buckets bound them.
    expect((await call(processes[0]!.inbound, '/open')).status).toBe(200);
    expect(localStats().redis).toEqual({ connected: false, outages: 1 });
  });

  it('uses Redis again once it is back', async () => {
    await redis.restart();
    await until('the sidecar reconnected to redis', () => localStats().redis.connected, 15_000, 20);
    const errors = localStats().quotas['default/open']!.limits['per-tenant']!.storeErrors;
    expect((await call(local.addresses.inbound, '/closed')).status).toBe(200);
    expect((await call(local.addresses.inbound, '/open')).status).toBe(200);
    expect(localStats().quotas['default/open']!.limits['per-tenant']!.storeErrors).toBe(errors);
    expect(await redis.cli('GET', 'palisade:quota:default/open|per-tenant|tenant=acme')).toBe('1');
    await until('a process reconnected to redis', async () => {
      await call(processes[1]!.inbound, '/open');
      return (await redis.cli('GET', 'palisade:quota:default/open|per-tenant|tenant=acme')) !== '1';
    }, 15_000, 100);
  });
});
