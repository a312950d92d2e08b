/**
 * bench/authz, micro part: the per-request cost of a policy decision in-process, next to Go
 * OPA (`opa bench`) evaluating the same Rego and data.json on the same input, in the same run.
 *
 * Each case is a closure timed in a plain loop: warm-up (~3 samples' worth, so V8 and the
 * wasm tiers settle), then SAMPLES timed samples of N calls each (N sized so that one sample
 * lasts ~SAMPLE_MS), ns/op = sample time / N; the median is reported with min and max.
 * Every result goes into a sink so that no call can be optimised away.
 *
 *   eval           PolicyEngine.evaluate(input): opa-wasm stringifies the input into the
 *                  instance's memory, opa_eval, JSON.parse of the result, toDecision
 *   build+eval     buildInput(description) + evaluate: a cache miss in the sidecar
 *   cache hit      DecisionCache.keyFor(revision, input) + get: the sidecar's hit
 *   build+hit      buildInput + keyFor + get
 *   authorize hit  Authorizer.authorize on a CompiledPolicy with a warm cache, the cache keys
 *                  read from a fake mTLS request (requestKeys), as the inbound filter does:
 *                  all a hit costs in the filter
 *
 * The Go peer: `opa bench --format json --metrics=false --benchmem --count C -b <policy dir>
 * -i input.json data.envoy.authz.allow`, once with the default in-memory store and once with
 * --optimize-store-for-read-speed (data kept as AST values); the faster is the reference. opa prepares the query once and parses input.json once
 * (rego.EvalParsedInput): its ns/op is evaluation only, with no JSON in or out, whereas
 * the wasm `eval` case includes serialising the input and parsing the result.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';

import { readBundle } from '../../policies/bundle.ts';
import { DecisionCache } from '../../policies/decision-cache.ts';
import { PolicyEngine } from '../../policies/evaluator.ts';
import { buildInput } from '../../policies/input.ts';
import { findOpa } from '../../policies/opa-binary.ts';
import type { CompiledPolicy } from '../../sidecar/authz/authz-config.ts';
import { descriptionKeys } from '../../sidecar/authz/description-keys.ts';
import { Authorizer } from '../../sidecar/authz/authorize.ts';
import { describeRequest, requestKeys } from '../../sidecar/authz/request-description.ts';
import type { DownstreamRequest } from '../../sidecar/listeners/http-listener.ts';
import { CACHE_KEYS, CALLER, ENTRYPOINT, PATH, PATH_ONLY, QUERY, requestDescription, UNKNOWN_CALLER, type BuiltPolicy } from './policy.ts';

const execFileP = promisify(execFile);

export interface CaseResult {
  name: string;
  /** Median ns per call over the samples. */
  nsPerOp: number;
  min: number;
  max: number;
  samples: number[];
  opsPerSample: number;
}

export interface OpaBenchResult {
  command: string;
  /** ns/op of each `--count` repeat, and their median. */
  nsPerOp: number[];
  median: number;
  allocsPerOp: number[];
  bytesPerOp: number[];
}

export interface MicroResult {
  cases: CaseResult[];
  /** `opa bench` with the default in-memory store, and with --optimize-store-for-read-speed. */
  opa: OpaBenchResult;
  opaReadOptimized: OpaBenchResult;
  inputBytes: number;
  dataBytes: number;
}

let sink: unknown = null;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function timeLoop(fn: () => unknown, n: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) sink = fn();
  return Number(process.hrtime.bigint() - t0);
}

/** Warm-up, then `samples` samples of ~sampleMs each; ns/op per sample. */
export function measureCase(name: string, fn: () => unknown, samples: number, sampleMs: number): CaseResult {
  // Calibrate: double n until a loop takes ≥ 20 ms.
  let n = 1;
  let ns = timeLoop(fn, n);
  while (ns < 20e6) {
    n *= 2;
    ns = timeLoop(fn, n);
  }
  const perSample = Math.max(1, Math.round((sampleMs * 1e6 * n) / ns));
  timeLoop(fn, perSample * 3); // warm-up
  const out: number[] = [];
  for (let s = 0; s < samples; s++) out.push(timeLoop(fn, perSample) / perSample);
  const round = (v: number) => Math.round(v * 10) / 10;
  return { name, nsPerOp: round(median(out)), min: round(Math.min(...out)), max: round(Math.max(...out)), samples: out.map(round), opsPerSample: perSample };
}

/** A node:http request on an mTLS connection from CALLER, as much of it as describeRequest reads. */
function fakeRequest(): DownstreamRequest {
  const d = requestDescription();
  const headers = { ...(d.headers as Record<string, string>) };
  const socket = {
    encrypted: true, remoteAddress: d.sourceAddress, remotePort: d.sourcePort, localAddress: d.destinationAddress, localPort: d.destinationPort,
    getPeerCertificate: () => ({ subjectaltname: `URI:${CALLER}` }),
  } as unknown as Socket;
  return { method: 'GET', url: PATH, headers, rawHeaders: Object.entries(headers).flat(), httpVersion: '1.1', socket } as unknown as DownstreamRequest;
}

/** `opa bench` (Go OPA) on the policy directory and `input`. */
export async function opaBench(policy: BuiltPolicy, inputFile: string, count: number, readOptimized: boolean): Promise<OpaBenchResult> {
  const args = ['bench', '--format', 'json', '--metrics=false', '--benchmem', '--count', String(count), ...(readOptimized ? ['--optimize-store-for-read-speed'] : []), '-b', policy.dir, '-i', inputFile, QUERY];
  const { stdout } = await execFileP(findOpa(), args, { maxBuffer: 16 << 20 });
  // One JSON object per repeat, concatenated.
  const runs: { N: number; T: number; MemAllocs: number; MemBytes: number }[] = [];
  for (const part of stdout.split(/\n(?=\{)/)) if (part.trim() !== '') runs.push(JSON.parse(part) as (typeof runs)[number]);
  const nsPerOp = runs.map((r) => Math.round((r.T / r.N) * 10) / 10);
  return {
    command: `opa ${args.join(' ')}`,
    nsPerOp, median: median(nsPerOp),
    allocsPerOp: runs.map((r) => Math.round(r.MemAllocs / r.N)), bytesPerOp: runs.map((r) => Math.round(r.MemBytes / r.N)),
  };
}

/** Go OPA's answer for `input` (`opa eval`), to check both evaluators agree before timing them. */
async function opaEval(policy: BuiltPolicy, inputFile: string): Promise<unknown> {
  const { stdout } = await execFileP(findOpa(), ['eval', '-f', 'json', '-b', policy.dir, '-i', inputFile, QUERY]);
  return (JSON.parse(stdout) as { result?: { expressions: { value: unknown }[] }[] }).result?.[0]?.expressions[0]?.value;
}

export async function runMicro(policy: BuiltPolicy, workDir: string, samples: number, sampleMs: number, opaCount: number, log: (line: string) => void): Promise<MicroResult> {
  const bundle = readBundle(policy.bundle);
  const engine = await PolicyEngine.create(bundle, { entrypoint: ENTRYPOINT });
  const description = requestDescription();
  const input = buildInput(description);
  const inputFile = join(workDir, 'input.json');
  writeFileSync(inputFile, JSON.stringify(input));
  const denyInput = buildInput(requestDescription(UNKNOWN_CALLER));
  const denyFile = join(workDir, 'input-deny.json');
  writeFileSync(denyFile, JSON.stringify(denyInput));

  // Both evaluators must agree: allowed for CALLER, denied for a caller without roles.
  const wasmAllow = engine.evaluate(input);
  const wasmDeny = engine.evaluate(denyInput);
  const [goAllow, goDeny] = [await opaEval(policy, inputFile), await opaEval(policy, denyFile)];
  if (wasmAllow.error || !wasmAllow.allowed || goAllow !== true) throw new Error(`the measured input is not allowed by both: wasm ${JSON.stringify(wasmAllow)}, opa ${JSON.stringify(goAllow)}`);
  if (wasmDeny.error || wasmDeny.allowed || goDeny !== false) throw new Error(`the deny input is not denied by both: wasm ${JSON.stringify(wasmDeny)}, opa ${JSON.stringify(goDeny)}`);

  const cache = DecisionCache.create({ cacheKeys: CACHE_KEYS });
  cache.set(cache.keyFor(engine.revision, input), wasmAllow);
  const compiled: CompiledPolicy = Object.freeze({
    name: 'default/bench-authz', mode: 'enforce', revision: engine.revision, engine, cache, services: Object.freeze([]), pathPrefixes: Object.freeze([]), decisionLogPercent: 0, engineKey: 'bench',
    descriptionKeys: descriptionKeys(CACHE_KEYS),
  });
  const config = Object.freeze({ policies: Object.freeze([compiled]) });
  const authorizer = new Authorizer(pino({ level: 'silent' }));
  const req = fakeRequest();
  const own = description.destinationPrincipal;
  const describe = () => describeRequest(req, own);
  const keysOf = () => requestKeys(req, own);
  const first = authorizer.authorize(config, PATH_ONLY, describe, undefined, undefined, keysOf);
  if (!first.allowed) throw new Error(`Authorizer denied the measured request: ${JSON.stringify(first)}`);

  const cases: CaseResult[] = [];
  const add = (name: string, fn: () => unknown) => {
    const r = measureCase(name, fn, samples, sampleMs);
    cases.push(r);
    log(`micro ${name.padEnd(34)} ${r.nsPerOp.toFixed(1).padStart(9)} ns/op (min ${r.min}, max ${r.max}; ${samples} × ${r.opsPerSample})`);
  };
  add('eval (uncached)', () => engine.evaluate(input));
  add('buildInput + eval (sidecar miss)', () => engine.evaluate(buildInput(description)));
  add('cache hit: keyFor + get', () => cache.get(cache.keyFor(engine.revision, input)));
  const key = cache.keyFor(engine.revision, input);
  add('  of which keyFor', () => cache.keyFor(engine.revision, input));
  add('  of which get (key precomputed)', () => cache.get(key));
  add('buildInput + keyFor + get', () => {
    const i = buildInput(description);
    return cache.get(cache.keyFor(engine.revision, i));
  });
  add('  of which buildInput', () => buildInput(description));
  add('Authorizer.authorize, cache hit', () => authorizer.authorize(config, PATH_ONLY, describe, undefined, undefined, keysOf));
  if (sink === undefined) log('');
  engine.close();

  log(`micro opa bench (Go, ${opaCount} × testing.Benchmark) …`);
  const opa = await opaBench(policy, inputFile, opaCount, false);
  log(`micro opa bench: ${opa.nsPerOp.join(', ')} ns/op → median ${opa.median}; allocs/op ${opa.allocsPerOp.join(', ')}`);
  const opaReadOptimized = await opaBench(policy, inputFile, opaCount, true);
  log(`micro opa bench --optimize-store-for-read-speed: ${opaReadOptimized.nsPerOp.join(', ')} ns/op → median ${opaReadOptimized.median}; allocs/op ${opaReadOptimized.allocsPerOp.join(', ')}`);
  return { cases, opa, opaReadOptimized, inputBytes: JSON.stringify(input).length, dataBytes: JSON.stringify(bundle.data).length };
}
