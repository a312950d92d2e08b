/**
 * Interop: the sidecar's Prometheus exposition read by Prometheus's own text parser
 * (github.com/prometheus/common/expfmt, legacy name validation), not by ours or an npm one.
 *
 * The reader is test/interop/prom-expfmt (a Go module pinned by go.sum), built here with
 * `go build`; it GETs a URL, checks that expfmt maps the Content-Type to text 0.0.4, parses
 * the body and prints every family (name, type, samples with labels and values) as one JSON
 * document, exiting 1 on any error. A real sidecar (ADS with a Quota, a workload answering 200
 * or 404) serves known traffic first, so the counts the parser reads are exact; then the
 * merged exposition of `palisade sidecar --workers 2` (the primary aggregating its workers').
 * Go is required: without it the suite fails.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sidecar, SidecarAddresses } from '../../sidecar/sidecar.ts';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.ts';
import { httpRequest } from '../helpers/http.ts';
import { until } from '../helpers/until.ts';
import { quota } from '../sidecar/quota/fixtures.ts';
import { closeServer, QuotaXds, startSidecar } from '../sidecar/quota/quota-mesh.ts';
import { GO_BUILD_TIMEOUT_MS, goBuild, requireGo } from '../helpers/go-build.ts';

const MODULE_DIR = join(dirname(fileURLToPath(import.meta.url)), 'prom-expfmt');
const CLI = join(dirname(fileURLToPath(import.meta.url)), '../../cli/main.ts');
const RUN_TIMEOUT_MS = 30_000;

interface Sample { labels: Record<string, string>; value: number; buckets: number }
interface Family { name: string; type: string; help: string; samples: Sample[] }
interface Report { contentType: string; format: string; families: Family[] }


/** Scrapes `url` with the Go reader; rejects with expfmt's error text. */
function scrape(url: string): Promise<Report> {
  return new Promise((resolve, reject) => {
    execFile(bin, [url], { timeout: RUN_TIMEOUT_MS, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`prom-expfmt ${url} failed: ${stderr.trim() || err.message}`));
      try {
        resolve(JSON.parse(stdout) as Report);
      } catch {
        reject(new Error(`prom-expfmt printed non-JSON output: ${stdout.slice(0, 500)}`));
      }
    });
  });
}

function family(r: Report, name: string): Family {
  const f = r.families.find((x) => x.name === name);
  if (f === undefined) throw new Error(`family ${name} missing; parsed: ${r.families.map((x) => x.name).join(', ')}`);
  return f;
}

/** Sum of the values of `name`'s samples whose labels include `match`. */
function sum(r: Report, name: string, match: Record<string, string> = {}): number {
  return family(r, name).samples
    .filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

let bin: string;
let binDir: string;
let workload: Server;
let xds: QuotaXds;
let sc: { sidecar: Sidecar; addresses: SidecarAddresses };
/** Set when setup fails, so each test fails with it rather than being reported skipped. */
let setupError: unknown;

/** The workload: 404 under /missing, 200 elsewhere. */
async function startWorkload(): Promise<Server> {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(req.url?.startsWith('/missing') ? 404 : 200, { 'content-type': 'text/plain', 'content-length': 2 });
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

async function setUp(): Promise<void> {
  requireGo('prom-expfmt interop');
  binDir = await mkdtemp(join(tmpdir(), 'palisade-prom-expfmt-'));
  bin = join(binDir, 'prom-expfmt');
  await goBuild(MODULE_DIR, bin);
  workload = await startWorkload();
  xds = await QuotaXds.start();
  xds.push([
    quota('limited', { tokens: 2, interval: 3600 }, { routes: [{ name: 'limited', pathPrefix: '/limited' }] }),
    // A second quota counting the same requests, never the deciding one: its checks are counted too.
    quota('roomy', { tokens: 100, interval: 3600 }, { routes: [{ name: 'limited', pathPrefix: '/limited' }] }),
  ]);
  sc = await startSidecar(xds.address, (workload.address() as AddressInfo).port);
  const inbound = (path: string) => httpRequest(sc.addresses.inbound, { method: 'GET', path, headers: { 'x-tenant': 'acme' } });
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push((await inbound(`/ok/${i}`)).status);
  for (let i = 0; i < 2; i++) statuses.push((await inbound('/missing')).status);
  for (let i = 0; i < 4; i++) statuses.push((await inbound('/limited')).status);
  // Outbound to the api cluster, whose only endpoint (port 1) refuses connections.
  statuses.push((await httpRequest(sc.addresses.outbound, { method: 'GET', path: '/', headers: { host: 'api' } })).status);
  expect(statuses).toEqual([200, 200, 200, 404, 404, 200, 200, 429, 429, 503]);
}

beforeAll(async () => {
  try {
    await setUp();
  } catch (err) {
    setupError = err;
  }
}, GO_BUILD_TIMEOUT_MS + 30_000);

function ready(): void {
  if (setupError !== undefined) throw setupError;
}

afterAll(async () => {
  await sc?.sidecar.close();
  await xds?.close();
  if (workload !== undefined) await closeServer(workload);
  if (binDir) await rm(binDir, { recursive: true, force: true });
}, 15_000);

describe('sidecar /metrics read by Prometheus expfmt', () => {
  it.each(['/metrics', '/stats/prometheus'])('%s parses with expfmt as text 0.0.4, every family typed and helped', async (path) => {
    ready();
    const r = await scrape(`http://${sc.addresses.admin}${path}`);
    expect(r.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(r.format).toMatch(/^text\/plain; version=0\.0\.4; charset=utf-8/);
    expect(r.families.length).toBeGreaterThan(10);
    for (const f of r.families) {
      expect(f.name, 'legacy metric name').toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/);
      expect(['COUNTER', 'GAUGE', 'HISTOGRAM', 'SUMMARY'], `${f.name} type`).toContain(f.type);
      expect(f.help, `${f.name} HELP`).not.toBe('');
      if (f.type === 'COUNTER') expect(f.name, 'counter names end in _total').toMatch(/_total$/);
      const sets = f.samples.map((s) => JSON.stringify(Object.entries(s.labels).sort()));
      expect(new Set(sets).size, `${f.name} label sets unique`).toBe(sets.length);
      for (const s of f.samples) {
        for (const k of Object.keys(s.labels)) expect(k, `${f.name} label name`).toMatch(/^[a-zA-Z_][a-zA-Z0-9_]*$/);
        if (f.type === 'HISTOGRAM') expect(s.buckets, `${f.name} buckets`).toBeGreaterThan(0);
      }
    }
  });

  it('counts exactly the requests sent, by listener, code class and quota decision', async () => {
    ready();
    const r = await scrape(`http://${sc.addresses.admin}/metrics`);
    expect(family(r, 'palisade_requests_total').type).toBe('COUNTER');
    expect(sum(r, 'palisade_requests_total')).toBe(10);
    expect(sum(r, 'palisade_requests_total', { listener: 'inbound', code_class: '2xx', method: 'GET' })).toBe(5);
    expect(sum(r, 'palisade_requests_total', { listener: 'inbound', code_class: '4xx', method: 'GET' })).toBe(4);
    expect(sum(r, 'palisade_requests_total', { listener: 'outbound', code_class: '5xx' })).toBe(1);
    expect(family(r, 'palisade_request_duration_seconds').type).toBe('HISTOGRAM');
    // A histogram's value here is its sample count: one observation per request.
    expect(sum(r, 'palisade_request_duration_seconds')).toBe(10);
    expect(sum(r, 'palisade_request_size_bytes')).toBe(10);
    expect(sum(r, 'palisade_response_size_bytes', { listener: 'inbound' })).toBe(9);
    expect(sum(r, 'palisade_quota_decisions_total', { quota: 'default/limited', result: 'ok' })).toBe(2);
    expect(sum(r, 'palisade_quota_decisions_total', { quota: 'default/limited', result: 'over' })).toBe(2);
    expect(sum(r, 'palisade_quota_decisions_total', { quota: 'default/roomy', result: 'ok' })).toBe(4);
    expect(sum(r, 'palisade_quota_decisions_total')).toBe(8);
    expect(sum(r, 'palisade_upstream_errors_total', { listener: 'outbound', reason: 'connect_failure' })).toBe(1);
    expect(sum(r, 'palisade_active_requests')).toBe(0);
  });

  it('gives the same request counts at /stats/prometheus as at /metrics', async () => {
    ready();
    const [a, b] = await Promise.all([scrape(`http://${sc.addresses.admin}/metrics`), scrape(`http://${sc.addresses.admin}/stats/prometheus`)]);
    for (const name of ['palisade_requests_total', 'palisade_request_duration_seconds', 'palisade_quota_decisions_total']) {
      expect(family(b, name).samples, name).toEqual(family(a, name).samples);
    }
  });
});

describe('palisade sidecar --workers 2: merged /metrics read by Prometheus expfmt', () => {
  let cp: TestControlPlane;
  let api: Server;
  let child: ChildProcess;
  let exited: Promise<unknown>;
  let dir: string;
  let ports: { outbound: number; admin: number };

  beforeAll(async () => {
    if (setupError !== undefined) return;
    api = createServer((req, res) => {
      req.resume();
      res.end('api');
    });
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    cp = await startControlPlane({ 'services.yaml': `apiVersion: palisade.dev/v1
kind: Service
metadata: { name: api }
spec:
  protocol: http
  port: 9090
  endpoints: [{ address: 127.0.0.1, port: ${(api.address() as AddressInfo).port} }]
` });
    dir = await mkdtemp(join(tmpdir(), 'palisade-prom-expfmt-workers-'));
    const file = join(dir, 'bootstrap.yaml');
    await writeFile(`${file}.tmp`, `node: { id: web-workers, service: web }
controlPlane: { address: ${cp.address} }
inbound: { address: 127.0.0.1, port: 0 }
workload: { address: 127.0.0.1:1 }
outbound: { address: 127.0.0.1, port: 0 }
admin: { address: 127.0.0.1, port: 0 }
`);
    await rename(`${file}.tmp`, file);
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
    if (api) await closeServer(api);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('parses the merged exposition, one TYPE per family, with every worker\'s requests counted once', async () => {
    ready();
    for (let i = 0; i < 12; i++) expect((await httpRequest(`127.0.0.1:${ports.outbound}`, { method: 'GET', path: `/x/${i}`, headers: { host: 'api:9090' } })).status).toBe(200);
    // Bounded wait: the workers' counts reach the primary when it asks them, at scrape time.
    const r = await until('12 requests in the merged exposition', async () => {
      const x = await scrape(`http://127.0.0.1:${ports.admin}/metrics`);
      return sum(x, 'palisade_requests_total') === 12 ? x : undefined;
    }, 10_000, 100);
    expect(r.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    // expfmt refuses a second TYPE line for a name; a family listed twice would fail the scrape.
    expect(new Set(r.families.map((f) => f.name)).size).toBe(r.families.length);
    expect(sum(r, 'palisade_requests_total', { listener: 'outbound', cluster: 'outbound|9090||api.default', code_class: '2xx', method: 'GET' })).toBe(12);
    expect(family(r, 'palisade_request_duration_seconds').type).toBe('HISTOGRAM');
    expect(sum(r, 'palisade_request_duration_seconds', { listener: 'outbound' })).toBe(12);
    for (const f of r.families) {
      // One sample per label set: the primary merged the workers' series rather than listing each.
      const sets = f.samples.map((s) => JSON.stringify(Object.entries(s.labels).sort()));
      expect(new Set(sets).size, `${f.name} label sets unique`).toBe(sets.length);
    }
    expect(sum(r, 'palisade_xds_connected')).toBe(1);
  }, 30_000);
});
