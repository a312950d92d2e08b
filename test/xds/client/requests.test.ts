/**
 * The requests an AdsClient writes, as the server receives them (through a recording
 * pass-through proxy in front of the real AdsServer): openings, ACKs, NACKs, subscription
 * changes, and the resumption after a server restart.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Snapshot } from '../../../xds/cache/snapshot.ts';
import type { DeltaDiscoveryRequest, DiscoveryRequest } from '../../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { loadAssignment, meshSnapshot } from '../../helpers/resources.ts';
import { GROUP, Harness, NODE, record, sleep, updatesOf } from './harness.ts';
import { RecordingProxy } from './recording-proxy.ts';

const CDS = CLUSTER_TYPE_URL;
const EDS = ENDPOINT_TYPE_URL;
const LDS = LISTENER_TYPE_URL;

const sotwShape = (r: DiscoveryRequest) => ({
  typeUrl: r.typeUrl,
  versionInfo: r.versionInfo,
  responseNonce: r.responseNonce,
  resourceNames: r.resourceNames,
  node: r.node?.id,
  error: r.errorDetail ? { code: r.errorDetail.code, message: r.errorDetail.message } : undefined,
});

const deltaShape = (r: DeltaDiscoveryRequest) => ({
  typeUrl: r.typeUrl,
  subscribe: r.resourceNamesSubscribe,
  unsubscribe: r.resourceNamesUnsubscribe,
  initial: r.initialResourceVersions,
  responseNonce: r.responseNonce,
  node: r.node?.id,
  error: r.errorDetail ? { code: r.errorDetail.code, message: r.errorDetail.message } : undefined,
});

/** Expected SotW / delta request, with the defaults of an unset field. */
const sotw = (r: Partial<ReturnType<typeof sotwShape>>) =>
  ({ versionInfo: '', responseNonce: '', resourceNames: [], node: undefined, error: undefined, ...r });
const delta = (r: Partial<ReturnType<typeof deltaShape>>) =>
  ({ subscribe: [], unsubscribe: [], initial: {}, responseNonce: '', node: undefined, error: undefined, ...r });

function zeroWeightAssignment(cluster: string) {
  const cla = loadAssignment(cluster, [1]);
  cla.endpoints[0]!.lbEndpoints[0]!.loadBalancingWeight = 0;
  return cla;
}

let h: Harness;
let proxy: RecordingProxy;
let proxyAddress: string;

beforeEach(async () => {
  h = new Harness();
  await h.start();
  proxy = new RecordingProxy(h.address);
  proxyAddress = await proxy.listen();
});

afterEach(async () => {
  await h.close();
  proxy.close();
});

describe('SotW requests', () => {
  it('opens with one request per subscription (node on the first only), ACKs each response, and repeats the names with the latest nonce on a change', async () => {
    h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    const client = h.client({ address: proxyAddress });
    client.subscribe(CDS, '*');
    client.subscribe(EDS, ['b', 'a']);
    client.start();
    await vi.waitFor(() => expect(h.log.acks).toHaveLength(2));
    const [cds, eds] = [h.log.responses.find((r) => r.typeUrl === CDS)!, h.log.responses.find((r) => r.typeUrl === EDS)!];

    client.unsubscribe(EDS, ['b']);
    // The change repeats the latest nonce: the server does not count that nonce twice, and
    // sends a alone, whose ACK is the third.
    await vi.waitFor(() => expect(h.log.acks).toHaveLength(3));
    const eds2 = h.log.responses.filter((r) => r.typeUrl === EDS)[1]!;
    expect(proxy.sotw).toHaveLength(1);
    expect(proxy.sotw[0]!.requests.map(sotwShape)).toEqual([
      sotw({ typeUrl: CDS, resourceNames: ['*'], node: NODE.id }),
      sotw({ typeUrl: EDS, resourceNames: ['a', 'b'] }),
      sotw({ typeUrl: CDS, versionInfo: cds.version, responseNonce: cds.nonce, resourceNames: ['*'] }),
      sotw({ typeUrl: EDS, versionInfo: eds.version, responseNonce: eds.nonce, resourceNames: ['a', 'b'] }),
      sotw({ typeUrl: EDS, versionInfo: eds.version, responseNonce: eds.nonce, resourceNames: ['a'] }),
      sotw({ typeUrl: EDS, versionInfo: eds2.version, responseNonce: eds2.nonce, resourceNames: ['a'] }),
    ]);
  });

  it('NACKs with the last accepted version, the rejected nonce and INVALID_ARGUMENT', async () => {
    h.cache.setSnapshot(GROUP, Snapshot.fromResources({ [EDS]: [loadAssignment('a', [1])] }));
    const client = h.client({ address: proxyAddress });
    const log = record(client);
    client.subscribe(EDS, ['a']);
    client.start();
    await vi.waitFor(() => expect(log.updates).toHaveLength(1));
    h.cache.setSnapshot(GROUP, Snapshot.fromResources({ [EDS]: [zeroWeightAssignment('a')] }));
    await vi.waitFor(() => expect(h.log.nacks).toHaveLength(1));

    const message = 'ClusterLoadAssignment "a": endpoints[0].lb_endpoints[0].load_balancing_weight: value must be greater than or equal to 1, got 0';
    expect(proxy.sotw[0]!.requests.map(sotwShape).at(-1)).toEqual(sotw({
      typeUrl: EDS, versionInfo: log.updates[0]!.info.version, responseNonce: h.log.nacks[0]!.nonce, resourceNames: ['a'],
      error: { code: 3, message },
    }));
  });
});

describe('delta requests', () => {
  it('opens with one request per subscription (node on the first only), ACKs with the nonce, and sends only the names that change', async () => {
    h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    const client = h.client({ address: proxyAddress, protocol: 'delta' });
    client.subscribe(CDS, '*');
    client.subscribe(EDS, ['b', 'a']);
    client.start();
    await vi.waitFor(() => expect(h.log.acks).toHaveLength(2));
    const [cds, eds] = [h.log.responses.find((r) => r.typeUrl === CDS)!, h.log.responses.find((r) => r.typeUrl === EDS)!];

    client.unsubscribe(EDS, ['b']);
    client.subscribe(EDS, ['c']);
    // c does not exist: the server says so (removed_resources), and that is ACKed too.
    await vi.waitFor(() => expect(h.log.acks).toHaveLength(3));
    const eds2 = h.log.responses.filter((r) => r.typeUrl === EDS)[1]!;
    expect(proxy.delta).toHaveLength(1);
    expect(proxy.delta[0]!.requests.map(deltaShape)).toEqual([
      delta({ typeUrl: CDS, subscribe: ['*'], node: NODE.id }),
      delta({ typeUrl: EDS, subscribe: ['a', 'b'] }),
      delta({ typeUrl: CDS, responseNonce: cds.nonce }),
      delta({ typeUrl: EDS, responseNonce: eds.nonce }),
      delta({ typeUrl: EDS, unsubscribe: ['b'] }),
      delta({ typeUrl: EDS, subscribe: ['c'] }),
      delta({ typeUrl: EDS, responseNonce: eds2.nonce }),
    ]);
  });

  it('NACKs with the rejected nonce and INVALID_ARGUMENT', async () => {
    h.cache.setSnapshot(GROUP, Snapshot.fromResources({ [EDS]: [loadAssignment('a', [1])] }));
    const client = h.client({ address: proxyAddress, protocol: 'delta' });
    const log = record(client);
    client.subscribe(EDS, ['a']);
    client.start();
    await vi.waitFor(() => expect(log.updates).toHaveLength(1));
    h.cache.setSnapshot(GROUP, Snapshot.fromResources({ [EDS]: [zeroWeightAssignment('a')] }));
    await vi.waitFor(() => expect(h.log.nacks).toHaveLength(1));

    const message = 'ClusterLoadAssignment "a": endpoints[0].lb_endpoints[0].load_balancing_weight: value must be greater than or equal to 1, got 0';
    expect(proxy.delta[0]!.requests.map(deltaShape).at(-1)).toEqual(delta({
      typeUrl: EDS, responseNonce: h.log.nacks[0]!.nonce, error: { code: 3, message },
    }));
  });
});

describe.each(['sotw', 'delta'] as const)('reconnecting over %s', (protocol) => {
  it('reconnects by itself after a server restart and resumes with what it holds and every subscription', async () => {
    const snap = meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' });
    h.cache.setSnapshot(GROUP, snap);
    const client = h.client({ address: proxyAddress, protocol });
    const log = record(client);
    client.subscribe(CDS, '*');
    client.subscribe(EDS, ['a']);
    client.start();
    await vi.waitFor(() => expect(h.log.acks).toHaveLength(2));
    const cdsVersion = client.state(CDS).version;
    const edsVersion = client.state(EDS).version;

    await h.server.close(200);
    // Subscribed while the server is away: must not be lost.
    client.subscribe(LDS, '*');
    await sleep(150);
    await h.start();
    await vi.waitFor(() => expect(h.log.streams).toBe(2));
    await vi.waitFor(() => expect(updatesOf(log, LDS)).toHaveLength(1));

    const streams = protocol === 'sotw' ? proxy.sotw : proxy.delta;
    expect(streams.length).toBeGreaterThanOrEqual(2);
    const resumed = streams.at(-1)!.requests;
    if (protocol === 'sotw') {
      const opening = [
        sotw({ typeUrl: CDS, versionInfo: cdsVersion, resourceNames: ['*'], node: NODE.id }),
        sotw({ typeUrl: EDS, versionInfo: edsVersion, resourceNames: ['a'] }),
        sotw({ typeUrl: LDS, resourceNames: ['*'] }),
      ];
      expect((resumed as DiscoveryRequest[]).slice(0, 3).map(sotwShape)).toEqual(opening);
      // Every attempt in between opened the same way.
      for (const s of streams.slice(1)) if (s.requests.length > 0) expect(sotwShape(s.requests[0] as DiscoveryRequest)).toEqual(opening[0]);
    } else {
      const version = (t: string, n: string) => snap.resources(t).get(n)!.version;
      const opening = [
        delta({ typeUrl: CDS, subscribe: ['*'], initial: { a: version(CDS, 'a'), b: version(CDS, 'b') }, node: NODE.id }),
        delta({ typeUrl: EDS, subscribe: ['a'], initial: { a: version(EDS, 'a') } }),
        delta({ typeUrl: LDS, subscribe: ['*'] }),
      ];
      expect((resumed as DeltaDiscoveryRequest[]).slice(0, 3).map(deltaShape)).toEqual(opening);
      for (const s of streams.slice(1)) if (s.requests.length > 0) expect(deltaShape(s.requests[0] as DeltaDiscoveryRequest)).toEqual(opening[0]);
      // The server knew what the client held: nothing of CDS/EDS was sent again.
      expect(updatesOf(log, CDS)).toHaveLength(1);
      expect(updatesOf(log, EDS)).toHaveLength(1);
    }
    expect(client.state(CDS).version).toBe(cdsVersion);
    expect([...client.state(CDS).resources.keys()].sort()).toEqual(['a', 'b']);
  });
});
