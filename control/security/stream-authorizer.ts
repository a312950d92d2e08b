/**
 * Who may hold an xDS stream for which node (issue #5), the policy behind AdsServer's
 * `authorize` hook. A peer is the SPIFFE ID in its certificate's URI SAN (an X.509-SVID has
 * exactly one). The ID must belong to the mesh's trust domain, and a node that states its
 * identity in metadata must state the SVID's:
 *
 *   namespace        palisade.io/namespace (or Istio's NAMESPACE)            = /ns/<namespace>
 *   service account  palisade.io/service-account (or Istio's SERVICE_ACCOUNT);
 *                    a sidecar without one defaults to palisade.io/service    = /sa/<account>
 *
 * A node that states neither (a gRPC client, an Envoy with a bare bootstrap) takes the SVID's
 * identity. Without a certificate: refused under STRICT; allowed under PERMISSIVE (such a
 * stream has no identity, so it is served nothing that belongs to one, e.g. SDS secrets).
 */
import type { PeerCertificate } from 'node:tls';
import { uriSans } from '../../certs/peer-identity.ts';
import { parseWorkloadId } from '../../certs/spiffe.ts';
import type { Node } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { StreamAuthorizer } from '../../xds/server/callbacks.ts';
import { ISTIO_NAMESPACE_KEY, NAMESPACE_KEY, SERVICE_ACCOUNT_KEY, SERVICE_KEY } from '../../xds/resources/node-metadata.ts';
import type { MtlsMode } from '../config/schema.ts';
import { clientKind, type ClientKind } from '../translate/node-kind.ts';

/** Istio's node metadata key for the workload's service account. */
export const ISTIO_SERVICE_ACCOUNT_KEY = 'SERVICE_ACCOUNT';

export interface StreamAuthorizerOptions {
  /** The mesh's trust domain (Mesh spec.trustDomain), e.g. `cluster.local`. */
  readonly trustDomain: string;
  /** Mesh spec.mtls.mode: STRICT refuses a stream without a client certificate. A function is asked per stream (the Mesh may change). */
  readonly mode: MtlsMode | (() => MtlsMode);
  /**
   * Client kinds served without a certificate even under STRICT: proxyless gRPC clients whose
   * xDS library cannot do TLS (grpc-js-xds), on the plaintext xDS port an operator opened
   * (Istio's 15010). They get no identity and so no secret. Default none.
   */
  readonly plaintextKinds?: readonly ClientKind[];
}

/** The URI SANs of a peer certificate (Node's `subjectaltname`: `URI:…, DNS:…`). */
export function peerUris(cert: PeerCertificate | null): string[] {
  return uriSans(cert?.subjectaltname);
}

/**
 * The SPIFFE ID of a peer certificate: its one spiffe:// URI SAN, or null when it has none,
 * several, or no certificate was presented.
 */
export function peerSpiffeId(cert: PeerCertificate | null): string | null {
  const spiffe = peerUris(cert).filter((u) => u.startsWith('spiffe://'));
  return spiffe.length === 1 ? spiffe[0]! : null;
}

function metadataString(node: Node, ...keys: string[]): string | null {
  for (const key of keys) {
    const v = node.metadata?.[key];
    if (typeof v === 'string' && v !== '') return v;
  }
  return null;
}

/** The identity a node states: namespace and service account, each null when it states none. */
export function statedIdentity(node: Node): { namespace: string | null; serviceAccount: string | null } {
  const namespace = metadataString(node, NAMESPACE_KEY, ISTIO_NAMESPACE_KEY);
  let serviceAccount = metadataString(node, SERVICE_ACCOUNT_KEY, ISTIO_SERVICE_ACCOUNT_KEY);
  // The sidecar's bootstrap defaults its account to its Service name.
  if (serviceAccount === null && clientKind(node) === 'sidecar') serviceAccount = metadataString(node, SERVICE_KEY);
  return { namespace, serviceAccount };
}

export function createStreamAuthorizer(options: StreamAuthorizerOptions): StreamAuthorizer {
  const domain = options.trustDomain.toLowerCase();
  return (node, info) => {
    if (info.peerCertificate === null) {
      const mode = typeof options.mode === 'function' ? options.mode() : options.mode;
      if (mode !== 'STRICT' || (options.plaintextKinds ?? []).includes(clientKind(node))) return null;
      return 'a client certificate is required: the mesh mTLS mode is STRICT';
    }
    const spiffe = peerUris(info.peerCertificate).filter((u) => u.startsWith('spiffe://'));
    if (spiffe.length !== 1) return `the client certificate must carry exactly one spiffe:// URI SAN, got ${spiffe.length}`;
    const id = spiffe[0]!;
    const workload = parseWorkloadId(id);
    if (workload.valid && workload.result.trustDomain !== domain) return `${id} is not in the trust domain ${domain}`;
    if (!workload.valid) return `${id} is not a workload identity (spiffe://${domain}/ns/<namespace>/sa/<service account>)`;
    const { namespace, serviceAccount } = workload.result;
    const stated = statedIdentity(node);
    if (stated.namespace !== null && stated.namespace !== namespace) return `${id} may not speak for node "${node.id}" of namespace "${stated.namespace}"`;
    if (stated.serviceAccount !== null && stated.serviceAccount !== serviceAccount) return `${id} may not speak for node "${node.id}" of service account "${stated.serviceAccount}"`;
    return null;
  };
}
