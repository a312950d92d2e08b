/** Polling with a bound, for steps that wait on something they cannot subscribe to. */
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Resolves with the first truthy value of `check`, polled every `intervalMs`; rejects with
 * `Error(timeoutMessage)` after `timeoutMs`, or with the abort reason when `signal` aborts.
 * `check` may throw to give up early.
 */
export async function waitFor<T>(
  check: () => T | undefined | null | false,
  options: { timeoutMs: number; intervalMs?: number; signal: AbortSignal; timeoutMessage: string },
): Promise<T> {
  const deadline = performance.now() + options.timeoutMs;
  for (;;) {
    options.signal.throwIfAborted();
    const value = check();
    if (value) return value;
    if (performance.now() >= deadline) throw new Error(options.timeoutMessage);
    await sleep(options.intervalMs ?? 20, undefined, { signal: options.signal });
  }
}

export { sleep };
