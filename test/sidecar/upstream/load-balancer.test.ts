/**
 * Pure pick tests: clusters over addresses nobody listens on (an undici Pool opens no
 * socket until a request is sent), so only the balancer is exercised.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamCluster } from '../../../sidecar/upstream/upstream-cluster.ts';
import type { Host } from '../../../sidecar/upstream/host.ts';
import { Cluster_LbPolicy, cla, compiled, countKeys, edsCluster, ep, HealthStatus, locality, staticConfig, type ClusterInit, type LocalityInit } from './fixtures.ts';

/** A seeded PRNG (mulberry32), so random policies give the same counts every run. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const open: UpstreamCluster[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.destroy()));
});

function cluster(localities: LocalityInit[], init: ClusterInit = {}, random: () => number = seeded(1)): UpstreamCluster {
  const c = new UpstreamCluster(compiled(edsCluster('svc', init), cla('svc', localities)), { random });
  open.push(c);
  return c;
}

function picks(c: UpstreamCluster, n: number): (Host | null)[] {
  return Array.from({ length: n }, () => c.pick());
}

const ports = (n: number, weights?: number[]) => Array.from({ length: n }, (_, i) => ep('10.0.0.1', 1001 + i, { weight: weights?.[i] }));

describe('ROUND_ROBIN', () => {
  it('visits every host once per round', () => {
    const c = cluster([locality(ports(4))]);
    const p = picks(c, 12).map((h) => h!.port);
    for (let round = 0; round < 3; round++) expect(p.slice(round * 4, round * 4 + 4).sort()).toEqual([1001, 1002, 1003, 1004]);
  });

  it('splits 3:1 weights 75/25 over 2000 picks, spread evenly', () => {
    const c = cluster([locality(ports(2, [3, 1]))]);
    const p = picks(c, 2000);
    const counts = countKeys(p);
    expect(counts['10.0.0.1:1001']! / 2000).toBeCloseTo(0.75, 1);
    expect(counts).toEqual({ '10.0.0.1:1001': 1500, '10.0.0.1:1002': 500 });
    // EDF, not blocks: every window of 4 picks holds the light host exactly once.
    for (let i = 0; i + 4 <= 2000; i += 4) expect(p.slice(i, i + 4).filter((h) => h!.port === 1002)).toHaveLength(1);
  });
});

describe('RANDOM', () => {
  it('splits 3:1 weights 75% ± 5 over 2000 picks', () => {
    const c = cluster([locality(ports(2, [3, 1]))], { lbPolicy: Cluster_LbPolicy.RANDOM });
    const share = countKeys(picks(c, 2000))['10.0.0.1:1001']! / 2000;
    expect(share).toBeGreaterThanOrEqual(0.70);
    expect(share).toBeLessThanOrEqual(0.80);
  });

  it('spreads equal weights uniformly', () => {
    const c = cluster([locality(ports(4))], { lbPolicy: Cluster_LbPolicy.RANDOM });
    const counts = Object.values(countKeys(picks(c, 4000)));
    expect(counts).toHaveLength(4);
    for (const n of counts) expect(Math.abs(n / 4000 - 0.25)).toBeLessThan(0.05);
  });
});

describe('LEAST_REQUEST', () => {
  const lr = (choiceCount?: number, bias?: number): ClusterInit => ({
    lbPolicy: Cluster_LbPolicy.LEAST_REQUEST,
    lbConfig: { case: 'leastRequestLbConfig', value: { choiceCount, activeRequestBias: bias === undefined ? undefined : { defaultValue: bias, runtimeKey: 'k' } } },
  });

  it('never picks the busiest of three hosts with two distinct choices, and the idlest twice as often as the middle one', () => {
    const c = cluster([locality(ports(3))], lr());
    const [a, b] = c.hosts;
    for (let i = 0; i < 5; i++) c.startRequest(a!);
    c.startRequest(b!);
    const counts = countKeys(picks(c, 3000));
    expect(counts['10.0.0.1:1001']).toBeUndefined();
    expect(counts['10.0.0.1:1003']! / 3000).toBeCloseTo(2 / 3, 1);
    expect(counts['10.0.0.1:1002']! / 3000).toBeCloseTo(1 / 3, 1);
  });

  it('compares every host when there are no more hosts than choices', () => {
    const c = cluster([locality(ports(3))], lr(3));
    const [a, b, idle] = c.hosts;
    c.startRequest(a!);
    c.startRequest(b!);
    expect(new Set(picks(c, 100))).toEqual(new Set([idle]));
  });

  it('with unequal weights lowers a host by (active + 1)^bias', () => {
    const c = cluster([locality(ports(2, [2, 1]))], lr(2, 1));
    // With no load 2:1 …
    expect(countKeys(picks(c, 3000))['10.0.0.1:1001']).toBe(2000);
    // … with 3 requests on the heavy host its weight is 2 / 4 = 0.5 against 1: one pick in three.
    for (let i = 0; i < 3; i++) c.startRequest(c.hosts[0]!);
    const share = countKeys(picks(c, 3000))['10.0.0.1:1001']! / 3000;
    expect(share).toBeCloseTo(1 / 3, 2);
  });

  it('ignores load when active_request_bias is 0, like weighted round robin', () => {
    const c = cluster([locality(ports(2, [3, 1]))], lr(2, 0));
    for (let i = 0; i < 10; i++) c.startRequest(c.hosts[0]!);
    expect(countKeys(picks(c, 2000))['10.0.0.1:1001']).toBe(1500);
  });
});

describe('localities and priorities', () => {
  it('picks a locality by weight, then a host in it', () => {
    const c = cluster([
      locality([ep('10.0.1.1', 80), ep('10.0.1.2', 80)], { zone: 'a', weight: 1 }),
      locality([ep('10.0.2.1', 80)], { zone: 'b', weight: 3 }),
    ]);
    expect(countKeys(picks(c, 2000))).toEqual({ '10.0.1.1:80': 250, '10.0.1.2:80': 250, '10.0.2.1:80': 1500 });
    expect(c.loadBalancerState.localityWeighted).toBe(true);
  });

  it('scales a locality by its healthy share times the overprovisioning factor', () => {
    const c = cluster([
      locality([ep('10.0.1.1', 80)], { zone: 'a', weight: 1 }),
      locality([ep('10.0.2.1', 80), ep('10.0.2.2', 80, { health: HealthStatus.UNHEALTHY })], { zone: 'b', weight: 1 }),
    ]);
    // b: 1 × min(1, 1.4 × 1/2) = 0.7 against a's 1.
    expect(countKeys(picks(c, 1700))).toEqual({ '10.0.1.1:80': 1000, '10.0.2.1:80': 700 });
  });

  it('gives no traffic to an unweighted locality once another locality is weighted', () => {
    const c = cluster([locality([ep('10.0.1.1', 80)], { weight: 1 }), locality([ep('10.0.2.1', 80)])]);
    expect(countKeys(picks(c, 10))).toEqual({ '10.0.1.1:80': 10 });
  });

  it('flattens localities without weights, honouring endpoint weights', () => {
    const c = cluster([locality([ep('10.0.1.1', 80, { weight: 3 })], { zone: 'a' }), locality([ep('10.0.2.1', 80)], { zone: 'b' })]);
    expect(countKeys(picks(c, 400))).toEqual({ '10.0.1.1:80': 300, '10.0.2.1:80': 100 });
    expect(c.loadBalancerState.localityWeighted).toBe(false);
  });

  it('sends everything to the lowest priority with a usable host', () => {
    const p0 = (health: HealthStatus) => locality([ep('10.0.0.1', 80, { health }), ep('10.0.0.2', 80, { health: HealthStatus.DRAINING })], { priority: 0 });
    const p1 = locality([ep('10.0.1.1', 80)], { priority: 1 });
    const healthy = cluster([p0(HealthStatus.HEALTHY), p1]);
    expect(countKeys(picks(healthy, 10))).toEqual({ '10.0.0.1:80': 10 });
    const failed = cluster([p0(HealthStatus.UNHEALTHY), p1]);
    expect(countKeys(picks(failed, 10))).toEqual({ '10.0.1.1:80': 10 });
    expect(failed.loadBalancerState.priority).toBe(1);
  });

  it('falls back to DEGRADED hosts, and to null when nothing is left', () => {
    const degraded = cluster([locality([ep('10.0.0.1', 80, { health: HealthStatus.DEGRADED }), ep('10.0.0.2', 80, { health: HealthStatus.TIMEOUT })])]);
    expect(countKeys(picks(degraded, 5))).toEqual({ '10.0.0.1:80': 5 });
    expect(degraded.loadBalancerState.degraded).toBe(true);
    const none = cluster([locality([ep('10.0.0.1', 80, { health: HealthStatus.UNHEALTHY })])]);
    expect(none.pick()).toBeNull();
    expect(none.stats().activePriority).toBeNull();
  });
});

describe('pick', () => {
  it.each([
    ['ROUND_ROBIN', Cluster_LbPolicy.ROUND_ROBIN, undefined],
    ['weighted ROUND_ROBIN', Cluster_LbPolicy.ROUND_ROBIN, [1, 2, 3]],
    ['LEAST_REQUEST', Cluster_LbPolicy.LEAST_REQUEST, undefined],
    ['weighted LEAST_REQUEST', Cluster_LbPolicy.LEAST_REQUEST, [1, 2, 3]],
    ['weighted RANDOM', Cluster_LbPolicy.RANDOM, [1, 2, 3]],
  ])('%s allocates nothing per pick', (_what, lbPolicy, weights) => {
    const c = new UpstreamCluster(staticConfig(Array.from({ length: 100 }, (_, i) => 2000 + i), { lbPolicy },
      weights && Array.from({ length: 100 }, (_, i) => weights[i % 3]!)));
    open.push(c);
    let sink = 0;
    for (let i = 0; i < 200_000; i++) sink = (sink + c.pick()!.port) & 0xffff;
    // Heap growth over 50k picks; a chunk with a GC in it shrinks, so the smallest
    // non-negative growth is the chunk that ran undisturbed. 16 bytes a pick would be 800 kB.
    const growth: number[] = [];
    for (let chunk = 0; chunk < 20; chunk++) {
      const before = process.memoryUsage().heapUsed;
      for (let i = 0; i < 50_000; i++) sink = (sink + c.pick()!.port) & 0xffff;
      const delta = process.memoryUsage().heapUsed - before;
      if (delta >= 0) growth.push(delta);
    }
    expect(sink).toBeGreaterThanOrEqual(0);
    expect(growth.length).toBeGreaterThan(0);
    expect(Math.min(...growth) / 50_000).toBeLessThan(1);
  });
});
