/**
 * Tells the three kinds of xDS client apart and names their node group. Streams of one
 * group share one snapshot: the translation depends only on the client kind and the
 * namespace its short names resolve in.
 */
import type { Node } from '../../xds/gen/envoy/config/core/v3/base_pb.js';

export type ClientKind = 'envoy' | 'grpc' | 'sidecar';

import { parseWorkloadId } from '../../certs/spiffe.ts';
import { ISTIO_NAMESPACE_KEY, KIND_KEY, NAMESPACE_KEY } from '../../xds/resources/node-metadata.ts';

/** Node metadata keys naming the client's namespace, Palisade's first, then Istio's. */
const NAMESPACE_METADATA_KEYS = [NAMESPACE_KEY, ISTIO_NAMESPACE_KEY] as const;

export interface NodeTarget {
  kind: ClientKind;
  namespace: string;
  /**
   * The SPIFFE workload ID the group's streams authenticated as, for groups that get
   * secrets of their own (Envoys with a client certificate). Absent: a shared group.
   */
  identity?: string;
}

function metadataString(node: Node, key: string): string | undefined {
  // google.protobuf.Struct decodes to a plain JSON object in protobuf-es.
  const v = node.metadata?.[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * The client kind: explicit metadata wins; otherwise Envoy says "envoy" in
 * user_agent_name, gRPC libraries say "grpc-node-js", "gRPC Go", "gRPC Java", ….
 */
export function clientKind(node: Node): ClientKind {
  const declared = metadataString(node, KIND_KEY);
  if (declared === 'envoy' || declared === 'grpc' || declared === 'sidecar') return declared;
  const agent = node.userAgentName.toLowerCase();
  if (agent.includes('palisade')) return 'sidecar';
  if (agent.includes('grpc')) return 'grpc';
  return 'envoy';
}

export function nodeTarget(node: Node): NodeTarget {
  let namespace = 'default';
  for (const key of NAMESPACE_METADATA_KEYS) {
    const v = metadataString(node, key);
    if (v) {
      namespace = v;
      break;
    }
  }
  return { kind: clientKind(node), namespace };
}

/**
 * `kind/namespace`, or `kind@td:ns:sa/namespace` for a group of one identity. The identity
 * goes before the first '/' because only the server writes that part: the namespace comes
 * from the client, so no namespace can make a key that parses as another identity's group.
 * Trust domains and workload ID segments never hold ':' or '/'.
 */
export function groupKey(target: NodeTarget): string {
  if (target.identity === undefined) return `${target.kind}/${target.namespace}`;
  const id = parseWorkloadId(target.identity);
  if (!id.valid) throw new TypeError(`identity must be a SPIFFE workload ID, got ${JSON.stringify(target.identity)}`);
  const { trustDomain, namespace, serviceAccount } = id.result;
  return `${target.kind}@${trustDomain}:${namespace}:${serviceAccount}/${target.namespace}`;
}

export function parseGroupKey(group: string): NodeTarget {
  // The kind never holds '/'; the namespace comes from the client and might.
  const i = group.indexOf('/');
  const head = group.slice(0, i);
  const namespace = group.slice(i + 1);
  const at = head.indexOf('@');
  if (at === -1) return { kind: head as ClientKind, namespace };
  const [trustDomain, ns, sa] = head.slice(at + 1).split(':');
  return { kind: head.slice(0, at) as ClientKind, namespace, identity: `spiffe://${trustDomain}/ns/${ns}/sa/${sa}` };
}
