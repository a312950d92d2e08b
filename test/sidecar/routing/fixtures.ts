/** Builders for RouteConfigurations in the routing tests, on the generated schemas. */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { DurationSchema, type Duration } from '@bufbuild/protobuf/wkt';
import { RouteConfigurationSchema, type RouteConfiguration } from '../../../xds/gen/envoy/config/route/v3/route_pb.js';
import type { Route, RouteSchema, VirtualHost, VirtualHostSchema } from '../../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { compileRouteTable, type HeaderLookup, type MatchedRoute, type RouteTable } from '../../../sidecar/routing/route-table.ts';

/** The plain-object forms `create()` takes (not the message types also allowed there). */
export type VirtualHostInit = Exclude<MessageInitShape<typeof VirtualHostSchema>, VirtualHost>;
export type RouteInit = Exclude<MessageInitShape<typeof RouteSchema>, Route>;
type RouteConfigurationInit = Exclude<MessageInitShape<typeof RouteConfigurationSchema>, RouteConfiguration>;

export function routeConfig(virtualHosts: VirtualHostInit[], extra: Omit<RouteConfigurationInit, 'virtualHosts'> = {}): RouteConfiguration {
  return create(RouteConfigurationSchema, { name: 'test', virtualHosts, ...extra });
}

export function ms(n: number): Duration {
  return create(DurationSchema, { seconds: BigInt(Math.floor(n / 1000)), nanos: (n % 1000) * 1_000_000 });
}

/** A route to one cluster. */
export function toCluster(cluster: string, match: RouteInit['match'] = prefix('/'), extra: Omit<RouteInit, 'match' | 'action'> = {}): RouteInit {
  return { name: cluster, match, action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: cluster } } }, ...extra };
}

export const prefix = (value: string, caseSensitive?: boolean): RouteInit['match'] => ({ pathSpecifier: { case: 'prefix', value }, caseSensitive });
export const exact = (value: string, caseSensitive?: boolean): RouteInit['match'] => ({ pathSpecifier: { case: 'path', value }, caseSensitive });
export const regex = (value: string): RouteInit['match'] => ({ pathSpecifier: { case: 'safeRegex', value: { regex: value } } });
export const separated = (value: string): RouteInit['match'] => ({ pathSpecifier: { case: 'pathSeparatedPrefix', value } });

export function compile(rc: RouteConfiguration): RouteTable {
  const r = compileRouteTable(rc);
  if (!r.valid) throw new Error(r.errors.join('\n'));
  return r.result;
}

export const NO_HEADERS: HeaderLookup = () => undefined;
export const headers = (h: Record<string, string>): HeaderLookup => (name) => h[name];

/** The cluster a request is sent to (weighted: the first pick), or the action kind, or null. */
export function target(m: MatchedRoute | null): string | null {
  if (m === null) return null;
  switch (m.action.kind) {
    case 'cluster': return m.action.cluster;
    case 'weighted': return m.action.pick(0);
    default: return m.action.kind;
  }
}
