/** The xDS node a sidecar presents: identity, kind, and its registration as an endpoint. */
import { create } from '@bufbuild/protobuf';
import { NodeSchema, type Node } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import {
  INBOUND_ADDRESS_KEY, INBOUND_PORT_KEY, KIND_KEY, LABELS_KEY, NAMESPACE_KEY, READY_KEY, SERVICE_ACCOUNT_KEY, SERVICE_KEY,
} from '../../xds/resources/node-metadata.ts';
import type { SidecarBootstrap } from './bootstrap.ts';

export const SIDECAR_USER_AGENT = 'palisade-sidecar';

/**
 * `inboundPort` is the port actually bound (the bootstrap may ask for 0); `ready` is false
 * until the first full configuration is applied, and the control plane adds the endpoint
 * only once it is true.
 */
export function sidecarNode(b: SidecarBootstrap, inboundPort: number, ready: boolean, version: string): Node {
  return create(NodeSchema, {
    id: b.node.id,
    cluster: b.node.service,
    userAgentName: SIDECAR_USER_AGENT,
    userAgentVersionType: { case: 'userAgentVersion', value: version },
    locality: b.node.locality,
    metadata: {
      [KIND_KEY]: 'sidecar',
      [NAMESPACE_KEY]: b.node.namespace,
      [SERVICE_KEY]: b.node.service,
      [SERVICE_ACCOUNT_KEY]: b.node.serviceAccount,
      [INBOUND_ADDRESS_KEY]: b.inbound.advertiseAddress,
      [INBOUND_PORT_KEY]: inboundPort,
      [LABELS_KEY]: { ...b.node.labels },
      [READY_KEY]: ready,
    },
  });
}
