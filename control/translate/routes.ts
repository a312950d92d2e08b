/**
 * Routes and Services → one RouteConfiguration ("outbound") for a client in a namespace.
 *
 * Each Route becomes a virtual host with its hosts as domains; each Service gets a default
 * virtual host (its hostnames, one catch-all route to it) unless a Route already claims
 * that hostname. Envoy and gRPC select virtual hosts the same way (by the request's
 * authority), so one route configuration serves both; the differences are in the action:
 * gRPC ignores `timeout` and honours `max_stream_duration`, and retries only on gRPC
 * status conditions.
 */
import { create } from '@bufbuild/protobuf';
import { anyPack, DurationSchema, type Any, type Duration } from '@bufbuild/protobuf/wkt';
import {
  RouteConfigurationSchema, type RouteConfiguration,
} from '../../xds/gen/envoy/config/route/v3/route_pb.js';
import {
  HeaderMatcherSchema, RouteActionSchema, RouteMatchSchema, RouteSchema, VirtualHostSchema,
  type HeaderMatcher, type Route, type RouteAction, type RouteMatch, type VirtualHost,
} from '../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { HTTPFaultSchema } from '../../xds/gen/envoy/extensions/filters/http/fault/v3/fault_pb.js';
import { RegexMatcherSchema } from '../../xds/gen/envoy/type/matcher/v3/regex_pb.js';
import { FractionalPercent_DenominatorType } from '../../xds/gen/envoy/type/v3/percent_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { DesiredState } from '../config/state.ts';
import { resolveBackend } from '../config/state.ts';
import { parseDuration } from '../config/schema.ts';
import type { Fault, HeaderMatch, HttpMatch, HttpRule, RouteResource, ServiceResource } from '../config/schema.ts';
import type { NodeTarget } from './node-kind.ts';
import { clusterName, OUTBOUND_ROUTE, serviceHosts } from './names.ts';
import { SLO_METADATA_KEY, sloMetadata } from '../slo/objectives.ts';

export const FAULT_FILTER_NAME = 'envoy.filters.http.fault';

const GRPC_RETRY_ON = new Set(['cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable']);
const DEFAULT_HTTP_RETRY_ON = '5xx,connect-failure,refused-stream';
const DEFAULT_GRPC_RETRY_ON = 'unavailable';

export function duration(ms: number): Duration {
  return create(DurationSchema, { seconds: BigInt(Math.floor(ms / 1000)), nanos: Math.round((ms % 1000) * 1e6) });
}

/** Every cluster (service key + subset) the routes reach, for the cluster builder. */
export interface ClusterRef {
  service: ServiceResource;
  subset: Readonly<Record<string, string>> | undefined;
}

export interface RoutesOutput {
  routeConfig: RouteConfiguration;
  /** Hostnames with a virtual host, for gRPC listeners (one per host). */
  hosts: string[];
  clusters: Map<string, ClusterRef>;
  usesFault: boolean;
}

export function buildRoutes(state: DesiredState, target: NodeTarget): RoutesOutput {
  const clusters = new Map<string, ClusterRef>();
  const claimed = new Set<string>();
  const vhosts: VirtualHost[] = [];
  let usesFault = false;
  const ref = (route: RouteResource, service: string, subset?: Readonly<Record<string, string>>): string => {
    const svc = state.services.get(resolveBackend(route, { service, weight: 1 }))!;
    const name = clusterName(svc, subset);
    clusters.set(name, { service: svc, subset });
    return name;
  };

  for (const route of state.routes.values()) {
    const domains = route.spec.hosts.filter((h) => !claimed.has(h));
    for (const h of domains) claimed.add(h);
    if (domains.length === 0) continue;
    const routes = route.spec.http.flatMap((rule, i) => {
      if (rule.fault) usesFault = true;
      return buildRule(rule, i, route, target, (service, subset) => ref(route, service, subset));
    });
    vhosts.push(create(VirtualHostSchema, { name: `${route.metadata.namespace}/${route.metadata.name}`, domains, routes }));
  }

  for (const svc of state.services.values()) {
    const domains = serviceHosts(svc, target.namespace).filter((h) => !claimed.has(h));
    if (domains.length === 0) continue;
    for (const h of domains) claimed.add(h);
    const name = clusterName(svc);
    clusters.set(name, { service: svc, subset: undefined });
    vhosts.push(create(VirtualHostSchema, {
      name: `service/${svc.metadata.namespace}/${svc.metadata.name}`,
      domains,
      routes: [create(RouteSchema, {
        name: 'default',
        match: create(RouteMatchSchema, { pathSpecifier: { case: 'prefix', value: '/' } }),
        action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: name } } },
      })],
    }));
  }

  const routeConfig = create(RouteConfigurationSchema, { name: OUTBOUND_ROUTE, virtualHosts: vhosts, validateClusters: false });
  return { routeConfig, hosts: [...claimed], clusters, usesFault };
}

function buildRule(
  rule: HttpRule, index: number, route: RouteResource, target: NodeTarget,
  ref: (service: string, subset?: Readonly<Record<string, string>>) => string,
): Route[] {
  const action = buildAction(rule, target, ref);
  const perFilter: Record<string, Any> = {};
  if (rule.fault) perFilter[FAULT_FILTER_NAME] = anyPack(HTTPFaultSchema, buildFault(rule.fault));
  // The rule's SLO rides on each of its routes, for the sidecar's SLO counters (control/slo/).
  const slo = sloMetadata(route, rule, index);
  return rule.match.map((m, j) => create(RouteSchema, {
    name: `${route.metadata.name}.${rule.name ?? index}${rule.match.length > 1 ? `.${j}` : ''}`,
    match: buildMatch(m),
    action: { case: 'route', value: action },
    typedPerFilterConfig: perFilter,
    ...(slo === null ? {} : { metadata: { filterMetadata: { [SLO_METADATA_KEY]: slo } } }),
  }));
}

function buildMatch(m: HttpMatch): RouteMatch {
  const match = create(RouteMatchSchema);
  if (m.exact !== undefined) match.pathSpecifier = { case: 'path', value: m.exact };
  else if (m.regex !== undefined) match.pathSpecifier = { case: 'safeRegex', value: create(RegexMatcherSchema, { regex: m.regex }) };
  else match.pathSpecifier = { case: 'prefix', value: m.prefix ?? '/' };
  match.headers = (m.headers ?? []).map(buildHeader);
  if (m.method !== undefined) match.headers.push(create(HeaderMatcherSchema, { name: ':method', headerMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'exact', value: m.method } } } }));
  return match;
}

function buildHeader(h: HeaderMatch): HeaderMatcher {
  const init: MessageInitShape<typeof HeaderMatcherSchema> = { name: h.name.toLowerCase(), invertMatch: h.invert ?? false };
  if (h.exact !== undefined) init.headerMatchSpecifier = { case: 'stringMatch', value: { matchPattern: { case: 'exact', value: h.exact } } };
  else if (h.prefix !== undefined) init.headerMatchSpecifier = { case: 'stringMatch', value: { matchPattern: { case: 'prefix', value: h.prefix } } };
  else if (h.regex !== undefined) init.headerMatchSpecifier = { case: 'stringMatch', value: { matchPattern: { case: 'safeRegex', value: { regex: h.regex } } } };
  else if (h.present === false) {
    init.headerMatchSpecifier = { case: 'presentMatch', value: true };
    init.invertMatch = !(h.invert ?? false);
  } else init.headerMatchSpecifier = { case: 'presentMatch', value: true };
  return create(HeaderMatcherSchema, init);
}

function buildAction(rule: HttpRule, target: NodeTarget, ref: (service: string, subset?: Readonly<Record<string, string>>) => string): RouteAction {
  const init: MessageInitShape<typeof RouteActionSchema> = {};
  if (rule.backends.length === 1) {
    init.clusterSpecifier = { case: 'cluster', value: ref(rule.backends[0]!.service, rule.backends[0]!.subset) };
  } else {
    init.clusterSpecifier = {
      case: 'weightedClusters',
      value: { clusters: rule.backends.map((b) => ({ name: ref(b.service, b.subset), weight: b.weight })) },
    };
  }
  if (rule.timeout !== undefined) {
    const t = duration(parseDuration(rule.timeout));
    if (target.kind === 'grpc') init.maxStreamDuration = { maxStreamDuration: t };
    else init.timeout = t;
  }
  if (rule.retries) {
    const on = rule.retries.on ?? [];
    const conditions = target.kind === 'grpc' ? on.filter((c) => GRPC_RETRY_ON.has(c)) : on;
    const fallback = target.kind === 'grpc' ? DEFAULT_GRPC_RETRY_ON : DEFAULT_HTTP_RETRY_ON;
    init.retryPolicy = {
      retryOn: conditions.length > 0 ? conditions.join(',') : fallback,
      numRetries: rule.retries.attempts,
      ...(rule.retries.perTryTimeout !== undefined ? { perTryTimeout: duration(parseDuration(rule.retries.perTryTimeout)) } : {}),
    };
  }
  return create(RouteActionSchema, init);
}

function buildFault(fault: Fault) {
  const pct = (p: number) => ({ numerator: Math.round(p * 10_000), denominator: FractionalPercent_DenominatorType.MILLION });
  return create(HTTPFaultSchema, {
    ...(fault.delay ? {
      delay: { faultDelaySecifier: { case: 'fixedDelay', value: duration(parseDuration(fault.delay.fixed)) }, percentage: pct(fault.delay.percent) },
    } : {}),
    ...(fault.abort ? {
      abort: {
        errorType: fault.abort.httpStatus !== undefined
          ? { case: 'httpStatus', value: fault.abort.httpStatus }
          : { case: 'grpcStatus', value: fault.abort.grpcStatus! },
        percentage: pct(fault.abort.percent),
      },
    } : {}),
    headers: (fault.headers ?? []).map(buildHeader),
  });
}
