/**
 * The palisade command as a user runs it: a real `palisade control` process, a raw ADS
 * client, and `palisade proxies` reading the admin endpoint.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLUSTER_TYPE_URL } from '../../xds/resources/type-urls.ts';
import { RawSotwStream, testNode } from '../helpers/raw-ads-client.ts';

const ROOT = join(import.meta.dirname, '../..');
const CLI = join(ROOT, 'cli/main.ts');
const FIXTURES = join(ROOT, 'test/fixtures/config');

const children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function cli(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });
}

/** Starts `palisade control` and resolves with its xDS and admin addresses from its ready line. */
function startControl(configDir: string): Promise<{ child: ChildProcess; xds: string; admin: string }> {
  const child = spawn(process.execPath, [CLI, 'control', '--config', configDir, '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`control did not start: ${out}${err}`)), 15_000);
    child.stderr!.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /xDS on (\S+), admin on http:\/\/(\S+),/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, xds: m[1]!, admin: m[2]! });
      }
    });
    child.on('exit', (code) => reject(new Error(`control exited ${code}: ${out}${err}`)));
  });
}

describe('palisade control / proxies', () => {
  it('documents every flag with its default in --help', () => {
    const r = cli(['control', '--help']);
    expect(r.status).toBe(0);
    for (const flag of ['--config DIR', '--xds-address', '--admin-address', '--debounce', '--log-level']) expect(r.stdout).toContain(flag);
    expect(r.stdout).toContain('(default 127.0.0.1:18000)');
  });

  it.each([
    [['control', '--xds-address', 'nowhere'], /--xds-address must be host:port .*"nowhere"/],
    [['control', '--debounce', 'soon'], /--debounce must be a duration like 100ms or 1s, got "soon"/],
    [['control', '--bogus'], /Unknown option '--bogus'/],
    [['proxies', '-o', 'yaml'], /-o\/--output must be one of table, json, got "yaml"/],
    [['frobnicate'], /unknown command "frobnicate"/],
  ])('rejects bad usage %j with exit 2 and a message naming the flag', (args, message) => {
    const r = cli(args as string[]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('exits 1 naming the directory when the config directory does not exist', () => {
    const r = cli(['control', '--config', '/nonexistent/palisade', '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('/nonexistent/palisade');
  });

  it('serves xDS, lists the connected proxy with its sync status, and stops on SIGTERM with exit 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'palisade-cli-'));
    dirs.push(dir);
    cpSync(FIXTURES, dir, { recursive: true });
    const { child, xds, admin } = await startControl(dir);
    expect((await fetch(`http://${admin}/ready`)).status).toBe(200);

    const s = new RawSotwStream(xds);
    s.send({ node: testNode('sidecar-1', 'demo', 'envoy'), typeUrl: CLUSTER_TYPE_URL });
    const res = await s.next(5000);
    s.ack(res);
    await new Promise((r) => setTimeout(r, 200));

    const json = cli(['proxies', '--admin-address', admin, '-o', 'json']);
    expect(json.status).toBe(0);
    const proxies = JSON.parse(json.stdout);
    expect(proxies).toHaveLength(1);
    expect(proxies[0]).toMatchObject({ nodeId: 'sidecar-1', kind: 'envoy', protocol: 'sotw', types: { CDS: { ackedVersion: res.versionInfo, sentNonce: res.nonce, lastNack: null } } });

    const table = cli(['proxies', '--admin-address', admin]);
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+KIND\s+VERSION\s+CDS\s+LDS\s+EDS\s+RDS\s+SDS\s+STREAM$/);
    expect(table.stdout).toMatch(/sidecar-1\s+envoy\s+envoy\s+SYNCED\s+NOT SENT/);
    s.close();

    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('fails proxies with a clear message when no control plane answers', () => {
    const r = cli(['proxies', '--admin-address', '127.0.0.1:1']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("cannot reach the control plane's admin endpoint at 127.0.0.1:1");
  });
});
