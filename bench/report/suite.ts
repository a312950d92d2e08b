/**
 * The macro benchmarks `palisade bench` runs, in this order, and the knobs of a quick smoke
 * run for each (`--quick`: short durations, one round; figures from it are not results).
 * Each is `bench/<name>/run.ts`, started as its own process on the pinned Node; it prints
 * `results: <file>` last and writes `scenarios` into that JSON (bench/common/report.ts).
 */

export interface SuiteBench {
  /** The folder under bench/. */
  readonly name: string;
  /** What it compares, for `--help` and the docs. */
  readonly summary: string;
  /** Knobs for `--quick` (a variable already set in the environment wins). */
  readonly quick: Readonly<Record<string, string>>;
}

export const SUITE: readonly SuiteBench[] = Object.freeze<SuiteBench[]>([
  {
    name: 'proxy',
    summary: 'sidecar rps against nginx, HAProxy and Node proxies; added latency',
    quick: { DURATION: '1', WARMUP: '1', TARGETS: 'direct,sidecar,nginx,http-proxy-3', LATENCY: '0', RETRIES: '0' },
  },
  {
    name: 'tls',
    summary: 'TLS handshakes of the sidecar listener against nginx',
    quick: { DURATION: '1', WARMUP: '1', RESUME: 'full' },
  },
  {
    name: 'mtls-chain',
    summary: 'sidecar chain rps with mTLS against plaintext and nginx',
    quick: { DURATION: '2', WARMUP: '1', ROUNDS: '1', RETRIES: '0' },
  },
  {
    name: 'authz',
    summary: 'policy decision cost against Go OPA; sidecar rps with and without the authz filter',
    quick: { SAMPLES: '3', SAMPLE_MS: '50', OPA_COUNT: '1', DURATION: '2', WARMUP: '1', ROUNDS: '1', RETRIES: '0' },
  },
  {
    name: 'quota',
    summary: 'quota check cost, local and global, against a Redis round trip',
    quick: { CHECKS: '2000', SAMPLES: '3', REDIS_REQUESTS: '5000' },
  },
  {
    name: 'full-chain',
    summary: 'sidecar rps with mTLS, authz, quota, metrics and access log against no filters',
    quick: { DURATION: '2', WARMUP: '1', ROUNDS: '1', SLICES: '1', RETRIES: '0' },
  },
  {
    name: 'xds-scale',
    summary: 'config push to a fleet of ADS streams against go-control-plane',
    quick: { STREAMS: '100', SERVICES: '2', RUNS: '1', RETRIES: '0', SETTLE_MS: '200' },
  },
]);

export function suiteBench(name: string): SuiteBench | undefined {
  return SUITE.find((b) => b.name === name);
}
