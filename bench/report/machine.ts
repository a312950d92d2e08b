/**
 * What a benchmark run ran on, for the generated section of docs/benchmarks.md: the machine
 * (node:os) and the versions of the programs the suite starts (each asked on the spot; a
 * program that is not installed is reported as such, not guessed).
 */
import { spawnSync } from 'node:child_process';
import { arch, cpus, release, totalmem, type as osType } from 'node:os';

import { NGINX, NODE, REPO } from '../proxy/targets.ts';

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly os: string;
  readonly arch: string;
}

export interface Versions {
  readonly node: string;
  readonly nginx: string;
  readonly redis: string;
  readonly commit: string;
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  return Object.freeze({
    cpuModel: (list[0]?.model ?? 'unknown').trim(),
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${osType()} ${release()}`,
    arch: arch(),
  });
}

/** First line of `command args` (stdout, else stderr), or `not installed`. */
function versionOf(command: string, args: string[], pick: (s: string) => string = (s) => s): string {
  const r = spawnSync(command, args, { encoding: 'utf8', cwd: REPO });
  if (r.error !== undefined || r.status !== 0) return 'not installed';
  const line = `${r.stdout}\n${r.stderr}`.trim().split('\n')[0] ?? '';
  return pick(line.trim()) || 'unknown';
}

/** Versions of Node (the pinned binary the benches run on), nginx, redis-server, and the commit (with `+dirty` when the tree has changes). */
export function versions(): Versions {
  const dirty = spawnSync('git', ['status', '--porcelain'], { cwd: REPO, encoding: 'utf8' }).stdout.trim() !== '';
  const commit = versionOf('git', ['rev-parse', '--short', 'HEAD']);
  return Object.freeze({
    node: versionOf(NODE, ['--version']),
    nginx: versionOf(NGINX, ['-v'], (s) => s.replace(/^nginx version:\s*(nginx\/)?/, '')),
    redis: versionOf('redis-server', ['--version'], (s) => /v=(\S+)/.exec(s)?.[1] ?? s),
    commit: commit === 'not installed' ? 'unknown' : `${commit}${dirty ? '+dirty' : ''}`,
  });
}
