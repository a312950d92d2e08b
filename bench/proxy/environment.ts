/**
 * Knobs of bench/proxy, read from the environment once (the only place this benchmark
 * touches `process.env`), validated, frozen.
 *
 *   CONNECTIONS   concurrent keep-alive connections of the load generator   default 50
 *   PIPELINING    requests in flight per connection                          default 1
 *   DURATION      seconds measured per target                                default 10
 *   WARMUP        seconds of load before each measurement (not counted)      default 3
 *   BODY_BYTES    size of the upstream's fixed response body                 default 1024
 *   TARGETS       comma list, in this order by default:
 *                 direct,sidecar,nginx,haproxy,http-proxy-3,fastify          default all
 *   UPSTREAM      nginx (1 worker, `return 200`) or node (node:http child)   default nginx
 *   LATENCY       1 = after the throughput runs, load direct and sidecar at
 *                 half the sidecar's peak rps and report the added latency   default 1
 *   LATENCY_RPS   fixed rate for that test instead of half the peak          default (half the peak)
 *   PROFILE       1 = also run the sidecar under --cpu-prof and summarise    default 0
 *   RETRIES       repeats of a target's measurement disturbed by other work on
 *                 the box (other CPU > 25% of a core); the least disturbed kept default 2
 *   PIN           1 = taskset: the proxy under test alone on the last CPU, the
 *                 load generator and the upstream on the others               default 0
 */
import { readKnob, intKnob, flagKnob } from '../common/environment.ts';

export const ALL_TARGETS = ['direct', 'sidecar', 'nginx', 'haproxy', 'http-proxy-3', 'fastify'] as const;
export type TargetName = (typeof ALL_TARGETS)[number];

export interface BenchEnvironment {
  readonly connections: number;
  readonly pipelining: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly bodyBytes: number;
  readonly targets: readonly TargetName[];
  readonly upstream: 'nginx' | 'node';
  readonly latency: boolean;
  readonly latencyRps: number | null;
  readonly profile: boolean;
  readonly pin: boolean;
  readonly retries: number;
}

const DEFAULTS = {
  CONNECTIONS: '50',
  PIPELINING: '1',
  DURATION: '10',
  WARMUP: '3',
  BODY_BYTES: '1024',
  TARGETS: ALL_TARGETS.join(','),
  UPSTREAM: 'nginx',
  LATENCY: '1',
  LATENCY_RPS: '',
  PROFILE: '0',
  PIN: '0',
  RETRIES: '2',
} as const;

function read(name: keyof typeof DEFAULTS): string {
  return readKnob(DEFAULTS, name);
}

const int = intKnob;

const flag = flagKnob;

export function loadEnvironment(): BenchEnvironment {
  const targets = read('TARGETS').split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const t of targets) {
    if (!(ALL_TARGETS as readonly string[]).includes(t)) throw new TypeError(`TARGETS: unknown target ${JSON.stringify(t)}; known: ${ALL_TARGETS.join(', ')}`);
  }
  const upstream = read('UPSTREAM');
  if (upstream !== 'nginx' && upstream !== 'node') throw new TypeError(`UPSTREAM must be nginx or node, got ${JSON.stringify(upstream)}`);
  const latencyRps = read('LATENCY_RPS');
  return Object.freeze({
    connections: int('CONNECTIONS', read('CONNECTIONS'), 1, 10_000),
    pipelining: int('PIPELINING', read('PIPELINING'), 1, 100),
    durationS: int('DURATION', read('DURATION'), 1, 3600),
    warmupS: int('WARMUP', read('WARMUP'), 0, 600),
    bodyBytes: int('BODY_BYTES', read('BODY_BYTES'), 1, 3000),
    // Keep the declared order, so that a subset runs in the same sequence as the full set.
    targets: Object.freeze(ALL_TARGETS.filter((t) => targets.includes(t))),
    upstream,
    latency: flag('LATENCY', read('LATENCY')),
    latencyRps: latencyRps === '' ? null : int('LATENCY_RPS', latencyRps, 1, 1_000_000),
    profile: flag('PROFILE', read('PROFILE')),
    pin: flag('PIN', read('PIN')),
    retries: int('RETRIES', read('RETRIES'), 0, 20),
  });
}
