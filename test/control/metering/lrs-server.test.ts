import { afterEach, describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { credentials, makeGenericClientConstructor, Server, ServerCredentials, type ClientDuplexStream, type StatusObject } from '@grpc/grpc-js';
import { NodeSchema } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import { LoadStatsRequestSchema, type LoadStatsRequest, type LoadStatsResponse } from '../../../xds/gen/envoy/service/load_stats/v3/lrs_pb.js';
import { LRS_SERVICE, LrsServer } from '../../../control/metering/lrs-server.ts';
import { shutdownGracefully } from '../../../xds/server/shutdown.ts';
import { until } from '../../helpers/until.ts';

const Client = makeGenericClientConstructor(LRS_SERVICE, 'LoadReportingService');
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(lrs: LrsServer): Promise<number> {
  const server = new Server();
  server.addService(LRS_SERVICE, lrs.implementation);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  cleanups.push(() => {
    lrs.close();
    return shutdownGracefully(server, 200);
  });
  return port;
}

function open(port: number) {
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  const call = client.streamLoadStats!() as ClientDuplexStream<LoadStatsRequest, LoadStatsResponse>;
  const responses: LoadStatsResponse[] = [];
  let status: StatusObject | undefined;
  call.on('data', (r: LoadStatsResponse) => responses.push(r));
  call.on('error', () => {});
  call.on('status', (s: StatusObject) => (status = s));
  cleanups.push(() => {
    call.cancel();
    client.close();
  });
  return { call, responses, status: () => status };
}

describe('LrsServer', () => {
  it('asks every stream for all clusters at the interval, and emits each report with its node', async () => {
    let interval = 1500;
    const lrs = new LrsServer({ intervalMs: () => interval });
    const port = await serve(lrs);
    const reports: Array<[string, string[]]> = [];
    lrs.on('report', (node, stats) => reports.push([node.id, stats.map((s) => s.clusterName)]));
    const s = open(port);
    s.call.write(create(LoadStatsRequestSchema, { node: create(NodeSchema, { id: 'web-1' }) }));
    await until('the first response', () => s.responses.length === 1);
    expect(s.responses[0]!.sendAllClusters).toBe(true);
    expect(s.responses[0]!.loadReportingInterval).toMatchObject({ seconds: 1n, nanos: 500_000_000 });
    s.call.write(create(LoadStatsRequestSchema, { clusterStats: [{ clusterName: 'c1', upstreamLocalityStats: [{}] }] }));
    await until('a report', () => reports.length === 1);
    expect(reports).toEqual([['web-1', ['c1']]]);
    interval = 2000;
    lrs.refreshInterval();
    await until('the new interval', () => s.responses.length === 2);
    expect(s.responses[1]!.loadReportingInterval?.seconds).toBe(2n);
  });

  it('refuses a stream whose first request has no node', async () => {
    const lrs = new LrsServer({ intervalMs: () => 1000 });
    const s = open(await serve(lrs));
    s.call.write(create(LoadStatsRequestSchema, { clusterStats: [{ clusterName: 'c1', upstreamLocalityStats: [{}] }] }));
    const st = await until('the status', () => s.status());
    expect([st.code, st.details]).toEqual([3, 'the first LoadStatsRequest must carry a node']);
  });

  it('refuses with PERMISSION_DENIED a node the authorizer refuses, and emits nothing from it', async () => {
    const refused: string[] = [];
    const lrs = new LrsServer({ intervalMs: () => 1000, authorize: (node) => (node.id === 'evil' ? 'may not speak for evil' : null), onRefused: (_peer, reason) => refused.push(reason) });
    let reports = 0;
    lrs.on('report', () => reports++);
    const s = open(await serve(lrs));
    s.call.write(create(LoadStatsRequestSchema, { node: create(NodeSchema, { id: 'evil' }), clusterStats: [{ clusterName: 'c1', upstreamLocalityStats: [{}] }] }));
    const st = await until('the status', () => s.status());
    expect([st.code, st.details]).toEqual([7, 'may not speak for evil']);
    expect([reports, refused, s.responses.length]).toEqual([0, ['may not speak for evil'], 0]);
  });
});
