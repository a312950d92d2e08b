/**
 * SLO burn-rate alerts end to end, everything real on loopback: a control plane (SLO time
 * scale 360: an hour of windows passes in 10 s) with its admin endpoint, a sidecar reporting
 * its SLO counters over the real LRS stream (Mesh reportInterval 100ms), and a workload that
 * answers 200 or, during a burst, 500. Steady 200s fire nothing; the burst fires the page alert
 * in /api/v1/slo, in `palisade slo` and in the log; once the burst is over it resolves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { DirectorySource } from '../../control/config/source.ts';
import { ControlPlane } from '../../control/control-plane.ts';
import { AdminServer } from '../../control/admin/admin-server.ts';
import type { SloStatus } from '../../control/slo/slo-engine.ts';
import type { Sidecar } from '../../sidecar/sidecar.ts';
import { startTestSidecar } from '../helpers/sidecar.ts';
import { servicesYaml } from '../helpers/services-yaml.ts';
import { palisade } from '../helpers/policy-build.ts';
import { until } from '../helpers/until.ts';

const SLO = 'default/api.orders';

let dir: string;
let workload: Server;
let failing = false;
let cp: ControlPlane;
let admin: AdminServer;
let adminAddress: string;
let sidecar: Sidecar;
let outbound: string;
const logs: Array<Record<string, unknown>> = [];

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function call(path: string): Promise<number> {
  const i = outbound.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = request({ host: outbound.slice(0, i), port: Number(outbound.slice(i + 1)), path, headers: { host: 'api.local' }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

/** `n` requests, 10 at a time; their statuses. */
async function traffic(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i += 10) out.push(...(await Promise.all(Array.from({ length: Math.min(10, n - i) }, () => call('/orders')))));
  return out;
}

async function slo(): Promise<SloStatus> {
  const res = await fetch(`http://${adminAddress}/api/v1/slo`);
  return (await res.json()) as SloStatus;
}

const page = (s: SloStatus) => s.objectives.find((o) => o.route === SLO && o.objective === 'availability')!.alerts.find((a) => a.severity === 'page')!;

beforeAll(async () => {
  workload = createServer((req, res) => {
    req.resume();
    res.writeHead(failing ? 500 : 200).end(failing ? 'failing' : 'ok');
  });
  const workloadPort = await listen(workload);
  dir = await mkdtemp(join(tmpdir(), 'palisade-slo-e2e-'));
  const files: Record<string, string> = {
    'mesh.yaml': 'apiVersion: palisade.dev/v1\nkind: Mesh\nmetadata: { name: mesh }\nspec:\n  trustDomain: mesh.local\n  metering: { reportInterval: 100ms }\n',
    'services.yaml': servicesYaml({ name: 'web', port: 8080 }, { name: 'api', port: 9090, endpointPorts: [workloadPort] }),
    'routes.yaml': `apiVersion: palisade.dev/v1
kind: Route
metadata: { name: api }
spec:
  hosts: [api.local]
  http:
    - name: orders
      backends: [{ service: api }]
      slo: { availability: 99.9, latency: { threshold: 5s, percent: 99 } }
`,
  };
  for (const [f, text] of Object.entries(files)) {
    await writeFile(join(dir, `.${f}.tmp`), text);
    await rename(join(dir, `.${f}.tmp`), join(dir, f));
  }
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  cp = new ControlPlane({ source: new DirectorySource({ dir, debounceMs: 20 }), xdsAddress: '127.0.0.1:0', logger, sloTimeScale: 360 });
  await cp.start();
  admin = new AdminServer(cp);
  adminAddress = await admin.listen('127.0.0.1:0');
  ({ sidecar, addresses: { outbound } } = await startTestSidecar(cp.xdsAddress, workloadPort));
  await until('the route with the SLO served', async () => (await call('/orders')) === 200);
});

afterAll(async () => {
  await sidecar?.close();
  await admin?.close();
  await cp?.close();
  workload?.closeAllConnections();
  await new Promise<void>((r) => (workload ? workload.close(() => r()) : r()));
  await rm(dir, { recursive: true, force: true });
});

describe('SLO burn-rate alerts', () => {
  it('fire nothing on steady 200s', async () => {
    expect(new Set(await traffic(300))).toEqual(new Set([200]));
    const status = await until('the control plane counted the steady traffic', async () => {
      const s = await slo();
      return s.objectives.find((o) => o.objective === 'availability')!.requests >= 300 && s;
    });
    expect(status.timeScale).toBe(360);
    expect(status.objectives.map((o) => [o.route, o.objective, o.bad, o.alerts.filter((a) => a.firing).length])).toEqual([
      [SLO, 'availability', 0, 0],
      [SLO, 'latency', 0, 0],
    ]);
    expect(logs.filter((l) => l.msg === 'SLO burn-rate alert firing')).toEqual([]);
  });

  it('fire the page alert on a burst of 500s: in /api/v1/slo, in palisade slo and in the log', async () => {
    failing = true;
    const firing = await until('the page alert firing', async () => {
      await traffic(40);
      const s = await slo();
      return page(s).firing && s;
    }, 30_000);
    failing = false;
    expect(page(firing)).toMatchObject({ firing: true, rule: expect.stringMatching(/^(1h\/5m|6h\/30m)$/) });
    const availability = firing.objectives.find((o) => o.objective === 'availability')!;
    expect(availability.bad).toBeGreaterThan(0);
    expect(availability.budgetRemaining).toBeLessThan(1);
    // The latency objective is untouched by errors.
    expect(firing.objectives.find((o) => o.objective === 'latency')!.alerts.every((a) => !a.firing)).toBe(true);

    expect(logs.filter((l) => l.msg === 'SLO burn-rate alert firing' && l.severity === 'page')).toEqual([
      expect.objectContaining({ level: 40, route: SLO, objective: 'availability', severity: 'page', target: 99.9 }),
    ]);

    const table = await palisade(['slo', '--admin-address', adminAddress]);
    expect(table.code).toBe(0);
    const lines = table.stdout.split('\n');
    expect(lines[0]).toMatch(/^SLO\s+OBJECTIVE\s+TARGET\s+BUDGET LEFT\s+BURN 5m\/30m\/1h\/6h\/3d\s+ALERT$/);
    expect(lines.find((l) => l.startsWith(`${SLO}  availability`))).toMatch(/99\.9%.*PAGE \((1h\/5m|6h\/30m)\)/);
    expect(lines.find((l) => l.startsWith(`${SLO}  latency`))).toMatch(/99% < 5000ms\s.*\s-$/);
    expect(table.stdout).toContain('(time scale 360: every window is 360 times shorter than its label)');

    const json = await palisade(['slo', '--admin-address', adminAddress, '-o', 'json']);
    expect(json.code).toBe(0);
    expect(page(JSON.parse(json.stdout) as SloStatus).firing).toBe(true);

    const metrics = await (await fetch(`http://${adminAddress}/metrics`)).text();
    expect(metrics).toContain(`palisade_slo_alert_firing{route="${SLO}",objective="availability",severity="page"} 1`);
  });

  it('resolve the page alert once the burst is over, logging it once', async () => {
    await until('the page alert resolved', async () => {
      await traffic(20);
      return !page(await slo()).firing;
    }, 30_000);
    expect(logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('SLO burn-rate alert') && l.severity === 'page').map((l) => l.msg)).toEqual([
      'SLO burn-rate alert firing',
      'SLO burn-rate alert resolved',
    ]);
  });
});
