/**
 * /metrics of `palisade sidecar --workers 2`: the primary merges its workers' registries
 * (asked over IPC) with its own, so the counts are the whole sidecar's, not one process's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type TestControlPlane } from '../../helpers/control-plane.ts';
import { until } from '../../helpers/until.ts';
import { parseExposition, sumOf, valueOf } from '../telemetry/prometheus-text.ts';

const CLI = join(import.meta.dirname, '../../../cli/main.ts');

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const CONFIG = (port: number) => `apiVersion: palisade.dev/v1
kind: Service
metadata: { name: api }
spec:
  protocol: http
  port: 9090
  endpoints: [{ address: 127.0.0.1, port: ${port} }]
`;

interface WorkerStats { index: number; state: string; listeners?: { outbound: { requests: number } } }

describe('palisade sidecar --workers 2: /metrics', () => {
  let cp: TestControlPlane;
  let api: Server;
  let child: ChildProcess;
  let exited: Promise<unknown>;
  let dir: string;
  let ports: { outbound: number; admin: number };

  beforeAll(async () => {
    api = createServer((req, res) => {
      req.resume();
      res.end('api');
    });
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    cp = await startControlPlane({ 'services.yaml': CONFIG((api.address() as AddressInfo).port) });
    dir = mkdtempSync(join(tmpdir(), 'palisade-telemetry-workers-'));
    const file = join(dir, 'bootstrap.yaml');
    writeFileSync(file, `node: { id: web-workers, service: web }
controlPlane: { address: ${cp.address} }
inbound: { address: 127.0.0.1, port: 0 }
workload: { address: 127.0.0.1:1 }
outbound: { address: 127.0.0.1, port: 0 }
admin: { address: 127.0.0.1, port: 0 }
`);
    child = spawn(process.execPath, [CLI, 'sidecar', '--bootstrap', file, '--workers', '2', '--log-level', 'warn', '--drain-timeout', '2s'], { stdio: ['ignore', 'pipe', 'pipe'] });
    exited = new Promise((resolve) => child.on('exit', resolve));
    let out = '';
    ports = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sidecar did not become ready: ${out}`)), 25_000);
      child.stdout!.on('data', (d) => {
        out += d;
        const m = /outbound 127\.0\.0\.1:(\d+), admin http:\/\/127\.0\.0\.1:(\d+),[\s\S]*palisade sidecar: ready/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve({ outbound: Number(m[1]), admin: Number(m[2]) });
        }
      });
      child.on('exit', (code) => reject(new Error(`sidecar exited ${code}: ${out}`)));
    });
  }, 40_000);

  afterAll(async () => {
    if (child?.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    await cp?.close();
    if (api) await new Promise<void>((r) => api.close(() => r()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sums every worker’s request counts with the primary’s xDS state', async () => {
    for (let i = 0; i < 20; i++) expect((await get(ports.outbound, `/x/${i}`, { host: 'api:9090' })).status).toBe(200);
    const stats = await until('every worker counted its requests', async () => {
      const s = JSON.parse((await get(ports.admin, '/stats')).body) as { workers: WorkerStats[] };
      const total = s.workers.reduce((n, w) => n + (w.listeners?.outbound.requests ?? 0), 0);
      return total === 20 ? s : undefined;
    });
    const r = await get(ports.admin, '/metrics');
    expect(r.status).toBe(200);
    const f = parseExposition(r.body);
    expect(sumOf(f, 'palisade_requests_total', { listener: 'outbound', cluster: 'outbound|9090||api.default', code_class: '2xx', method: 'GET' })).toBe(20);
    expect(sumOf(f, 'palisade_request_duration_seconds', { listener: 'outbound' })).toBe(20);
    expect(valueOf(f, 'palisade_xds_connected')).toBe(1);
    expect(valueOf(f, 'palisade_xds_last_update_timestamp_seconds')).toBeGreaterThan(0);
    // Each worker's share is its own /stats count: the sum is not one process's view.
    expect(stats.workers.filter((w) => w.state === 'running')).toHaveLength(2);
  }, 30_000);
});
