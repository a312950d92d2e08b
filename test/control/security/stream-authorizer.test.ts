import { describe, expect, it } from 'vitest';
import type { PeerCertificate } from 'node:tls';
import { create } from '@bufbuild/protobuf';
import { NodeSchema, type Node } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { StreamInfo } from '../../../xds/server/callbacks.ts';
import { createStreamAuthorizer, peerUris, statedIdentity } from '../../../control/security/stream-authorizer.ts';

/** A peer certificate as Node reports it; only `subjectaltname` is read. */
function cert(subjectaltname: string): PeerCertificate {
  return { subjectaltname, raw: Buffer.from([0x30]) } as PeerCertificate;
}

function info(peerCertificate: PeerCertificate | null): StreamInfo {
  return { id: 1, protocol: 'sotw', peer: 'ipv4:127.0.0.1:1', peerCertificate, openedAt: new Date(0), node: undefined, group: undefined };
}

function sidecar(metadata: Record<string, string>): Node {
  return create(NodeSchema, { id: 'web-1', userAgentName: 'palisade-sidecar', metadata: { 'palisade.io/kind': 'sidecar', ...metadata } });
}

const strict = createStreamAuthorizer({ trustDomain: 'mesh.local', mode: 'STRICT' });
const permissive = createStreamAuthorizer({ trustDomain: 'mesh.local', mode: 'PERMISSIVE' });
const WEB = 'URI:spiffe://mesh.local/ns/shop/sa/web';

describe('xDS stream authorization by SVID', () => {
  it.each([
    ['its own identity', sidecar({ 'palisade.io/namespace': 'shop', 'palisade.io/service-account': 'web' }), WEB, null],
    ['the Service name as the default account', sidecar({ 'palisade.io/namespace': 'shop', 'palisade.io/service': 'web' }), WEB, null],
    ['Istio metadata keys', sidecar({ NAMESPACE: 'shop', SERVICE_ACCOUNT: 'web' }), WEB, null],
    ['a node that states no identity', create(NodeSchema, { id: 'grpc-1', userAgentName: 'grpc-node-js' }), WEB, null],
    ['another namespace', sidecar({ 'palisade.io/namespace': 'bank', 'palisade.io/service-account': 'web' }), WEB,
      'spiffe://mesh.local/ns/shop/sa/web may not speak for node "web-1" of namespace "bank"'],
    ['another service account', sidecar({ 'palisade.io/namespace': 'shop', 'palisade.io/service-account': 'payments' }), WEB,
      'spiffe://mesh.local/ns/shop/sa/web may not speak for node "web-1" of service account "payments"'],
    ['another trust domain', sidecar({ 'palisade.io/namespace': 'shop' }), 'URI:spiffe://other.local/ns/shop/sa/web',
      'spiffe://other.local/ns/shop/sa/web is not in the trust domain mesh.local'],
    ['no SPIFFE ID', sidecar({}), 'DNS:web.shop', 'the client certificate must carry exactly one spiffe:// URI SAN, got 0'],
    ['two SPIFFE IDs', sidecar({}), `${WEB}, URI:spiffe://mesh.local/ns/shop/sa/api`, 'the client certificate must carry exactly one spiffe:// URI SAN, got 2'],
    ['a non-workload ID', sidecar({}), 'URI:spiffe://mesh.local/control-plane',
      'spiffe://mesh.local/control-plane is not a workload identity (spiffe://mesh.local/ns/<namespace>/sa/<service account>)'],
  ])('%s', (_what, node, san, expected) => {
    expect(strict(node, info(cert(san)))).toBe(expected);
  });

  it('refuses a stream without a client certificate under STRICT and allows it under PERMISSIVE', () => {
    const node = sidecar({ 'palisade.io/namespace': 'shop' });
    expect(strict(node, info(null))).toBe('a client certificate is required: the mesh mTLS mode is STRICT');
    expect(permissive(node, info(null))).toBeNull();
  });

  it('under STRICT serves cert-less streams only to the client kinds opened for the plaintext port', () => {
    const withGrpc = createStreamAuthorizer({ trustDomain: 'mesh.local', mode: 'STRICT', plaintextKinds: ['grpc'] });
    const grpcClient = create(NodeSchema, { id: 'grpc-1', userAgentName: 'grpc-node-js' });
    expect(withGrpc(grpcClient, info(null))).toBeNull();
    expect(withGrpc(sidecar({ 'palisade.io/namespace': 'shop' }), info(null))).toBe('a client certificate is required: the mesh mTLS mode is STRICT');
    expect(withGrpc(create(NodeSchema, { id: 'envoy-1', userAgentName: 'envoy' }), info(null))).toBe('a client certificate is required: the mesh mTLS mode is STRICT');
  });

  it('follows the Mesh mode when it is given as a function', () => {
    let mode: 'STRICT' | 'PERMISSIVE' = 'STRICT';
    const live = createStreamAuthorizer({ trustDomain: 'mesh.local', mode: () => mode });
    const node = sidecar({ 'palisade.io/namespace': 'shop' });
    expect(live(node, info(null))).not.toBeNull();
    mode = 'PERMISSIVE';
    expect(live(node, info(null))).toBeNull();
  });

  it('reads URI SANs and stated identities', () => {
    expect(peerUris(cert('DNS:a, URI:spiffe://x/ns/a/sa/b, IP Address:127.0.0.1'))).toEqual(['spiffe://x/ns/a/sa/b']);
    expect(peerUris(null)).toEqual([]);
    expect(statedIdentity(create(NodeSchema, { id: 'e', userAgentName: 'envoy' }))).toEqual({ namespace: null, serviceAccount: null });
  });
});
