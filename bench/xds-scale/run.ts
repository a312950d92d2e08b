/**
 * bench/xds-scale — issue 3: N simulated ADS streams against `palisade control`
 * and against a go-control-plane peer, one config change, time until every
 * stream has ACKed it.
 *
 *   node_modules/.bin/node bench/xds-scale/run.ts
 *   STREAMS=1000 SERVERS=gcp node_modules/.bin/node bench/xds-scale/run.ts
 *
 * (knobs: see environment.ts)
 *
 * Per fleet size N, for each server in turn:
 *
 *   start server ─ /ready ─ RSS₀ ─ xds-load -streams N ─ "ready" ─ settle ─ RSS₁, CPU₀
 *     ─ t₀ = now; change (Palisade: svc-0's Service file renamed over with new
 *       endpoint weights; peer: POST /change) ─ "change t₀" to xds-load
 *     ─ "converged" (p50/p99/max of each stream's ACK of the new EDS version − t₀) ─ CPU₁
 *
 * memory per stream = (RSS₁ − RSS₀) / N; change CPU = CPU₁ − CPU₀ (server
 * process tree, user + system). Both servers face the same Go load client
 * (bench/peers/xds-load), which decodes only what it must to stay off the
 * critical path; all three processes share the machine's cores.
 *
 * Results: a table per N with ratios palisade/peer, and JSON in
 * bench/results/xds-scale-<date>.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { arch, cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { freePort } from '../common/free-port.ts';
import { resultsDir, scenario } from '../common/report.ts';
import { runBench } from '../common/run-bench.ts';
import { makeTempDir, removeTempDir } from '../common/temp-dirs.ts';
import { Child } from './child.ts';
import { loadEnvironment, type BenchEnvironment } from './environment.ts';
import { writeMesh, writeServiceZero } from './mesh-config.ts';
import { cpuMs, machineBusyMs, peakRssKiB, rssKiB } from './proc-stats.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const PEERS = join(REPO, 'bench', 'peers');
const BIN = join(PEERS, 'bin');
const RESULTS = resultsDir();
const PALISADE_CLI = join(REPO, 'cli', 'main.ts');
const REPO_NODE = join(REPO, 'node_modules', '.bin', 'node');
const NODE = existsSync(REPO_NODE) ? REPO_NODE : process.execPath;

type ServerName = 'palisade' | 'gcp';
const LABEL: Record<ServerName, string> = { palisade: 'palisade', gcp: 'go-control-plane' };

/** Wall-clock time in Unix nanoseconds, sub-millisecond (the load client compares against its own clock). */
function wallNs(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
}

async function pollReady(url: string, child: Child, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    if (!child.isAlive) throw new Error(`${url} never ready: ${child.describe()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms (last: ${last}); ${child.describe()}`);
}

// ---------------------------------------------------------------------------
// Go programs

interface Tools {
  load: string | null;
  gcp: string | null;
  goVersion: string | null;
  note: string | null;
}

function buildGoPrograms(): Tools {
  const load = join(BIN, 'xds-load');
  const gcp = join(BIN, 'gcp-server');
  const probe = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    const why = 'no Go toolchain (`go` not on PATH)';
    const haveLoad = existsSync(load);
    const haveGcp = existsSync(gcp);
    const note = haveLoad
      ? `${why}: using prebuilt ${haveGcp ? 'xds-load and gcp-server' : 'xds-load'} from bench/peers/bin/` +
        (haveGcp ? '' : '; go-control-plane peer SKIPPED')
      : `${why}: go-control-plane peer SKIPPED, and the load client (also Go, bench/peers/xds-load) is missing, ` +
        'so nothing can be measured; install Go ≥ 1.26 (bench/peers/go.mod) or copy prebuilt binaries into bench/peers/bin/';
    console.log(note);
    return { load: haveLoad ? load : null, gcp: haveGcp ? gcp : null, goVersion: null, note };
  }
  const goVersion = probe.stdout.trim();
  console.log(`building bench/peers with ${goVersion} …`);
  const build = spawnSync('go', ['build', '-o', BIN + '/', './gcp-server', './xds-load'], {
    cwd: PEERS,
    stdio: 'inherit',
    timeout: 10 * 60_000,
  });
  if (build.status !== 0) {
    throw new Error(`go build in bench/peers failed (status ${build.status}${build.error ? `, ${build.error.message}` : ''})`);
  }
  return { load, gcp, goVersion, note: null };
}

// ---------------------------------------------------------------------------
// Servers under test

interface RunningServer {
  readonly pid: number;
  readonly xdsAddress: string;
  /** Makes the config change; resolves once it has been handed over (not once pushed). */
  change(): Promise<void>;
  stop(): Promise<void>;
}

async function startPalisade(env: BenchEnvironment): Promise<RunningServer> {
  const dir = makeTempDir('palisade-xds-scale-');
  writeMesh(dir, env.services);
  const [xdsPort, adminPort] = [await freePort(), await freePort()];
  // Node, unlike Go, does not lift its soft RLIMIT_NOFILE to the hard limit; 10k
  // connections need it. `exec` keeps the pid, so the pid measured is Node's.
  const child = new Child(
    'palisade',
    '/bin/sh',
    [
      '-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"',
      NODE, PALISADE_CLI, 'control',
      '--config', dir,
      '--xds-address', `127.0.0.1:${xdsPort}`,
      '--admin-address', `127.0.0.1:${adminPort}`,
      '--debounce', '20ms',
    ],
    { cwd: REPO, deadlineMs: (env.readyTimeoutS + env.timeoutS + 300) * 1000, echoStderr: false },
  );
  try {
    await pollReady(`http://127.0.0.1:${adminPort}/ready`, child, 60_000);
  } catch (err) {
    await child.stop();
    removeTempDir(dir);
    throw err;
  }
  let generation = 0;
  return {
    pid: child.pid,
    xdsAddress: `127.0.0.1:${xdsPort}`,
    change: async () => writeServiceZero(dir, ++generation),
    stop: async () => {
      await child.stop();
      removeTempDir(dir);
    },
  };
}

async function startGcp(env: BenchEnvironment, bin: string): Promise<RunningServer> {
  const child = new Child(
    'gcp-server',
    bin,
    ['-xds-address', '127.0.0.1:0', '-control-address', '127.0.0.1:0', '-services', String(env.services), '-node-cluster', env.nodeCluster],
    { deadlineMs: (env.readyTimeoutS + env.timeoutS + 300) * 1000 },
  );
  try {
    const ready = await child.waitForEvent('ready', 30_000);
    const control = String(ready.control);
    await pollReady(`http://${control}/ready`, child, 30_000);
    return {
      pid: child.pid,
      xdsAddress: String(ready.xds),
      change: async () => {
        const res = await fetch(`http://${control}/change`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
        const body = await res.text();
        if (res.status !== 200) throw new Error(`POST /change: HTTP ${res.status} ${body}`);
      },
      stop: () => child.stop(),
    };
  } catch (err) {
    await child.stop();
    throw err;
  }
}

// ---------------------------------------------------------------------------
// One scenario

/** CPU this orchestrator has used since `since`, ms. */
function selfMs(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
}

/**
 * The box is shared (2 cores here, other work may run): a run is disturbed when
 * processes other than the server, the load client and this script used more
 * than 50 ms and more than 5% of the machine's CPU over the change window.
 * Such a run is repeated (up to RETRIES times) and left out of the medians.
 */
const DISTURBED_MIN_MS = 50;
const DISTURBED_SHARE = 0.05;

function isDisturbed(foreignMs: number, windowMs: number): boolean {
  return foreignMs > DISTURBED_MIN_MS && foreignMs > DISTURBED_SHARE * windowMs * cpus().length;
}

interface ScenarioResult {
  server: ServerName;
  streams: number;
  run: number;
  ok: boolean;
  error?: string;
  rssBeforeKiB?: number;
  rssAfterKiB?: number;
  peakRssKiB?: number;
  kibPerStream?: number;
  fleetReadyMs?: number;
  connectCpuMs?: number;
  changeCpuMs?: number;
  clientChangeCpuMs?: number;
  /** Machine CPU busy during the change window not used by server or client: other load on the box. */
  foreignChangeCpuMs?: number;
  foreignConnectCpuMs?: number;
  /** Wall time from the change to the converged report, ms. */
  changeWindowMs?: number;
  /** Other load took more than DISTURBED_SHARE of the box during the change window. */
  disturbed?: boolean;
  /** Counted in the table (not disturbed, or the last attempt). */
  kept?: boolean;
  converged?: number;
  timedOut?: boolean;
  failedStreams?: number;
  minMs?: number;
  p50Ms?: number;
  p90Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  meanMs?: number;
  pushesAfterChange?: unknown;
  /** Encoded size of the last response per type seen by stream 0 (bytes): what each server sends. */
  responseBytes?: unknown;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' ? v : undefined;
}

async function runScenario(
  env: BenchEnvironment, name: ServerName, n: number, run: number, loadBin: string, start: () => Promise<RunningServer>,
): Promise<ScenarioResult> {
  const result: ScenarioResult = { server: name, streams: n, run, ok: false };
  let server: RunningServer | undefined;
  let load: Child | undefined;
  try {
    server = await start();
    await sleep(500);
    const rss0 = rssKiB(server.pid);
    const cpu0 = cpuMs(server.pid);
    const machine0 = machineBusyMs();
    const self0 = process.cpuUsage();
    load = new Child(
      'xds-load',
      loadBin,
      [
        '-address', server.xdsAddress,
        '-streams', String(n),
        '-streams-per-conn', String(env.streamsPerConn),
        '-node-cluster', env.nodeCluster,
        '-ready-timeout', `${env.readyTimeoutS}s`,
        '-timeout', `${env.timeoutS}s`,
        ...(env.delta ? ['-delta'] : []),
      ],
      { stdin: true, deadlineMs: (env.readyTimeoutS + env.timeoutS + 120) * 1000, echoStderr: true },
    );
    const ready = await load.waitForEvent('ready', (env.readyTimeoutS + 10) * 1000);
    result.fleetReadyMs = num(ready.elapsedMs);
    result.responseBytes = ready.stream0Bytes;
    result.connectCpuMs = Math.round(cpuMs(server.pid) - cpu0);
    result.foreignConnectCpuMs = Math.round(machineBusyMs() - machine0 - result.connectCpuMs - cpuMs(load.pid) - selfMs(self0));
    await sleep(env.settleMs);
    const rss1 = rssKiB(server.pid);
    result.rssBeforeKiB = rss0;
    result.rssAfterKiB = rss1;
    result.kibPerStream = Math.round(((rss1 - rss0) / n) * 10) / 10;

    const serverCpu = cpuMs(server.pid);
    const clientCpu = cpuMs(load.pid);
    const machineCpu = machineBusyMs();
    const selfCpu = process.cpuUsage();
    const changeStart = performance.now();
    const t0 = wallNs();
    await server.change();
    load.write(`change ${t0}\n`);
    const conv = await load.waitForEvent('converged', (env.timeoutS + 15) * 1000);
    result.changeCpuMs = Math.round(cpuMs(server.pid) - serverCpu);
    result.clientChangeCpuMs = Math.round(cpuMs(load.pid) - clientCpu);
    result.foreignChangeCpuMs = Math.round(machineBusyMs() - machineCpu - result.changeCpuMs - result.clientChangeCpuMs - selfMs(selfCpu));
    result.changeWindowMs = Math.round(performance.now() - changeStart);
    result.disturbed = isDisturbed(result.foreignChangeCpuMs, result.changeWindowMs);
    result.peakRssKiB = peakRssKiB(server.pid);
    result.converged = num(conv.converged);
    result.timedOut = conv.timedOut === true;
    result.failedStreams = num(conv.failed);
    result.minMs = num(conv.minMs);
    result.p50Ms = num(conv.p50Ms);
    result.p90Ms = num(conv.p90Ms);
    result.p99Ms = num(conv.p99Ms);
    result.maxMs = num(conv.maxMs);
    result.meanMs = num(conv.meanMs);
    result.pushesAfterChange = conv.pushes;
    result.ok = !result.timedOut && result.converged === n;
    if (!result.ok) result.error = `${result.converged ?? 0}/${n} streams converged within ${env.timeoutS}s`;
    await Promise.race([load.exited, sleep(20_000)]);
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    await load?.stop(3000);
    await server?.stop();
  }
  return result;
}

// ---------------------------------------------------------------------------
// Report

function fmt(v: number | undefined, digits = 1): string {
  return v === undefined ? '—' : v.toFixed(digits);
}

function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || b === 0 ? '—' : `${(a / b).toFixed(2)}×`;
}

const ROWS: [string, keyof ScenarioResult, number, number][] = [
  // label, field, decimals, divisor
  ['first stream ACKed (ms)', 'minMs', 1, 1],
  ['convergence p50 (ms)', 'p50Ms', 1, 1],
  ['convergence p99 (ms)', 'p99Ms', 1, 1],
  ['convergence max (ms)', 'maxMs', 1, 1],
  ['memory per stream (KiB)', 'kibPerStream', 1, 1],
  ['server CPU for the change (ms)', 'changeCpuMs', 0, 1],
  ['server CPU to connect the fleet (ms)', 'connectCpuMs', 0, 1],
  ['fleet connected + ACKed (ms)', 'fleetReadyMs', 0, 1],
  ['server RSS with the fleet (MiB)', 'rssAfterKiB', 1, 1024],
  ['load client CPU for the change (ms)', 'clientChangeCpuMs', 0, 1],
  ['other CPU on the box during the change (ms)', 'foreignChangeCpuMs', 0, 1],
];

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1]! + s[mid]!) / 2;
}

/** Median over the runs that measured it (a run that failed late still has its memory figures). */
function cell(runs: ScenarioResult[], key: keyof ScenarioResult, divisor: number): number | undefined {
  const vals = runs.map((r) => r[key]).filter((v): v is number => typeof v === 'number').map((v) => v / divisor);
  return median(vals);
}

function printTable(n: number, results: ScenarioResult[], env: BenchEnvironment): string {
  const pal = results.filter((r) => r.server === 'palisade' && r.streams === n && r.kept === true);
  const gcp = results.filter((r) => r.server === 'gcp' && r.streams === n && r.kept === true);
  const runs = env.runs > 1 ? `, median of ${env.runs} runs` : '';
  const lines = [
    `| N = ${n} (${env.delta ? 'delta' : 'SotW'}, ${env.streamsPerConn} stream/conn, ${env.services} services${runs}) | palisade | go-control-plane | palisade / gcp |`,
    '|---|---:|---:|---:|',
  ];
  for (const [label, key, digits, divisor] of ROWS) {
    const a = cell(pal, key, divisor);
    const b = cell(gcp, key, divisor);
    lines.push(`| ${label} | ${fmt(a, digits)} | ${fmt(b, digits)} | ${key === 'foreignChangeCpuMs' ? '' : ratio(a, b)} |`);
  }
  const p99s = (rs: ScenarioResult[]): string =>
    rs.map((r) => (r.p99Ms === undefined ? 'failed' : r.p99Ms.toFixed(0)) + (r.disturbed === true ? '*' : '')).join(', ');
  if (env.runs > 1) lines.push(`| p99 of each run (ms; * = disturbed, kept) | ${p99s(pal)} | ${p99s(gcp)} | |`);
  const text = lines.join('\n');
  console.log(`\n${text}`);
  for (const r of [...pal, ...gcp]) {
    if (r.error !== undefined) console.log(`  ${LABEL[r.server]} run ${r.run}: ${r.error}`);
  }
  return text;
}

function meshModuleVersions(): Record<string, string> {
  const out: Record<string, string> = {};
  try {
    const gomod = readFileSync(join(PEERS, 'go.mod'), 'utf8');
    for (const m of gomod.matchAll(/^\s*(github\.com\/envoyproxy\/go-control-plane(?:\/envoy)?|google\.golang\.org\/grpc) (v\S+)/gm)) {
      out[m[1]!] = m[2]!;
    }
  } catch {
    // no go.mod
  }
  return out;
}

function gitCommit(): string | null {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

// ---------------------------------------------------------------------------

async function main(): Promise<number> {
  const env = loadEnvironment();
  const tools = buildGoPrograms();
  if (tools.load === null) return 1;

  const nodeVersion = spawnSync(NODE, ['--version'], { encoding: 'utf8' }).stdout.trim();
  const servers: ServerName[] = [];
  for (const s of env.servers) {
    if (s === 'palisade' && !existsSync(PALISADE_CLI)) {
      console.log('palisade SKIPPED: cli/main.ts does not exist yet');
    } else if (s === 'gcp' && tools.gcp === null) {
      console.log('go-control-plane peer SKIPPED: no gcp-server binary (no Go toolchain)');
    } else {
      servers.push(s);
    }
  }
  const meta = {
    date: new Date().toISOString(),
    node: nodeVersion,
    go: tools.goVersion,
    goModules: meshModuleVersions(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    arch: arch(),
    commit: gitCommit(),
    knobs: env,
    note: tools.note,
  };
  console.log(`xds-scale: N = ${env.streams.join(', ')}; servers: ${servers.map((s) => LABEL[s]).join(', ') || 'none'}; ` +
    `node ${nodeVersion}; ${meta.cpus} × ${meta.cpuModel}`);

  const results: ScenarioResult[] = [];
  const tables: string[] = [];
  for (const n of env.streams) {
    for (let run = 1; run <= env.runs; run++) {
      // Alternate who goes first so that drift on the box does not favour one side.
      const order = run % 2 === 1 ? servers : [...servers].reverse();
      for (const s of order) {
        console.log(`\n== ${LABEL[s]}, ${n} streams${env.runs > 1 ? `, run ${run}/${env.runs}` : ''}`);
        const start = s === 'palisade' ? () => startPalisade(env) : () => startGcp(env, tools.gcp!);
        for (let attempt = 0; ; attempt++) {
          const r = await runScenario(env, s, n, run, tools.load, start);
          results.push(r);
          const last = r.disturbed !== true || attempt >= env.retries;
          r.kept = last;
          console.log(r.error === undefined
            ? `   p50 ${fmt(r.p50Ms)} ms, p99 ${fmt(r.p99Ms)} ms, max ${fmt(r.maxMs)} ms; ${fmt(r.kibPerStream)} KiB/stream; ` +
              `change CPU ${r.changeCpuMs} ms; other load ${r.foreignChangeCpuMs} ms${r.disturbed === true ? ' (disturbed' + (last ? ', kept: out of retries)' : ', again)') : ''}`
            : `   FAILED: ${r.error}`);
          if (last) break;
        }
      }
    }
    tables.push(printTable(n, results, env));
  }

  const kept = (s: ServerName, n: number) => results.filter((r) => r.server === s && r.streams === n && r.kept === true);
  const mode = `${env.delta ? 'delta' : 'SotW'}${env.runs > 1 ? `, median of ${env.runs} runs` : ''}`;
  const scenarios = env.streams.flatMap((n) => [
    scenario({
      id: `xds-scale-p99-${n}`, title: `config push to ${n} ADS streams, p99 convergence`, unit: 'ms', better: 'lower',
      ours: { label: LABEL.palisade, value: cell(kept('palisade', n), 'p99Ms', 1) }, peer: { label: LABEL.gcp, value: cell(kept('gcp', n), 'p99Ms', 1) },
      target: { op: '<=', value: 1 }, note: mode,
    }),
    scenario({
      id: `xds-scale-memory-${n}`, title: `memory per ADS stream at ${n} streams`, unit: 'KiB', better: 'lower',
      ours: { label: LABEL.palisade, value: cell(kept('palisade', n), 'kibPerStream', 1) }, peer: { label: LABEL.gcp, value: cell(kept('gcp', n), 'kibPerStream', 1) },
      note: 'target under 50 kB per stream at 10k (absolute)',
    }),
  ]);

  mkdirSync(RESULTS, { recursive: true });
  const file = join(RESULTS, `xds-scale-${meta.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ meta, results, tables, scenarios }, null, 2) + '\n');
  console.log(`\nresults: ${file}`);
  return results.some((r) => r.error !== undefined) ? 1 : 0;
}

await runBench('xds-scale', main);
