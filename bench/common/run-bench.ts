/**
 * The top level of a benchmark script: runs its main(), sets the exit code, and on the way
 * out (normal end, error, SIGINT / SIGTERM) stops or kills every child process and removes
 * the temporary directories.
 */
import { killAll, stopAll } from '../xds-scale/child.ts';
import { removeTempDirs } from './temp-dirs.ts';

/**
 * Runs `main` and sets process.exitCode to what it returns (1 if it throws, with the stack
 * printed after `label:`). SIGINT / SIGTERM kill every child and exit with 130.
 */
export async function runBench(label: string, main: () => Promise<number>): Promise<void> {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      killAll();
      removeTempDirs();
      process.exit(130);
    });
  }
  process.once('exit', () => {
    killAll();
    removeTempDirs();
  });

  try {
    process.exitCode = await main();
  } catch (err) {
    console.error(`${label}: ${(err as Error).stack ?? String(err)}`);
    process.exitCode = 1;
  } finally {
    await stopAll();
    removeTempDirs();
  }
}
