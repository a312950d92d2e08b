/**
 * Sidecars register their workload as an endpoint of their Service through node metadata;
 * EDS follows; a sidecar that goes away or reports not ready is removed after the grace period.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { NodeSchema } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import { ClusterLoadAssignmentSchema } from '../../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ENDPOINT_TYPE_URL, MESH_CONFIG_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { parseRegistration } from '../../../control/registry/endpoint-registry.ts';
import { RawSotwStream, testNode, unpackAll } from '../../helpers/raw-ads-client.ts';
import { startControlPlane, type TestControlPlane } from '../../helpers/control-plane.ts';

const ECHO = 'outbound|50051||echo.default';
const SERVICE = `apiVersion: palisade.dev/v1
kind: Service
metadata: { name: echo }
spec: { protocol: grpc, port: 50051, endpoints: [{ address: 127.0.0.1, port: 7001 }] }
`;

function sidecarNode(id: string, md: Record<string, unknown>) {
  return create(NodeSchema, {
    id, userAgentName: 'palisade-sidecar', locality: { region: 'eu', zone: 'eu-1' },
    metadata: { 'palisade.io/kind': 'sidecar', 'palisade.io/service': 'echo', 'palisade.io/inbound-address': '127.0.0.2', 'palisade.io/inbound-port': 15006, 'palisade.io/ready': true, ...md } as never,
  });
}

describe('parseRegistration', () => {
  it('reads service, address, port, labels, locality and readiness', () => {
    const r = parseRegistration(sidecarNode('s1', { 'palisade.io/labels': { version: 'v2' }, 'palisade.io/inbound-port': '15006' }));
    expect(r).toEqual({
      valid: true,
      result: {
        nodeId: 's1', service: 'default/echo', ready: true,
        endpoint: { address: '127.0.0.2', port: 15006, weight: 1, labels: { version: 'v2' }, locality: { region: 'eu', zone: 'eu-1' } },
      },
    });
  });

  it('registers nothing for a node without a service', () => {
    expect(parseRegistration(testNode())).toEqual({ valid: true, result: null });
  });

  it.each([
    [{ 'palisade.io/inbound-address': 'not-an-ip' }, 'palisade.io/inbound-address must be an IPv4 or IPv6 address, got "not-an-ip"'],
    [{ 'palisade.io/inbound-port': 70000 }, 'palisade.io/inbound-port must be an integer 1..65535, got 70000'],
    [{ 'palisade.io/service': 'Echo_1' }, 'palisade.io/service must be a Service name (DNS label), got "Echo_1"'],
    [{ 'palisade.io/labels': { v: 2 } }, 'palisade.io/labels.v must be a string, got 2'],
  ])('refuses %j naming the key and value', (md, error) => {
    expect(parseRegistration(sidecarNode('s1', md))).toEqual({ valid: false, errors: [error] });
  });
});

describe('sidecar endpoints through EDS', () => {
  let tcp: TestControlPlane;
  let envoy: RawSotwStream;
  const open: RawSotwStream[] = [];

  const ports = (res: Awaited<ReturnType<RawSotwStream['next']>>) => unpackAll(res, ClusterLoadAssignmentSchema)[0]!.endpoints
    .flatMap((l) => l.lbEndpoints.map((e) => (e.hostIdentifier.case === 'endpoint' && e.hostIdentifier.value.address?.address.case === 'socketAddress'
      ? Number(e.hostIdentifier.value.address.address.value.portSpecifier.value) : 0)))
    .sort((a, b) => a - b);

  async function nextEds(): Promise<number[]> {
    const res = await envoy.next(5000);
    expect(res.typeUrl).toBe(ENDPOINT_TYPE_URL);
    envoy.ack(res, [ECHO]);
    return ports(res);
  }

  function sidecar(id: string, md: Record<string, unknown> = {}): RawSotwStream {
    const s = new RawSotwStream(tcp.address);
    open.push(s);
    s.send({ node: sidecarNode(id, md), typeUrl: MESH_CONFIG_TYPE_URL });
    return s;
  }

  beforeEach(async () => {
    tcp = await startControlPlane({ 'echo.yaml': SERVICE }, 20, 300);
    envoy = new RawSotwStream(tcp.address);
    envoy.send({ node: testNode('envoy-1'), typeUrl: ENDPOINT_TYPE_URL, resourceNames: [ECHO] });
    expect(await nextEds()).toEqual([7001]);
  });

  afterEach(async () => {
    for (const s of open.splice(0)) s.close();
    envoy.close();
    await tcp.close();
  });

  it('adds a ready sidecar as an endpoint and removes it after the grace period once it disconnects', async () => {
    const s = sidecar('sidecar-a');
    expect(await nextEds()).toEqual([7001, 15006]);
    expect(tcp.cp.registry.list()).toMatchObject([{ nodeId: 'sidecar-a', service: 'default/echo', serving: true, streams: 1 }]);
    const closedAt = Date.now();
    s.close();
    expect(await envoy.silentFor(150)).toBe(true);
    expect(await nextEds()).toEqual([7001]);
    expect(Date.now() - closedAt).toBeGreaterThanOrEqual(250);
  });

  it('does not add a sidecar until it reports ready, and removes it after grace when it reports not ready', async () => {
    const s = sidecar('sidecar-b', { 'palisade.io/ready': false });
    expect(await envoy.silentFor(400)).toBe(true);
    const mesh = await s.next();
    s.send({ node: sidecarNode('sidecar-b', {}), typeUrl: MESH_CONFIG_TYPE_URL, versionInfo: mesh.versionInfo, responseNonce: mesh.nonce });
    expect(await nextEds()).toEqual([7001, 15006]);
    s.send({ node: sidecarNode('sidecar-b', { 'palisade.io/ready': false }), typeUrl: MESH_CONFIG_TYPE_URL, versionInfo: mesh.versionInfo, responseNonce: mesh.nonce });
    expect(await envoy.silentFor(150)).toBe(true);
    expect(await nextEds()).toEqual([7001]);
  });

  it('keeps a sidecar that reconnects within the grace period without EDS flapping', async () => {
    const s1 = sidecar('sidecar-c');
    expect(await nextEds()).toEqual([7001, 15006]);
    s1.close();
    await new Promise((r) => setTimeout(r, 100));
    sidecar('sidecar-c');
    expect(await envoy.silentFor(600)).toBe(true);
    expect(tcp.cp.registry.list()).toMatchObject([{ nodeId: 'sidecar-c', serving: true, streams: 1 }]);
  });
});
