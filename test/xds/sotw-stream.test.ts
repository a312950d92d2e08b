import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { ClusterSchema } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { RouteConfigurationSchema } from '../../xds/gen/envoy/config/route/v3/route_pb.js';
import { SnapshotCache } from '../../xds/cache/snapshot-cache.ts';
import { AdsServer } from '../../xds/server/ads-server.ts';
import type { StreamInfo } from '../../xds/server/callbacks.ts';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL } from '../../xds/resources/type-urls.ts';
import { RawSotwStream, testNode, unpackAll } from '../helpers/raw-ads-client.ts';
import { meshSnapshot } from '../helpers/resources.ts';

let cache: SnapshotCache;
let server: AdsServer;
let address: string;
let streams: RawSotwStream[];
let nacks: Array<{ typeUrl: string; version: string; error: string }>;
let acks: string[];

const GROUP = 'test';

beforeEach(async () => {
  cache = new SnapshotCache();
  nacks = [];
  acks = [];
  server = new AdsServer({
    cache,
    callbacks: {
      onNack: (_i: StreamInfo, typeUrl, version, _n, error) => nacks.push({ typeUrl, version, error }),
      onAck: (_i: StreamInfo, _t, _v, nonce) => acks.push(nonce),
    },
  });
  address = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
  streams = [];
});

afterEach(async () => {
  for (const s of streams) s.close();
  await server.close();
});

function open(): RawSotwStream {
  const s = new RawSotwStream(address);
  streams.push(s);
  return s;
}

const names = (list: { name: string }[]) => list.map((r) => r.name).sort();

describe('SotW ADS', () => {
  it('answers a wildcard CDS request with every cluster, and stays silent after the ACK', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    const s = open();
    s.send({ node: testNode(), typeUrl: CLUSTER_TYPE_URL });
    const res = await s.next();
    expect(res.typeUrl).toBe(CLUSTER_TYPE_URL);
    expect(res.versionInfo).toMatch(/^[0-9a-f]{16}$/);
    expect(res.nonce).not.toBe('');
    expect(names(unpackAll(res, ClusterSchema))).toEqual(['a', 'b']);
    s.ack(res);
    expect(await s.silentFor(300)).toBe(true);
  });

  it('sends only the named resources of a named subscription', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    const s = open();
    s.send({ node: testNode(), typeUrl: ENDPOINT_TYPE_URL, resourceNames: ['b'] });
    const res = await s.next();
    expect(unpackAll(res, ClusterLoadAssignmentSchema).map((c) => c.clusterName)).toEqual(['b']);
  });

  it('pushes a new version on change and never resends an unchanged type', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1] }, routeTo: 'a' }));
    const s = open();
    s.send({ node: testNode(), typeUrl: CLUSTER_TYPE_URL });
    const cds = await s.next();
    s.ack(cds);
    s.send({ typeUrl: ENDPOINT_TYPE_URL, resourceNames: ['a'] });
    const eds = await s.next();
    s.ack(eds, ['a']);
    // Endpoints change, clusters do not: only EDS goes out.
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1, 9] }, routeTo: 'a' }));
    const eds2 = await s.next();
    expect(eds2.typeUrl).toBe(ENDPOINT_TYPE_URL);
    expect(eds2.versionInfo).not.toBe(eds.versionInfo);
    expect(unpackAll(eds2, ClusterLoadAssignmentSchema)[0]!.endpoints[0]!.lbEndpoints).toHaveLength(2);
    s.ack(eds2, ['a']);
    expect(await s.silentFor(300)).toBe(true);
  });

  it('remembers names subscribed before they exist and sends them when they appear', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1] }, routeTo: 'a' }));
    const s = open();
    s.send({ node: testNode(), typeUrl: ENDPOINT_TYPE_URL, resourceNames: ['later'] });
    expect(await s.silentFor(300)).toBe(true);
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], later: [5] }, routeTo: 'a' }));
    const res = await s.next();
    expect(unpackAll(res, ClusterLoadAssignmentSchema).map((c) => c.clusterName)).toEqual(['later']);
  });

  it('sends a named resource again when the client unsubscribed from every name and subscribes to it again', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1] }, routeTo: 'a' }));
    const s = open();
    s.send({ node: testNode(), typeUrl: ENDPOINT_TYPE_URL, resourceNames: ['a'] });
    const first = await s.next();
    s.ack(first, ['a']);
    // Nothing subscribed (an empty list on a non-wildcard type): the client drops `a`.
    s.send({ typeUrl: ENDPOINT_TYPE_URL, versionInfo: first.versionInfo, responseNonce: first.nonce, resourceNames: [] });
    expect(await s.silentFor(300)).toBe(true);
    // The same name again, at the version it last ACKed: the server owes it the resource.
    s.send({ typeUrl: ENDPOINT_TYPE_URL, versionInfo: first.versionInfo, responseNonce: first.nonce, resourceNames: ['a'] });
    const again = await s.next();
    expect(unpackAll(again, ClusterLoadAssignmentSchema).map((c) => c.clusterName)).toEqual(['a']);
  });

  it('answers a listener subscription for a missing name with an empty response (it does not exist)', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1] }, routeTo: 'a' }));
    const s = open();
    s.send({ node: testNode(), typeUrl: LISTENER_TYPE_URL, resourceNames: ['nope'] });
    const res = await s.next();
    expect(res.resources).toHaveLength(0);
  });

  it('does not resend a NACKed version and sends the next one', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1] }, routeTo: 'a' }));
    const s = open();
    s.send({ node: testNode(), typeUrl: CLUSTER_TYPE_URL });
    const res = await s.next();
    s.send({ typeUrl: CLUSTER_TYPE_URL, versionInfo: '', responseNonce: res.nonce, errorDetail: { code: 3, message: 'cluster a: bad' } });
    expect(await s.silentFor(400)).toBe(true);
    expect(nacks).toEqual([{ typeUrl: CLUSTER_TYPE_URL, version: res.versionInfo, error: 'cluster a: bad' }]);
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    const next = await s.next();
    expect(next.versionInfo).not.toBe(res.versionInfo);
    expect(names(unpackAll(next, ClusterSchema))).toEqual(['a', 'b']);
  });

  it('ignores a stale nonce as ACK but answers its subscription once the latest is ACKed', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    const s = open();
    s.send({ node: testNode(), typeUrl: ENDPOINT_TYPE_URL, resourceNames: ['a'] });
    const first = await s.next();
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1, 3], b: [2] }, routeTo: 'a' }));
    const second = await s.next();
    // The client had not seen `second` when it asked for b: its nonce is stale.
    s.send({ typeUrl: ENDPOINT_TYPE_URL, versionInfo: first.versionInfo, responseNonce: first.nonce, resourceNames: ['a', 'b'] });
    expect(await s.silentFor(300)).toBe(true);
    // Its ACK of the latest carries the same names; now the server owes them.
    s.send({ typeUrl: ENDPOINT_TYPE_URL, versionInfo: second.versionInfo, responseNonce: second.nonce, resourceNames: ['a', 'b'] });
    const third = await s.next();
    expect(unpackAll(third, ClusterLoadAssignmentSchema).map((c) => c.clusterName)).toEqual(['a', 'b']);
  });

  it('orders a push CDS → EDS → LDS → RDS and removes a replaced cluster only after RDS is ACKed', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { old: [1] }, routeTo: 'old' }));
    const s = open();
    s.send({ node: testNode(), typeUrl: CLUSTER_TYPE_URL });
    s.ack(await s.next());
    s.send({ typeUrl: ENDPOINT_TYPE_URL, resourceNames: ['old'] });
    s.ack(await s.next(), ['old']);
    s.send({ typeUrl: LISTENER_TYPE_URL });
    s.ack(await s.next());
    s.send({ typeUrl: ROUTE_TYPE_URL, resourceNames: ['outbound-routes'] });
    s.ack(await s.next(), ['outbound-routes']);

    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { new: [2] }, routeTo: 'new' }));
    // Make: the new cluster arrives while the old one stays, then the route moves.
    const cds = await s.next();
    expect(cds.typeUrl).toBe(CLUSTER_TYPE_URL);
    expect(names(unpackAll(cds, ClusterSchema))).toEqual(['new', 'old']);
    const rds = await s.next();
    expect(rds.typeUrl).toBe(ROUTE_TYPE_URL);
    expect(unpackAll(rds, RouteConfigurationSchema)[0]!.virtualHosts[0]!.routes[0]!.action.value).toMatchObject({
      clusterSpecifier: { case: 'cluster', value: 'new' },
    });
    // As Envoy does: ACK CDS, then ask EDS for the new cluster.
    s.ack(cds);
    s.send({ typeUrl: ENDPOINT_TYPE_URL, resourceNames: ['new', 'old'] });
    const eds = await s.next();
    expect(unpackAll(eds, ClusterLoadAssignmentSchema).map((c) => c.clusterName)).toEqual(['new']);
    expect(await s.silentFor(200)).toBe(true);
    // Break: only once the routes and endpoints are answered does the old cluster go.
    s.ack(rds, ['outbound-routes']);
    expect(await s.silentFor(200)).toBe(true);
    s.ack(eds, ['new', 'old']);
    const cdsFinal = await s.next();
    expect(cdsFinal.typeUrl).toBe(CLUSTER_TYPE_URL);
    expect(names(unpackAll(cdsFinal, ClusterSchema))).toEqual(['new']);
  });

  it('closes a stream whose first request has no node with INVALID_ARGUMENT', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1] }, routeTo: 'a' }));
    const s = open();
    s.send({ typeUrl: CLUSTER_TYPE_URL });
    const st = await s.status;
    expect(st.code).toBe(status.INVALID_ARGUMENT);
    expect(st.details).toContain('node');
  });

  it('counts a nonce answered once: a later request repeating a NACKed nonce is no ACK', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    const s = open();
    s.send({ node: testNode(), typeUrl: ENDPOINT_TYPE_URL, resourceNames: ['a'] });
    const res = await s.next();
    s.send({ typeUrl: ENDPOINT_TYPE_URL, responseNonce: res.nonce, resourceNames: ['a'], errorDetail: { code: 3, message: 'bad' } });
    // A subscription change repeats the latest nonce without error_detail.
    s.send({ typeUrl: ENDPOINT_TYPE_URL, responseNonce: res.nonce, resourceNames: ['a', 'b'] });
    const more = await s.next();
    expect(unpackAll(more, ClusterLoadAssignmentSchema).map((c) => c.clusterName)).toEqual(['a', 'b']);
    expect(nacks).toHaveLength(1);
    expect(acks).toEqual([]);
  });
});
