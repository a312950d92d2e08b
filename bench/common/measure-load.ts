/**
 * One measured load window, as the chain benches (authz, mtls-chain, full-chain) take it: the
 * load generator (bench/common/http-load.ts) runs as its own process, and from the moment it
 * says it is measuring until its result, the CPU of every named process (tree) and of the
 * whole machine is read from /proc, so each figure comes with what else used the box.
 */
import { join } from 'node:path';
import { NODE, REPO } from '../proxy/targets.ts';
import { Child } from '../xds-scale/child.ts';
import { cpuMs, machineBusyMs } from '../xds-scale/proc-stats.ts';
import type { LoadResult, LoadSpec } from './http-load.ts';

export interface LoadWindow {
  readonly load: LoadResult;
  /** CPU ms used over the window, per process name (the load generator is `load`). */
  readonly usedMs: Readonly<Record<string, number>>;
  /** The same, % of one core. */
  readonly cpuPct: Readonly<Record<string, number>>;
  /** Busy CPU of the machine not used by the processes named, % of one core. */
  readonly otherCpuPct: number;
}

/** Runs `spec` against the target and measures `pids` (by name) while it loads. */
export async function measureLoad(spec: LoadSpec, pids: Readonly<Record<string, number>>): Promise<LoadWindow> {
  const gen = new Child('load', NODE, [join(REPO, 'bench', 'common', 'http-load.ts'), JSON.stringify(spec)], {
    cwd: REPO, deadlineMs: (spec.warmupS + spec.durationS) * 3000 + 60_000, echoStderr: true,
  });
  try {
    await gen.waitForEvent('measure', (spec.warmupS + 30) * 1000);
    const all: Record<string, number> = { ...pids, load: gen.pid };
    const t0 = performance.now();
    const c0 = Object.fromEntries(Object.entries(all).map(([k, p]) => [k, cpuMs(p)]));
    const m0 = machineBusyMs();
    const load = (await gen.waitForEvent('result', spec.durationS * 3000 + 30_000)) as unknown as LoadResult;
    const windowMs = performance.now() - t0;
    const usedMs = Object.fromEntries(Object.entries(all).map(([k, p]) => [k, cpuMs(p) - c0[k]!]));
    const machine = machineBusyMs() - m0;
    const pct = (ms: number) => Math.round((ms / windowMs) * 1000) / 10;
    const ownMs = Object.values(usedMs).reduce((s, v) => s + v, 0);
    await gen.exited;
    return { load, usedMs, cpuPct: Object.fromEntries(Object.entries(usedMs).map(([k, v]) => [k, pct(v)])), otherCpuPct: pct(machine - ownMs) };
  } finally {
    await gen.stop(2000);
  }
}

/** CPU µs per answered request of the processes named, one decimal. */
export function cpuUsPerRequest(w: LoadWindow, names: readonly string[]): number {
  const ms = names.reduce((s, k) => s + (w.usedMs[k] ?? 0), 0);
  return Math.round((ms * 1000 * 10) / Math.max(1, w.load.responses)) / 10;
}
