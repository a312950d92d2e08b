/** A real `palisade control` process with a state dir, for CLI tests; killed by the caller's cleanup. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const CLI = join(import.meta.dirname, '../../cli/main.ts');

/**
 * Starts `palisade control --config configDir --state-dir stateDir` on ephemeral ports and
 * resolves with its admin and CA addresses (CA null when the state dir has no CA) once it
 * prints them. `children` receives the process, for the caller's afterEach to kill.
 */
export function startControlProcess(stateDir: string, configDir: string, children: ChildProcess[]): Promise<{ admin: string; ca: string | null; out: string }> {
  const args = ['control', '--config', configDir, '--state-dir', stateDir, '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0', '--ca-address', '127.0.0.1:0', '--log-level', 'warn'];
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`control did not start: ${out}`)), 15_000);
    child.stderr!.on('data', (d) => (out += d));
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /admin on http:\/\/(\S+?),(?: CA on https:\/\/(\S+?),)? config/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ admin: m[1]!, ca: m[2] ?? null, out });
      }
    });
    child.on('exit', (code) => reject(new Error(`control exited ${code}: ${out}`)));
  });
}
