import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SnapshotCache } from '../../xds/cache/snapshot-cache.ts';
import { AdsServer } from '../../xds/server/ads-server.ts';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL } from '../../xds/resources/type-urls.ts';
import type { DeltaDiscoveryResponse } from '../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { RawDeltaStream, testNode } from '../helpers/raw-ads-client.ts';
import { meshSnapshot } from '../helpers/resources.ts';

let cache: SnapshotCache;
let server: AdsServer;
let address: string;
let streams: RawDeltaStream[];
let nacks: string[];

const GROUP = 'test';

beforeEach(async () => {
  cache = new SnapshotCache();
  nacks = [];
  server = new AdsServer({ cache, callbacks: { onNack: (_i, _t, _v, _n, error) => nacks.push(error) } });
  address = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
  streams = [];
});

afterEach(async () => {
  for (const s of streams) s.close();
  await server.close();
});

function open(): RawDeltaStream {
  const s = new RawDeltaStream(address);
  streams.push(s);
  return s;
}

const sent = (r: DeltaDiscoveryResponse) => r.resources.map((x) => x.name).sort();
const versions = (r: DeltaDiscoveryResponse) => Object.fromEntries(r.resources.map((x) => [x.name, x.version]));

describe('delta ADS', () => {
  it('sends every cluster to a wildcard subscriber, then only what changed, then removals', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    const s = open();
    s.send({ node: testNode(), typeUrl: CLUSTER_TYPE_URL });
    const first = await s.next();
    expect(first.typeUrl).toBe(CLUSTER_TYPE_URL);
    expect(sent(first)).toEqual(['a', 'b']);
    expect(first.resources.every((r) => /^[0-9a-f]{16}$/.test(r.version))).toBe(true);
    s.send({ typeUrl: CLUSTER_TYPE_URL, responseNonce: first.nonce });

    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2], c: [3] }, routeTo: 'a' }));
    const added = await s.next();
    expect(sent(added)).toEqual(['c']);
    expect(added.removedResources).toEqual([]);
    s.send({ typeUrl: CLUSTER_TYPE_URL, responseNonce: added.nonce });

    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], c: [3] }, routeTo: 'a' }));
    const removed = await s.next();
    expect(sent(removed)).toEqual([]);
    expect(removed.removedResources).toEqual(['b']);
  });

  it('resumes from initial_resource_versions: sends only what differs and removes what is gone', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    const s1 = open();
    s1.send({ node: testNode(), typeUrl: CLUSTER_TYPE_URL });
    const held = versions(await s1.next());
    s1.close();

    // While the client is away, b goes and d appears; a is unchanged.
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], d: [4] }, routeTo: 'a' }));
    const s2 = open();
    s2.send({ node: testNode(), typeUrl: CLUSTER_TYPE_URL, initialResourceVersions: held });
    const res = await s2.next();
    expect(sent(res)).toEqual(['d']);
    expect(res.removedResources).toEqual(['b']);
  });

  it('tells a named subscriber a missing resource is absent, then sends it when it appears', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1] }, routeTo: 'a' }));
    const s = open();
    s.send({ node: testNode(), typeUrl: ENDPOINT_TYPE_URL, resourceNamesSubscribe: ['a', 'later'] });
    const res = await s.next();
    expect(sent(res)).toEqual(['a']);
    expect(res.removedResources).toEqual(['later']);
    s.send({ typeUrl: ENDPOINT_TYPE_URL, responseNonce: res.nonce });
    expect(await s.silentFor(200)).toBe(true);
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], later: [7] }, routeTo: 'a' }));
    const appeared = await s.next();
    expect(sent(appeared)).toEqual(['later']);
  });

  it('honours a subscription change that arrives with a stale nonce', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    const s = open();
    s.send({ node: testNode(), typeUrl: ENDPOINT_TYPE_URL, resourceNamesSubscribe: ['a'] });
    const first = await s.next();
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1, 5], b: [2] }, routeTo: 'a' }));
    await s.next();
    s.send({ typeUrl: ENDPOINT_TYPE_URL, responseNonce: first.nonce, resourceNamesSubscribe: ['b'] });
    const res = await s.next();
    expect(sent(res)).toEqual(['b']);
  });

  it('does not resend a NACKed resource version and sends the next', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1] }, routeTo: 'a' }));
    const s = open();
    s.send({ node: testNode(), typeUrl: ENDPOINT_TYPE_URL, resourceNamesSubscribe: ['a'] });
    const res = await s.next();
    s.send({ typeUrl: ENDPOINT_TYPE_URL, responseNonce: res.nonce, errorDetail: { code: 3, message: 'endpoint a: bad port' } });
    expect(await s.silentFor(300)).toBe(true);
    expect(nacks).toEqual(['endpoint a: bad port']);
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [2] }, routeTo: 'a' }));
    const next = await s.next();
    expect(sent(next)).toEqual(['a']);
    expect(next.resources[0]!.version).not.toBe(res.resources[0]!.version);
  });

  it('stops sending a resource after unsubscribe', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    const s = open();
    s.send({ node: testNode(), typeUrl: ENDPOINT_TYPE_URL, resourceNamesSubscribe: ['a', 'b'] });
    const res = await s.next();
    s.send({ typeUrl: ENDPOINT_TYPE_URL, responseNonce: res.nonce, resourceNamesUnsubscribe: ['b'] });
    expect(await s.silentFor(200)).toBe(true);
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2, 3] }, routeTo: 'a' }));
    expect(await s.silentFor(300)).toBe(true);
  });

  it('forgets what only the wildcard gave when the wildcard is dropped, and sends it again when named', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    const s = open();
    s.send({ node: testNode(), typeUrl: CLUSTER_TYPE_URL });
    const all = await s.next();
    expect(sent(all)).toEqual(['a', 'b']);
    s.send({ typeUrl: CLUSTER_TYPE_URL, responseNonce: all.nonce, resourceNamesUnsubscribe: ['*'] });
    expect(await s.silentFor(200)).toBe(true);
    s.send({ typeUrl: CLUSTER_TYPE_URL, resourceNamesSubscribe: ['b'] });
    expect(sent(await s.next())).toEqual(['b']);
  });

  it('retries the resources of a refused response one by one, then leaves the refused one alone', async () => {
    cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    const s = open();
    s.send({ node: testNode(), typeUrl: ENDPOINT_TYPE_URL, resourceNamesSubscribe: ['a', 'b'] });
    const both = await s.next();
    expect(sent(both)).toEqual(['a', 'b']);
    s.send({ typeUrl: ENDPOINT_TYPE_URL, responseNonce: both.nonce, errorDetail: { code: 3, message: 'endpoint a: bad' } });
    const first = await s.next();
    const second = await s.next();
    expect([sent(first), sent(second)].sort()).toEqual([['a'], ['b']]);
    const [bad, good] = sent(first)[0] === 'a' ? [first, second] : [second, first];
    s.send({ typeUrl: ENDPOINT_TYPE_URL, responseNonce: good.nonce });
    s.send({ typeUrl: ENDPOINT_TYPE_URL, responseNonce: bad.nonce, errorDetail: { code: 3, message: 'endpoint a: bad' } });
    expect(await s.silentFor(300)).toBe(true);
    expect(nacks).toEqual(['endpoint a: bad', 'endpoint a: bad']);
  });
});
