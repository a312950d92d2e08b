/**
 * bench/mtls-chain — issue 5, benchmark part: requests per second through the sidecar chain
 * with mTLS on the mesh hop, next to the same chain in plaintext and to nginx terminating TLS
 * with the same certificate, in the same run. Target: mTLS chain ≥ 0.8× the plaintext chain,
 * keep-alive.
 *
 *   node_modules/.bin/node bench/mtls-chain/run.ts
 *   ROUNDS=3 DURATION=10 node_modules/.bin/node bench/mtls-chain/run.ts
 *
 * (knobs: see environment.ts)
 *
 * Processes, all on 127.0.0.1, each its own process:
 *
 *   plain:     load ──HTTP──► sidecar A outbound ──HTTP──► sidecar B inbound ──HTTP──► upstream
 *   mtls:      load ──HTTP──► sidecar A outbound ══mTLS══► sidecar B inbound ──HTTP──► upstream
 *   nginx-tls: load ══mTLS══► nginx (B's SVID) ──HTTP──► upstream
 *
 * The workload → sidecar A hop and sidecar B → workload hop are local plaintext, as in Istio:
 * the mesh hop A → B is the one mTLS protects. Sidecars are `palisade sidecar --bootstrap`,
 * each configured by its own `palisade control` (started fresh with each chain): for plain
 * without a CA (Mesh PERMISSIVE), for mtls with a CA made once per run by
 * `palisade certs init-root` (Mesh STRICT), both sidecars enrolling with join tokens minted
 * on the control plane's admin API, so that A's cluster to B is auto-mTLS and B's inbound
 * refuses plaintext. The nginx peer (1 worker, TLS 1.3) presents an SVID for B's identity
 * (spiffe://bench.local/ns/default/sa/upstream) issued by the same CA, and requires and
 * verifies a client SVID (…/sa/bench-client) as B does; the load generator presents it.
 * The upstream is nginx (1 worker, `return 200` with a BODY_BYTES body).
 *
 * Per round, each topology in turn (order reversed every other round), started fresh: check
 * it answers 200 with the exact body, warm up WARMUP s, measure DURATION s (rps, p50 / p99,
 * failures, CPU of each process from /proc and CPU µs per request of the proxies), stop it.
 * For mtls, sidecar B's /stats must show TLS handshakes on its inbound listener.
 *
 * Results: tables on stdout, JSON in bench/results/mtls-chain-<date>.json.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { arch, cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';

import { CertsService } from '../../control/certs/certs-service.ts';
import { freePort } from '../common/free-port.ts';
import { failures, initBenchCa, startNginxUpstream, waitFor200 as waitForAnswer } from '../common/chain-setup.ts';
import { resultsDir, scenario } from '../common/report.ts';
import { runBench } from '../common/run-bench.ts';
import { makeTempDir, removeTempDir } from '../common/temp-dirs.ts';
import { fixedBody } from '../proxy/node-servers.ts';
import { CHILD_DEADLINE_MS, NGINX, NODE, REPO } from '../proxy/targets.ts';
import { Child } from '../xds-scale/child.ts';
import {
  CLIENT_SERVICE, NAMESPACE, nginxTlsProxyConf, SERVER_SERVICE, SERVER_SERVICE_PORT, sidecarBootstrap, TRUST_DOMAIN, writePalisadeConfig,
} from './configs.ts';
import { loadEnvironment, type BenchEnvironment, type TopologyName } from './environment.ts';
import type { LoadResult, LoadSpec } from '../common/http-load.ts';
import { cpuUsPerRequest, measureLoad } from '../common/measure-load.ts';

const RESULTS = resultsDir();
const PALISADE_CLI = join(REPO, 'cli', 'main.ts');

/** Other work on the box above this (% of one core) during a measurement marks it disturbed (*). */
const DISTURBED_PCT = 25;

const LABEL: Record<TopologyName, string> = {
  plain: 'sidecar chain, plaintext',
  mtls: 'sidecar chain, mTLS A→B',
  'nginx-tls': 'nginx terminating mTLS',
};

// ---------------------------------------------------------------------------
// Checks

interface TlsClient {
  key: string;
  cert: string;
  ca: string;
}

/** Polls until `url` (Host `host`) answers 200 with exactly `body`, over mutual TLS when `tls` is given (PEM file paths). */
async function waitFor200(url: string, host: string, children: Child[], timeoutMs: number, body: string | null, tls: TlsClient | null = null): Promise<void> {
  // SVIDs name a SPIFFE ID, not a host name: the chain is checked against the bundle, the name is not.
  const dispatcher = tls === null ? undefined : new Agent({
    connect: { key: readFileSync(tls.key), cert: readFileSync(tls.cert), ca: readFileSync(tls.ca), checkServerIdentity: () => undefined },
  });
  try {
    await waitForAnswer(url, { host }, children, timeoutMs, body, dispatcher);
  } finally {
    await dispatcher?.close();
  }
}

async function postJson(url: string, payload: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) });
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
}

// ---------------------------------------------------------------------------
// Processes

interface Running {
  readonly topology: TopologyName;
  readonly url: string;
  readonly host: string;
  /** Processes that do the proxying, by name (CPU is measured on each tree). */
  readonly proxies: Record<string, number>;
  /** Other processes of the topology (the control plane), measured but not counted per request. */
  readonly others: Record<string, number>;
  readonly tls: { key: string; cert: string } | null;
  /** Sidecar B's admin address (chains), for its TLS counters. */
  readonly serverAdmin: string | null;
  stop(): Promise<void>;
}

/** The CA made once per run, and the SVIDs of the nginx peer (B's identity) and of the load generator (A's). */
interface Pki {
  readonly stateDir: string;
  readonly bundle: string;
  readonly serverKey: string;
  readonly serverChain: string;
  readonly clientKey: string;
  readonly clientChain: string;
}

async function makePki(): Promise<Pki> {
  const { dir, stateDir, bundle } = initBenchCa('mtls-chain', TRUST_DOMAIN);
  // Issued before any control plane runs on this state dir, so that only one process holds it at a time.
  const certs = await CertsService.open(stateDir);
  try {
    const server = await certs.issueForProxy(NAMESPACE, SERVER_SERVICE);
    const client = await certs.issueForProxy(NAMESPACE, CLIENT_SERVICE);
    const pki: Pki = {
      stateDir, bundle,
      serverKey: join(dir, 'server-key.pem'), serverChain: join(dir, 'server-chain.pem'),
      clientKey: join(dir, 'client-key.pem'), clientChain: join(dir, 'client-chain.pem'),
    };
    writeFileSync(pki.serverKey, server.keyPem, { mode: 0o600 });
    writeFileSync(pki.serverChain, server.chainPem);
    writeFileSync(pki.clientKey, client.keyPem, { mode: 0o600 });
    writeFileSync(pki.clientChain, client.chainPem);
    return pki;
  } finally {
    await certs.close();
  }
}

async function startNginx(name: string, conf: (prefix: string, port: number) => string): Promise<{ child: Child; port: number; stop: () => Promise<void> }> {
  const dir = makeTempDir(`palisade-bench-mtls-chain-${name}-`);
  const port = await freePort();
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, conf(dir, port));
  const child = new Child(name, NGINX, ['-c', file, '-p', dir, '-g', 'daemon off;'], { deadlineMs: CHILD_DEADLINE_MS });
  return { child, port, stop: async () => { await child.stop(); removeTempDir(dir); } };
}

function spawnSidecar(name: string, bootstrap: string): Child {
  return new Child(name, NODE, [PALISADE_CLI, 'sidecar', '--bootstrap', bootstrap, '--log-level', 'warn', '--drain-timeout', '1s'], { cwd: REPO, deadlineMs: CHILD_DEADLINE_MS, echoStderr: true });
}

function sidecarAddresses(child: Child): Promise<{ outbound: string; admin: string }> {
  return child.waitForLine(`${child.name}'s addresses`, 30_000, (line) => {
    const m = /outbound (\S+), admin http:\/\/(\S+),/.exec(line);
    return m === null ? undefined : { outbound: m[1]!, admin: m[2]! };
  });
}

/** The chain: a fresh control plane (with the run's CA for mtls), sidecar B in front of the upstream, sidecar A calling it. */
async function startChain(mode: 'plain' | 'mtls', pki: Pki | null, upstreamPort: number, body: string): Promise<Running> {
  const dir = makeTempDir(`palisade-bench-mtls-chain-${mode}-`);
  const configDir = join(dir, 'config');
  // plain: no CA, so neither sidecar has a certificate and the mode has nothing to enforce (PERMISSIVE,
  // as a mesh without mTLS would say); mtls: STRICT, so B's inbound refuses plaintext.
  writePalisadeConfig(configDir, mode === 'mtls' ? 'STRICT' : 'PERMISSIVE');
  // plain: an empty state dir, so no CA (and nothing written into the repo).
  const stateDir = mode === 'mtls' ? pki!.stateDir : join(dir, 'state');
  const [xdsPort, adminPort, caPort] = [await freePort(), await freePort(), await freePort()];
  const control = new Child(`control-${mode}`, NODE, [
    PALISADE_CLI, 'control', '--config', configDir, '--state-dir', stateDir, '--debounce', '20ms',
    '--xds-address', `127.0.0.1:${xdsPort}`, '--admin-address', `127.0.0.1:${adminPort}`, '--ca-address', `127.0.0.1:${caPort}`, '--log-level', 'warn',
  ], { cwd: REPO, deadlineMs: CHILD_DEADLINE_MS, echoStderr: true });
  const sidecars: Child[] = [];
  const stop = async () => {
    await Promise.all(sidecars.map((s) => s.stop(10_000)));
    await control.stop();
    removeTempDir(dir);
  };
  try {
    const adminUrl = `http://127.0.0.1:${adminPort}`;
    await waitFor200(`${adminUrl}/ready`, `127.0.0.1:${adminPort}`, [control], 30_000, null);
    const identity = async (service: string) => {
      if (mode === 'plain') return null;
      const { status, json } = await postJson(`${adminUrl}/api/v1/certs/tokens`, { namespace: NAMESPACE, serviceAccount: service, ttl: '1h' });
      if (status !== 201 || typeof json.token !== 'string') throw new Error(`minting a join token for ${service}: HTTP ${status} ${JSON.stringify(json)}`);
      return { caAddress: `127.0.0.1:${caPort}`, trustBundle: pki!.bundle, joinToken: json.token };
    };
    const bFile = join(dir, 'b.yaml');
    const aFile = join(dir, 'a.yaml');
    writeFileSync(bFile, sidecarBootstrap(SERVER_SERVICE, `127.0.0.1:${xdsPort}`, upstreamPort, await identity(SERVER_SERVICE)));
    // A's own workload is never called; port 1 is never dialled.
    writeFileSync(aFile, sidecarBootstrap(CLIENT_SERVICE, `127.0.0.1:${xdsPort}`, 1, await identity(CLIENT_SERVICE)));
    const b = spawnSidecar(`sidecar-b-${mode}`, bFile);
    sidecars.push(b);
    const a = spawnSidecar(`sidecar-a-${mode}`, aFile);
    sidecars.push(a);
    const [bAddr, aAddr] = await Promise.all([sidecarAddresses(b), sidecarAddresses(a)]);
    await waitFor200(`http://${bAddr.admin}/ready`, bAddr.admin, [b], 30_000, null);
    await waitFor200(`http://${aAddr.admin}/ready`, aAddr.admin, [a], 30_000, null);
    const host = `${SERVER_SERVICE}:${SERVER_SERVICE_PORT}`;
    const url = `http://${aAddr.outbound}/`;
    // B's endpoint reaches A through the control plane after B is ready.
    await waitFor200(url, host, [a, b, control], 20_000, body);
    return {
      topology: mode, url, host, proxies: { 'sidecar A': a.pid, 'sidecar B': b.pid }, others: { control: control.pid },
      tls: null, serverAdmin: bAddr.admin, stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function startNginxTls(pki: Pki, upstreamPort: number, body: string): Promise<Running> {
  const { child, port, stop } = await startNginx('nginx-tls', (prefix, p) => nginxTlsProxyConf(prefix, p, upstreamPort, { key: pki.serverKey, chain: pki.serverChain, bundle: pki.bundle }));
  try {
    const url = `https://127.0.0.1:${port}/`;
    await waitFor200(url, 'upstream', [child], 10_000, body, { key: pki.clientKey, cert: pki.clientChain, ca: pki.bundle });
    return { topology: 'nginx-tls', url, host: 'upstream', proxies: { nginx: child.pid }, others: {}, tls: { key: pki.clientKey, cert: pki.clientChain }, serverAdmin: null, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Load

interface Measured {
  topology: TopologyName;
  round: number;
  load: LoadResult;
  /** % of one core over the measured window, per process (tree). */
  cpuPct: Record<string, number>;
  /** CPU of the proxy processes (sidecars A + B, or nginx) per request, µs. */
  proxyCpuUsPerReq: number;
  /** Busy CPU of the whole machine not used by the processes measured, % of one core. */
  otherCpuPct: number;
  /** Sidecar B's inbound TLS counters after the run (chains). */
  serverTls: unknown;
}

async function measure(env: BenchEnvironment, t: Running, round: number, upstreamPid: number): Promise<Measured> {
  const spec: LoadSpec = { url: t.url, headers: { host: t.host }, connections: env.connections, durationS: env.durationS, warmupS: env.warmupS, bodyBytes: env.bodyBytes, tls: t.tls };
  const w = await measureLoad(spec, { ...t.proxies, ...t.others, upstream: upstreamPid });
  let serverTls: unknown = null;
  if (t.serverAdmin !== null) {
    const res = await request(`http://${t.serverAdmin}/stats`);
    const stats = (await res.body.json()) as { listeners?: { inbound?: { tls?: unknown } } };
    serverTls = stats.listeners?.inbound?.tls ?? null;
  }
  return {
    topology: t.topology, round, load: w.load, cpuPct: w.cpuPct,
    proxyCpuUsPerReq: Math.round(cpuUsPerRequest(w, Object.keys(t.proxies))),
    otherCpuPct: w.otherCpuPct, serverTls,
  };
}

// ---------------------------------------------------------------------------
// Report

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const fmt = (v: number, digits = 2) => (Number.isFinite(v) ? v.toFixed(digits) : '—');
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '—');

function handshakes(tls: unknown): number | null {
  if (tls === null || typeof tls !== 'object') return null;
  const h = (tls as { handshakes?: unknown }).handshakes;
  return typeof h === 'number' ? h : null;
}

async function main(): Promise<number> {
  const env = loadEnvironment();
  const body = fixedBody(env.bodyBytes);
  const date = new Date().toISOString();
  const nodeVersion = spawnSync(NODE, ['--version'], { encoding: 'utf8' }).stdout.trim();
  const nginxVersion = spawnSync(NGINX, ['-v'], { encoding: 'utf8' }).stderr.trim();
  const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).stdout.trim() || null;
  const meta = {
    date, node: nodeVersion, nginx: nginxVersion, commit,
    cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30), kernel: release(), arch: arch(),
    loadavgAtStart: loadavg().map((v) => Math.round(v * 100) / 100), knobs: env,
  };
  console.log(`bench/mtls-chain: ${env.topologies.join(', ')}; ${env.rounds} rounds; ${env.connections} keep-alive connections, ${env.bodyBytes} B body, ` +
    `${env.warmupS} s warm-up + ${env.durationS} s each; node ${nodeVersion}; ${meta.cpus} × ${meta.cpuModel}; load ${meta.loadavgAtStart.join(' ')}`);

  const needsPki = env.topologies.includes('mtls') || env.topologies.includes('nginx-tls');
  const pki = needsPki ? await makePki() : null;
  const upstream = await startNginxUpstream('mtls-chain', body);
  const runs: Measured[] = [];
  const failed: { topology: TopologyName; round: number; error: string }[] = [];
  try {
    for (let round = 1; round <= env.rounds; round++) {
      const order = round % 2 === 1 ? [...env.topologies] : [...env.topologies].reverse();
      for (const topo of order) {
        let t: Running | null = null;
        try {
          t = topo === 'nginx-tls' ? await startNginxTls(pki!, upstream.port, body) : await startChain(topo, pki, upstream.port, body);
          // A measurement during which other work on the box took more than 25% of a core is
          // repeated (same processes) up to RETRIES times; the least disturbed one is kept.
          let m = await measure(env, t, round, upstream.pid);
          for (let attempt = 0; m.otherCpuPct > DISTURBED_PCT && attempt < env.retries; attempt++) {
            console.log(`round ${round} ${LABEL[topo]}: other work on the box used ${fmt(m.otherCpuPct, 0)}% of a core, again`);
            const again = await measure(env, t, round, upstream.pid);
            if (again.otherCpuPct < m.otherCpuPct) m = again;
          }
          if (topo === 'mtls' && !((handshakes(m.serverTls) ?? 0) > 0)) throw new Error(`sidecar B counted no TLS handshakes on its inbound listener: ${JSON.stringify(m.serverTls)}`);
          if (topo === 'plain' && (handshakes(m.serverTls) ?? 0) > 0) throw new Error(`the plaintext chain did TLS handshakes: ${JSON.stringify(m.serverTls)}`);
          runs.push(m);
          const l = m.load;
          console.log(`round ${round} ${LABEL[topo].padEnd(26)} ${Math.round(l.rps).toString().padStart(6)} rps, p50 ${fmt(l.p50)} ms, p99 ${fmt(l.p99)} ms, failures ${failures(l)}; ` +
            `CPU % of a core: ${Object.entries(m.cpuPct).map(([k, v]) => `${k} ${fmt(v, 0)}`).join(', ')}, other ${fmt(m.otherCpuPct, 0)}; proxies ${m.proxyCpuUsPerReq} µs/req` +
            `${handshakes(m.serverTls) === null ? '' : `; B inbound TLS handshakes ${handshakes(m.serverTls)}`}`);
        } catch (err) {
          failed.push({ topology: topo, round, error: (err as Error).message });
          console.log(`round ${round} ${LABEL[topo]}: FAILED: ${(err as Error).message}`);
        } finally {
          await t?.stop();
        }
      }
    }
  } finally {
    await upstream.stop();
  }

  const of = (topo: TopologyName) => runs.filter((r) => r.topology === topo);
  const med = (topo: TopologyName, f: (m: Measured) => number) => median(of(topo).map(f));
  const rows = env.topologies.map((topo) => `| ${LABEL[topo]} | ${fmt(med(topo, (m) => m.load.rps), 0)} | ${of(topo).map((m) => `${Math.round(m.load.rps)}${m.otherCpuPct > DISTURBED_PCT ? '*' : ''}`).join(', ')} | ` +
    `${fmt(med(topo, (m) => m.load.p50))} | ${fmt(med(topo, (m) => m.load.p99))} | ${fmt(med(topo, (m) => m.proxyCpuUsPerReq), 0)} | ${of(topo).reduce((s, m) => s + failures(m.load), 0)} |`);
  const table = [`| topology | rps (median) | rps per round | p50 ms | p99 ms | proxy CPU µs/req | failures |`, '|---|---:|---|---:|---:|---:|---:|', ...rows].join('\n');
  const rps = (topo: TopologyName) => med(topo, (m) => m.load.rps);
  const mtlsPlain = rps('mtls') / rps('plain');
  const ratios = [
    `mTLS chain / plaintext chain: ${ratio(rps('mtls'), rps('plain'))} (target ≥ 0.80×: ${Number.isFinite(mtlsPlain) ? (mtlsPlain >= 0.8 ? 'met' : 'NOT met') : '—'})`,
    `mTLS chain / nginx terminating mTLS: ${ratio(rps('mtls'), rps('nginx-tls'))}`,
    `plaintext chain / nginx terminating mTLS: ${ratio(rps('plain'), rps('nginx-tls'))}`,
    `proxy CPU per request, mTLS / plaintext chain: ${ratio(med('mtls', (m) => m.proxyCpuUsPerReq), med('plain', (m) => m.proxyCpuUsPerReq))} ` +
      `(so, CPU-bound, the mTLS chain would do ${ratio(med('plain', (m) => m.proxyCpuUsPerReq), med('mtls', (m) => m.proxyCpuUsPerReq))} the plaintext chain's rps)`,
    `(* = other work on the box used more than ${DISTURBED_PCT}% of a core during the measurement, after ${env.retries} retries)`,
  ];
  console.log(`\n${table}\n\n${ratios.join('\n')}`);
  for (const f of failed) console.log(`FAILED round ${f.round} ${f.topology}: ${f.error}`);

  mkdirSync(RESULTS, { recursive: true });
  const file = join(RESULTS, `mtls-chain-${date.replace(/[:.]/g, '-')}.json`);
  const rounds = (topo: TopologyName) => `median of ${of(topo).length} round${of(topo).length === 1 ? '' : 's'}`;
  const scenarios = [
    scenario({
      id: 'mtls-chain-rps', title: 'sidecar chain rps, mTLS on the mesh hop vs plaintext', unit: 'rps', better: 'higher',
      ours: { label: LABEL.mtls, value: rps('mtls') }, peer: { label: LABEL.plain, value: rps('plain') }, target: { op: '>=', value: 0.8 },
      note: `${rounds('mtls')}, ${env.connections} keep-alive connections`,
    }),
    scenario({
      id: 'mtls-chain-vs-nginx', title: 'sidecar chain with mTLS vs nginx terminating mTLS', unit: 'rps', better: 'higher',
      ours: { label: LABEL.mtls, value: rps('mtls') }, peer: { label: LABEL['nginx-tls'], value: rps('nginx-tls') },
      note: 'two Node proxies in series against one nginx process (no target)',
    }),
  ];
  writeFileSync(file, `${JSON.stringify({ meta, runs, failed, table, ratios, scenarios }, null, 2)}\n`);
  console.log(`\nresults: ${file}`);
  return failed.length === 0 ? 0 : 1;
}

await runBench('bench/mtls-chain', main);
