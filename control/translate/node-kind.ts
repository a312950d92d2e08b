/**
 * Tells the three kinds of xDS client apart and names their node group. Streams of one
 * group share one snapshot: the translation depends only on the client kind and the
 * namespace its short names resolve in.
 */
import type { Node } from '../../xds/gen/envoy/config/core/v3/base_pb.js';

export type ClientKind = 'envoy' | 'grpc' | 'sidecar';

import { ISTIO_NAMESPACE_KEY, KIND_KEY, NAMESPACE_KEY } from '../../xds/resources/node-metadata.ts';

/** Node metadata keys naming the client's namespace, Palisade's first, then Istio's. */
const NAMESPACE_METADATA_KEYS = [NAMESPACE_KEY, ISTIO_NAMESPACE_KEY] as const;

export interface NodeTarget {
  kind: ClientKind;
  namespace: string;
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

export function groupKey(target: NodeTarget): string {
  return `${target.kind}/${target.namespace}`;
}

export function parseGroupKey(group: string): NodeTarget {
  // The kind never holds '/'; the namespace comes from the client and might.
  const i = group.indexOf('/');
  return { kind: group.slice(0, i) as ClientKind, namespace: group.slice(i + 1) };
}
