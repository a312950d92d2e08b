/**
 * The bootstrap's `quota` section (sidecar/bootstrap/bootstrap.ts): where GLOBAL quotas keep
 * their buckets. Without `quota.redis` a sidecar enforces LOCAL quotas only and NACKs any
 * GLOBAL Quota that selects it.
 *
 *   quota:
 *     redis:
 *       address: 127.0.0.1:6379        # one Redis; or, for Redis Cluster:
 *       # nodes: [10.0.0.1:6379, 10.0.0.2:6379]
 *       # cluster: true
 *       keyPrefix: "palisade:quota:"   # default
 *       timeout: 50ms                  # per command; default 50ms (integer ms also accepted)
 *       passwordFile: ./redis.pass     # optional: AUTH password, first line of the file
 *       lease:                         # token leases for GLOBAL buckets (lease.ts); absent or true: on, defaults
 *         maxFraction: 0.01            # share of the last known remaining tokens one lease takes, (0, 1]
 *         maxTokens: 1000              # most tokens one lease takes, 1..1000000
 *       # lease: false                 # off: every GLOBAL check is one Redis round trip
 *
 * Leases are on by default: a sidecar takes a slice of a Redis bucket per round trip instead of
 * one token per check, the model of Envoy's rate limit quota service (RLQS), where the quota
 * server assigns proxies token buckets with an expiry. Without them a GLOBAL check costs about
 * two Redis round trips, with them far from the limit a fraction of one (docs/quotas.md).
 */
import { LEASE_DEFAULTS, type LeaseConfig } from './lease.ts';

/** Defaults of `quota.redis`. */
export const QUOTA_REDIS_DEFAULTS = Object.freeze({ keyPrefix: 'palisade:quota:', timeoutMs: 50 });

/** A validated `quota.redis`. */
export interface QuotaRedisBootstrap {
  /** host:port of a single Redis; null with `nodes`. */
  readonly address: string | null;
  /** Redis Cluster seed nodes (host:port); empty with `address`. */
  readonly nodes: readonly string[];
  readonly cluster: boolean;
  /** Prepended to every bucket key in Redis. */
  readonly keyPrefix: string;
  /** Command timeout, ms: a slower answer counts as the store being unreachable. */
  readonly timeoutMs: number;
  /** File holding the AUTH password (first line); null: no password. */
  readonly passwordFile: string | null;
  /** Token leases of GLOBAL buckets (lease.ts); null: off (`lease: false`), every check one round trip. */
  readonly lease: LeaseConfig | null;
}

export interface QuotaBootstrap {
  /** The store of GLOBAL quotas; null: none configured (GLOBAL quotas are NACKed). */
  readonly redis: QuotaRedisBootstrap | null;
}

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown) => JSON.stringify(v) ?? String(v);

function isHostPort(v: unknown): v is string {
  const m = typeof v === 'string' ? HOST_PORT.exec(v) : null;
  return m !== null && Number(m[2]) >= 1 && Number(m[2]) <= 65535;
}

/** Parses `quota` (undefined: absent); problems go to `report(path, message)`. */
export function parseQuotaBootstrap(v: unknown, report: (path: string, msg: string) => void): QuotaBootstrap {
  if (v === undefined || v === null) return { redis: null };
  if (!isObj(v)) {
    report('quota', `must be a mapping, got ${show(v)}`);
    return { redis: null };
  }
  for (const k of Object.keys(v)) if (k !== 'redis') report(`quota.${k}`, 'unknown field; known fields: redis');
  const r = v.redis;
  if (r === undefined || r === null) return { redis: null };
  if (!isObj(r)) {
    report('quota.redis', `must be a mapping, got ${show(r)}`);
    return { redis: null };
  }
  const known = ['address', 'nodes', 'cluster', 'keyPrefix', 'timeout', 'passwordFile', 'lease'];
  for (const k of Object.keys(r)) if (!known.includes(k)) report(`quota.redis.${k}`, `unknown field; known fields: ${known.join(', ')}`);
  let ok = true;
  const fail = (path: string, msg: string) => {
    ok = false;
    report(path, msg);
  };
  let cluster = false;
  if (r.cluster !== undefined) {
    if (typeof r.cluster !== 'boolean') fail('quota.redis.cluster', `must be true or false, got ${show(r.cluster)}`);
    else cluster = r.cluster;
  }
  let address: string | null = null;
  const nodes: string[] = [];
  if (r.address !== undefined) {
    if (!isHostPort(r.address)) fail('quota.redis.address', `must be host:port with a port 1..65535, got ${show(r.address)}`);
    else address = r.address;
  }
  if (r.nodes !== undefined) {
    if (!Array.isArray(r.nodes) || r.nodes.length === 0) fail('quota.redis.nodes', `must be a non-empty list of host:port, got ${show(r.nodes)}`);
    else r.nodes.forEach((n: unknown, i: number) => {
      if (!isHostPort(n)) fail(`quota.redis.nodes[${i}]`, `must be host:port with a port 1..65535, got ${show(n)}`);
      else nodes.push(n);
    });
  }
  if (r.address !== undefined && r.nodes !== undefined) fail('quota.redis', 'must set exactly one of address (one Redis) and nodes (Redis Cluster), got both');
  else if (r.address === undefined && r.nodes === undefined) fail('quota.redis', 'must set address (host:port of one Redis) or nodes with cluster: true (Redis Cluster)');
  else if (r.nodes !== undefined && !cluster) fail('quota.redis.cluster', 'must be true with nodes (Redis Cluster seed nodes); for one Redis set address instead');
  else if (r.address !== undefined && cluster) fail('quota.redis.cluster', 'cluster: true needs nodes (the Redis Cluster seed nodes), not address');
  let keyPrefix: string = QUOTA_REDIS_DEFAULTS.keyPrefix;
  if (r.keyPrefix !== undefined) {
    if (typeof r.keyPrefix !== 'string' || r.keyPrefix.length === 0 || r.keyPrefix.length > 128 || /[\s]/.test(r.keyPrefix)) {
      fail('quota.redis.keyPrefix', `must be a string of 1..128 characters without spaces, got ${show(r.keyPrefix)}`);
    } else keyPrefix = r.keyPrefix;
  }
  let timeoutMs: number = QUOTA_REDIS_DEFAULTS.timeoutMs;
  if (r.timeout !== undefined) {
    const ms = parseMs(r.timeout);
    if (ms === null || ms < 1 || ms > 60_000) fail('quota.redis.timeout', `must be a duration 1ms..60s ("50ms", "1s" or integer milliseconds), got ${show(r.timeout)}`);
    else timeoutMs = ms;
  }
  let passwordFile: string | null = null;
  if (r.passwordFile !== undefined) {
    if (typeof r.passwordFile !== 'string' || r.passwordFile === '') fail('quota.redis.passwordFile', `must be a file path, got ${show(r.passwordFile)}`);
    else passwordFile = r.passwordFile;
  }
  let lease: LeaseConfig | null = LEASE_DEFAULTS;
  if (r.lease === false) lease = null;
  else if (r.lease !== undefined && r.lease !== true) {
    if (!isObj(r.lease)) fail('quota.redis.lease', `must be a mapping (maxFraction, maxTokens), true (on, defaults) or false (off), got ${show(r.lease)}`);
    else {
      const l = r.lease;
      for (const k of Object.keys(l)) if (k !== 'maxFraction' && k !== 'maxTokens') fail(`quota.redis.lease.${k}`, 'unknown field; known fields: maxFraction, maxTokens');
      let maxFraction = LEASE_DEFAULTS.maxFraction;
      let maxTokens = LEASE_DEFAULTS.maxTokens;
      if (l.maxFraction !== undefined) {
        if (typeof l.maxFraction !== 'number' || !(l.maxFraction > 0 && l.maxFraction <= 1)) fail('quota.redis.lease.maxFraction', `must be a number over 0 and at most 1, got ${show(l.maxFraction)}`);
        else maxFraction = l.maxFraction;
      }
      if (l.maxTokens !== undefined) {
        if (typeof l.maxTokens !== 'number' || !Number.isInteger(l.maxTokens) || l.maxTokens < 1 || l.maxTokens > 1_000_000) fail('quota.redis.lease.maxTokens', `must be an integer 1..1000000, got ${show(l.maxTokens)}`);
        else maxTokens = l.maxTokens;
      }
      lease = Object.freeze({ maxFraction, maxTokens });
    }
  }
  if (!ok) return { redis: null };
  return { redis: { address, nodes, cluster, keyPrefix, timeoutMs, passwordFile, lease } };
}

function parseMs(v: unknown): number | null {
  if (typeof v === 'number') return Number.isInteger(v) ? v : null;
  if (typeof v !== 'string') return null;
  const m = /^(\d+)(ms|s)$/.exec(v);
  if (m === null) return null;
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}
