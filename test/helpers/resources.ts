/** Small, valid Envoy resources for protocol tests. */
import { create } from '@bufbuild/protobuf';
import { anyPack, DurationSchema } from '@bufbuild/protobuf/wkt';
import { ClusterSchema, Cluster_DiscoveryType } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ListenerSchema } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import { RouteConfigurationSchema } from '../../xds/gen/envoy/config/route/v3/route_pb.js';
import { HttpConnectionManagerSchema } from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { RouterSchema } from '../../xds/gen/envoy/extensions/filters/http/router/v3/router_pb.js';
import { Snapshot } from '../../xds/cache/snapshot.ts';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL } from '../../xds/resources/type-urls.ts';

export function edsCluster(name: string) {
  return create(ClusterSchema, {
    name,
    clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.EDS },
    edsClusterConfig: { edsConfig: { configSourceSpecifier: { case: 'ads', value: {} } } },
    connectTimeout: create(DurationSchema, { seconds: 1n }),
  });
}

export function loadAssignment(cluster: string, ports: number[]) {
  return create(ClusterLoadAssignmentSchema, {
    clusterName: cluster,
    endpoints: [{
      lbEndpoints: ports.map((port) => ({
        hostIdentifier: {
          case: 'endpoint' as const,
          value: {
            address: { address: { case: 'socketAddress' as const, value: { address: '127.0.0.1', portSpecifier: { case: 'portValue' as const, value: port } } } },
          },
        },
      })),
    }],
  });
}

export function routeConfig(name: string, cluster: string) {
  return create(RouteConfigurationSchema, {
    name,
    virtualHosts: [{
      name: 'all', domains: ['*'],
      routes: [{
        match: { pathSpecifier: { case: 'prefix', value: '/' } },
        action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: cluster } } },
      }],
    }],
  });
}

export function rdsListener(name: string, routeName: string, port = 15001) {
  const hcm = create(HttpConnectionManagerSchema, {
    statPrefix: name,
    routeSpecifier: { case: 'rds', value: { routeConfigName: routeName, configSource: { configSourceSpecifier: { case: 'ads', value: {} } } } },
    httpFilters: [{ name: 'envoy.filters.http.router', configType: { case: 'typedConfig', value: anyPack(RouterSchema, create(RouterSchema)) } }],
  });
  return create(ListenerSchema, {
    name,
    address: { address: { case: 'socketAddress', value: { address: '0.0.0.0', portSpecifier: { case: 'portValue', value: port } } } },
    filterChains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', configType: { case: 'typedConfig', value: anyPack(HttpConnectionManagerSchema, hcm) } }] }],
  });
}

/** A consistent snapshot: one listener → route → cluster(s) with endpoints. */
export function meshSnapshot(opts: { clusters: Record<string, number[]>; routeTo: string }, previous?: Snapshot): Snapshot {
  const names = Object.keys(opts.clusters);
  return Snapshot.fromResources({
    [CLUSTER_TYPE_URL]: names.map(edsCluster),
    [ENDPOINT_TYPE_URL]: names.map((n) => loadAssignment(n, opts.clusters[n]!)),
    [LISTENER_TYPE_URL]: [rdsListener('outbound', 'outbound-routes')],
    [ROUTE_TYPE_URL]: [routeConfig('outbound-routes', opts.routeTo)],
  }, previous);
}
