/**
 * A snapshot is consistent when every name it references is in it: each EDS cluster's
 * ClusterLoadAssignment, each RDS route configuration named by a listener's
 * HttpConnectionManager (go-control-plane's Snapshot.Consistent). Publishing an
 * inconsistent one would leave proxies waiting for resources that never come.
 */
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { Cluster_DiscoveryType, type Cluster } from '../gen/envoy/config/cluster/v3/cluster_pb.js';
import type { Listener } from '../gen/envoy/config/listener/v3/listener_pb.js';
import {
  HttpConnectionManagerSchema, type HttpConnectionManager,
} from '../gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, HCM_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL } from '../resources/type-urls.ts';
import type { Snapshot } from './snapshot.ts';

/** The HttpConnectionManagers of a listener: its api_listener and every filter chain's. */
export function listenerHcms(listener: Listener): HttpConnectionManager[] {
  const anys = [];
  if (listener.apiListener?.apiListener) anys.push(listener.apiListener.apiListener);
  for (const chain of [...listener.filterChains, ...(listener.defaultFilterChain ? [listener.defaultFilterChain] : [])]) {
    for (const f of chain.filters) {
      if (f.configType.case === 'typedConfig' && f.configType.value.typeUrl === HCM_TYPE_URL) anys.push(f.configType.value);
    }
  }
  const out: HttpConnectionManager[] = [];
  for (const a of anys) {
    const hcm = a.typeUrl === HCM_TYPE_URL ? anyUnpack(a, HttpConnectionManagerSchema) : undefined;
    if (hcm) out.push(hcm);
  }
  return out;
}

/** The EDS service name a cluster asks for, or null when it is not an EDS cluster. */
export function edsServiceName(cluster: Cluster): string | null {
  if (cluster.clusterDiscoveryType.case !== 'type' || cluster.clusterDiscoveryType.value !== Cluster_DiscoveryType.EDS) return null;
  return cluster.edsClusterConfig?.serviceName || cluster.name;
}

/** Every dangling reference, as `LDS listener "x" → RDS "y" missing`; empty when consistent. */
export function inconsistencies(snapshot: Snapshot): string[] {
  const problems: string[] = [];
  const endpoints = snapshot.resources(ENDPOINT_TYPE_URL);
  for (const c of snapshot.resources(CLUSTER_TYPE_URL).values()) {
    const eds = edsServiceName(c.message as Cluster);
    if (eds !== null && !endpoints.has(eds)) problems.push(`CDS cluster ${JSON.stringify(c.name)} → EDS ${JSON.stringify(eds)} missing`);
  }
  const routes = snapshot.resources(ROUTE_TYPE_URL);
  for (const l of snapshot.resources(LISTENER_TYPE_URL).values()) {
    for (const hcm of listenerHcms(l.message as Listener)) {
      if (hcm.routeSpecifier.case !== 'rds') continue;
      const name = hcm.routeSpecifier.value.routeConfigName;
      if (!routes.has(name)) problems.push(`LDS listener ${JSON.stringify(l.name)} → RDS ${JSON.stringify(name)} missing`);
    }
  }
  return problems;
}
