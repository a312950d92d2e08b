import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AdsClient } from '../../../xds/client/ads-client.ts';
import { Snapshot } from '../../../xds/cache/snapshot.ts';
import type { Cluster } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { ClusterLoadAssignment } from '../../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { edsCluster, loadAssignment, meshSnapshot } from '../../helpers/resources.ts';
import { GROUP, Harness, NODE, namesOf, record, sleep, updatesOf } from './harness.ts';

const CDS = CLUSTER_TYPE_URL;
const EDS = ENDPOINT_TYPE_URL;
const PROTOCOLS = ['sotw', 'delta'] as const;

/** A load assignment whose only endpoint has load_balancing_weight 0 (PGV: UInt32Value gte 1). */
function zeroWeightAssignment(cluster: string) {
  const cla = loadAssignment(cluster, [1]);
  cla.endpoints[0]!.lbEndpoints[0]!.loadBalancingWeight = 0;
  return cla;
}

/** Port of each endpoint of a held load assignment. */
function portsOf(message: unknown): number[] {
  return (message as ClusterLoadAssignment).endpoints.flatMap((e) => e.lbEndpoints.map((lb) => {
    const addr = lb.hostIdentifier.case === 'endpoint' ? lb.hostIdentifier.value.address?.address : undefined;
    return addr?.case === 'socketAddress' && addr.value.portSpecifier.case === 'portValue' ? addr.value.portSpecifier.value : -1;
  }));
}

const WEIGHT_ERROR =
  'ClusterLoadAssignment "a": endpoints[0].lb_endpoints[0].load_balancing_weight: value must be greater than or equal to 1, got 0';

let h: Harness;

beforeEach(async () => {
  h = new Harness();
  await h.start();
});

afterEach(async () => {
  await h.close();
});

describe.each(PROTOCOLS)('AdsClient over %s', (protocol) => {
  it('ACKs a valid response and reports the full state with the version the server saw ACKed', async () => {
    const snap = meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' });
    h.cache.setSnapshot(GROUP, snap);
    const client = h.client({ protocol });
    const log = record(client);
    client.subscribe(CDS, '*');
    client.start();
    await vi.waitFor(() => expect(h.log.acks).toHaveLength(1));

    expect(log.updates).toHaveLength(1);
    const { typeUrl, resources, info } = log.updates[0]!;
    expect(typeUrl).toBe(CDS);
    expect(namesOf(resources)).toEqual(['a', 'b']);
    expect(info.version).toBe(snap.version(CDS));
    expect(h.log.acks).toEqual([{ typeUrl: CDS, version: info.version, nonce: info.nonce }]);
    expect(h.log.nacks).toEqual([]);
    expect(log.nacks).toEqual([]);
    for (const name of ['a', 'b']) {
      const held = resources.get(name)!;
      expect((held.message as Cluster).name).toBe(name);
      // SotW: the version_info of the response; delta: the resource's own version.
      expect(held.version).toBe(protocol === 'sotw' ? info.version : snap.resources(CDS).get(name)!.version);
    }
    expect(client.state(CDS).version).toBe(info.version);
    expect(client.state(CDS).resources).toBe(resources);
  });

  it('NACKs a response with an invalid resource, naming the resource and field, and keeps the last good state', async () => {
    h.cache.setSnapshot(GROUP, Snapshot.fromResources({ [EDS]: [loadAssignment('a', [1]), loadAssignment('b', [2])] }));
    const client = h.client({ protocol });
    const log = record(client);
    client.subscribe(EDS, ['a', 'b']);
    client.start();
    await vi.waitFor(() => expect(h.log.acks).toHaveLength(1));
    const good = client.state(EDS);

    // b's change is valid, but a response is taken or rejected whole.
    h.cache.setSnapshot(GROUP, Snapshot.fromResources({ [EDS]: [zeroWeightAssignment('a'), loadAssignment('b', [3])] }));
    await vi.waitFor(() => expect(h.log.nacks.length).toBeGreaterThanOrEqual(1));
    expect(h.log.nacks[0]).toMatchObject({ typeUrl: EDS, error: WEIGHT_ERROR });
    // Delta servers retry a refused response's resources one per response: b's valid
    // change is taken on its own and a is refused again, alone (SotW cannot split).
    const retried = protocol === 'delta' ? 1 : 0;
    if (retried) {
      await vi.waitFor(() => expect(h.log.nacks).toHaveLength(2));
      await vi.waitFor(() => expect(log.updates).toHaveLength(2));
    } else {
      await new Promise((r) => setTimeout(r, 200)); // nothing more may arrive
    }
    expect(log.nacks).toEqual(Array(1 + retried).fill({ typeUrl: EDS, error: WEIGHT_ERROR }));
    expect(log.updates).toHaveLength(1 + retried);
    if (!retried) expect(client.state(EDS)).toEqual(good);
    expect(portsOf(client.state(EDS).resources.get('a')!.message)).toEqual([1]);
    expect(portsOf(client.state(EDS).resources.get('b')!.message)).toEqual(retried ? [3] : [2]);

    h.cache.setSnapshot(GROUP, Snapshot.fromResources({ [EDS]: [loadAssignment('a', [4]), loadAssignment('b', [5])] }));
    await vi.waitFor(() => expect(log.updates).toHaveLength(2 + retried));
    const held = client.state(EDS).resources;
    expect(namesOf(held)).toEqual(['a', 'b']);
    expect(portsOf(held.get('a')!.message)).toEqual([4]);
    expect(portsOf(held.get('b')!.message)).toEqual([5]);
    expect(h.log.acks).toHaveLength(2 + retried);
    expect(h.log.acks[1 + retried]).toMatchObject({ typeUrl: EDS, version: log.updates[1 + retried]!.info.version });
    expect(h.log.nacks).toHaveLength(1 + retried);
  });

  it('NACKs with every problem when the validators option rejects a resource', async () => {
    h.cache.setSnapshot(GROUP, Snapshot.fromResources({
      [CDS]: [edsCluster('a'), edsCluster('forbidden'), edsCluster('also-forbidden')],
      [EDS]: [loadAssignment('a', [1]), loadAssignment('forbidden', [2]), loadAssignment('also-forbidden', [3])],
    }));
    const client = h.client({
      protocol,
      validators: { [CDS]: (r) => ((r as Cluster).name.includes('forbidden') ? ['name: reserved by the mesh'] : []) },
    });
    const log = record(client);
    client.subscribe(CDS, '*');
    client.start();
    await vi.waitFor(() => expect(h.log.nacks.length).toBeGreaterThanOrEqual(1));
    const error = 'Cluster "also-forbidden": name: reserved by the mesh\nCluster "forbidden": name: reserved by the mesh';
    expect(h.log.nacks[0]!.error).toBe(error);
    if (protocol === 'sotw') {
      expect(log.nacks).toEqual([{ typeUrl: CDS, error }]);
      expect(log.updates).toEqual([]);
      expect(client.state(CDS)).toEqual({ version: '', resources: new Map() });
      return;
    }
    // Delta: retried one per response, a is taken and each forbidden one refused alone.
    await vi.waitFor(() => expect(h.log.nacks).toHaveLength(3));
    expect(h.log.nacks.slice(1).map((n) => n.error).sort()).toEqual([
      'Cluster "also-forbidden": name: reserved by the mesh', 'Cluster "forbidden": name: reserved by the mesh',
    ]);
    await vi.waitFor(() => expect(namesOf(client.state(CDS).resources)).toEqual(['a']));
  });

  it('sends a wildcard subscription everything and a named one only its names', async () => {
    h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2], c: [3] }, routeTo: 'a' }));
    const client = h.client({ protocol });
    const log = record(client);
    client.subscribe(CDS, '*');
    client.subscribe(EDS, ['a']);
    client.start();
    await vi.waitFor(() => expect(h.log.acks).toHaveLength(2));
    expect(namesOf(client.state(CDS).resources)).toEqual(['a', 'b', 'c']);
    expect(namesOf(client.state(EDS).resources)).toEqual(['a']);

    client.subscribe(EDS, ['b']);
    await vi.waitFor(() => expect(updatesOf(log, EDS)).toHaveLength(2));
    expect(namesOf(updatesOf(log, EDS)[1]!.resources)).toEqual(['a', 'b']);
    expect(namesOf(client.state(EDS).resources)).toEqual(['a', 'b']);
  });

  it('drops unsubscribed resources from its state at once and is sent no more of them', async () => {
    h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    const client = h.client({ protocol });
    const log = record(client);
    client.subscribe(CDS, '*');
    client.subscribe(EDS, ['a', 'b']);
    client.start();
    await vi.waitFor(() => expect(h.log.acks).toHaveLength(2));

    client.unsubscribe(EDS, ['a']);
    client.unsubscribe(CDS, '*');
    expect(namesOf(client.state(EDS).resources)).toEqual(['b']);
    expect(client.state(CDS)).toEqual({ version: '', resources: new Map() });
    await sleep(200);
    const seen = log.updates.length;

    // a's endpoints and the cluster set change: neither is subscribed any more.
    h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [9], b: [2], c: [3] }, routeTo: 'a' }));
    await sleep(300);
    expect(log.updates.slice(seen)).toEqual([]);
    expect(namesOf(client.state(EDS).resources)).toEqual(['b']);
    expect(client.state(CDS).resources.size).toBe(0);
  });

  it('deletes a cluster absent from a later CDS response', async () => {
    h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    const client = h.client({ protocol });
    const log = record(client);
    client.subscribe(CDS, '*');
    client.start();
    await vi.waitFor(() => expect(updatesOf(log, CDS)).toHaveLength(1));
    h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1] }, routeTo: 'a' }));
    await vi.waitFor(() => expect(updatesOf(log, CDS)).toHaveLength(2));
    expect(namesOf(updatesOf(log, CDS)[1]!.resources)).toEqual(['a']);
    expect(namesOf(client.state(CDS).resources)).toEqual(['a']);
  });

  it(`EDS: ${protocol === 'sotw' ? 'keeps a load assignment absent from a SotW response (absence is not deletion)' : 'drops a load assignment named in removed_resources'}`, async () => {
    h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    const client = h.client({ protocol });
    const log = record(client);
    client.subscribe(EDS, ['a', 'b']);
    client.start();
    await vi.waitFor(() => expect(updatesOf(log, EDS)).toHaveLength(1));
    h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1] }, routeTo: 'a' }));
    await vi.waitFor(() => expect(updatesOf(log, EDS)).toHaveLength(2));
    const expected = protocol === 'sotw' ? ['a', 'b'] : ['a'];
    expect(namesOf(updatesOf(log, EDS)[1]!.resources)).toEqual(expected);
    expect(namesOf(client.state(EDS).resources)).toEqual(expected);
  });

  it('emits connected, then disconnected and connected again across a server restart, and keeps its subscriptions', async () => {
    h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1] }, routeTo: 'a' }));
    const client = h.client({ protocol });
    const log = record(client);
    client.subscribe(CDS, '*');
    client.subscribe(EDS, ['a']);
    client.start();
    await vi.waitFor(() => expect(h.log.acks).toHaveLength(2));
    expect(log.events).toEqual(['connected']);
    expect(client.connected).toBe(true);

    await h.server.close(200);
    await vi.waitFor(() => expect(client.connected).toBe(false));
    // Subscribed while no stream is up: sent on the next one.
    client.subscribe(LISTENER_TYPE_URL, '*');
    await sleep(100);
    await h.start();
    await vi.waitFor(() => expect(h.log.streams).toBe(2));
    await vi.waitFor(() => expect(client.connected).toBe(true));
    expect(log.events).toEqual(['connected', 'disconnected: server ended the stream', 'connected']);

    await vi.waitFor(() => expect(namesOf(client.state(LISTENER_TYPE_URL).resources)).toEqual(['outbound']));
    const before = updatesOf(log, EDS).length;
    h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [7] }, routeTo: 'a' }));
    await vi.waitFor(() => expect(updatesOf(log, EDS)).toHaveLength(before + 1));
    expect(portsOf(client.state(EDS).resources.get('a')!.message)).toEqual([7]);
  });

  it('close() ends the stream, emits disconnected once and delivers nothing more', async () => {
    h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1] }, routeTo: 'a' }));
    const client = h.client({ protocol });
    const log = record(client);
    client.subscribe(CDS, '*');
    client.start();
    await vi.waitFor(() => expect(h.log.acks).toHaveLength(1));
    client.close();
    client.close();
    expect(log.events).toEqual(['connected', 'disconnected: client closed']);
    expect(client.connected).toBe(false);
    await vi.waitFor(() => expect(h.log.closed).toHaveLength(1));

    h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    await sleep(300);
    expect(log.updates).toHaveLength(1);
    expect(h.log.streams).toBe(1);
    expect(() => client.subscribe(EDS, ['a'])).toThrow(expect.objectContaining({ code: 'PAL_ERR_XDS_CLIENT_CLOSED' }));
    expect(() => client.start()).toThrow(expect.objectContaining({ code: 'PAL_ERR_XDS_CLIENT_CLOSED' }));
  });
});

describe('AdsClient arguments', () => {
  const client = () => new AdsClient({ address: '127.0.0.1:1', node: NODE });

  it.each([
    ['an unknown type URL', () => client().subscribe('type.googleapis.com/nope.Thing', '*'), 'PAL_ERR_XDS_UNKNOWN_TYPE',
      'unknown resource type "type.googleapis.com/nope.Thing"'],
    ['names that are not an array', () => client().subscribe(ROUTE_TYPE_URL, 'a' as '*'), 'PAL_ERR_XDS_CLIENT_INVALID_ARGUMENT',
      'subscribe: names must be "*" or an array of non-empty strings, got "a"'],
    ['an empty name', () => client().unsubscribe(ROUTE_TYPE_URL, ['']), 'PAL_ERR_XDS_CLIENT_INVALID_ARGUMENT',
      'unsubscribe: names must be "*" or an array of non-empty strings, got [""]'],
    ['state of an unknown type URL', () => client().state('x'), 'PAL_ERR_XDS_UNKNOWN_TYPE', 'unknown resource type "x"'],
  ])('throws for %s', (_what, call, code, message) => {
    expect(call).toThrow(expect.objectContaining({ code, message }));
  });

  it('does not connect before start() and holds nothing', () => {
    const c = client();
    c.subscribe(CDS, '*');
    expect(c.connected).toBe(false);
    expect(c.state(CDS)).toEqual({ version: '', resources: new Map() });
    c.close();
  });
});
