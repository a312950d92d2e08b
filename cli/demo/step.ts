/**
 * The demo is a list of steps run in order (cli/demo/demo-steps.ts). Each prints exactly
 * one status line, then any detail lines indented under it:
 *
 *   ✓ <title>                 it worked
 *   ✗ <title>: <reason>       it failed (or timed out); the later steps are skipped
 *   - <title> (skipped: why)  it does not apply (or an earlier step failed)
 *
 * A step is bounded by its own timeout and by the demo's abort signal (Ctrl-C).
 */
import type { DemoContext } from './context.ts';

export interface DemoStep {
  /** A short phrase, stable across runs: the e2e test looks for `✓ <title>`. */
  readonly title: string;
  /** Upper bound for `run`, ms; a function when it depends on the options (say, the number of calls). */
  readonly timeoutMs: number | ((ctx: DemoContext) => number);
  /** Why the step does not apply with these options, or null to run it. */
  skip?(ctx: DemoContext): string | null;
  /**
   * Does the work; resolves with detail lines to print under the ✓ line, or rejects with a
   * reason a newcomer can act on. Should stop early when `signal` aborts (timeout or Ctrl-C);
   * whatever it started must be registered with `ctx.defer` first, so that it is stopped either way.
   */
  run(ctx: DemoContext, signal: AbortSignal): Promise<string[] | void>;
}

export interface StepsResult {
  /** Every step worked or was skipped because it does not apply. */
  ok: boolean;
  worked: number;
  failed: string | null;
}

const INDENT = '    ';

export async function runSteps(steps: readonly DemoStep[], ctx: DemoContext, signal: AbortSignal): Promise<StepsResult> {
  let worked = 0;
  let failed: string | null = null;
  for (const step of steps) {
    if (failed !== null) {
      ctx.print(`- ${step.title} (skipped: an earlier step failed)`);
      continue;
    }
    const skip = step.skip?.(ctx) ?? null;
    if (skip !== null) {
      ctx.print(`- ${step.title} (skipped: ${skip})`);
      continue;
    }
    try {
      const details = await bounded(step, ctx, signal);
      ctx.print(`✓ ${step.title}`);
      for (const line of details ?? []) ctx.print(line === '' ? '' : `${INDENT}${line}`);
      worked++;
    } catch (err) {
      failed = step.title;
      ctx.print(`✗ ${step.title}: ${oneLine((err as Error).message)}`);
    }
  }
  return { ok: failed === null, worked, failed };
}

/** Runs a step, rejecting when its timeout passes or `signal` aborts, whichever comes first. */
async function bounded(step: DemoStep, ctx: DemoContext, signal: AbortSignal): Promise<string[] | void> {
  signal.throwIfAborted();
  const timeoutMs = typeof step.timeoutMs === 'function' ? step.timeoutMs(ctx) : step.timeoutMs;
  const own = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const onAbort = () => own.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  const stopped = new Promise<never>((_, reject) => {
    timer = setTimeout(() => own.abort(new Error(`timed out after ${timeoutMs / 1000} s`)), timeoutMs);
    own.signal.addEventListener('abort', () => reject(own.signal.reason), { once: true });
  });
  try {
    return await Promise.race([step.run(ctx, own.signal), stopped]);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
    if (!own.signal.aborted) own.abort(new Error('step finished'));
  }
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, '; ');
}
