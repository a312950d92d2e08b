import { afterEach, describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { credentials, Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import type { LoadStatsRequest, LoadStatsResponse } from '../../../xds/gen/envoy/service/load_stats/v3/lrs_pb.js';
import { NodeSchema, type Node } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { ClusterStats } from '../../../xds/gen/envoy/config/endpoint/v3/load_report_pb.js';
import { LRS_SERVICE, LrsServer } from '../../../control/metering/lrs-server.ts';
import { LoadReporter, MAX_PENDING_METRICS, SEND_ALL_CLUSTERS_FEATURE, usageMetricName } from '../../../sidecar/telemetry/load-reporter.ts';
import { tenantSettings } from '../../../sidecar/telemetry/tenant.ts';
import { MeteringSchema } from '../../../xds/gen/palisade/v1/mesh_pb.js';
import { UsageMeter, type UsageRecord } from '../../../sidecar/telemetry/usage-meter.ts';
import { shutdownGracefully } from '../../../xds/server/shutdown.ts';
import { until } from '../../helpers/until.ts';

interface Received {
  node: Node;
  stats: ClusterStats[];
}

interface TestLrs {
  lrs: LrsServer;
  port: number;
  received: Received[];
  close(): Promise<void>;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startLrs(port = 0, intervalMs = 100, clusters: string[] | null = null): Promise<TestLrs> {
  const lrs = new LrsServer({ intervalMs: () => intervalMs });
  const received: Received[] = [];
  lrs.on('report', (node, stats) => received.push({ node, stats }));
  const server = new Server();
  if (clusters === null) {
    server.addService(LRS_SERVICE, lrs.implementation);
  } else {
    // A server that names clusters instead of send_all_clusters: wraps the stream's first answer.
    server.addService(LRS_SERVICE, {
      streamLoadStats: (call: ServerDuplexStream<LoadStatsRequest, LoadStatsResponse>) => {
        const write = call.write.bind(call) as (m: unknown) => boolean;
        (call as unknown as { write: (m: unknown) => boolean }).write = (m: unknown) => write({ ...(m as object), sendAllClusters: false, clusters });
        (lrs.implementation.streamLoadStats as (c: unknown) => void)(call);
      },
    });
  }
  const bound = await new Promise<number>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  let closed = false;
  const t: TestLrs = {
    lrs, port: bound, received,
    close: async () => {
      if (closed) return;
      closed = true;
      lrs.close();
      await shutdownGracefully(server, 200);
    },
  };
  cleanups.push(() => t.close());
  return t;
}

function reporter(port: number, meter: UsageMeter): LoadReporter {
  const node = create(NodeSchema, { id: 'web-1', cluster: 'web', locality: { zone: 'z1' } });
  const r = new LoadReporter({
    meter, initialIntervalMs: 100, backoff: { initialMs: 50, maxMs: 200 },
    target: () => ({ address: `127.0.0.1:${port}`, credentials: credentials.createInsecure(), node }),
  });
  cleanups.push(() => r.close());
  return r;
}

function rec(tenant: string, status = 200, over: Partial<UsageRecord['facts']> = {}): UsageRecord {
  return { listener: 'inbound', status, bytesIn: 10, bytesOut: 20, facts: { route: 'api', cluster: 'inbound|8080||web', policy: null, quota: null, tenant, ...over } };
}

/** metric name → total value, summed over every report received. */
function totals(received: readonly Received[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of received) {
    for (const cs of r.stats) {
      for (const loc of cs.upstreamLocalityStats) for (const m of loc.loadMetricStats) out.set(m.metricName, (out.get(m.metricName) ?? 0) + m.totalMetricValue);
    }
  }
  return out;
}

describe('LoadReporter', () => {
  it('sends the node first, then usage as load_metric_stats with the standard counters per cluster', async () => {
    const server = await startLrs();
    const meter = new UsageMeter();
    const r = reporter(server.port, meter);
    let firstNode: Node | undefined;
    server.lrs.once('report', (node) => (firstNode = node));
    r.start();
    await until('connected', () => r.connected);
    meter.record(rec('a'));
    meter.record(rec('a', 503));
    meter.record(rec('b/x', 403, { policy: { decision: 'deny' } }));
    await until('a report', () => server.received.length > 0);
    expect(firstNode?.id).toBe('web-1');
    expect(firstNode?.clientFeatures).toContain(SEND_ALL_CLUSTERS_FEATURE);
    const cs = server.received[0]!.stats;
    expect(cs.map((c) => c.clusterName)).toEqual(['inbound|8080||web']);
    const loc = cs[0]!.upstreamLocalityStats[0]!;
    expect([loc.totalIssuedRequests, loc.totalSuccessfulRequests, loc.totalErrorRequests, loc.totalRequestsInProgress]).toEqual([3n, 2n, 1n, 0n]);
    expect(loc.locality?.zone).toBe('z1');
    expect(cs[0]!.loadReportInterval).toBeDefined();
    const byName = Object.fromEntries(loc.loadMetricStats.map((m) => [m.metricName, [Number(m.numRequestsFinishedWithMetric), m.totalMetricValue]]));
    expect(byName).toEqual({
      'palisade.usage/a/api/requests': [2, 2], 'palisade.usage/a/api/bytes_in': [2, 20], 'palisade.usage/a/api/bytes_out': [2, 40],
      'palisade.usage/a/api/denied': [2, 0], 'palisade.usage/a/api/errors': [2, 1],
      'palisade.usage/b%2Fx/api/requests': [1, 1], 'palisade.usage/b%2Fx/api/bytes_in': [1, 10], 'palisade.usage/b%2Fx/api/bytes_out': [1, 20],
      'palisade.usage/b%2Fx/api/denied': [1, 1], 'palisade.usage/b%2Fx/api/errors': [1, 0],
    });
  });

  it('reports named metrics from added sources with the usage', async () => {
    const server = await startLrs();
    const r = reporter(server.port, new UsageMeter());
    let calls = 0;
    r.addSource(() => (calls++ === 0 ? [{ cluster: 'api', metric: 'palisade.slo/api/total', count: 4, value: 4 }, { cluster: 'api', metric: 'palisade.slo/api/slow', count: 4, value: 1 }] : []));
    r.start();
    await until('the source reported', () => totals(server.received).get('palisade.slo/api/total') === 4);
    expect(totals(server.received).get('palisade.slo/api/slow')).toBe(1);
  });

  it('keeps the counts of intervals without a stream and reports them once the control plane is back', async () => {
    const first = await startLrs();
    const port = first.port;
    await first.close();
    const meter = new UsageMeter();
    const r = reporter(port, meter);
    r.start();
    for (let i = 0; i < 3; i++) meter.record(rec('a'));
    await until('an interval without a stream', () => r.stats().deferred > 0);
    meter.record(rec('a'));
    await until('another deferred interval', () => r.stats().deferred > 1);
    const second = await startLrs(port);
    await until('the kept counts reported', () => totals(second.received).get(usageMetricName('a', 'api', 'requests')) === 4, 10_000);
    expect(totals(second.received).get(usageMetricName('a', 'api', 'bytes_in'))).toBe(40);
  });

  it('reconnects after the control plane restarts and keeps reporting', async () => {
    const first = await startLrs();
    const meter = new UsageMeter();
    const r = reporter(first.port, meter);
    r.start();
    meter.record(rec('a'));
    await until('first report', () => totals(first.received).get(usageMetricName('a', 'api', 'requests')) === 1);
    await first.close();
    await until('disconnected', () => !r.connected);
    const second = await startLrs(first.port);
    await until('reconnected', () => r.connected, 10_000);
    meter.record(rec('a'));
    await until('report after restart', () => totals(second.received).get(usageMetricName('a', 'api', 'requests')) === 1);
  });

  it('reports only the clusters the server names when it does not ask for all', async () => {
    const server = await startLrs(0, 100, ['inbound|8080||web']);
    const meter = new UsageMeter();
    const r = reporter(server.port, meter);
    r.start();
    await until('connected', () => r.connected);
    meter.record(rec('a', 200, { cluster: 'other' }));
    meter.record(rec('a'));
    await until('a report', () => server.received.length > 0);
    expect(server.received.flatMap((x) => x.stats.map((c) => c.clusterName))).toEqual(['inbound|8080||web']);
  });

  it('skips a throwing source for the interval and keeps reporting the others', async () => {
    const server = await startLrs();
    const r = reporter(server.port, new UsageMeter());
    const errors: string[] = [];
    r.on('sourceError', (err) => errors.push(err.message));
    r.addSource(() => {
      throw new Error('broken source');
    });
    let sent = false;
    r.addSource(() => (sent ? [] : ((sent = true), [{ cluster: 'api', metric: 'palisade.slo/api/total', count: 1, value: 1 }])));
    r.start();
    await until('the good source reported', () => totals(server.received).get('palisade.slo/api/total') === 1);
    expect(errors[0]).toBe('broken source');
  });

  it('sends the counts since the last report when closed gracefully', async () => {
    const server = await startLrs(0, 60_000);
    const meter = new UsageMeter();
    const r = reporter(server.port, meter);
    r.start();
    await until('connected', () => r.connected);
    meter.record(rec('a'));
    await r.flushAndClose();
    await until('the last report', () => totals(server.received).get(usageMetricName('a', 'api', 'requests')) === 1);
    expect(r.connected).toBe(false);
  });

  it('holds at most MAX_PENDING_METRICS values while no stream is up, dropping further new names', () => {
    const meter = new UsageMeter(tenantSettings(create(MeteringSchema, { tenant: { source: { case: 'header', value: 'x-t' } }, maxTenants: 1_000_000 })));
    const r = reporter(1, meter);
    const tenants = MAX_PENDING_METRICS / 5 + 1;
    for (let i = 0; i < tenants; i++) meter.record(rec(`t${i}`));
    r.flush();
    expect(r.stats()).toMatchObject({ deferred: 1, droppedMetrics: 5, pendingClusters: 1 });
  });

  it('follows the interval the server asks for', async () => {
    const server = await startLrs(0, 250);
    const r = reporter(server.port, new UsageMeter());
    r.start();
    await until('connected', () => r.connected);
    expect(r.intervalMs).toBe(250);
  });
});
