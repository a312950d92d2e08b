import { describe, expect, it } from 'vitest';
import { parseBootstrap } from '../../../sidecar/bootstrap/bootstrap.ts';

const MINIMAL = { node: { service: 'web' }, workload: { address: '127.0.0.1:8080' } };

describe('bootstrap quota section', () => {
  it('has no quota store by default', () => {
    const r = parseBootstrap(MINIMAL);
    expect(r.valid && r.result.quota).toEqual({ redis: null });
  });

  it.each([
    [{ address: '127.0.0.1:6379' }, { address: '127.0.0.1:6379', nodes: [], cluster: false, keyPrefix: 'palisade:quota:', timeoutMs: 50, passwordFile: null, lease: { maxFraction: 0.01, maxTokens: 1000 } }],
    [{ nodes: ['10.0.0.1:7000', '10.0.0.2:7000'], cluster: true, keyPrefix: 'pq:', timeout: '1s', passwordFile: '/run/redis.pass' },
      { address: null, nodes: ['10.0.0.1:7000', '10.0.0.2:7000'], cluster: true, keyPrefix: 'pq:', timeoutMs: 1000, passwordFile: '/run/redis.pass', lease: { maxFraction: 0.01, maxTokens: 1000 } }],
    [{ address: 'redis:6379', timeout: 25 }, { address: 'redis:6379', nodes: [], cluster: false, keyPrefix: 'palisade:quota:', timeoutMs: 25, passwordFile: null, lease: { maxFraction: 0.01, maxTokens: 1000 } }],
    [{ address: 'redis:6379', lease: false }, { address: 'redis:6379', nodes: [], cluster: false, keyPrefix: 'palisade:quota:', timeoutMs: 50, passwordFile: null, lease: null }],
    [{ address: 'redis:6379', lease: { maxTokens: 10 } }, { address: 'redis:6379', nodes: [], cluster: false, keyPrefix: 'palisade:quota:', timeoutMs: 50, passwordFile: null, lease: { maxFraction: 0.01, maxTokens: 10 } }],
  ])('accepts quota.redis %j', (redis, expected) => {
    const r = parseBootstrap({ ...MINIMAL, quota: { redis } });
    expect(r.valid).toBe(true);
    expect(r.valid && r.result.quota.redis).toEqual(expected);
    expect(r.valid && Object.isFrozen(r.result.quota.redis)).toBe(true);
    expect(r.valid && (r.result.quota.redis!.lease === null || Object.isFrozen(r.result.quota.redis!.lease))).toBe(true);
  });

  it.each([
    [{ redis: {} }, 'quota.redis: must set address (host:port of one Redis) or nodes with cluster: true (Redis Cluster)'],
    [{ redis: { address: 'localhost' } }, 'quota.redis.address: must be host:port with a port 1..65535, got "localhost"'],
    [{ redis: { address: 'a:1', nodes: ['b:2'], cluster: true } }, 'quota.redis: must set exactly one of address (one Redis) and nodes (Redis Cluster), got both'],
    [{ redis: { nodes: ['b:2'] } }, 'quota.redis.cluster: must be true with nodes (Redis Cluster seed nodes); for one Redis set address instead'],
    [{ redis: { address: 'a:1', cluster: true } }, 'quota.redis.cluster: cluster: true needs nodes (the Redis Cluster seed nodes), not address'],
    [{ redis: { nodes: [], cluster: true } }, 'quota.redis.nodes: must be a non-empty list of host:port, got []'],
    [{ redis: { address: 'a:1', timeout: '2m' } }, 'quota.redis.timeout: must be a duration 1ms..60s ("50ms", "1s" or integer milliseconds), got "2m"'],
    [{ redis: { address: 'a:1', timeout: 0 } }, 'quota.redis.timeout: must be a duration 1ms..60s ("50ms", "1s" or integer milliseconds), got 0'],
    [{ redis: { address: 'a:1', keyPrefix: '' } }, 'quota.redis.keyPrefix: must be a string of 1..128 characters without spaces, got ""'],
    [{ redis: { address: 'a:1', passwordFile: 3 } }, 'quota.redis.passwordFile: must be a file path, got 3'],
    [{ redis: { address: 'a:1', lease: 'no' } }, 'quota.redis.lease: must be a mapping (maxFraction, maxTokens), true (on, defaults) or false (off), got "no"'],
    [{ redis: { address: 'a:1', tls: true } }, 'quota.redis.tls: unknown field; known fields: address, nodes, cluster, keyPrefix, timeout, passwordFile, lease'],
    [{ memcached: {} }, 'quota.memcached: unknown field; known fields: redis'],
    ['redis', 'quota: must be a mapping, got "redis"'],
  ])('refuses quota %j naming the field and the value', (quota, error) => {
    const r = parseBootstrap({ ...MINIMAL, quota });
    expect(r.valid).toBe(false);
    expect(!r.valid && r.errors).toEqual([error]);
  });
});
