/**
 * bench/quota — issue 7, benchmark part: what one quota check costs the sidecar, LOCAL (in
 * memory) and GLOBAL (Redis), next to a Redis round trip measured on the same server in the
 * same run. Target: a global check ≤ 1.5× one Redis round trip.
 *
 *   node_modules/.bin/node bench/quota/run.ts
 *   SAMPLES=9 CHECKS=50000 node_modules/.bin/node bench/quota/run.ts
 *
 * (knobs: see environment.ts)
 *
 * The checks go through the sidecar's own QuotaGate.gate() — what the inbound listener calls
 * for every request — with a Quota pushed to it as the control plane would (apply()): one
 * descriptor (`x-tenant`), one limit of 10^9 tokens per second (so nothing is ever refused),
 * TENANTS distinct tenants taken in turn (so TENANTS buckets). A GLOBAL check is one
 * rate-limiter-flexible `consume` on RateLimiterRedis through the sidecar's RedisStore (one
 * ioredis client, no offline queue); a LOCAL one is RateLimiterMemory. Each check builds the
 * descriptor, the bucket key, takes the token and sets the RateLimit headers on a response
 * stub, as for a real request; only the socket is absent.
 *
 * Peers, on the same redis-server (started by this bench on a free port, no persistence):
 *   - `redis-benchmark -q --csv -t ping|incr -n REDIS_REQUESTS -c 1`: one client, one
 *     request at a time, so 1 / rps is one round trip (C client, the floor);
 *   - the same with `-c CONCURRENCY`, next to the checks made CONCURRENCY at a time;
 *   - a raw ioredis `INCR` loop in this process (the Node client's floor, no limiter).
 * Each sample runs every case in turn (the order rotates per sample); figures are medians.
 * µs per check = wall time / checks (sequential: the latency of one; concurrent: the cost
 * per check when CONCURRENCY are in flight). Before the figures count, the gate's own
 * counters must show every check allowed, none limited and (GLOBAL) no store error: a
 * GLOBAL check that fell back to the local bucket would otherwise pass for a fast one.
 *
 * Both stores are configured as a bootstrap's `quota.redis` would be (parseQuotaBootstrap). The
 * plain GLOBAL cases set `lease: false`: every check is one round trip. The leased cases run
 * the same GLOBAL checks through a second RedisStore with `quota.redis.lease` left out, so at
 * its defaults, on (maxFraction 0.01, maxTokens 1000; keyPrefix `palisade:quota-leased:`):
 * most checks take a token from the sidecar's lease of the bucket (sidecar/quota/lease.ts) and
 * make no round trip.
 *
 * Results: a table on stdout, JSON in bench/results/quota-<date>.json.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { arch, cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { RateLimiterRedis } from 'rate-limiter-flexible';

import type { DownstreamRequest, DownstreamResponse } from '../../sidecar/listeners/http-listener.ts';
import { LEASE_DEFAULTS } from '../../sidecar/quota/lease.ts';
import { parseQuotaBootstrap, type QuotaRedisBootstrap } from '../../sidecar/quota/quota-bootstrap.ts';
import { QuotaGate } from '../../sidecar/quota/quota-gate.ts';
import { RedisStore } from '../../sidecar/quota/redis-store.ts';
import { Quota_Scope, QuotaSchema, type Quota } from '../../xds/gen/palisade/v1/quota_pb.js';
import { freePort } from '../common/free-port.ts';
import { median, resultsDir, scenario } from '../common/report.ts';
import { runBench } from '../common/run-bench.ts';
import { makeTempDir } from '../common/temp-dirs.ts';
import { CHILD_DEADLINE_MS, NODE, REPO } from '../proxy/targets.ts';
import { Child } from '../xds-scale/child.ts';
import { loadEnvironment, type BenchEnvironment } from './environment.ts';

const RESULTS = resultsDir();
const NAMESPACE = 'default';
const SERVICE = 'bench';

// ---------------------------------------------------------------------------
// Redis

interface RedisServer {
  readonly port: number;
  readonly child: Child;
}

async function startRedis(): Promise<RedisServer> {
  const dir = makeTempDir('palisade-bench-quota-redis-');
  const port = await freePort();
  const child = new Child('redis-server', 'redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no',
  ], { deadlineMs: CHILD_DEADLINE_MS, echoStderr: true });
  await child.waitForLine('redis-server ready', 15_000, (l) => (l.includes('Ready to accept connections') ? true : undefined));
  return { port, child };
}

/** A `quota.redis` bootstrap section, validated as the sidecar validates it. */
function quotaRedis(section: Record<string, unknown>): QuotaRedisBootstrap {
  const problems: string[] = [];
  const parsed = parseQuotaBootstrap({ redis: section }, (path, msg) => void problems.push(`${path}: ${msg}`));
  if (parsed.redis === null) throw new Error(`bench quota.redis: ${problems.join('; ')}`);
  return parsed.redis;
}

/**
 * The Lua script RateLimiterRedis runs for every consume (set NX + incrby + pttl), taken from
 * an instance (rate-limiter-flexible does not export it), so the peers can run exactly what a
 * GLOBAL check asks of Redis. Null if this version keeps it elsewhere.
 */
function limiterScript(client: Redis): string | null {
  const script = (new RateLimiterRedis({ storeClient: client, points: 1, duration: 1 }) as unknown as { _incrTtlLuaScript?: unknown })._incrTtlLuaScript;
  return typeof script === 'string' ? script : null;
}

/** The script's KEYS and ARGV as the bench's limit sends them: 1 point, 1 s window, 10^9 points. */
const SCRIPT_ARGS = ['1', 'bench:script', '1', '1', '1000000000', '1'];

/** One redis-benchmark run: µs per request (1 / rps), and its own average latency (ms). */
function redisBenchmark(port: number, test: 'ping' | 'incr' | { eval: string }, n: number, clients: number): { usPerRequest: number; rps: number; avgLatencyMs: number | null } {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-n', String(n), '-c', String(clients), '-q', '--csv',
    ...(typeof test === 'string' ? ['-t', test] : ['EVAL', test.eval, ...SCRIPT_ARGS])];
  const r = spawnSync('redis-benchmark', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`redis-benchmark ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  // "test","rps","avg_latency_ms",...; ping gives PING_INLINE and PING_MBULK: take PING_MBULK (the RESP form clients send).
  // Quoted CSV fields (an EVAL row's first field is the command, commas and all).
  const rows = r.stdout.trim().split('\n').map((l) => [...l.matchAll(/"((?:[^"]|"")*)"/g)].map((m) => m[1]!.replace(/""/g, '"')));
  const header = rows[0]!;
  const want = test === 'ping' ? 'PING_MBULK' : test === 'incr' ? 'INCR' : null;
  const row = want === null ? rows[1] : rows.find((x) => x[0] === want);
  if (row === undefined) throw new Error(`redis-benchmark printed no ${want ?? 'EVAL'} row: ${r.stdout}`);
  const rps = Number(row[header.indexOf('rps')]);
  const avg = header.indexOf('avg_latency_ms');
  return { usPerRequest: 1e6 / rps, rps, avgLatencyMs: avg === -1 ? null : Number(row[avg]) };
}

// ---------------------------------------------------------------------------
// The sidecar's quota gate

function benchQuota(scope: Quota_Scope): Quota {
  return create(QuotaSchema, {
    name: `${NAMESPACE}/bench-${scope === Quota_Scope.GLOBAL ? 'global' : 'local'}`,
    services: [SERVICE],
    descriptors: [{ key: 'tenant', value: { source: { case: 'header', value: 'x-tenant' } } }],
    limits: [{ name: 'per-tenant', tokens: 1_000_000_000n, interval: { seconds: 1n } }],
    scope,
  });
}

/** A request as the inbound listener hands it to the gate: method, url, headers (no socket: the quota reads none of it). */
function fakeRequests(tenants: number): DownstreamRequest[] {
  return Array.from({ length: tenants }, (_, i) => ({
    method: 'GET', url: '/api/v1/orders/42', headers: { host: 'bench', 'x-tenant': `tenant-${i}` }, destroyed: false,
  }) as unknown as DownstreamRequest);
}

/**
 * A response stub, one per check as each request has its own (the gate adds the rate-limit
 * headers to it); a refusal, were there one, is counted in `counts`.
 */
function fakeResponse(counts: { refused: number }): DownstreamResponse {
  const res = {
    headersSent: false,
    setHeader() { return res; },
    writeHead() { counts.refused++; return res; },
    end() { return res; },
  };
  return res as unknown as DownstreamResponse;
}

interface Gate {
  readonly gate: QuotaGate;
  /** Refusals answered by the gate (there must be none). */
  readonly res: { refused: number };
  /** One check; resolves when the gate calls next(). */
  check(req: DownstreamRequest): Promise<void>;
}

function makeGate(scope: Quota_Scope, store: RedisStore | null): Gate {
  const gate = new QuotaGate({ service: SERVICE, namespace: NAMESPACE, logger: pino({ level: 'silent' }), store });
  gate.apply([benchQuota(scope)]);
  if (gate.config.quotas.length !== 1) throw new Error(`the gate did not take the bench quota: ${JSON.stringify(gate.stats())}`);
  const counts = { refused: 0 };
  return { gate, res: counts, check: (req) => new Promise<void>((resolve) => gate.gate(req, fakeResponse(counts), resolve)) };
}

interface LimitStats {
  allowed: number;
  limited: number;
  shadowLimited: number;
  storeErrors: number;
  fallbackUsed: number;
}

function limitStats(g: Gate): LimitStats {
  const s = g.gate.stats() as { quotas: Record<string, { limits: Record<string, LimitStats> }> };
  const q = Object.values(s.quotas)[0];
  const l = q === undefined ? undefined : Object.values(q.limits)[0];
  if (l === undefined) throw new Error(`no limit in the gate's stats: ${JSON.stringify(s)}`);
  return l;
}

// ---------------------------------------------------------------------------
// Timing

/** Runs `n` calls of `fn` sequentially (concurrency 1) or `concurrency` at a time; µs per call. */
async function timeCalls(n: number, concurrency: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) await fn(i);
  };
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return Number(process.hrtime.bigint() - t0) / 1000 / n;
}

const CASES = [
  'redis-benchmark PING, 1 client',
  'redis-benchmark INCR, 1 client',
  'redis-benchmark INCR, concurrent',
  'redis-benchmark limiter script, 1 client',
  'ioredis INCR, sequential',
  'ioredis limiter script, sequential',
  'ioredis INCR, concurrent',
  'local check, sequential',
  'local check, concurrent',
  'global check, sequential',
  'global check, concurrent',
  'global check, leased, sequential',
  'global check, leased, concurrent',
] as const;
type CaseName = (typeof CASES)[number];

const fmt = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : '—');

async function main(): Promise<number> {
  const env: BenchEnvironment = loadEnvironment();
  const date = new Date().toISOString();
  const nodeVersion = spawnSync(NODE, ['--version'], { encoding: 'utf8' }).stdout.trim();
  const redisVersion = /v=(\S+)/.exec(spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? 'unknown';
  const meta = {
    date, node: nodeVersion, redis: redisVersion,
    commit: spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).stdout.trim() || null,
    cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30), kernel: release(), arch: arch(),
    loadavgAtStart: loadavg().map((v) => Math.round(v * 100) / 100), knobs: env,
  };
  console.log(`bench/quota: ${env.samples} samples × ${env.checks} checks per case, concurrency ${env.concurrency}, ${env.tenants} tenants; ` +
    `redis-benchmark -n ${env.redisRequests}; node ${nodeVersion} (this process); redis ${redisVersion}; ${meta.cpus} × ${meta.cpuModel}; load ${meta.loadavgAtStart.join(' ')}`);

  const redis = await startRedis();
  const logger = pino({ level: 'silent' });
  // Plain: `lease: false` (one round trip per check); leased: the bootstrap's default.
  const store = await RedisStore.connect(quotaRedis({ address: `127.0.0.1:${redis.port}`, timeout: env.timeoutMs, lease: false }), logger);
  const leasedStore = await RedisStore.connect(quotaRedis({ address: `127.0.0.1:${redis.port}`, timeout: env.timeoutMs, keyPrefix: 'palisade:quota-leased:' }), logger);
  if (JSON.stringify(leasedStore.config.lease) !== JSON.stringify(LEASE_DEFAULTS)) throw new Error(`the leased cases expect quota.redis.lease on by default, got ${JSON.stringify(leasedStore.config.lease)}`);
  const raw = new Redis({ host: '127.0.0.1', port: redis.port, enableOfflineQueue: true, lazyConnect: false });
  const samples: Record<CaseName, number[]> = Object.fromEntries(CASES.map((c) => [c, []])) as unknown as Record<CaseName, number[]>;
  const checks: Record<string, LimitStats> = {};
  try {
    await raw.ping();
    for (let i = 0; store.client.status !== 'ready' || leasedStore.client.status !== 'ready'; i++) {
      if (i > 100) throw new Error(`the sidecar's quota store did not connect to redis on port ${redis.port}: ${store.client.status}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const local = makeGate(Quota_Scope.LOCAL, null);
    const global = makeGate(Quota_Scope.GLOBAL, store);
    const leased = makeGate(Quota_Scope.GLOBAL, leasedStore);
    const reqs = fakeRequests(env.tenants);
    const pick = (i: number) => reqs[i % reqs.length]!;
    // Warm-up: JIT, every bucket created, the Lua script loaded on the server.
    await timeCalls(Math.min(env.checks, 5000), 1, (i) => local.check(pick(i)));
    await timeCalls(Math.min(env.checks, 5000), 1, (i) => global.check(pick(i)));
    await timeCalls(Math.min(env.checks, 5000), 1, (i) => leased.check(pick(i)));
    await timeCalls(Math.min(env.checks, 5000), 1, (i) => raw.incr(`bench:incr:${i % env.tenants}`));
    const script = limiterScript(raw);
    if (script === null) console.log('rate-limiter-flexible keeps its Lua script elsewhere in this version: the limiter-script cases are skipped');
    const scriptKey = (i: number) => `bench:script:${i % env.tenants}`;

    const run: Record<CaseName, () => Promise<number>> = {
      'redis-benchmark PING, 1 client': async () => redisBenchmark(redis.port, 'ping', env.redisRequests, 1).usPerRequest,
      'redis-benchmark INCR, 1 client': async () => redisBenchmark(redis.port, 'incr', env.redisRequests, 1).usPerRequest,
      'redis-benchmark INCR, concurrent': async () => redisBenchmark(redis.port, 'incr', env.redisRequests, env.concurrency).usPerRequest,
      'redis-benchmark limiter script, 1 client': async () => (script === null ? NaN : redisBenchmark(redis.port, { eval: script }, env.redisRequests, 1).usPerRequest),
      'ioredis INCR, sequential': () => timeCalls(env.checks, 1, (i) => raw.incr(`bench:incr:${i % env.tenants}`)),
      'ioredis limiter script, sequential': async () => (script === null ? NaN : timeCalls(env.checks, 1, (i) => raw.eval(script, 1, scriptKey(i), ...SCRIPT_ARGS.slice(2)))),
      'ioredis INCR, concurrent': () => timeCalls(env.checks, env.concurrency, (i) => raw.incr(`bench:incr:${i % env.tenants}`)),
      'local check, sequential': () => timeCalls(env.checks, 1, (i) => local.check(pick(i))),
      'local check, concurrent': () => timeCalls(env.checks, env.concurrency, (i) => local.check(pick(i))),
      'global check, sequential': () => timeCalls(env.checks, 1, (i) => global.check(pick(i))),
      'global check, concurrent': () => timeCalls(env.checks, env.concurrency, (i) => global.check(pick(i))),
      'global check, leased, sequential': () => timeCalls(env.checks, 1, (i) => leased.check(pick(i))),
      'global check, leased, concurrent': () => timeCalls(env.checks, env.concurrency, (i) => leased.check(pick(i))),
    };
    for (let s = 0; s < env.samples; s++) {
      const order = CASES.map((_, i) => CASES[(i + s) % CASES.length]!);
      const line: string[] = [];
      for (const c of order) {
        const us = await run[c]();
        samples[c].push(us);
        line.push(`${c} ${fmt(us)}`);
      }
      console.log(`sample ${s + 1}/${env.samples} (µs per check or request): ${line.join('; ')}`);
    }
    checks.local = limitStats(local);
    checks.global = limitStats(global);
    checks.leased = limitStats(leased);
    local.gate.close();
    global.gate.close();
    leased.gate.close();
    for (const [name, g] of [['local', local], ['global', global], ['leased', leased]] as const) {
      const st = checks[name]!;
      if (st.limited !== 0 || st.storeErrors !== 0 || st.fallbackUsed !== 0 || g.res.refused !== 0) {
        throw new Error(`the ${name} gate did not admit every check from its own buckets: ${JSON.stringify(st)}, refusals ${g.res.refused}`);
      }
    }
  } finally {
    raw.disconnect();
    store.close();
    leasedStore.close();
    await redis.child.stop();
  }

  const med = (c: CaseName) => median(samples[c]);
  const rtt = med('redis-benchmark INCR, 1 client');
  const table = [
    '| case | µs per check / request (median) | samples | × redis-benchmark INCR (same concurrency) |',
    '|---|---:|---|---:|',
    ...CASES.map((c) => {
      const peer = c.endsWith('concurrent') ? med('redis-benchmark INCR, concurrent') : rtt;
      return `| ${c}${c.endsWith('concurrent') ? ` (${env.concurrency})` : ''} | ${fmt(med(c), 2)} | ${samples[c].map((v) => fmt(v)).join(', ')} | ${fmt(med(c) / peer, 2)}× |`;
    }),
  ].join('\n');
  const globalRatio = med('global check, sequential') / rtt;
  const ratios = [
    `global check / one Redis round trip (redis-benchmark INCR, 1 client): ${fmt(globalRatio, 2)}× (target ≤ 1.50×: ${Number.isFinite(globalRatio) ? (globalRatio <= 1.5 ? 'met' : 'NOT met') : '—'})`,
    `global check with leases / one Redis round trip: ${fmt(med('global check, leased, sequential') / rtt, 2)}× sequential; ${fmt(med('global check, leased, concurrent') / med('redis-benchmark INCR, concurrent'), 2)}× redis-benchmark INCR at ${env.concurrency} in flight`,
    `global check / raw ioredis INCR (the Node client's floor): ${fmt(med('global check, sequential') / med('ioredis INCR, sequential'), 2)}×`,
    `local check: ${fmt(med('local check, sequential'), 2)} µs sequential, ${fmt(med('local check, concurrent'), 2)} µs per check at ${env.concurrency} in flight`,
    `gate counters: local ${JSON.stringify(checks.local)}, global ${JSON.stringify(checks.global)}, leased ${JSON.stringify(checks.leased)}`,
  ];
  console.log(`\n${table}\n\n${ratios.join('\n')}`);

  const n = `median of ${env.samples} samples of ${env.checks} checks`;
  const scenarios = [
    scenario({
      id: 'quota-global-vs-redis-rtt', title: 'GLOBAL quota check, leases off, vs one Redis round trip', unit: 'µs', better: 'lower',
      ours: { label: 'global check, leases off (QuotaGate, Redis, quota.redis.lease: false)', value: med('global check, sequential') },
      peer: { label: 'redis-benchmark INCR, 1 client', value: rtt }, target: { op: '<=', value: 1.5 },
      note: `${n}, one at a time; redis-benchmark PING ${fmt(med('redis-benchmark PING, 1 client'), 1)} µs`,
    }),
    scenario({
      id: 'quota-global-leased-vs-redis-rtt', title: 'GLOBAL quota check (default: token leases) vs one Redis round trip', unit: 'µs', better: 'lower',
      ours: { label: 'global check with leases (QuotaGate, Redis, quota.redis.lease defaults)', value: med('global check, leased, sequential') },
      peer: { label: 'redis-benchmark INCR, 1 client', value: rtt }, target: { op: '<=', value: 1.5 },
      note: `${n}, one at a time; at ${env.concurrency} in flight ${fmt(med('global check, leased, concurrent'), 2)} µs per check vs redis-benchmark INCR ${fmt(med('redis-benchmark INCR, concurrent'), 2)} µs`,
    }),
    scenario({
      id: 'quota-global-concurrent', title: `GLOBAL quota check, leases off, vs Redis INCR, ${env.concurrency} in flight`, unit: 'µs', better: 'lower',
      ours: { label: 'global check, leases off (QuotaGate, Redis, quota.redis.lease: false)', value: med('global check, concurrent') },
      peer: { label: `redis-benchmark INCR, ${env.concurrency} clients`, value: med('redis-benchmark INCR, concurrent') },
      note: `${n}; µs per check = wall time / checks (no target)`,
    }),
    scenario({
      id: 'quota-global-vs-ioredis', title: 'GLOBAL quota check, leases off, vs a raw ioredis INCR', unit: 'µs', better: 'lower',
      ours: { label: 'global check, leases off (QuotaGate, Redis, quota.redis.lease: false)', value: med('global check, sequential') },
      peer: { label: 'ioredis INCR, same process', value: med('ioredis INCR, sequential') },
      note: `the Node client floor: what rate-limiter-flexible and the gate add (no target); ioredis running the limiter's script ${fmt(med('ioredis limiter script, sequential'), 1)} µs`,
    }),
    scenario({
      id: 'quota-global-vs-script-rtt', title: "GLOBAL quota check, leases off, vs one round trip of the limiter's Lua script", unit: 'µs', better: 'lower',
      ours: { label: 'global check, leases off (QuotaGate, Redis, quota.redis.lease: false)', value: med('global check, sequential') },
      peer: { label: 'redis-benchmark EVAL of the script, 1 client', value: med('redis-benchmark limiter script, 1 client') },
      note: 'what a GLOBAL check asks of Redis (set NX, incrby, pttl in one script), from the C client (no target)',
    }),
    scenario({
      id: 'quota-local-vs-redis-rtt', title: 'LOCAL quota check vs one Redis round trip', unit: 'µs', better: 'lower',
      ours: { label: 'local check (QuotaGate, memory)', value: med('local check, sequential') },
      peer: { label: 'redis-benchmark INCR, 1 client', value: rtt },
      note: `${n}, one at a time (no target)`,
    }),
  ];

  mkdirSync(RESULTS, { recursive: true });
  const file = join(RESULTS, `quota-${date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ meta, samples, checks, table, ratios, scenarios }, null, 2)}\n`);
  console.log(`\nresults: ${file}`);
  return 0;
}

await runBench('bench/quota', main);
