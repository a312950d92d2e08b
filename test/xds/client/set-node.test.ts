/**
 * AdsClient.setNode(): a new node (e.g. readiness metadata) reaches the real AdsServer on
 * the open stream without being taken as an ACK/NACK and without making the server answer,
 * waits for the first subscription when nothing is subscribed, and opens every later stream.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { DeltaDiscoveryRequest, DiscoveryRequest } from '../../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { meshSnapshot } from '../../helpers/resources.ts';
import { GROUP, Harness, NODE, record, sleep } from './harness.ts';
import { RecordingProxy } from './recording-proxy.ts';

const CDS = CLUSTER_TYPE_URL;
const EDS = ENDPOINT_TYPE_URL;
const READY = 'palisade.io/ready';
const readyNode = (ready: boolean) => ({ ...NODE, metadata: { [READY]: ready } });

let h: Harness;

beforeEach(async () => {
  h = new Harness();
  await h.start();
});

afterEach(async () => {
  await h.close();
});

describe.each(['sotw', 'delta'] as const)('AdsClient.setNode over %s', (protocol) => {
  it('sends the new node once on the open stream: the server sees its metadata, counts no ACK and sends nothing', async () => {
    const proxy = new RecordingProxy(h.address);
    try {
      h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
      const client = h.client({ address: await proxy.listen(), protocol, node: readyNode(false) });
      const log = record(client);
      client.subscribe(CDS, '*');
      client.subscribe(EDS, ['a']);
      client.start();
      await vi.waitFor(() => expect(h.log.acks).toHaveLength(2));
      expect(h.log.nodes.map((n) => n.metadata?.[READY])).toEqual([false]);
      const acks = h.log.acks.length;
      const responses = h.log.responses.length;
      const updates = log.updates.length;
      const streams = protocol === 'sotw' ? proxy.sotw : proxy.delta;
      const sent = streams.at(-1)!.requests.length;

      client.setNode(readyNode(true));
      expect(client.config.node.metadata).toEqual({ [READY]: true });
      await vi.waitFor(() => expect(h.log.nodeUpdates).toHaveLength(1));
      expect(h.log.nodeUpdates[0]!.metadata).toEqual({ [READY]: true });
      expect(h.log.nodeUpdates[0]!.id).toBe(NODE.id);
      // Nothing new arrives: no ACK counted, no response resent, no update.
      await sleep(200);
      expect(h.log.acks).toHaveLength(acks);
      expect(h.log.nacks).toHaveLength(0);
      expect(h.log.responses).toHaveLength(responses);
      expect(log.updates).toHaveLength(updates);

      // Exactly one request, shaped not to be an ACK/NACK or a subscription change.
      const extra = streams.at(-1)!.requests.slice(sent);
      expect(extra).toHaveLength(1);
      if (protocol === 'sotw') {
        const r = extra[0] as DiscoveryRequest;
        expect({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.responseNonce, resourceNames: r.resourceNames })
          .toEqual({ typeUrl: CDS, versionInfo: client.state(CDS).version, responseNonce: '', resourceNames: ['*'] });
      } else {
        const r = extra[0] as DeltaDiscoveryRequest;
        expect({
          typeUrl: r.typeUrl, subscribe: r.resourceNamesSubscribe, unsubscribe: r.resourceNamesUnsubscribe,
          initial: r.initialResourceVersions, responseNonce: r.responseNonce,
        }).toEqual({ typeUrl: CDS, subscribe: [], unsubscribe: [], initial: {}, responseNonce: '' });
      }
      expect(extra[0]!.node?.metadata).toEqual({ [READY]: true });
      expect(extra[0]!.errorDetail).toBeUndefined();

      // The stream still works: a change is pushed and ACKed as before.
      h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [3], b: [2] }, routeTo: 'a' }));
      await vi.waitFor(() => expect(h.log.acks.length).toBeGreaterThan(acks));
      expect(h.log.nodeUpdates).toHaveLength(1);
    } finally {
      proxy.close();
    }
  });

  it('with nothing subscribed yet, sends the new node with the first subscription', async () => {
    h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1] }, routeTo: 'a' }));
    const client = h.client({ protocol, node: readyNode(false) });
    client.start();
    await vi.waitFor(() => expect(client.connected).toBe(true));
    client.setNode(readyNode(true));
    await sleep(50);
    expect(h.log.streams).toBe(0);
    client.subscribe(CDS, '*');
    await vi.waitFor(() => expect(h.log.acks).toHaveLength(1));
    expect(h.log.nodes.map((n) => n.metadata?.[READY])).toEqual([true]);
    expect(h.log.nodeUpdates).toHaveLength(0);
  });

  it('opens the stream after a server restart with the latest node, set while no stream was up', async () => {
    h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1] }, routeTo: 'a' }));
    const client = h.client({ protocol, node: readyNode(false) });
    client.subscribe(CDS, '*');
    client.start();
    await vi.waitFor(() => expect(h.log.acks).toHaveLength(1));
    client.setNode(readyNode(true));
    await vi.waitFor(() => expect(h.log.nodeUpdates).toHaveLength(1));

    await h.server.close(200);
    await vi.waitFor(() => expect(client.connected).toBe(false));
    client.setNode({ ...readyNode(false), metadata: { [READY]: false, 'palisade.io/zone': 'b' } });
    await sleep(50);
    await h.start();
    await vi.waitFor(() => expect(h.log.streams).toBe(2));
    expect(h.log.nodes[1]!.metadata).toEqual({ [READY]: false, 'palisade.io/zone': 'b' });
    // Sent on the stream's first request, not again on a later one.
    await sleep(100);
    expect(h.log.nodeUpdates).toHaveLength(1);
  });

  it('before start(), opens the first stream with the latest node', async () => {
    h.cache.setSnapshot(GROUP, meshSnapshot({ clusters: { a: [1] }, routeTo: 'a' }));
    const client = h.client({ protocol, node: readyNode(false) });
    client.subscribe(CDS, '*');
    client.setNode(readyNode(true));
    client.start();
    await vi.waitFor(() => expect(h.log.acks).toHaveLength(1));
    expect(h.log.nodes.map((n) => n.metadata?.[READY])).toEqual([true]);
    expect(h.log.nodeUpdates).toHaveLength(0);
  });
});

describe('AdsClient.setNode arguments', () => {
  it('rejects a bad node with PAL_ERR_XDS_CLIENT_INVALID_OPTION and keeps the old one', () => {
    const client = h.client({ node: readyNode(false) });
    for (const bad of [undefined, null, 'node', []]) {
      expect(() => client.setNode(bad as never)).toThrow(expect.objectContaining({ code: 'PAL_ERR_XDS_CLIENT_INVALID_OPTION' }));
    }
    expect(() => client.setNode('n1' as never)).toThrow('invalid node: node must be an object (envoy.config.core.v3.Node), got "n1"');
    expect(client.config.node.metadata).toEqual({ [READY]: false });
    expect(Object.isFrozen(client.config)).toBe(true);
  });

  it('throws PAL_ERR_XDS_CLIENT_CLOSED once closed', () => {
    const client = h.client();
    client.close();
    expect(() => client.setNode(NODE)).toThrow(expect.objectContaining({ code: 'PAL_ERR_XDS_CLIENT_CLOSED' }));
  });
});
