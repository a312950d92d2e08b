/**
 * End to end: `palisade demo --once` as a newcomer runs it (`npm start`, but exiting after
 * the steps), in a child process on free ports. Every step of cli/demo/demo-steps.ts must
 * print its ✓ line, none a ✗, and the process must exit 0 on its own: nothing left running.
 */
import { spawn } from 'node:child_process';
import { delimiter, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEMO_STEPS } from '../../cli/demo/demo-steps.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const RUN_TIMEOUT_MS = 60_000;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[]): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn('node', [join(ROOT, 'cli/main.ts'), ...args], {
      cwd: ROOT,
      // The pinned Node 24 from node_modules/.bin, as npm scripts get it (the system node may be older).
      env: { ...process.env, PATH: `${join(ROOT, 'node_modules/.bin')}${delimiter}${process.env.PATH ?? ''}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.on('error', fail);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, stdout, stderr });
    });
  });
}

describe('palisade demo --once', () => {
  it('runs every step, prints a ✓ line for each and no ✗, and exits 0', async () => {
    const run = await runCli(['demo', '--once', '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0']);
    const report = `exit ${run.code} ${run.signal ?? ''}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
    expect(run.signal, report).toBeNull();
    expect(run.code, report).toBe(0);
    const lines = run.stdout.split('\n');
    for (const step of DEMO_STEPS) expect(lines, report).toContain(`✓ ${step.title}`);
    expect(lines.filter((l) => l.startsWith('✓ '))).toHaveLength(DEMO_STEPS.length);
    expect(run.stdout, report).not.toContain('✗');
    expect(run.stdout).toContain(`All ${DEMO_STEPS.length} steps worked.`);
    // The proxy inventory lists the demo's client, in sync on every type it subscribed to.
    const row = lines.find((l) => l.startsWith('    palisade-demo-client '));
    expect(row, report).toBeDefined();
    expect(row).toMatch(/ grpc /);
    expect(row!.match(/SYNCED/g)).toHaveLength(4);
    expect(row).not.toMatch(/NACKED|STALE/);
  }, RUN_TIMEOUT_MS + 5000);

  it('refuses a bad --calls with exit code 2 and names the flag', async () => {
    const run = await runCli(['demo', '--once', '--calls', 'many']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--calls must be an integer from 1 to 10000, got "many"');
    expect(run.stdout).toBe('');
  }, RUN_TIMEOUT_MS);
});
