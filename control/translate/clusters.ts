/**
 * Service (+ subset) → Cluster and ClusterLoadAssignment.
 *
 * Endpoints with IP addresses go out over EDS. A Service whose endpoints include DNS
 * hostnames becomes a STRICT_DNS cluster (LOGICAL_DNS for gRPC, which supports no other
 * DNS type) with its endpoints inline, since Envoy does not resolve hostnames from EDS.
 *
 * Endpoint weights and gRPC: gRPC's round_robin ignores endpoint weights and honours only
 * locality weights. So for gRPC clients, endpoints of one locality with different weights
 * are split into sub-localities of equal weight (sub_zone "<zone>/w<weight>"), each
 * weighted weight × count, which yields the same traffic split Envoy gives.
 *
 * Endpoints with a SPIFFE identity make the cluster auto-mTLS for Envoy and sidecar
 * clients (mtls.ts); gRPC clients dial them as before.
 */
import { isIP } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { anyPack, DurationSchema } from '@bufbuild/protobuf/wkt';
import {
  ClusterSchema, Cluster_DiscoveryType, Cluster_EdsClusterConfigSchema, Cluster_DnsLookupFamily, Cluster_LbPolicy, type Cluster,
} from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import {
  ClusterLoadAssignmentSchema, type ClusterLoadAssignment,
} from '../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { LocalityLbEndpoints } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_components_pb.js';
import { LocalityLbEndpointsSchema } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_components_pb.js';
import { HttpProtocolOptionsSchema } from '../../xds/gen/envoy/extensions/upstreams/http/v3/http_protocol_options_pb.js';
import type { Endpoint, ServiceResource } from '../config/schema.ts';
import type { ClientKind } from './node-kind.ts';
import { ADS_SOURCE } from './ads-source.ts';
import { mtlsEndpointMetadata, mtlsTransportSocketMatches } from './mtls.ts';
import { clusterName } from './names.ts';

const HTTP_PROTOCOL_OPTIONS_KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const CONNECT_TIMEOUT = create(DurationSchema, { seconds: 5n });
export { ADS_SOURCE };

export interface ClusterOutput {
  cluster: Cluster;
  /** Absent for DNS clusters, whose endpoints are inline. */
  loadAssignment: ClusterLoadAssignment | undefined;
}

export function endpointsFor(service: ServiceResource, subset?: Readonly<Record<string, string>>): Endpoint[] {
  if (!subset) return service.spec.endpoints;
  const want = Object.entries(subset);
  return service.spec.endpoints.filter((e) => want.every(([k, v]) => e.labels?.[k] === v));
}

export function buildCluster(service: ServiceResource, subset: Readonly<Record<string, string>> | undefined, kind: ClientKind): ClusterOutput {
  const name = clusterName(service, subset);
  const endpoints = endpointsFor(service, subset);
  const dns = endpoints.some((e) => isIP(e.address) === 0);
  const assignment = create(ClusterLoadAssignmentSchema, { clusterName: name, endpoints: localities(endpoints, kind) });
  const cluster = create(ClusterSchema, {
    name,
    altStatName: `${service.metadata.namespace}.${service.metadata.name}${subset ? `.${name.split('|')[2]}` : ''}`,
    connectTimeout: CONNECT_TIMEOUT,
    lbPolicy: Cluster_LbPolicy.ROUND_ROBIN,
    clusterDiscoveryType: {
      case: 'type',
      value: dns ? (kind === 'grpc' ? Cluster_DiscoveryType.LOGICAL_DNS : Cluster_DiscoveryType.STRICT_DNS) : Cluster_DiscoveryType.EDS,
    },
  });
  if (dns) {
    cluster.loadAssignment = assignment;
    cluster.dnsLookupFamily = Cluster_DnsLookupFamily.V4_PREFERRED;
  } else {
    cluster.edsClusterConfig = create(Cluster_EdsClusterConfigSchema, { serviceName: name, edsConfig: ADS_SOURCE });
  }
  if (service.spec.protocol === 'grpc' && kind !== 'grpc') {
    // Envoy speaks HTTP/1.1 upstream unless told otherwise; gRPC needs HTTP/2.
    cluster.typedExtensionProtocolOptions[HTTP_PROTOCOL_OPTIONS_KEY] = anyPack(HttpProtocolOptionsSchema, create(HttpProtocolOptionsSchema, {
      upstreamProtocolOptions: { case: 'explicitHttpConfig', value: { protocolConfig: { case: 'http2ProtocolOptions', value: {} } } },
    }));
  }
  // Proxyless gRPC stays plaintext: it has no SDS certificate to present.
  const identities = kind === 'grpc' ? [] : endpoints.flatMap((e) => (e.identity === undefined ? [] : [e.identity]));
  if (identities.length > 0) {
    cluster.transportSocketMatches = mtlsTransportSocketMatches(identities, service.spec.protocol === 'grpc' ? 'h2' : 'http/1.1');
  }
  return { cluster, loadAssignment: dns ? undefined : assignment };
}


function localities(endpoints: readonly Endpoint[], kind: ClientKind): LocalityLbEndpoints[] {
  const groups = new Map<string, { locality: Endpoint['locality']; subZone: string; endpoints: Endpoint[] }>();
  const distinctWeights = new Map<string, Set<number>>();
  for (const e of endpoints) {
    const loc = localityKey(e);
    let ws = distinctWeights.get(loc);
    if (!ws) distinctWeights.set(loc, (ws = new Set()));
    ws.add(e.weight);
  }
  for (const e of endpoints) {
    const loc = localityKey(e);
    const split = kind === 'grpc' && distinctWeights.get(loc)!.size > 1;
    const subZone = split ? `${e.locality?.subZone ?? ''}/w${e.weight}` : (e.locality?.subZone ?? '');
    const key = `${loc}\n${subZone}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { locality: e.locality, subZone, endpoints: [] }));
    g.endpoints.push(e);
  }
  return [...groups.values()].map((g) => create(LocalityLbEndpointsSchema, {
    locality: { region: g.locality?.region ?? '', zone: g.locality?.zone ?? '', subZone: g.subZone },
    loadBalancingWeight: g.endpoints.reduce((n, e) => n + e.weight, 0),
    lbEndpoints: g.endpoints.map((e) => ({
      loadBalancingWeight: e.weight,
      ...(e.identity !== undefined && kind !== 'grpc' ? { metadata: mtlsEndpointMetadata() } : {}),
      hostIdentifier: {
        case: 'endpoint' as const,
        value: {
          address: { address: { case: 'socketAddress' as const, value: { address: e.address, portSpecifier: { case: 'portValue' as const, value: e.port } } } },
        },
      },
    })),
  }));
}

function localityKey(e: Endpoint): string {
  return `${e.locality?.region ?? ''}\n${e.locality?.zone ?? ''}\n${e.locality?.subZone ?? ''}`;
}
