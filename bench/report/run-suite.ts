/**
 * Runs the benches of the suite one after the other, each `bench/<name>/run.ts` its own child
 * process on the pinned Node (never two at once: they would share the 2 cores), its stdout
 * passed through line by line with a `[name]` prefix and scanned for the `results: <file>`
 * line, and reads the scenarios from that file.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { readScenarios, type Scenario } from '../common/report.ts';
import { NODE, REPO } from '../proxy/targets.ts';
import type { SuiteBench } from './suite.ts';

export interface BenchRun {
  readonly name: string;
  /** The child exited 0 and its result file had valid scenarios. */
  readonly ok: boolean;
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** The JSON the bench wrote, absolute; null if it printed none. */
  readonly resultFile: string | null;
  readonly scenarios: readonly Scenario[];
  /** Why `ok` is false: exit status, missing results, malformed scenarios. */
  readonly errors: readonly string[];
  /** Knobs this run set on the bench's environment (quick mode). */
  readonly knobs: Readonly<Record<string, string>>;
  readonly seconds: number;
}

const RESULTS_LINE = /^results: (\S+\.json)\s*$/;

/** The knobs the bench gets from us: the quick ones, unless the environment already sets them. */
export function knobsFor(bench: SuiteBench, quick: boolean): Record<string, string> {
  if (!quick) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(bench.quick)) if (process.env[k] === undefined || process.env[k]!.trim() === '') out[k] = v;
  return out;
}

export interface SuiteOptions {
  /** Short knobs for a smoke run (SuiteBench.quick). */
  readonly quick: boolean;
  /** Where the bench writes its result file (RESULTS_DIR); null: bench/results/. */
  readonly resultsDir: string | null;
}

/** Runs one bench to its end and reads what it wrote. Never throws for the bench's own failures: they are in `errors`. */
export async function runSuiteBench(bench: SuiteBench, options: SuiteOptions, write: (line: string) => void): Promise<BenchRun> {
  const quick = options.quick;
  const script = join(REPO, 'bench', bench.name, 'run.ts');
  const knobs = knobsFor(bench, quick);
  const started = performance.now();
  const errors: string[] = [];
  if (!existsSync(script)) {
    return { name: bench.name, ok: false, exitCode: null, signal: null, resultFile: null, scenarios: [], errors: [`${script} does not exist`], knobs, seconds: 0 };
  }
  write(`[${bench.name}] ${Object.entries(knobs).map(([k, v]) => `${k}=${v} `).join('')}node bench/${bench.name}/run.ts`);
  const child = spawn(NODE, [script], { cwd: REPO, env: { ...process.env, ...knobs, ...(options.resultsDir === null ? {} : { RESULTS_DIR: options.resultsDir }) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let resultFile: string | null = null;
  const lines = (stream: NodeJS.ReadableStream, err: boolean) => new Promise<void>((resolve) => {
    const rl = createInterface({ input: stream, crlfDelay: Infinity });
    rl.on('line', (line) => {
      write(`[${bench.name}]${err ? ' (stderr)' : ''} ${line}`);
      const m = err ? null : RESULTS_LINE.exec(line);
      if (m !== null) resultFile = m[1]!;
    });
    rl.once('close', resolve);
  });
  const [code, signal] = await Promise.all([
    new Promise<[number | null, string | null]>((resolve) => {
      child.once('error', (e) => {
        errors.push(`could not start ${NODE}: ${e.message}`);
        resolve([null, null]);
      });
      child.once('close', (c, s) => resolve([c, s]));
    }),
    lines(child.stdout!, false),
    lines(child.stderr!, true),
  ]).then(([exit]) => exit);
  if (code !== 0) errors.push(signal === null ? `exited with status ${code}` : `killed by ${signal}`);
  let scenarios: Scenario[] = [];
  if (resultFile === null) {
    errors.push('printed no "results: <file>" line');
  } else {
    try {
      const read = readScenarios(JSON.parse(readFileSync(resultFile, 'utf8')));
      if (read.valid) scenarios = read.result;
      else errors.push(...read.errors.map((e) => `${resultFile}: ${e}`));
    } catch (err) {
      errors.push(`${resultFile}: ${(err as Error).message}`);
    }
  }
  return {
    name: bench.name, ok: errors.length === 0, exitCode: code, signal, resultFile, scenarios, errors, knobs,
    seconds: Math.round((performance.now() - started) / 100) / 10,
  };
}
