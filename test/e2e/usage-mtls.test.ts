/**
 * Usage reports over mTLS: in a mesh with a CA the xDS port requires client certificates and
 * authorizes every stream by its SVID; the sidecar's LRS stream uses the ADS stream's address
 * and credentials (its enrolled SVID), so its reports arrive on `controlPlane.loadReports`
 * under its own node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ClusterStats } from '../../xds/gen/envoy/config/endpoint/v3/load_report_pb.js';
import type { Sidecar, SidecarAddresses } from '../../sidecar/sidecar.ts';
import { usageMetricName } from '../../sidecar/telemetry/load-reporter.ts';
import { httpRequest } from '../helpers/http.ts';
import { startMesh, type TestMesh } from '../helpers/mesh.ts';
import { until } from '../helpers/until.ts';

const SERVICE = 'apiVersion: palisade.dev/v1\nkind: Service\nmetadata: { name: web }\nspec: { port: 8080 }\n';

let mesh: TestMesh;
let workload: Server;
let sc: { sidecar: Sidecar; addresses: SidecarAddresses };
const reports: Array<{ node: string; stats: ClusterStats[] }> = [];

beforeAll(async () => {
  workload = createServer((_q, r) => r.end('web'));
  const port = await new Promise<number>((resolve) => workload.listen(0, '127.0.0.1', () => resolve((workload.address() as AddressInfo).port)));
  // PERMISSIVE: the test client calls the inbound listener in plaintext; xDS and LRS stay mTLS.
  mesh = await startMesh(SERVICE, { mode: 'PERMISSIVE' });
  mesh.cp.loadReports.on('report', (node, stats) => reports.push({ node: node.id, stats }));
  sc = await mesh.startSidecar('web', port);
}, 60_000);

afterAll(async () => {
  await mesh?.close();
  if (workload?.listening) await new Promise<void>((r) => workload.close(() => r()));
});

describe('usage reports in an mTLS mesh', () => {
  it('arrive over the SVID-authenticated LRS stream under the sidecar node', async () => {
    await until('the LRS stream is up', () => sc.sidecar.loadReporter.connected, 15_000);
    await until('the mesh is permissive on the sidecar', () => sc.sidecar.meshMode === 'PERMISSIVE');
    for (let i = 0; i < 2; i++) expect((await httpRequest(sc.addresses.inbound, { method: 'GET', path: '/x', headers: { 'x-tenant-id': 'acme' } })).status).toBe(200);
    // The Mesh's default interval is 10s: report now.
    sc.sidecar.loadReporter.flush();
    const name = usageMetricName('acme', '-', 'requests');
    const got = await until('the report', () => reports.find((r) => r.stats.some((c) => c.upstreamLocalityStats.some((l) => l.loadMetricStats.some((m) => m.metricName === name)))));
    expect(got.node).toBe('web-1');
    const metric = got.stats.flatMap((c) => c.upstreamLocalityStats.flatMap((l) => l.loadMetricStats)).find((m) => m.metricName === name)!;
    expect(metric.totalMetricValue).toBe(2);
    expect(sc.sidecar.identity?.spiffeId).toBe('spiffe://mesh.local/ns/default/sa/web');
  });
});
