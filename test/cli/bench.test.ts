/**
 * `palisade bench` as an operator runs it: a real CLI process running a real bench
 * (bench/quota: a redis-server of its own, the sidecar's quota gate, redis-benchmark) in quick
 * mode, writing the page, a chart per scenario and the result file into a temporary directory.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { readScenarios } from '../../bench/common/report.ts';
import { BEGIN_MARKER, END_MARKER } from '../../bench/report/markdown.ts';
import { CLI, type CliRun } from '../helpers/policy-build.ts';

function palisade(args: readonly string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 170_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-bench-cli-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('palisade bench', () => {
  it('runs the quota bench in quick mode and writes its table and charts into the page, keeping the hand-written history', async () => {
    const out = join(dir, 'benchmarks.md');
    const history = '## quota: an earlier run\n\nhand-written figures stay here.\n';
    await writeFile(out, `# Benchmarks\n\nintro\n\n${history}`);
    const results = join(dir, 'results');
    const r = await palisade(['bench', '--only', 'quota', '--quick', '--out', out, '--results-dir', results]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('[quota] done');

    const page = await readFile(out, 'utf8');
    expect(page.startsWith('# Benchmarks\n\nintro\n\n' + BEGIN_MARKER)).toBe(true);
    expect(page.endsWith(`${END_MARKER}\n\n${history}`)).toBe(true);
    expect(page).toContain(`Written by \`palisade bench --only quota --quick --out ${out} --results-dir ${results}\``);
    expect(page).toMatch(/\| quota \| GLOBAL quota check, leases off, vs one Redis round trip \| \d+\.\d\d× \| ≤ 1\.5× \| (met|\*\*missed\*\*) \|/);
    expect(page).toMatch(/\| quota \| GLOBAL quota check \(default: token leases\) vs one Redis round trip \| \d+\.\d\d× \| ≤ 1\.5× \| (met|\*\*missed\*\*) \|/);
    expect(page).toMatch(/\| LOCAL quota check vs one Redis round trip \| local check \(QuotaGate, memory\): \*\*[\d.\u2009]+\*\* µs \| redis-benchmark INCR, 1 client: [\d.\u2009]+ µs \|/);
    expect(page).toContain('![GLOBAL quota check, leases off, vs one Redis round trip](benchmarks/quota-global-vs-redis-rtt.svg)');

    const charts = (await readdir(join(dir, 'benchmarks'))).sort();
    expect(charts).toEqual(['quota-global-concurrent.svg', 'quota-global-leased-vs-redis-rtt.svg', 'quota-global-vs-ioredis.svg', 'quota-global-vs-redis-rtt.svg', 'quota-global-vs-script-rtt.svg', 'quota-local-vs-redis-rtt.svg']);
    const svg = await readFile(join(dir, 'benchmarks', 'quota-global-vs-redis-rtt.svg'), 'utf8');
    expect(svg).toContain('<svg xmlns="http://www.w3.org/2000/svg" version="1.1"');
    expect(svg).toContain('id="bar-ours"');
    expect(svg).toContain('id="target"');

    const files = await readdir(results);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^quota-.*\.json$/);
    const read = readScenarios(JSON.parse(await readFile(join(results, files[0]!), 'utf8')));
    expect(read.valid && read.result.map((s) => s.id)).toEqual(['quota-global-vs-redis-rtt', 'quota-global-leased-vs-redis-rtt', 'quota-global-concurrent', 'quota-global-vs-ioredis', 'quota-global-vs-script-rtt', 'quota-local-vs-redis-rtt']);
  }, 180_000);

  it('refuses an unknown bench with exit 2, naming it and the known ones', async () => {
    const r = await palisade(['bench', '--only', 'quota,nope', '--out', join(dir, 'x.md')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('palisade bench: --only: unknown bench "nope"; known: proxy, tls, mtls-chain, authz, quota, full-chain, xds-scale');
  });

  it('refuses an --out that is not a Markdown file', async () => {
    const r = await palisade(['bench', '--only', 'quota', '--out', join(dir, 'x.txt')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`palisade bench: --out must be a Markdown file (*.md), got ${JSON.stringify(join(dir, 'x.txt'))}`);
  });

  it('lists the benches in its help', async () => {
    const r = await palisade(['bench', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: palisade bench [flags]');
    expect(r.stdout).toContain('  quota       quota check cost, local and global, against a Redis round trip');
  });
});
