/** `palisade sidecar` as a user runs it: a real process against an in-process control plane. */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane } from '../../helpers/control-plane.ts';

const ROOT = join(import.meta.dirname, '../../..');
const CLI = join(ROOT, 'cli/main.ts');

const children: ChildProcess[] = [];
const dirs: string[] = [];
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  for (const f of cleanups.splice(0)) await f();
});

function cli(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });
}

function tempFile(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'palisade-sidecar-cli-'));
  dirs.push(dir);
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

function get(host: string, port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('palisade sidecar', () => {
  it('documents every flag with its default in --help', () => {
    const r = cli(['sidecar', '--help']);
    expect(r.status).toBe(0);
    for (const flag of ['--bootstrap FILE', '--drain-timeout', '--log-level']) expect(r.stdout).toContain(flag);
    expect(r.stdout).toContain('(default 5s)');
    expect(r.stdout).toContain('(default info)');
  });

  it.each([
    [['sidecar'], /--bootstrap FILE is required/],
    [['sidecar', '--bootstrap', 'x.yaml', '--drain-timeout', 'soon'], /--drain-timeout must be a duration like 5s or 500ms, got "soon"/],
    [['sidecar', '--bootstrap', 'x.yaml', '--log-level', 'loud'], /--log-level must be one of .*got "loud"/],
    [['sidecar', '--bogus'], /Unknown option '--bogus'/],
  ])('rejects bad usage %j with exit 2 and a message naming the flag', (args, message) => {
    const r = cli(args as string[]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain('Usage: palisade sidecar');
  });

  it('exits 1 listing every problem of a bad bootstrap', () => {
    const file = tempFile('bad.yaml', 'node: { service: Web }\noutbound: { port: 70000 }\nbogus: 1\n');
    const r = cli(['sidecar', '--bootstrap', file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('PAL_ERR_SIDECAR_INVALID_BOOTSTRAP');
    expect(r.stderr).toContain(file);
    expect(r.stderr).toMatch(/node\.service/);
    expect(r.stderr).toMatch(/outbound\.port/);
    expect(r.stderr).toMatch(/workload/);
    expect(r.stderr).toMatch(/bogus/);
  });

  it('exits 1 naming the file when the bootstrap does not exist', () => {
    const r = cli(['sidecar', '--bootstrap', '/nonexistent/palisade/bootstrap.yaml']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('/nonexistent/palisade/bootstrap.yaml');
  });

  it('becomes ready, proxies to the mesh, and stops on SIGTERM with exit 0', async () => {
    const api: Server = createServer((req, res) => {
      req.resume();
      res.end('api');
    });
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => {
      api.closeAllConnections();
      api.close(() => resolve());
    }));
    const apiPort = (api.address() as AddressInfo).port;
    const cp = await startControlPlane({
      'services.yaml': `apiVersion: palisade.dev/v1
kind: Service
metadata: { name: api }
spec:
  protocol: http
  port: 9090
  endpoints: [{ address: 127.0.0.1, port: ${apiPort} }]
`,
    });
    cleanups.push(() => cp.close());
    const file = tempFile('bootstrap.yaml', `node: { id: web-cli, service: web }
controlPlane: { address: ${cp.address} }
inbound: { address: 127.0.0.1, port: 0 }
workload: { address: 127.0.0.1:${apiPort} }
outbound: { address: 127.0.0.1, port: 0 }
admin: { address: 127.0.0.1, port: 0 }
`);
    const child = spawn(process.execPath, [CLI, 'sidecar', '--bootstrap', file, '--log-level', 'warn', '--drain-timeout', '1s'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const started = await new Promise<{ outbound: number; admin: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sidecar did not become ready: ${out}${err}`)), 15_000);
      child.stdout!.on('data', (d) => {
        out += d;
        const m = /outbound 127\.0\.0\.1:(\d+), admin http:\/\/127\.0\.0\.1:(\d+),[\s\S]*palisade sidecar: ready/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve({ outbound: Number(m[1]), admin: Number(m[2]) });
        }
      });
      child.on('exit', (code) => reject(new Error(`sidecar exited ${code}: ${out}${err}`)));
    });
    expect(await get('127.0.0.1', started.admin, '/ready')).toEqual({ status: 200, body: 'ready\n' });
    expect(await get('127.0.0.1', started.outbound, '/', { host: 'api.default:9090' })).toEqual({ status: 200, body: 'api' });
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 30_000);
});
