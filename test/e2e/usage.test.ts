/**
 * Usage metering end to end: a real control plane (state dir, admin API) on loopback, a real
 * sidecar in front of an HTTP workload, reporting over LRS on the xDS port at the Mesh's
 * interval (200ms here). Requests for tenants a and b (b over its quota) reach the usage API
 * and the `palisade usage` CLI (a spawned process) with exact counts; the day survives a
 * control-plane restart, and requests made while the control plane is down are reported
 * once it is back on the same port.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdminServer } from '../../control/admin/admin-server.ts';
import { DirectorySource } from '../../control/config/source.ts';
import { ControlPlane } from '../../control/control-plane.ts';
import { createLogger } from '../../control/log.ts';
import type { UsageReport } from '../../control/metering/usage-store.ts';
import type { Sidecar, SidecarAddresses } from '../../sidecar/sidecar.ts';
import { httpRequest } from '../helpers/http.ts';
import { startTestSidecar } from '../helpers/sidecar.ts';
import { until } from '../helpers/until.ts';

const ROOT = join(import.meta.dirname, '../..');

const CONFIG = `apiVersion: palisade.dev/v1
kind: Mesh
metadata: { name: mesh }
spec:
  trustDomain: cluster.local
  metering: { tenant: { header: x-tenant-id }, reportInterval: 200ms }
---
apiVersion: palisade.dev/v1
kind: Service
metadata: { name: web }
spec: { port: 8080 }
---
apiVersion: palisade.dev/v1
kind: Quota
metadata: { name: per-tenant }
spec:
  selector: { services: [web] }
  routes: [{ name: api, pathPrefix: /api }]
  descriptors: [{ key: tenant, from: { header: x-tenant-id }, default: anonymous }]
  limits: [{ name: all, tokens: 3, interval: 1h }]
`;

interface Plane {
  cp: ControlPlane;
  admin: AdminServer;
  adminAddress: string;
}

let dir: string;
let configDir: string;
let stateDir: string;
let workload: Server;
let plane: Plane;
let sc: { sidecar: Sidecar; addresses: SidecarAddresses };
/** What the sidecar's telemetry saw, per tenant and per `tenant route`: the exact figures the control plane must show. */
const seen = new Map<string, { requests: number; bytesIn: number; bytesOut: number; denied: number }>();

async function startPlane(xdsAddress: string): Promise<Plane> {
  const cp = new ControlPlane({ source: new DirectorySource({ dir: configDir, debounceMs: 20 }), xdsAddress, logger: createLogger('silent'), stateDir });
  const admin = new AdminServer(cp);
  await cp.start();
  const adminAddress = await admin.listen('127.0.0.1:0');
  admin.markReady();
  return { cp, admin, adminAddress };
}

async function stopPlane(p: Plane): Promise<void> {
  await p.admin.close();
  await p.cp.close();
}

async function usage(query: string): Promise<{ status: number; body: UsageReport & { error?: string; parameter?: string } }> {
  const res = await fetch(`http://${plane.adminAddress}/api/v1/usage${query}`);
  return { status: res.status, body: await res.json() as UsageReport & { error?: string; parameter?: string } };
}

function call(tenant: string, path = '/api/items') {
  return httpRequest(sc.addresses.inbound, { method: 'GET', path, headers: { 'x-tenant-id': tenant } });
}

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'cli/main.ts'), 'usage', ...args], { cwd: ROOT }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (err as { code?: number }).code ?? 1, stdout, stderr });
    });
  });
}

const today = () => new Date().toISOString().slice(0, 10);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-usage-e2e-'));
  configDir = join(dir, 'config');
  stateDir = join(dir, 'state');
  await mkdir(configDir);
  const tmp = join(configDir, '.mesh.yaml.tmp');
  await writeFile(tmp, CONFIG);
  await rename(tmp, join(configDir, 'mesh.yaml'));
  workload = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('hello from web\n'));
  await new Promise<void>((resolve) => workload.listen(0, '127.0.0.1', resolve));
  const port = (workload.address() as { port: number }).port;
  plane = await startPlane('127.0.0.1:0');
  sc = await startTestSidecar(plane.cp.xdsAddress, port);
  sc.sidecar.telemetry.addSink((r) => {
    const tenant = r.facts.tenant ?? 'unknown';
    const route = r.facts.route || '-';
    for (const key of [tenant, `${tenant} ${route}`]) {
      const s = seen.get(key) ?? { requests: 0, bytesIn: 0, bytesOut: 0, denied: 0 };
      s.requests++;
      s.bytesIn += r.bytesIn;
      s.bytesOut += r.bytesOut;
      if (r.status === 429) s.denied++;
      seen.set(key, s);
    }
  });
}, 30_000);

afterAll(async () => {
  await sc?.sidecar.close();
  if (plane !== undefined) await stopPlane(plane);
  await new Promise<void>((resolve) => (workload ? workload.close(() => resolve()) : resolve()));
  await rm(dir, { recursive: true, force: true });
});

describe('usage metering', () => {
  it('counts requests, bytes and denials per tenant and route on the control plane, exactly', async () => {
    const statuses: Record<string, number[]> = { a: [], b: [] };
    for (let i = 0; i < 3; i++) statuses.a!.push((await call('a')).status);
    for (let i = 0; i < 5; i++) statuses.b!.push((await call('b')).status);
    expect(statuses).toEqual({ a: [200, 200, 200], b: [200, 200, 200, 429, 429] });
    await until('both tenants reported', async () => {
      const { body } = await usage('');
      return body.tenants.find((t) => t.tenant === 'a')?.totals.requests === 3 && body.tenants.find((t) => t.tenant === 'b')?.totals.requests === 5;
    });
    const { status, body } = await usage(`?day=${today()}`);
    expect(status).toBe(200);
    expect(body.day).toBe(today());
    const a = seen.get('a')!;
    const b = seen.get('b')!;
    expect([a.requests, a.denied, b.requests, b.denied]).toEqual([3, 0, 5, 2]);
    expect(body.tenants.map((t) => [t.tenant, t.totals])).toEqual([
      ['a', { requests: 3, bytesIn: a.bytesIn, bytesOut: a.bytesOut, denied: 0, errors: 0 }],
      ['b', { requests: 5, bytesIn: b.bytesIn, bytesOut: b.bytesOut, denied: 2, errors: 0 }],
    ]);
    expect(a.bytesOut).toBeGreaterThan(0);
    // Per route, exactly what the sidecar's telemetry recorded (every row an inbound one).
    for (const t of body.tenants) {
      for (const r of t.routes) {
        const want = seen.get(`${t.tenant} ${r.route}`);
        expect(r).toEqual({ tenant: t.tenant, route: r.route, direction: 'inbound', requests: want?.requests, bytesIn: want?.bytesIn, bytesOut: want?.bytesOut, denied: want?.denied, errors: 0 });
      }
    }
    expect((await usage('?tenant=b')).body.tenants.map((t) => t.tenant)).toEqual(['b']);
  });

  it('answers 400 naming the parameter and the value for a bad day', async () => {
    const { status, body } = await usage('?day=2026-02-30');
    expect(status).toBe(400);
    expect(body).toMatchObject({ code: 'PAL_ERR_METERING_INVALID_QUERY', parameter: 'day', error: 'day must be a date YYYY-MM-DD, got "2026-02-30"' });
  });

  it('prints the day with `palisade usage`, as a table and as JSON', async () => {
    const table = await cli('--admin-address', plane.adminAddress, '--tenant', 'b', '--day', today());
    expect(table.code).toBe(0);
    const b = seen.get('b')!;
    const lines = table.stdout.trim().split('\n').map((l) => l.split(/\s+/));
    expect(lines[0]).toEqual(['Usage', 'on', today(), '(UTC)']);
    expect(lines[1]).toEqual(['TENANT', 'ROUTE', 'DIR', 'REQUESTS', 'IN', 'OUT', 'DENIED', 'ERRORS']);
    const rows = lines.slice(2);
    expect(rows.every((r) => r[0] === 'b')).toBe(true);
    expect(rows.at(-1)).toEqual(['b', 'TOTAL', '5', String(b.bytesIn), String(b.bytesOut), '2', '0']);
    for (const r of rows.slice(0, -1)) {
      const want = seen.get(`b ${r[1]}`)!;
      expect(r).toEqual(['b', r[1], 'inbound', String(want.requests), String(want.bytesIn), String(want.bytesOut), String(want.denied), '0']);
    }
    const json = await cli('--admin-address', plane.adminAddress, '-o', 'json');
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as UsageReport;
    expect(report.tenants.map((t) => [t.tenant, t.totals.requests, t.totals.denied])).toEqual([['a', 3, 0], ['b', 5, 2]]);
  });

  it('refuses a bad --day with a clear message and exit code 2', async () => {
    const r = await cli('--admin-address', plane.adminAddress, '--day', '27-11-2026');
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('palisade usage: --day must be a date YYYY-MM-DD, got "27-11-2026"');
  });

  it('keeps the persisted day across a control-plane restart, and reports what was metered while it was down', async () => {
    const xdsAddress = plane.cp.xdsAddress;
    await stopPlane(plane);
    expect(await readdir(join(stateDir, 'usage'))).toEqual([`${today()}.json`]);
    // The control plane is gone: the sidecar serves from its last configuration and keeps counting.
    // Outside the quota's routes: route "-".
    for (let i = 0; i < 2; i++) expect((await call('a', '/other')).status).toBe(200);
    await until('an interval without a stream', () => (sc.sidecar.stats() as { usage: { reporter: { deferred: number } } }).usage.reporter.deferred > 0);
    plane = await startPlane(xdsAddress);
    const first = await usage('?tenant=a');
    expect(first.body.tenants[0]!.totals.requests).toBeGreaterThanOrEqual(3);
    await until('the requests made while down reported', async () => (await usage('?tenant=a')).body.tenants[0]?.totals.requests === 5, 15_000);
    expect((await usage('?tenant=b')).body.tenants[0]!.totals).toMatchObject({ requests: 5, denied: 2 });
  });
});
