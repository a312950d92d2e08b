/**
 * Knobs of bench/full-chain, read from the environment once (the only place this benchmark
 * touches `process.env`), validated, frozen.
 *
 *   CONNECTIONS   concurrent keep-alive connections of the load generator   default 50
 *   DURATION      seconds of one measured slice                             default 3
 *   WARMUP        seconds of load before a topology's first slice of a round
 *                 (1 s before each later slice: each slice opens new
 *                 connections)                                              default 2
 *   SLICES        slices per topology and round, taken in turn (none, full,
 *                 none, full…), so both see the same moment of a shared box default 4
 *   ROUNDS        rounds; each starts both topologies fresh (running side by
 *                 side, one loaded at a time), the first topology alternating default 2
 *   BODY_BYTES    size of the upstream's fixed response body                 default 1024
 *   TOPOLOGIES    comma list of none, mtls (mTLS, no filters: TLS alone), full,
 *                 node and node-mtls (the minimal Node proxy peer, plaintext
 *                 and mTLS: what Node's own TLS termination costs)          default none,full
 *   RETRIES       repeats of a measurement disturbed by other work on the box
 *                 (other CPU > 25% of a core); the least disturbed kept       default 1
 */
import { intKnob, readKnob } from '../common/environment.ts';

export const ALL_TOPOLOGIES = ['none', 'mtls', 'full', 'node', 'node-mtls'] as const;
/** mtls (TLS termination alone) and the Node proxy peer are diagnostics: TOPOLOGIES=none,mtls,full,node,node-mtls. */
export const DEFAULT_TOPOLOGIES = ['none', 'full'] as const;
export type TopologyName = (typeof ALL_TOPOLOGIES)[number];

export interface BenchEnvironment {
  readonly connections: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly rounds: number;
  readonly slices: number;
  readonly bodyBytes: number;
  readonly topologies: readonly TopologyName[];
  readonly retries: number;
}

const DEFAULTS = {
  CONNECTIONS: '50',
  DURATION: '3',
  WARMUP: '2',
  SLICES: '4',
  ROUNDS: '2',
  BODY_BYTES: '1024',
  TOPOLOGIES: DEFAULT_TOPOLOGIES.join(','),
  RETRIES: '1',
} as const;

export function loadEnvironment(): BenchEnvironment {
  const read = (name: keyof typeof DEFAULTS) => readKnob(DEFAULTS, name);
  const topologies = read('TOPOLOGIES').split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const t of topologies) {
    if (!(ALL_TOPOLOGIES as readonly string[]).includes(t)) throw new TypeError(`TOPOLOGIES: unknown topology ${JSON.stringify(t)}; known: ${ALL_TOPOLOGIES.join(', ')}`);
  }
  return Object.freeze({
    connections: intKnob('CONNECTIONS', read('CONNECTIONS'), 1, 10_000),
    durationS: intKnob('DURATION', read('DURATION'), 1, 3600),
    warmupS: intKnob('WARMUP', read('WARMUP'), 0, 600),
    rounds: intKnob('ROUNDS', read('ROUNDS'), 1, 20),
    slices: intKnob('SLICES', read('SLICES'), 1, 50),
    bodyBytes: intKnob('BODY_BYTES', read('BODY_BYTES'), 1, 3000),
    topologies: Object.freeze(ALL_TOPOLOGIES.filter((t) => topologies.includes(t))),
    retries: intKnob('RETRIES', read('RETRIES'), 0, 20),
  });
}
