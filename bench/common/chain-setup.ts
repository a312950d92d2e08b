/**
 * What the sidecar chain benches (authz, mtls-chain, full-chain) set up the same way: the nginx
 * workload, the HTTP probes they wait with, a run's CA, and how a load result counts failures.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request, type Agent } from 'undici';
import { freePort } from './free-port.ts';
import type { LoadResult } from './http-load.ts';
import { makeTempDir, removeTempDir } from './temp-dirs.ts';
import { nginxUpstreamConf } from '../proxy/configs.ts';
import { CHILD_DEADLINE_MS, NGINX, NODE, REPO } from '../proxy/targets.ts';
import { Child } from '../xds-scale/child.ts';

const PALISADE_CLI = join(REPO, 'cli', 'main.ts');

/** A GET with 2 s timeouts; `dispatcher` for TLS. */
export async function get(url: string, headers: Record<string, string>, dispatcher?: Agent): Promise<{ status: number; body: string }> {
  const res = await request(url, { headers, headersTimeout: 2000, bodyTimeout: 2000, ...(dispatcher === undefined ? {} : { dispatcher }) });
  return { status: res.statusCode, body: await res.body.text() };
}

/** Polls until `url` answers 200 (with exactly `body` when given); fails as soon as one of `children` died. */
export async function waitFor200(url: string, headers: Record<string, string>, children: Child[], timeoutMs: number, body: string | null, dispatcher?: Agent): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    for (const c of children) if (!c.isAlive) throw new Error(`${url} never answered: ${c.describe()}`);
    try {
      const a = await get(url, headers, dispatcher);
      if (a.status === 200 && (body === null || a.body === body)) return;
      last = `HTTP ${a.status}, ${a.body.length} bytes: ${JSON.stringify(a.body.slice(0, 80))}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`${url}: no 200 after ${timeoutMs} ms (last: ${last}); ${children.map((c) => c.describe()).join('; ')}`);
}

/** nginx (1 worker, `return 200` with `body`) as the workload, answering before this returns. */
export async function startNginxUpstream(bench: string, body: string): Promise<{ port: number; pid: number; stop: () => Promise<void> }> {
  const dir = makeTempDir(`palisade-bench-${bench}-upstream-`);
  const port = await freePort();
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, nginxUpstreamConf(dir, port, body));
  const child = new Child('upstream', NGINX, ['-c', file, '-p', dir, '-g', 'daemon off;'], { deadlineMs: CHILD_DEADLINE_MS });
  await waitFor200(`http://127.0.0.1:${port}/`, {}, [child], 10_000, body);
  return { port, pid: child.pid, stop: async () => { await child.stop(); removeTempDir(dir); } };
}

/**
 * A run's CA: `palisade certs init-root` into a fresh state dir (root key kept, so that
 * CertsService can issue the load generator's SVIDs before any control plane holds the dir).
 */
export function initBenchCa(bench: string, trustDomain: string): { dir: string; stateDir: string; bundle: string } {
  const dir = makeTempDir(`palisade-bench-${bench}-pki-`);
  const stateDir = join(dir, 'state');
  const r = spawnSync(NODE, [PALISADE_CLI, 'certs', 'init-root', '--trust-domain', trustDomain, '--state-dir', stateDir, '--keep-root-key', '-o', 'json'], { cwd: REPO, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`palisade certs init-root failed (${r.status}): ${r.stderr}`);
  return { dir, stateDir, bundle: (JSON.parse(r.stdout) as { bundle: string }).bundle };
}

/** Responses that do not count: not 2xx, errors, timeouts, wrong bodies. */
export function failures(l: LoadResult): number {
  return l.non2xx + l.errors + l.timeouts + l.mismatches;
}
