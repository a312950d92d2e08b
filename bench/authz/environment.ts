/**
 * Knobs of bench/authz, read from the environment once (the only place this benchmark
 * touches `process.env`), validated, frozen.
 *
 *   PARTS         comma list of micro, macro                                  default both
 *   SAMPLES       micro: timed samples per case (median reported)             default 7
 *   SAMPLE_MS     micro: target length of one sample, ms                      default 200
 *   OPA_COUNT     micro: `opa bench --count` (Go benchmark repeats)           default 3
 *   CONNECTIONS   macro: concurrent keep-alive connections                    default 50
 *   DURATION      macro: seconds measured per topology and round              default 5
 *   WARMUP        macro: seconds of load before each measurement (not counted) default 2
 *   ROUNDS        macro: rounds; each starts every topology fresh, in turn,
 *                 the order reversed every other round                        default 2
 *   BODY_BYTES    size of the upstream's fixed response body                  default 1024
 *   TOPOLOGIES    comma list of off, on, on-uncached                         default all
 *   RETRIES       repeats of a measurement disturbed by other work on the box
 *                 (other CPU > 25% of a core); the least disturbed kept        default 1
 *   REQUEST_ID    1: the load generator sends an x-request-id header (else the
 *                 sidecar's authz filter generates one per request)           default 0
 */
import { flagKnob, intKnob, readKnob } from '../common/environment.ts';

export const ALL_TOPOLOGIES = ['off', 'on', 'on-uncached'] as const;
export type TopologyName = (typeof ALL_TOPOLOGIES)[number];
export const ALL_PARTS = ['micro', 'macro'] as const;
export type PartName = (typeof ALL_PARTS)[number];

export interface BenchEnvironment {
  readonly parts: readonly PartName[];
  readonly samples: number;
  readonly sampleMs: number;
  readonly opaCount: number;
  readonly connections: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly rounds: number;
  readonly bodyBytes: number;
  readonly topologies: readonly TopologyName[];
  readonly retries: number;
  readonly requestId: boolean;
}

const DEFAULTS = {
  PARTS: ALL_PARTS.join(','),
  SAMPLES: '7',
  SAMPLE_MS: '200',
  OPA_COUNT: '3',
  CONNECTIONS: '50',
  DURATION: '5',
  WARMUP: '2',
  ROUNDS: '2',
  BODY_BYTES: '1024',
  TOPOLOGIES: ALL_TOPOLOGIES.join(','),
  RETRIES: '1',
  REQUEST_ID: '0',
} as const;

function list<T extends string>(name: string, raw: string, known: readonly T[]): readonly T[] {
  const items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const t of items) if (!(known as readonly string[]).includes(t)) throw new TypeError(`${name}: unknown value ${JSON.stringify(t)}; known: ${known.join(', ')}`);
  return Object.freeze(known.filter((t) => items.includes(t)));
}

export function loadEnvironment(): BenchEnvironment {
  const read = (name: keyof typeof DEFAULTS) => readKnob(DEFAULTS, name);
  return Object.freeze({
    parts: list('PARTS', read('PARTS'), ALL_PARTS),
    samples: intKnob('SAMPLES', read('SAMPLES'), 1, 101),
    sampleMs: intKnob('SAMPLE_MS', read('SAMPLE_MS'), 10, 10_000),
    opaCount: intKnob('OPA_COUNT', read('OPA_COUNT'), 1, 20),
    connections: intKnob('CONNECTIONS', read('CONNECTIONS'), 1, 10_000),
    durationS: intKnob('DURATION', read('DURATION'), 1, 3600),
    warmupS: intKnob('WARMUP', read('WARMUP'), 0, 600),
    rounds: intKnob('ROUNDS', read('ROUNDS'), 1, 20),
    bodyBytes: intKnob('BODY_BYTES', read('BODY_BYTES'), 1, 3000),
    topologies: list('TOPOLOGIES', read('TOPOLOGIES'), ALL_TOPOLOGIES),
    retries: intKnob('RETRIES', read('RETRIES'), 0, 20),
    requestId: flagKnob('REQUEST_ID', read('REQUEST_ID')),
  });
}
