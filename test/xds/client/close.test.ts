import { spawn } from 'node:child_process';
import { delimiter, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../../..');
const FIXTURE = join(import.meta.dirname, 'fixtures/close-exits.ts');
const EXIT_WITHIN_MS = 15_000;

describe('AdsClient.close()', () => {
  it('leaves no handles: a process whose clients are closed (connected or backing off) exits by itself', async () => {
    const run = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }>((done, fail) => {
      const child = spawn('node', [FIXTURE], {
        cwd: ROOT,
        env: { ...process.env, PATH: `${join(ROOT, 'node_modules/.bin')}${delimiter}${process.env.PATH ?? ''}` },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
      child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
      const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_WITHIN_MS);
      child.on('error', fail);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        done({ code, signal, out });
      });
    });
    expect(run.signal, run.out).toBeNull();
    expect(run.code, run.out).toBe(0);
    expect(run.out.trim()).toBe('closed');
  }, EXIT_WITHIN_MS + 5000);
});
