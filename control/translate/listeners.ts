/**
 * Listeners: Envoy and sidecars get one outbound listener (HttpConnectionManager over RDS
 * "outbound", WebSocket upgrades enabled as Istio enables them on every sidecar listener);
 * proxyless gRPC clients get one api_listener per hostname they may dial (`xds:///<host>`
 * asks LDS for "<host>"), each pointing at the same route configuration, without
 * `upgrade_configs` (gRPC has no upgrades).
 */
import { create } from '@bufbuild/protobuf';
import { anyPack } from '@bufbuild/protobuf/wkt';
import { ListenerSchema, type Listener } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import {
  HttpConnectionManagerSchema, HttpConnectionManager_CodecType, type HttpConnectionManager,
} from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { RouterSchema } from '../../xds/gen/envoy/extensions/filters/http/router/v3/router_pb.js';
import { HTTPFaultSchema } from '../../xds/gen/envoy/extensions/filters/http/fault/v3/fault_pb.js';
import { ADS_SOURCE } from './clusters.ts';
import { FAULT_FILTER_NAME } from './routes.ts';
import { OUTBOUND_ADDRESS, OUTBOUND_LISTENER, OUTBOUND_PORT, OUTBOUND_ROUTE } from './names.ts';

export const HCM_FILTER_NAME = 'envoy.filters.network.http_connection_manager';
export const ROUTER_FILTER_NAME = 'envoy.filters.http.router';

/** The upgrade types the outbound listener lets through; Envoy refuses others with 403. */
export const UPGRADE_TYPES: readonly string[] = ['websocket'];

function hcm(statPrefix: string, usesFault: boolean, upgradeTypes: readonly string[]): HttpConnectionManager {
  const filters = [];
  if (usesFault) {
    filters.push({ name: FAULT_FILTER_NAME, configType: { case: 'typedConfig' as const, value: anyPack(HTTPFaultSchema, create(HTTPFaultSchema)) } });
  }
  // The router comes last: Envoy and gRPC both require it.
  filters.push({ name: ROUTER_FILTER_NAME, configType: { case: 'typedConfig' as const, value: anyPack(RouterSchema, create(RouterSchema)) } });
  return create(HttpConnectionManagerSchema, {
    statPrefix,
    codecType: HttpConnectionManager_CodecType.AUTO,
    routeSpecifier: { case: 'rds', value: { configSource: ADS_SOURCE, routeConfigName: OUTBOUND_ROUTE } },
    httpFilters: filters,
    upgradeConfigs: upgradeTypes.map((upgradeType) => ({ upgradeType })),
  });
}

export function outboundListener(usesFault: boolean): Listener {
  return create(ListenerSchema, {
    name: OUTBOUND_LISTENER,
    address: { address: { case: 'socketAddress', value: { address: OUTBOUND_ADDRESS, portSpecifier: { case: 'portValue', value: OUTBOUND_PORT } } } },
    filterChains: [{
      filters: [{ name: HCM_FILTER_NAME, configType: { case: 'typedConfig', value: anyPack(HttpConnectionManagerSchema, hcm('outbound', usesFault, UPGRADE_TYPES)) } }],
    }],
  });
}

export function grpcListeners(hosts: readonly string[], usesFault: boolean): Listener[] {
  const api = anyPack(HttpConnectionManagerSchema, hcm('grpc', usesFault, []));
  return [...hosts].sort().map((host) => create(ListenerSchema, { name: host, apiListener: { apiListener: api } }));
}
