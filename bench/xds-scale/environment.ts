/**
 * Knobs of bench/xds-scale, read from the environment once (the only place this
 * benchmark touches `process.env`), validated, frozen.
 *
 *   STREAMS           comma list of fleet sizes                      default 1000,5000,10000
 *   SERVICES          services in the mesh                           default 10
 *   TIMEOUT_S         convergence timeout after the change, seconds  default 60
 *   READY_TIMEOUT_S   time for the whole fleet to connect and ACK    default 300
 *   STREAMS_PER_CONN  ADS streams per gRPC connection (1 = one TCP
 *                     connection per simulated proxy, as a fleet)    default 1
 *   DELTA             1 = delta ADS streams instead of SotW          default 0
 *   SERVERS           which servers to run: palisade,gcp             default palisade,gcp
 *   NODE_CLUSTER      node.cluster of every simulated proxy          default bench
 *   SETTLE_MS         pause before sampling memory                   default 2000
 *   RUNS              repetitions per N (servers alternate who goes
 *                     first; the table shows medians)                default 1
 *   RETRIES           repeats of a run disturbed by other load on
 *                     the box (see isDisturbed in run.ts)            default 2
 */

export interface BenchEnvironment {
  readonly streams: readonly number[];
  readonly services: number;
  readonly timeoutS: number;
  readonly readyTimeoutS: number;
  readonly streamsPerConn: number;
  readonly delta: boolean;
  readonly servers: readonly ('palisade' | 'gcp')[];
  readonly nodeCluster: string;
  readonly settleMs: number;
  readonly runs: number;
  readonly retries: number;
}

const DEFAULTS = {
  STREAMS: '1000,5000,10000',
  SERVICES: '10',
  TIMEOUT_S: '60',
  READY_TIMEOUT_S: '300',
  STREAMS_PER_CONN: '1',
  DELTA: '0',
  SERVERS: 'palisade,gcp',
  NODE_CLUSTER: 'bench',
  SETTLE_MS: '2000',
  RUNS: '1',
  RETRIES: '2',
} as const;

function positiveInt(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new TypeError(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

function nonNegativeInt(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new TypeError(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return n;
}

function read(name: keyof typeof DEFAULTS): string {
  const v = process.env[name];
  return v === undefined || v.trim() === '' ? DEFAULTS[name] : v.trim();
}

export function loadEnvironment(): BenchEnvironment {
  const streams = read('STREAMS').split(',').map((s) => positiveInt('STREAMS', s.trim()));
  const servers = read('SERVERS').split(',').map((s) => s.trim());
  for (const s of servers) {
    if (s !== 'palisade' && s !== 'gcp') throw new TypeError(`SERVERS must list palisade and/or gcp, got ${JSON.stringify(s)}`);
  }
  const delta = read('DELTA');
  if (delta !== '0' && delta !== '1') throw new TypeError(`DELTA must be 0 or 1, got ${JSON.stringify(delta)}`);
  const settleMs = nonNegativeInt('SETTLE_MS', read('SETTLE_MS'));
  return Object.freeze({
    streams: Object.freeze(streams),
    services: positiveInt('SERVICES', read('SERVICES')),
    timeoutS: positiveInt('TIMEOUT_S', read('TIMEOUT_S')),
    readyTimeoutS: positiveInt('READY_TIMEOUT_S', read('READY_TIMEOUT_S')),
    streamsPerConn: positiveInt('STREAMS_PER_CONN', read('STREAMS_PER_CONN')),
    delta: delta === '1',
    servers: Object.freeze(servers as ('palisade' | 'gcp')[]),
    nodeCluster: read('NODE_CLUSTER'),
    settleMs,
    runs: positiveInt('RUNS', read('RUNS')),
    retries: nonNegativeInt('RETRIES', read('RETRIES')),
  });
}
