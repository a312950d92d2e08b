/** UpstreamCluster against real servers on 127.0.0.1:0, requests sent through each host's undici pool. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { ClusterSchema, Cluster_DiscoveryType, Cluster_DnsLookupFamily } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { UpstreamCluster } from '../../../sidecar/upstream/upstream-cluster.ts';
import type { ClusterConfig } from '../../../sidecar/upstream/cluster-config.ts';
import {
  Cluster_LbPolicy, compiled, ep, http2Options, locality, ms, send, startServer, staticConfig, type Exchange, type TestServer,
} from './fixtures.ts';

const servers: TestServer[] = [];
const clusters: UpstreamCluster[] = [];
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.destroy()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(n: number, opts: Parameters<typeof startServer>[1] = {}): Promise<TestServer[]> {
  const out = await Promise.all(Array.from({ length: n }, (_, i) => startServer(`s${servers.length + i}`, opts)));
  servers.push(...out);
  return out;
}

function make(config: ClusterConfig, options?: ConstructorParameters<typeof UpstreamCluster>[1]): UpstreamCluster {
  const c = new UpstreamCluster(config, options);
  clusters.push(c);
  return c;
}

async function sendMany(c: UpstreamCluster, total: number, concurrency = 1): Promise<Exchange[]> {
  const out: Exchange[] = [];
  let started = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (started < total) {
      started++;
      out.push(await send(c));
    }
  }));
  return out;
}

describe('load balancing over real connections', () => {
  it('round robin sends each host every third request', async () => {
    const s = await start(3);
    const c = make(staticConfig(s.map((x) => x.port)));
    const res = await sendMany(c, 9);
    expect(res.every((r) => r.status === 200 && r.body === `s${s.findIndex((x) => x.port === r.host.port)}`)).toBe(true);
    expect(s.map((x) => x.hits)).toEqual([3, 3, 3]);
    expect(res.slice(0, 3).map((r) => r.body).sort()).toEqual(['s0', 's1', 's2']);
  });

  it('splits weighted 3:1 traffic 75% ± 5 over 1000 real requests', async () => {
    const s = await start(2);
    const c = make(staticConfig(s.map((x) => x.port), {}, [3, 1]));
    await sendMany(c, 1000, 10);
    expect(s[0]!.hits + s[1]!.hits).toBe(1000);
    expect(Math.abs(s[0]!.hits / 1000 - 0.75)).toBeLessThanOrEqual(0.05);
  });

  it('least request sends everything to the idle host while the other is stuck', async () => {
    const [slow, fast] = await start(2);
    const c = make(staticConfig([slow!.port, fast!.port], { lbPolicy: Cluster_LbPolicy.LEAST_REQUEST }));
    const [slowHost, fastHost] = c.hosts;
    slow!.hold = fast!.hold = true;
    // Two at once: whichever host the first pick takes, the second pick sees it busy and takes the other.
    const first = [send(c), send(c)];
    expect(c.hosts.map((h) => h.activeRequests)).toEqual([1, 1]);
    await vi.waitFor(() => expect([slow!.hits, fast!.hits]).toEqual([1, 1]));
    fast!.hold = false;
    fast!.release();
    await vi.waitFor(() => expect(fastHost!.activeRequests).toBe(0));
    const res = await sendMany(c, 18);
    expect(res.every((r) => r.host === fastHost && r.status === 200)).toBe(true);
    expect([slow!.hits, fast!.hits]).toEqual([1, 19]);
    expect(slowHost!.activeRequests).toBe(1);
    slow!.release();
    await Promise.all(first);
    expect(c.hosts.map((h) => h.activeRequests)).toEqual([0, 0]);
  });

  it('keeps a request active on its host from startRequest to endRequest, whatever reportResult says', () => {
    const c = make(staticConfig([1, 2], { lbPolicy: Cluster_LbPolicy.LEAST_REQUEST }));
    const [a, b] = c.hosts;
    c.startRequest(a!);
    c.reportResult(a!, 200);
    expect([a!.activeRequests, a!.totalRequests, a!.totalErrors]).toEqual([1, 1, 0]);
    expect(Array.from({ length: 8 }, () => c.pick())).toEqual(Array(8).fill(b));
    c.endRequest(a!);
    c.endRequest(a!);
    expect(a!.activeRequests).toBe(0);
  });

  it('speaks h2c with prior knowledge when the cluster asks for HTTP/2, HTTP/1.1 otherwise', async () => {
    const [h2] = await start(1, { h2c: true });
    const [h1] = await start(1);
    const c2 = make(staticConfig([h2!.port], { typedExtensionProtocolOptions: http2Options() }));
    const c1 = make(staticConfig([h1!.port]));
    expect(await sendMany(c2, 3, 3)).toMatchObject([{ status: 200, body: h2!.name }, { status: 200 }, { status: 200 }]);
    expect(await send(c1)).toMatchObject({ status: 200, body: h1!.name });
    expect(h2!.versions).toEqual(['2.0', '2.0', '2.0']);
    expect(h1!.versions).toEqual(['1.1']);
    expect(c2.stats().protocol).toBe('http2');
  });
});

describe('circuit breakers', () => {
  it('refuses the third concurrent request at max_requests=2 and admits again once one ends', async () => {
    const [s] = await start(1);
    s!.hold = true;
    const c = make(staticConfig([s!.port], { circuitBreakers: { thresholds: [{ maxRequests: 2 }] } }));
    const guarded = async (): Promise<Exchange> => {
      try {
        return await send(c);
      } finally {
        c.circuit.releaseRequest();
      }
    };
    expect(c.circuit.tryAcquireRequest()).toBe(true);
    const r1 = guarded();
    expect(c.circuit.tryAcquireRequest()).toBe(true);
    const r2 = guarded();
    expect(c.circuit.tryAcquireRequest()).toBe(false);
    expect(c.circuit.stats()).toMatchObject({ activeRequests: 2, requestOverflows: 1, remaining: { requests: 0 } });
    await vi.waitFor(() => expect(s!.hits).toBe(2));
    s!.release();
    expect((await r1).status).toBe(200);
    expect(c.circuit.tryAcquireRequest()).toBe(true);
    c.circuit.releaseRequest();
    await r2;
    expect(c.circuit.stats()).toMatchObject({ activeRequests: 0, requestOverflows: 1, remaining: { requests: 2 } });
  });

  it('caps each endpoint pool at max_connections and counts open connections', async () => {
    const [s] = await start(1);
    s!.delayMs = 30;
    const c = make(staticConfig([s!.port], { circuitBreakers: { thresholds: [{ maxConnections: 2 }] } }));
    await sendMany(c, 6, 6);
    expect(c.hosts[0]!.pool.stats.connected).toBe(2);
    expect(c.circuit.connections).toBe(2);
  });
});

describe('update', () => {
  it('keeps pools and counters of hosts that stay, adds new ones and closes removed ones', async () => {
    const s = await start(3);
    const c = make(staticConfig([s[0]!.port, s[1]!.port]));
    await sendMany(c, 4);
    const [h0, h1] = c.hosts;
    const pool0 = h0!.pool;
    c.update(staticConfig([s[0]!.port, s[2]!.port], {}, [5, 1]));
    expect(c.hosts[0]).toBe(h0);
    expect(c.hosts[0]!.pool).toBe(pool0);
    expect(c.hosts[0]!.weight).toBe(5);
    expect(c.hosts[0]!.totalRequests).toBe(2);
    expect(c.hosts[1]!.port).toBe(s[2]!.port);
    expect(h1!.removed).toBe(true);
    await vi.waitFor(() => expect(h1!.pool.closed).toBe(true));
    const res = await sendMany(c, 6);
    expect(res.filter((r) => r.host === h0).length).toBe(5);
  });

  it('replaces the pools, not the hosts, when connection settings change', async () => {
    const [s] = await start(1);
    const c = make(staticConfig([s!.port]));
    await send(c);
    const [h] = c.hosts;
    const old = h!.pool;
    c.update(staticConfig([s!.port], { connectTimeout: ms(1500) }));
    expect(c.hosts[0]).toBe(h);
    expect(h!.pool).not.toBe(old);
    expect((await send(c)).status).toBe(200);
    expect(h!.totalRequests).toBe(2);
  });
});

describe('DNS clusters', () => {
  const dns = (type: Cluster_DiscoveryType, port: number, init: Partial<Parameters<typeof create<typeof ClusterSchema>>[1]> = {}) => compiled(create(ClusterSchema, {
    name: 'dns',
    clusterDiscoveryType: { case: 'type', value: type },
    dnsLookupFamily: Cluster_DnsLookupFamily.V4_ONLY,
    loadAssignment: { clusterName: 'dns', endpoints: [locality([ep('localhost', port, { weight: 2 })])] },
    ...(init as object),
  }));

  it('STRICT_DNS resolves names at run time, one host per address', async () => {
    const [s] = await start(1);
    const c = make(dns(Cluster_DiscoveryType.STRICT_DNS, s!.port));
    expect(c.pick()).toBeNull();
    await c.ready;
    expect(c.hosts.map((h) => [h.key, h.hostname, h.weight])).toEqual([[`127.0.0.1:${s!.port}`, 'localhost', 2]]);
    expect(await send(c)).toMatchObject({ status: 200, body: s!.name });
  });

  it('STRICT_DNS follows changing answers, keeping hosts that stay and the last answer on failure', async () => {
    let answer: string[] | Error = ['10.1.0.1'];
    let calls = 0;
    const resolve = async (): Promise<string[]> => {
      calls++;
      if (answer instanceof Error) throw answer;
      return answer;
    };
    const keys = (): string[] => c.hosts.map((h) => h.key);
    const c = make(dns(Cluster_DiscoveryType.STRICT_DNS, 80, { dnsRefreshRate: ms(15) }), { resolve });
    await c.ready;
    const first = c.hosts[0];
    expect(keys()).toEqual(['10.1.0.1:80']);
    answer = ['10.1.0.1', '10.1.0.2'];
    await vi.waitFor(() => expect(keys()).toEqual(['10.1.0.1:80', '10.1.0.2:80']));
    expect(c.hosts[0]).toBe(first);
    answer = new Error('SERVFAIL');
    const failedFrom = calls;
    await vi.waitFor(() => expect(calls).toBeGreaterThanOrEqual(failedFrom + 2));
    expect(keys()).toEqual(['10.1.0.1:80', '10.1.0.2:80']);
    answer = ['10.1.0.2'];
    await vi.waitFor(() => expect(keys()).toEqual(['10.1.0.2:80']));
    expect(first!.removed).toBe(true);
  });

  it('LOGICAL_DNS keeps one host and lets each new connection resolve the name', async () => {
    const [s] = await start(1);
    const c = make(dns(Cluster_DiscoveryType.LOGICAL_DNS, s!.port));
    await c.ready;
    expect(c.hosts.map((h) => h.key)).toEqual([`localhost:${s!.port}`]);
    expect(await send(c)).toMatchObject({ status: 200, body: s!.name });
  });
});

describe('close and stats', () => {
  it('close() lets a request in flight finish, then picks nothing', async () => {
    const [s] = await start(1);
    s!.delayMs = 50;
    const c = make(staticConfig([s!.port]));
    const inflight = send(c);
    await vi.waitFor(() => expect(s!.hits).toBe(1));
    const closed = c.close();
    expect(c.pick()).toBeNull();
    expect((await inflight).status).toBe(200);
    await closed;
    expect(c.hosts[0]!.pool.closed).toBe(true);
  });

  it('reports each endpoint for /clusters', async () => {
    const [s] = await start(1);
    s!.status = 503;
    const c = make(staticConfig([s!.port], { outlierDetection: {} }));
    await sendMany(c, 2);
    expect(c.stats()).toEqual({
      name: 'svc',
      discoveryType: 'STATIC',
      lbPolicy: 'ROUND_ROBIN',
      protocol: 'http1',
      activePriority: 0,
      circuitBreakers: {
        thresholds: { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3, retryBudget: null, perHostMaxConnections: null },
        activeRequests: 0, pendingRequests: 0, activeRetries: 0, connections: c.hosts[0]!.pool.stats.connected,
        requestOverflows: 0, pendingOverflows: 0, retryOverflows: 0,
        remaining: { requests: 1024, pending: 1024, retries: 3 },
      },
      retryOrShadowAbandoned: 0,
      outlierDetection: {
        ejectionsActive: 0, ejectionsEnforcedTotal: 0, ejectionsOverflow: 0,
        ejectionsDetected: { consecutive_5xx: 0, consecutive_gateway_failure: 0, consecutive_local_origin_failure: 0 },
      },
      hosts: [{
        address: '127.0.0.1', port: s!.port, hostname: '', weight: 1, priority: 0, locality: { region: 'r', zone: '', subZone: '' },
        healthStatus: 'UNKNOWN', health: 'healthy', ejectedUntil: null, timesEjected: 0,
        activeRequests: 0, consecutive5xx: 2, totalRequests: 2, totalErrors: 2,
      }],
    });
  });
});
