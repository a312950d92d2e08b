/**
 * UpstreamCluster.pick() over 100 hosts (5 of them UNHEALTHY to EDS), per LB policy,
 * against the naive way: filter the healthy hosts on every request, then index.
 *
 *   npx vitest bench bench/sidecar/lb-pick.bench.ts --run
 *
 * No sockets: undici Pools connect lazily and nothing is sent.
 */
import { afterAll, describe, test } from 'vitest';
import { UpstreamCluster } from '../../sidecar/upstream/upstream-cluster.ts';
import { CLUSTER_DEFAULTS, type ClusterConfig, type EndpointConfig, type LbPolicy } from '../../sidecar/upstream/cluster-config.ts';
import type { Host } from '../../sidecar/upstream/host.ts';

const HOSTS = 100;

function config(lbPolicy: LbPolicy, weighted: boolean, zones = 1): ClusterConfig {
  const endpoints = (z: number): EndpointConfig[] => Array.from({ length: HOSTS / zones }, (_, i) => ({
    address: `10.0.${z}.${i + 1}`,
    port: 8080,
    weight: weighted ? 1 + (i % 4) : 1,
    health: i % 20 === 7 ? 'UNHEALTHY' : 'HEALTHY',
    hostname: '',
  }));
  const d = CLUSTER_DEFAULTS;
  return {
    name: 'bench',
    discoveryType: 'STATIC',
    lbPolicy,
    choiceCount: d.choiceCount,
    activeRequestBias: d.activeRequestBias,
    connectTimeoutMs: d.connectTimeoutMs,
    protocol: 'http1',
    maxRequestsPerConnection: null,
    circuitBreakers: { maxConnections: d.maxConnections, maxPendingRequests: d.maxPendingRequests, maxRequests: d.maxRequests, maxRetries: d.maxRetries, retryBudget: null, perHostMaxConnections: null },
    outlierDetection: null,
    overprovisioningFactor: d.overprovisioningFactor,
    localities: Array.from({ length: zones }, (_, z) => ({
      region: 'r', zone: `z${z}`, subZone: '', priority: 0, weight: zones > 1 ? z + 1 : null, endpoints: endpoints(z),
    })),
    dns: null,
  };
}

const clusters: UpstreamCluster[] = [];
function cluster(lbPolicy: LbPolicy, weighted = false, zones = 1): UpstreamCluster {
  const c = new UpstreamCluster(config(lbPolicy, weighted, zones));
  clusters.push(c);
  // Some load, so least request has something to compare.
  c.hosts.forEach((h, i) => {
    for (let k = 0; k < i % 5; k++) c.startRequest(h);
  });
  return c;
}

let sink: Host | null | undefined = null;

const rr = cluster('ROUND_ROBIN');
const wrr = cluster('ROUND_ROBIN', true);
const lr = cluster('LEAST_REQUEST');
const wlr = cluster('LEAST_REQUEST', true);
const random = cluster('RANDOM');
const wrandom = cluster('RANDOM', true);
const zoned = cluster('ROUND_ROBIN', false, 4);
let i = 0;

/** The baseline: a fresh healthy list per request, then round robin over it. */
function naive(hosts: readonly Host[]): () => void {
  return () => {
    const healthy = hosts.filter((h) => h.usable);
    sink = healthy[i++ % healthy.length];
  };
}

/** The weighted baseline: a fresh healthy list, its total weight, a linear scan. */
function naiveWeighted(hosts: readonly Host[]): () => void {
  return () => {
    const healthy = hosts.filter((h) => h.usable);
    let total = 0;
    for (const h of healthy) total += h.weight;
    let r = Math.random() * total;
    for (const h of healthy) {
      r -= h.weight;
      if (r < 0) {
        sink = h;
        return;
      }
    }
  };
}

describe(`pick() over ${HOSTS} hosts, 5 UNHEALTHY`, () => {
  afterAll(async () => {
    await Promise.all(clusters.map((c) => c.destroy()));
  });

  const cases: [string, UpstreamCluster, () => void][] = [
    ['ROUND_ROBIN', rr, naive(rr.hosts)],
    ['ROUND_ROBIN, weighted 1-4 (EDF)', wrr, naiveWeighted(wrr.hosts)],
    ['ROUND_ROBIN, 4 weighted localities', zoned, naive(zoned.hosts)],
    ['LEAST_REQUEST, 2 choices', lr, naive(lr.hosts)],
    ['LEAST_REQUEST, weighted 1-4 (EDF, bias 1)', wlr, naiveWeighted(wlr.hosts)],
    ['RANDOM', random, naive(random.hosts)],
    ['RANDOM, weighted 1-4 (prefix sums)', wrandom, naiveWeighted(wrandom.hosts)],
  ];
  for (const [name, c, baseline] of cases) {
    test(name, async ({ bench }) => {
      await bench.compare(
        bench('naive filter + index', baseline),
        bench(`UpstreamCluster.pick() ${name}`, () => {
          sink = c.pick();
        }),
        { time: 500, warmupTime: 100 },
      );
    });
  }
});

export { sink };
