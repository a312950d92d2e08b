/**
 * Knobs of bench/quota, read from the environment once (the only place this benchmark
 * touches `process.env`), validated, frozen.
 *
 *   CHECKS          quota checks per sample and case                          default 20000
 *   SAMPLES         samples per case; the cases take turns, figures are medians default 5
 *   CONCURRENCY     checks in flight at once in the concurrent cases, and
 *                   redis-benchmark's -c in its concurrent run                  default 50
 *   TENANTS         distinct descriptor values (x-tenant), so distinct buckets   default 100
 *   REDIS_REQUESTS  redis-benchmark -n per sample                               default 50000
 *   TIMEOUT_MS      quota.redis.timeout of the store (a slower answer would
 *                   count as the store being unreachable)                      default 1000
 */
import { intKnob, readKnob } from '../common/environment.ts';

export interface BenchEnvironment {
  readonly checks: number;
  readonly samples: number;
  readonly concurrency: number;
  readonly tenants: number;
  readonly redisRequests: number;
  readonly timeoutMs: number;
}

const DEFAULTS = {
  CHECKS: '20000',
  SAMPLES: '5',
  CONCURRENCY: '50',
  TENANTS: '100',
  REDIS_REQUESTS: '50000',
  TIMEOUT_MS: '1000',
} as const;

export function loadEnvironment(): BenchEnvironment {
  const read = (name: keyof typeof DEFAULTS) => readKnob(DEFAULTS, name);
  return Object.freeze({
    checks: intKnob('CHECKS', read('CHECKS'), 100, 10_000_000),
    samples: intKnob('SAMPLES', read('SAMPLES'), 1, 101),
    concurrency: intKnob('CONCURRENCY', read('CONCURRENCY'), 1, 10_000),
    tenants: intKnob('TENANTS', read('TENANTS'), 1, 1_000_000),
    redisRequests: intKnob('REDIS_REQUESTS', read('REDIS_REQUESTS'), 100, 100_000_000),
    timeoutMs: intKnob('TIMEOUT_MS', read('TIMEOUT_MS'), 10, 60_000),
  });
}
