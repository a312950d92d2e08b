/**
 * bench/tls — issue 5, benchmark part: TLS handshakes per second, full and resumed, server-auth
 * and mutual TLS, of a Palisade listener next to nginx terminating TLS with the same
 * certificate, in the same run. Target: full handshakes ≥ 0.7× nginx's.
 *
 *   node bench/tls/run.ts
 *   CONCURRENCY=32 DURATION=5 AUTH=server node bench/tls/run.ts
 *   PROFILE=1 node bench/tls/run.ts
 *
 * (knobs: see environment.ts)
 *
 * Certificates: an in-memory ECDSA P-256 CA made with certs/ (root, intermediate), a server
 * SVID (spiffe://bench.local/ns/bench/sa/server) and a client SVID (…/sa/client), as PEM files
 * in a temporary directory (certs.ts).
 *
 * Processes, all on 127.0.0.1, each its own process:
 *
 *   load generator (load.ts: node:tls, CONCURRENCY loops of connect → GET → close) ──► target
 *
 * targets: Palisade (server.ts: an HttpListener, HTTP/1.1, `tls: { key, cert: chain }`, and for
 * mutual TLS `ca: bundle`) and nginx (1 worker, same files, TLS 1.3, shared session cache and
 * tickets, `return 200 "ok"`; `ssl_verify_client on` for mutual TLS).
 *
 * Per auth mode (server, mutual) and target: start it, check a TLS GET answers 200 "ok", then per
 * resume mode (full, resumed): warm up WARMUP s, measure DURATION s (handshakes/s, p50 / p99
 * of connect + request + response, errors and bad answers, sessions actually resumed; CPU of
 * the target (process tree, /proc), of the load generator and of the whole machine), stop it.
 * The load generator shares the 2-vCPU box with the target, and a TLS 1.3 client does more work
 * per full handshake than the server (it verifies the chain and the CertificateVerify): one
 * client core cannot saturate one server core. So besides handshakes/s the table gives the
 * target's CPU per handshake and its inverse, handshakes per core; a row whose load generator
 * used ≥ 90% of a core while the target used less is load-bound (*), and when either side of the
 * full-handshake comparison is, the 0.7× verdict is judged on handshakes per core. (CPU per
 * handshake below saturation is, if anything, higher than at saturation, where more work is
 * done per event-loop wake-up.)
 *
 * The Palisade server prints its listener's TLS counters on exit (serverCounters in the JSON);
 * its `refused` count is the load generator's last connections, cut when it exits.
 *
 * Results: a table on stdout, JSON in bench/results/tls-<date>.json (with PROFILE=1 also the
 * Palisade server's .cpuprofile of a full-handshake, server-auth run next to it).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { arch, cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { freePort } from '../common/free-port.ts';
import { resultsDir, scenario } from '../common/report.ts';
import { runBench } from '../common/run-bench.ts';
import { makeTempDir, removeTempDir } from '../common/temp-dirs.ts';
import { Child } from '../xds-scale/child.ts';
import { cpuMs, machineBusyMs } from '../xds-scale/proc-stats.ts';
import { writeBenchCerts, type CertFiles } from './certs.ts';
import { nginxTlsConf } from './configs.ts';
import { loadEnvironment, type AuthMode, type BenchEnvironment, type ResumeMode, type TargetName } from './environment.ts';
import type { TlsLoadResult, TlsLoadSpec } from './load.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const HERE = join(REPO, 'bench', 'tls');
const RESULTS = resultsDir();
const REPO_NODE = join(REPO, 'node_modules', '.bin', 'node');
const NODE = existsSync(REPO_NODE) ? REPO_NODE : process.execPath;
const NGINX = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
const CHILD_DEADLINE_MS = 60 * 60_000;

interface Running {
  readonly target: TargetName;
  readonly auth: AuthMode;
  readonly port: number;
  readonly pid: number;
  readonly child: Child;
  stop(): Promise<void>;
}

interface Measured {
  load: TlsLoadResult;
  targetCpuPct: number;
  loadCpuPct: number;
  machineCpuPct: number;
  /** Busy CPU of the machine not used by the target or the load generator, % of one core. */
  otherCpuPct: number;
  /** Target CPU time per completed connection, µs. */
  targetCpuUsPerHandshake: number | null;
  windowStart: number;
  windowEnd: number;
}

interface Row {
  target: TargetName;
  auth: AuthMode;
  resume: ResumeMode;
  ok: boolean;
  error?: string;
  measured?: Measured;
  /** handshakes/s ÷ nginx's in the same auth and resume mode. */
  ratio?: number | null;
  /** nginx's CPU µs per handshake ÷ this target's (> 1: cheaper than nginx) = the ratio of handshakes one core of each can do. */
  cpuRatio?: number | null;
  /** The load generator, not the target, set the pace: it used ≥ 90% of a core while the target used < 90%. */
  loadBound?: boolean;
}

// ---------------------------------------------------------------------------
// Targets

/** One TLS GET as the load generator does it; resolves with the answer text. */
function probe(port: number, certs: CertFiles, auth: AuthMode): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({
      host: '127.0.0.1', port, ca: readFileSync(certs.bundle), minVersion: 'TLSv1.3',
      checkServerIdentity: () => undefined,
      ...(auth === 'mutual' ? { key: readFileSync(certs.clientKey), cert: readFileSync(certs.clientChain) } : {}),
    }, () => socket.write('GET / HTTP/1.1\r\nhost: bench.local\r\nconnection: close\r\n\r\n'));
    socket.setTimeout(2000, () => socket.destroy(new Error('timed out')));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
}

async function waitForOk(port: number, certs: CertFiles, auth: AuthMode, child: Child): Promise<void> {
  const until = Date.now() + 15_000;
  let last = '';
  while (Date.now() < until) {
    if (!child.isAlive) throw new Error(`127.0.0.1:${port} never answered: ${child.describe()}`);
    try {
      const text = await probe(port, certs, auth);
      if (text.startsWith('HTTP/1.1 200 ') && text.endsWith('\r\n\r\nok')) return;
      last = JSON.stringify(text.slice(0, 120));
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`127.0.0.1:${port} did not answer 200 "ok" within 15 s (last: ${last}); ${child.describe()}`);
}

async function startTarget(target: TargetName, auth: AuthMode, certs: CertFiles, nodeFlags: string[] = []): Promise<Running> {
  if (target === 'palisade') {
    const args = [...nodeFlags, join(HERE, 'server.ts'), certs.serverKey, certs.serverChain, ...(auth === 'mutual' ? [certs.bundle] : [])];
    const child = new Child(`palisade-${auth}`, NODE, args, { cwd: REPO, deadlineMs: CHILD_DEADLINE_MS, echoStderr: true });
    try {
      const ready = await child.waitForEvent('ready', 30_000);
      const port = Number(ready.port);
      await waitForOk(port, certs, auth, child);
      return { target, auth, port, pid: child.pid, child, stop: () => child.stop(10_000) };
    } catch (err) {
      await child.stop();
      throw err;
    }
  }
  const dir = makeTempDir(`palisade-bench-tls-nginx-${auth}-`);
  const port = await freePort();
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, nginxTlsConf(dir, port, { key: certs.serverKey, chain: certs.serverChain, bundle: auth === 'mutual' ? certs.bundle : null }));
  // `daemon off` with the master process: the worker is its child (CPU is summed over the tree).
  const child = new Child(`nginx-${auth}`, NGINX, ['-c', file, '-p', dir, '-g', 'daemon off;'], { deadlineMs: CHILD_DEADLINE_MS });
  const stop = async (): Promise<void> => {
    await child.stop();
    removeTempDir(dir);
  };
  try {
    await waitForOk(port, certs, auth, child);
    return { target, auth, port, pid: child.pid, child, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Load

async function runLoad(env: BenchEnvironment, certs: CertFiles, running: Running, resume: ResumeMode): Promise<Measured> {
  const spec: TlsLoadSpec = {
    port: running.port, concurrency: env.concurrency, durationS: env.durationS, warmupS: env.warmupS, resume,
    bundleFile: certs.bundle,
    clientKeyFile: running.auth === 'mutual' ? certs.clientKey : null,
    clientChainFile: running.auth === 'mutual' ? certs.clientChain : null,
    groups: env.groups,
    serverId: certs.serverId,
  };
  const gen = new Child('load', NODE, [join(HERE, 'load.ts'), JSON.stringify(spec)], {
    cwd: REPO, deadlineMs: (env.warmupS + env.durationS) * 3000 + 60_000, echoStderr: true,
  });
  try {
    await gen.waitForEvent('measure', (env.warmupS + 30) * 1000);
    const t0 = performance.now();
    const c0 = { target: cpuMs(running.pid), load: cpuMs(gen.pid), machine: machineBusyMs() };
    const result = (await gen.waitForEvent('result', env.durationS * 3000 + 30_000)) as unknown as TlsLoadResult;
    const t1 = performance.now();
    const windowMs = t1 - t0;
    const pct = (ms: number): number => Math.round((ms / windowMs) * 1000) / 10;
    const targetMs = cpuMs(running.pid) - c0.target;
    const m: Measured = {
      load: result,
      targetCpuPct: pct(targetMs),
      loadCpuPct: pct(cpuMs(gen.pid) - c0.load),
      machineCpuPct: pct(machineBusyMs() - c0.machine),
      otherCpuPct: 0,
      targetCpuUsPerHandshake: result.ok === 0 ? null : Math.round((targetMs * 1000) / ((result.handshakesPerS * windowMs) / 1000)),
      windowStart: Math.round(t0),
      windowEnd: Math.round(t1),
    };
    m.otherCpuPct = Math.round((m.machineCpuPct - m.targetCpuPct - m.loadCpuPct) * 10) / 10;
    await gen.exited;
    return m;
  } finally {
    await gen.stop(2000);
  }
}

// ---------------------------------------------------------------------------
// Report

function fmt(v: number | null | undefined, digits = 2): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits);
}

function pad(s: string, n: number, left = false): string {
  return left ? s.padEnd(n) : s.padStart(n);
}

function table(rows: Row[]): string {
  const head = ['auth', 'session', 'target', 'hs/s', '× nginx', 'p50 ms', 'p99 ms', 'errors', 'resumed', 'target CPU', 'µs CPU/hs', 'hs/s/core', '× nginx', 'load CPU', 'other CPU'];
  const widths = [7, 8, 9, 8, 8, 7, 7, 7, 8, 10, 9, 9, 8, 9, 9];
  const lines = [head.map((h, i) => pad(h, widths[i]!, i < 3)).join(' ')];
  for (const r of rows) {
    const m = r.measured;
    const l = m?.load;
    const cells = r.ok && m !== undefined && l !== undefined
      ? [
        r.auth, r.resume, r.target,
        fmt(l.handshakesPerS, 0), fmt(r.ratio), fmt(l.p50), fmt(l.p99),
        String(l.errors + l.badAnswers), l.ok === 0 ? '—' : `${Math.round((l.resumed / l.ok) * 100)}%`,
        `${fmt(m.targetCpuPct, 0)}%`, fmt(m.targetCpuUsPerHandshake, 0), fmt(m.targetCpuUsPerHandshake === null ? null : 1e6 / m.targetCpuUsPerHandshake, 0), fmt(r.cpuRatio),
        `${fmt(m.loadCpuPct, 0)}%${r.loadBound === true ? '*' : ''}`, `${fmt(m.otherCpuPct, 0)}%`,
      ]
      : [r.auth, r.resume, r.target, `FAILED: ${r.error ?? ''}`];
    lines.push(cells.map((c, i) => (i < widths.length && cells.length === widths.length ? pad(c, widths[i]!, i < 3) : i < 3 ? pad(c, widths[i]!, true) : c)).join(' '));
  }
  return lines.join('\n');
}

function versionOf(cmd: string, args: string[]): string | null {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) return null;
  return `${r.stdout}${r.stderr}`.split('\n').find((l) => l.trim() !== '')?.trim() ?? null;
}

// ---------------------------------------------------------------------------

async function profilePalisade(env: BenchEnvironment, certs: CertFiles, stamp: string): Promise<string> {
  const profDir = makeTempDir('palisade-bench-tls-cpuprof-');
  const running = await startTarget('palisade', 'server', certs, ['--cpu-prof', '--cpu-prof-dir', profDir]);
  let m: Measured;
  try {
    m = await runLoad(env, certs, running, 'full');
  } finally {
    await running.stop();
  }
  console.log(`   profiled run: ${fmt(m.load.handshakesPerS, 0)} hs/s, target CPU ${fmt(m.targetCpuPct, 0)}%`);
  const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`no .cpuprofile in ${profDir} after the server exited`);
  mkdirSync(RESULTS, { recursive: true });
  const kept = join(RESULTS, `tls-${stamp}-palisade.cpuprofile`);
  copyFileSync(join(profDir, files[0]!), kept);
  removeTempDir(profDir);
  return kept;
}

async function main(): Promise<number> {
  const env = loadEnvironment();
  const date = new Date().toISOString();
  const stamp = date.replace(/[:.]/g, '-');
  const nodeVersion = spawnSync(NODE, ['--version'], { encoding: 'utf8' }).stdout.trim();
  const nodeOpenssl = spawnSync(NODE, ['-p', 'process.versions.openssl'], { encoding: 'utf8' }).stdout.trim();
  const meta = {
    date,
    node: nodeVersion,
    nodeOpenssl,
    nginx: versionOf(NGINX, ['-V']),
    nginxOpenssl: spawnSync(NGINX, ['-V'], { encoding: 'utf8' }).stderr.split('\n').find((l) => l.includes('OpenSSL'))?.trim() ?? null,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    kernel: release(),
    arch: arch(),
    loadavgAtStart: loadavg().map((v) => Math.round(v * 100) / 100),
    commit: spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).stdout.trim() || null,
    knobs: env,
    certificates: 'ECDSA P-256 root → intermediate → leaf (certs/ CertificateAuthority); server chain = leaf + intermediate',
  };
  console.log(`bench/tls: targets ${env.targets.join(', ')}; auth ${env.auth.join(', ')}; ${env.resume.join(', ')}; ${env.concurrency} loops, ` +
    `${env.warmupS} s warm-up + ${env.durationS} s each; client groups ${env.groups ?? 'default'}; node ${nodeVersion} (OpenSSL ${nodeOpenssl}); ` +
    `${meta.nginxOpenssl ?? 'nginx'}; ${meta.cpus} × ${meta.cpuModel}; load ${meta.loadavgAtStart.join(' ')}`);

  const certDir = makeTempDir('palisade-bench-tls-certs-');
  const certs = await writeBenchCerts(certDir);
  const rows: Row[] = [];
  const serverCounters: Record<string, unknown> = {};

  for (const auth of env.auth) {
    for (const target of env.targets) {
      console.log(`\n== ${target}, ${auth === 'server' ? 'server-auth TLS' : 'mutual TLS'}`);
      let running: Running | null = null;
      try {
        running = await startTarget(target, auth, certs);
        for (const resume of env.resume) {
          try {
            const m = await runLoad(env, certs, running, resume);
            const l = m.load;
            console.log(`   ${resume}: ${fmt(l.handshakesPerS, 0)} hs/s, p50 ${fmt(l.p50)} ms, p99 ${fmt(l.p99)} ms, errors ${l.errors}, bad answers ${l.badAnswers}, ` +
              `resumed ${l.resumed}/${l.ok}; ${l.protocol ?? '?'} ${l.cipher ?? '?'} ${l.group ?? '?'}; CPU: target ${fmt(m.targetCpuPct, 0)}% ` +
              `(${fmt(m.targetCpuUsPerHandshake, 0)} µs/hs), load ${fmt(m.loadCpuPct, 0)}%, other ${fmt(m.otherCpuPct, 0)}%` +
              (l.errorSamples.length > 0 ? `; e.g. ${l.errorSamples.join(' | ')}` : ''));
            rows.push({ target, auth, resume, ok: true, measured: m });
          } catch (err) {
            rows.push({ target, auth, resume, ok: false, error: (err as Error).message });
            console.log(`   ${resume}: FAILED: ${(err as Error).message}`);
          }
        }
      } catch (err) {
        for (const resume of env.resume) rows.push({ target, auth, resume, ok: false, error: (err as Error).message });
        console.log(`   FAILED: ${(err as Error).message}`);
      } finally {
        if (running !== null) {
          await running.stop();
          if (target === 'palisade') {
            serverCounters[`palisade-${auth}`] = await running.child.waitForEvent('stats', 1000).then((e) => e.tls, () => null);
          }
        }
      }
    }
  }

  for (const r of rows) {
    const peer = rows.find((p) => p.target === 'nginx' && p.auth === r.auth && p.resume === r.resume && p.ok);
    const mine = r.measured;
    const theirs = peer?.measured;
    r.ratio = mine !== undefined && theirs !== undefined && theirs.load.handshakesPerS > 0 ? Math.round((mine.load.handshakesPerS / theirs.load.handshakesPerS) * 100) / 100 : null;
    r.cpuRatio = mine?.targetCpuUsPerHandshake != null && theirs?.targetCpuUsPerHandshake != null && mine.targetCpuUsPerHandshake > 0
      ? Math.round((theirs.targetCpuUsPerHandshake / mine.targetCpuUsPerHandshake) * 100) / 100 : null;
    r.loadBound = mine !== undefined && mine.loadCpuPct >= 90 && mine.targetCpuPct < 90;
  }

  console.log('\nTLS handshakes (one connection = handshake + GET + 200 "ok" + close); "× nginx" = handshakes/s ÷ nginx\'s; ' +
    '"hs/s/core" = 1 s ÷ the target\'s CPU per handshake (what one core of it would do), its "× nginx" the same ratio; CPU in % of one core; ' +
    '* = load-bound (the load generator used ≥ 90% of a core, the target less: hs/s is the client\'s pace, hs/s/core the target\'s capacity)\n');
  console.log(table(rows));

  // When either side of the comparison was load-bound, hs/s compares the client's pace, not the
  // servers: the verdict then rests on handshakes per core (CPU per handshake).
  const verdicts: Array<{ auth: AuthMode; ratio: number | null; cpuRatio: number | null; basis: 'hs/s' | 'hs/s/core'; pass: boolean | null }> = [];
  for (const auth of env.auth) {
    const r = rows.find((x) => x.target === 'palisade' && x.auth === auth && x.resume === 'full');
    const n = rows.find((x) => x.target === 'nginx' && x.auth === auth && x.resume === 'full');
    if (r === undefined) continue;
    const basis = r.loadBound === true || n?.loadBound === true ? 'hs/s/core' : 'hs/s';
    const used = basis === 'hs/s' ? r.ratio ?? null : r.cpuRatio ?? null;
    verdicts.push({ auth, ratio: r.ratio ?? null, cpuRatio: r.cpuRatio ?? null, basis, pass: used === null ? null : used >= 0.7 });
  }
  if (verdicts.length > 0) {
    console.log('');
    for (const v of verdicts) {
      const used = v.basis === 'hs/s' ? v.ratio : v.cpuRatio;
      console.log(`target: Palisade full handshakes ≥ 0.7× nginx (${v.auth === 'server' ? 'server-auth' : 'mutual'}): hs/s ${fmt(v.ratio)}×, per core ${fmt(v.cpuRatio)}×; ` +
        `judged on ${v.basis}${v.basis === 'hs/s/core' ? ' (load-bound)' : ''}: ${used === null ? 'not measured' : v.pass === true ? 'MET' : `NOT MET (${fmt((0.7 - used) * 100, 0)} points short)`}`);
    }
  }

  let profileFile: string | null = null;
  if (env.profile) {
    console.log('\n== Palisade, server-auth, full handshakes, under --cpu-prof');
    try {
      profileFile = await profilePalisade(env, certs, stamp);
      console.log(`   profile: ${profileFile}`);
    } catch (err) {
      console.log(`   FAILED: ${(err as Error).message}`);
    }
  }

  mkdirSync(RESULTS, { recursive: true });
  const out = join(RESULTS, `tls-${stamp}.json`);
  // Handshakes per core (1 s ÷ the target's CPU per handshake): the figure that holds when the
  // load generator, not the server, sets the pace on a small machine.
  const perCore = (r: Row | undefined) => (r?.measured?.targetCpuUsPerHandshake ? 1e6 / r.measured.targetCpuUsPerHandshake : null);
  const scenarios = env.auth.flatMap((auth) => env.resume.map((resume) => {
    const mine = rows.find((x) => x.target === 'palisade' && x.auth === auth && x.resume === resume);
    const theirs = rows.find((x) => x.target === 'nginx' && x.auth === auth && x.resume === resume);
    const what = `${auth === 'server' ? 'server-auth' : 'mutual'} TLS, ${resume === 'full' ? 'full' : 'resumed'} handshakes`;
    return scenario({
      id: `tls-${auth}-${resume}`, title: `${what}, per core`, unit: 'hs/s per core', better: 'higher',
      ours: { label: 'palisade listener', value: perCore(mine) }, peer: { label: 'nginx 1 worker', value: perCore(theirs) },
      target: resume === 'full' ? { op: '>=', value: 0.7 } : null,
      note: `handshakes/s ${fmt(mine?.measured?.load.handshakesPerS ?? NaN, 0)} vs ${fmt(theirs?.measured?.load.handshakesPerS ?? NaN, 0)} (${mine?.ratio ?? '—'}×)${mine?.loadBound === true ? ', load-bound' : ''}`,
    });
  }));
  writeFileSync(out, `${JSON.stringify({ meta, rows, verdicts, serverCounters, profileFile, scenarios }, null, 2)}\n`);
  console.log(`\nresults: ${out}`);
  return rows.every((r) => r.ok && (r.measured?.load.errors ?? 0) + (r.measured?.load.badAnswers ?? 0) === 0) ? 0 : 1;
}

await runBench('bench/tls', main);
