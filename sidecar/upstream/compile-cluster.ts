/**
 * CDS `Cluster` + EDS `ClusterLoadAssignment` → `ClusterConfig`.
 *
 * Every problem is collected with its field path (`outlier_detection.interval: must be > 0,
 * got 0s`) so that one NACK names all of them, as grpc-js-xds `cluster-resource-type.ts`
 * does. Paths into an EDS assignment start `cluster_load_assignment.`, into an inline one
 * `load_assignment.`.
 *
 * What is refused and what is ignored: a field that would change *where* traffic goes or
 * *how it is protected* and that this sidecar cannot honour is an error (unsupported TLS
 * settings, subset LB, ring hash/Maglev, slow start, named endpoints, HTTP/3), because silently
 * doing something else is worse than keeping the last good config. Upstream TLS
 * (`transport_socket`, `transport_socket_matches`) is compile-transport-socket.ts. Tuning we do not model
 * (active health checks, panic threshold, success-rate outlier detection, drop_overloads,
 * DNS TTLs, additional addresses) is accepted and ignored. Nothing here resolves DNS.
 */
import { isIP } from 'node:net';
import { anyUnpack, type Duration } from '@bufbuild/protobuf/wkt';
import {
  Cluster_DiscoveryType, Cluster_DnsLookupFamily, Cluster_LbPolicy, Cluster_ClusterProtocolSelection, type Cluster,
} from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { CircuitBreakers, CircuitBreakers_Thresholds } from '../../xds/gen/envoy/config/cluster/v3/circuit_breaker_pb.js';
import type { OutlierDetection } from '../../xds/gen/envoy/config/cluster/v3/outlier_detection_pb.js';
import type { ClusterLoadAssignment } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { LbEndpoint } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_components_pb.js';
import { RoutingPriority } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { HealthStatus } from '../../xds/gen/envoy/config/core/v3/health_check_pb.js';
import { SocketAddress_Protocol } from '../../xds/gen/envoy/config/core/v3/address_pb.js';
import { HttpProtocolOptionsSchema } from '../../xds/gen/envoy/extensions/upstreams/http/v3/http_protocol_options_pb.js';
import {
  CLUSTER_DEFAULTS, deepFreeze,
  type CircuitBreakerThresholds, type ClusterConfig, type DiscoveryType, type DnsConfig, type DnsLookupFamily,
  type EndpointConfig, type EndpointHealth, type LbPolicy, type LocalityConfig, type OutlierDetectionConfig, type UpstreamProtocol,
} from './cluster-config.ts';
import { compileTransportSockets, endpointTransport, type TransportSockets } from './compile-transport-socket.ts';

export type CompileResult = { valid: true; result: ClusterConfig } | { valid: false; errors: string[] };

/** The key of `typed_extension_protocol_options` that selects the upstream HTTP version. */
export const HTTP_PROTOCOL_OPTIONS_KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const HTTP_PROTOCOL_OPTIONS_TYPE_URL = `type.googleapis.com/${HTTP_PROTOCOL_OPTIONS_KEY}`;
/** setTimeout's ceiling; longer durations are refused rather than silently clamped. */
const MAX_MS = 2_147_483_647;
const UINT32_MAX = 4_294_967_295;
const SUPPORTED_LB: Readonly<Record<number, LbPolicy>> = {
  [Cluster_LbPolicy.ROUND_ROBIN]: 'ROUND_ROBIN',
  [Cluster_LbPolicy.LEAST_REQUEST]: 'LEAST_REQUEST',
  [Cluster_LbPolicy.RANDOM]: 'RANDOM',
};
const SUPPORTED_DISCOVERY: Readonly<Record<number, DiscoveryType>> = {
  [Cluster_DiscoveryType.STATIC]: 'STATIC',
  [Cluster_DiscoveryType.STRICT_DNS]: 'STRICT_DNS',
  [Cluster_DiscoveryType.LOGICAL_DNS]: 'LOGICAL_DNS',
  [Cluster_DiscoveryType.EDS]: 'EDS',
};
const HEALTH: Readonly<Record<number, EndpointHealth>> = {
  [HealthStatus.UNKNOWN]: 'UNKNOWN',
  [HealthStatus.HEALTHY]: 'HEALTHY',
  [HealthStatus.UNHEALTHY]: 'UNHEALTHY',
  [HealthStatus.DRAINING]: 'DRAINING',
  [HealthStatus.TIMEOUT]: 'TIMEOUT',
  [HealthStatus.DEGRADED]: 'DEGRADED',
};
const DNS_FAMILY: Readonly<Record<number, DnsLookupFamily>> = {
  [Cluster_DnsLookupFamily.AUTO]: 'AUTO',
  [Cluster_DnsLookupFamily.V4_ONLY]: 'V4_ONLY',
  [Cluster_DnsLookupFamily.V6_ONLY]: 'V6_ONLY',
  [Cluster_DnsLookupFamily.V4_PREFERRED]: 'V4_PREFERRED',
  [Cluster_DnsLookupFamily.ALL]: 'ALL',
};

/**
 * Validates `cluster` (and, for EDS, `assignment`) and compiles them into a frozen
 * `ClusterConfig`, or lists every problem with its field path.
 *
 * @param assignment required for EDS clusters (the EDS resource named by
 *   `eds_cluster_config.service_name`, or the cluster's name); must be undefined for the
 *   others, which carry their endpoints in `load_assignment`.
 */
export function compileCluster(cluster: Cluster, assignment: ClusterLoadAssignment | undefined): CompileResult {
  const errors: string[] = [];
  const err = (path: string, problem: string): void => void errors.push(`${path}: ${problem}`);

  if (cluster.name === '') err('name', 'must not be empty');

  // Transport (upstream TLS), needed by every endpoint.
  const sockets = compileTransportSockets(cluster, err);

  // Discovery type and where the endpoints come from.
  let discoveryType: DiscoveryType | null = null;
  const cdt = cluster.clusterDiscoveryType;
  if (cdt.case === 'clusterType') err('cluster_type', `custom cluster type ${JSON.stringify(cdt.value.name)} is not supported`);
  else {
    const t = cdt.case === 'type' ? cdt.value : Cluster_DiscoveryType.STATIC;
    const known = SUPPORTED_DISCOVERY[t];
    if (known) discoveryType = known;
    else err('type', `${Cluster_DiscoveryType[t] ?? t} is not supported (supported: STATIC, STRICT_DNS, LOGICAL_DNS, EDS)`);
  }
  let localities: LocalityConfig[] = [];
  let overprovisioningFactor: number = CLUSTER_DEFAULTS.overprovisioningFactor;
  if (discoveryType === 'EDS') {
    const serviceName = cluster.edsClusterConfig?.serviceName || cluster.name;
    if (!assignment) err('eds_cluster_config', `an EDS cluster needs its ClusterLoadAssignment ${JSON.stringify(serviceName)}, none was given`);
    else {
      if (assignment.clusterName !== serviceName) {
        err('cluster_load_assignment.cluster_name', `must be the cluster's EDS service name ${JSON.stringify(serviceName)}, got ${JSON.stringify(assignment.clusterName)}`);
      }
      ({ localities, overprovisioningFactor } = compileAssignment(assignment, 'cluster_load_assignment', discoveryType, sockets, err));
    }
  } else if (discoveryType !== null) {
    if (assignment) err('cluster_load_assignment', `a ${discoveryType} cluster takes its endpoints from load_assignment, not from EDS`);
    if (!cluster.loadAssignment) err('load_assignment', `a ${discoveryType} cluster needs its endpoints inline`);
    else ({ localities, overprovisioningFactor } = compileAssignment(cluster.loadAssignment, 'load_assignment', discoveryType, sockets, err));
    if (discoveryType === 'LOGICAL_DNS' && cluster.loadAssignment
      && (cluster.loadAssignment.endpoints.length !== 1 || lbEndpointsOf(cluster.loadAssignment.endpoints[0]!).length !== 1)) {
      err('load_assignment', 'a LOGICAL_DNS cluster needs exactly one locality with exactly one endpoint');
    }
  }

  let dns: DnsConfig | null = null;
  if (discoveryType === 'STRICT_DNS' || discoveryType === 'LOGICAL_DNS') {
    const refreshRateMs = durationMs(cluster.dnsRefreshRate, 'dns_refresh_rate', err, CLUSTER_DEFAULTS.dnsRefreshRateMs);
    const failureRefreshRateMs = durationMs(cluster.dnsFailureRefreshRate?.baseInterval, 'dns_failure_refresh_rate.base_interval', err, refreshRateMs);
    const lookupFamily = DNS_FAMILY[cluster.dnsLookupFamily];
    if (!lookupFamily) err('dns_lookup_family', `unknown value ${cluster.dnsLookupFamily}`);
    dns = { lookupFamily: lookupFamily ?? 'AUTO', refreshRateMs, failureRefreshRateMs };
  }

  // Load balancing.
  let lbPolicy: LbPolicy = 'ROUND_ROBIN';
  const lb = SUPPORTED_LB[cluster.lbPolicy];
  if (lb) lbPolicy = lb;
  else err('lb_policy', `${Cluster_LbPolicy[cluster.lbPolicy] ?? cluster.lbPolicy} is not supported (supported: ROUND_ROBIN, LEAST_REQUEST, RANDOM)`);
  if (cluster.loadBalancingPolicy && cluster.loadBalancingPolicy.policies.length > 0) {
    err('load_balancing_policy', 'typed load-balancing policies are not supported; use lb_policy');
  }
  if (cluster.lbSubsetConfig && cluster.lbSubsetConfig.subsetSelectors.length > 0) err('lb_subset_config', 'subset load balancing is not supported');
  let choiceCount: number = CLUSTER_DEFAULTS.choiceCount;
  let activeRequestBias: number = CLUSTER_DEFAULTS.activeRequestBias;
  const lbc = cluster.lbConfig;
  if (lbc.case === 'leastRequestLbConfig' && lbPolicy === 'LEAST_REQUEST') {
    const c = lbc.value;
    if (c.choiceCount !== undefined) {
      if (c.choiceCount < 2) err('least_request_lb_config.choice_count', `must be >= 2, got ${c.choiceCount}`);
      else choiceCount = c.choiceCount;
    }
    if (c.activeRequestBias) {
      const b = c.activeRequestBias.defaultValue;
      if (!Number.isFinite(b) || b < 0) err('least_request_lb_config.active_request_bias.default_value', `must be a number >= 0, got ${b}`);
      else activeRequestBias = b;
    }
    if (c.slowStartConfig) err('least_request_lb_config.slow_start_config', 'slow start is not supported');
  } else if (lbc.case === 'roundRobinLbConfig' && lbPolicy === 'ROUND_ROBIN' && lbc.value.slowStartConfig) {
    err('round_robin_lb_config.slow_start_config', 'slow start is not supported');
  }

  const connectTimeoutMs = durationMs(cluster.connectTimeout, 'connect_timeout', err, CLUSTER_DEFAULTS.connectTimeoutMs);

  // HTTP version and upstream filters.
  if (cluster.filters.length > 0) err('filters', 'upstream network filters are not supported');
  if (cluster.protocolSelection === Cluster_ClusterProtocolSelection.USE_DOWNSTREAM_PROTOCOL) {
    err('protocol_selection', 'USE_DOWNSTREAM_PROTOCOL is not supported');
  }
  const { protocol, maxRequestsPerConnection } = compileProtocol(cluster, err);

  const circuitBreakers = compileCircuitBreakers(cluster.circuitBreakers, err);
  const outlierDetection = cluster.outlierDetection ? compileOutlierDetection(cluster.outlierDetection, err) : null;

  if (errors.length > 0 || discoveryType === null) return { valid: false, errors };
  return {
    valid: true,
    result: deepFreeze<ClusterConfig>({
      name: cluster.name,
      discoveryType,
      lbPolicy,
      choiceCount,
      activeRequestBias,
      connectTimeoutMs,
      protocol,
      maxRequestsPerConnection,
      circuitBreakers,
      outlierDetection,
      overprovisioningFactor,
      localities,
      dns,
    }),
  };
}

type Err = (path: string, problem: string) => void;

function lbEndpointsOf(l: ClusterLoadAssignment['endpoints'][number]): LbEndpoint[] {
  return l.lbConfig.case === 'loadBalancerEndpoints' ? l.lbConfig.value.lbEndpoints : l.lbEndpoints;
}

function compileAssignment(cla: ClusterLoadAssignment, base: string, type: DiscoveryType, sockets: TransportSockets, err: Err): { localities: LocalityConfig[]; overprovisioningFactor: number } {
  let overprovisioningFactor: number = CLUSTER_DEFAULTS.overprovisioningFactor;
  const opf = cla.policy?.overprovisioningFactor;
  if (opf !== undefined) {
    if (opf < 1) err(`${base}.policy.overprovisioning_factor`, `must be > 0, got ${opf}`);
    else overprovisioningFactor = opf;
  }
  if (Object.keys(cla.namedEndpoints).length > 0) err(`${base}.named_endpoints`, 'named endpoints are not supported');
  const seen = new Map<string, string>();
  const endpointWeightPerPriority = new Map<number, number>();
  const localityWeightPerPriority = new Map<number, number>();
  const localities: LocalityConfig[] = [];
  cla.endpoints.forEach((l, li) => {
    const lpath = `${base}.endpoints[${li}]`;
    if (l.priority > 128) err(`${lpath}.priority`, `must be <= 128, got ${l.priority}`);
    let weight: number | null = null;
    if (l.loadBalancingWeight !== undefined) {
      if (l.loadBalancingWeight < 1) err(`${lpath}.load_balancing_weight`, `must be >= 1, got ${l.loadBalancingWeight}`);
      else weight = l.loadBalancingWeight;
    }
    localityWeightPerPriority.set(l.priority, (localityWeightPerPriority.get(l.priority) ?? 0) + (weight ?? 0));
    if (l.lbConfig.case === 'ledsClusterLocalityConfig') err(`${lpath}.leds_cluster_locality_config`, 'LEDS is not supported');
    if (l.lbConfig.case === 'loadBalancerEndpoints' && l.lbEndpoints.length > 0) {
      err(`${lpath}`, 'sets both lb_endpoints and load_balancer_endpoints');
    }
    const epField = l.lbConfig.case === 'loadBalancerEndpoints' ? 'load_balancer_endpoints.lb_endpoints' : 'lb_endpoints';
    const endpoints: EndpointConfig[] = [];
    lbEndpointsOf(l).forEach((e, ei) => {
      const epath = `${lpath}.${epField}[${ei}]`;
      const ep = compileEndpoint(e, epath, type, sockets, err);
      if (!ep) return;
      const key = hostKey(ep.address, ep.port);
      const first = seen.get(key);
      if (first !== undefined) {
        err(epath, `duplicate endpoint ${key} (also at ${first})`);
        return;
      }
      seen.set(key, epath);
      endpointWeightPerPriority.set(l.priority, (endpointWeightPerPriority.get(l.priority) ?? 0) + ep.weight);
      endpoints.push(ep);
    });
    localities.push({
      region: l.locality?.region ?? '',
      zone: l.locality?.zone ?? '',
      subZone: l.locality?.subZone ?? '',
      priority: l.priority,
      weight,
      endpoints,
    });
  });
  for (const [p, sum] of endpointWeightPerPriority) {
    if (sum > UINT32_MAX) err(`${base}.endpoints`, `the endpoint weights of priority ${p} add up to ${sum}, more than ${UINT32_MAX}`);
  }
  for (const [p, sum] of localityWeightPerPriority) {
    if (sum > UINT32_MAX) err(`${base}.endpoints`, `the locality weights of priority ${p} add up to ${sum}, more than ${UINT32_MAX}`);
  }
  return { localities, overprovisioningFactor };
}

function compileEndpoint(e: LbEndpoint, path: string, type: DiscoveryType, sockets: TransportSockets, err: Err): EndpointConfig | null {
  const hi = e.hostIdentifier;
  if (hi.case === 'endpointName') {
    err(`${path}.endpoint_name`, 'named endpoints are not supported');
    return null;
  }
  if (hi.case !== 'endpoint') {
    err(`${path}.endpoint`, 'is required');
    return null;
  }
  const a = hi.value.address?.address;
  const apath = `${path}.endpoint.address`;
  if (!a || a.case === undefined) {
    err(apath, 'is required');
    return null;
  }
  if (a.case !== 'socketAddress') {
    err(`${apath}.${a.case === 'pipe' ? 'pipe' : 'envoy_internal_address'}`, 'only socket addresses are supported');
    return null;
  }
  const sa = a.value;
  const spath = `${apath}.socket_address`;
  let ok = true;
  const fail = (p: string, problem: string): void => {
    ok = false;
    err(p, problem);
  };
  if (sa.protocol !== SocketAddress_Protocol.TCP) fail(`${spath}.protocol`, 'only TCP is supported');
  if (sa.resolverName !== '') fail(`${spath}.resolver_name`, 'custom resolvers are not supported');
  if (sa.address === '') fail(`${spath}.address`, 'must not be empty');
  else if (isIP(sa.address) === 0 && (type === 'STATIC' || type === 'EDS')) {
    fail(`${spath}.address`, `a ${type} cluster needs IP addresses, got ${JSON.stringify(sa.address)} (use STRICT_DNS or LOGICAL_DNS for host names)`);
  }
  let port = 0;
  if (sa.portSpecifier.case === 'namedPort') fail(`${spath}.named_port`, 'named ports are not supported; use port_value');
  else if (sa.portSpecifier.case === 'portValue') {
    port = sa.portSpecifier.value;
    if (port < 1 || port > 65535) fail(`${spath}.port_value`, `must be 1-65535, got ${port}`);
  } else fail(`${spath}.port_value`, 'is required');
  let weight = 1;
  if (e.loadBalancingWeight !== undefined) {
    if (e.loadBalancingWeight < 1) fail(`${path}.load_balancing_weight`, `must be >= 1, got ${e.loadBalancingWeight}`);
    else weight = e.loadBalancingWeight;
  }
  const health = HEALTH[e.healthStatus];
  if (!health) fail(`${path}.health_status`, `unknown value ${e.healthStatus}`);
  if (!ok || !health) return null;
  const tls = endpointTransport(sockets, e);
  const ep: EndpointConfig = { address: sa.address, port, weight, health, hostname: hi.value.hostname };
  return tls === null ? ep : { ...ep, tls };
}

/** `address:port`, with IPv6 addresses bracketed. The identity of a host across updates. */
export function hostKey(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

function compileProtocol(cluster: Cluster, err: Err): { protocol: UpstreamProtocol; maxRequestsPerConnection: number | null } {
  let protocol: UpstreamProtocol = 'http1';
  let maxRequestsPerConnection: number | null = cluster.maxRequestsPerConnection ?? null;
  const any = cluster.typedExtensionProtocolOptions[HTTP_PROTOCOL_OPTIONS_KEY];
  const path = `typed_extension_protocol_options["${HTTP_PROTOCOL_OPTIONS_KEY}"]`;
  if (any) {
    if (cluster.http2ProtocolOptions) err('http2_protocol_options', `cannot be set together with ${path}`);
    if (any.typeUrl !== HTTP_PROTOCOL_OPTIONS_TYPE_URL) {
      err(path, `must hold ${HTTP_PROTOCOL_OPTIONS_TYPE_URL}, got ${JSON.stringify(any.typeUrl)}`);
      return { protocol, maxRequestsPerConnection };
    }
    let opts;
    try {
      opts = anyUnpack(any, HttpProtocolOptionsSchema);
    } catch (e) {
      err(path, `cannot be decoded: ${(e as Error).message}`);
      return { protocol, maxRequestsPerConnection };
    }
    if (!opts) return { protocol, maxRequestsPerConnection };
    const upo = opts.upstreamProtocolOptions;
    switch (upo.case) {
      case 'explicitHttpConfig': {
        const pc = upo.value.protocolConfig.case;
        if (pc === 'http2ProtocolOptions') protocol = 'http2';
        else if (pc === 'http3ProtocolOptions') err(`${path}.explicit_http_config.http3_protocol_options`, 'HTTP/3 upstreams are not supported');
        else if (pc === undefined) err(`${path}.explicit_http_config`, 'must set http_protocol_options or http2_protocol_options');
        break;
      }
      case 'useDownstreamProtocolConfig':
        err(`${path}.use_downstream_protocol_config`, 'is not supported; use explicit_http_config');
        break;
      case 'autoConfig':
        // ALPN picks the version; over cleartext there is no ALPN, so HTTP/1.1, as Envoy does.
        break;
      case undefined:
        err(`${path}.upstream_protocol_options`, 'is required');
        break;
    }
    const mrpc = opts.commonHttpProtocolOptions?.maxRequestsPerConnection;
    if (mrpc !== undefined) maxRequestsPerConnection = mrpc;
  } else if (cluster.http2ProtocolOptions) {
    protocol = 'http2';
  }
  if (maxRequestsPerConnection === 0) maxRequestsPerConnection = null;
  return { protocol, maxRequestsPerConnection };
}

function defaultThresholds(list: readonly CircuitBreakers_Thresholds[]): { t: CircuitBreakers_Thresholds; i: number } | undefined {
  const i = list.findIndex((t) => t.priority === RoutingPriority.DEFAULT);
  return i < 0 ? undefined : { t: list[i]!, i };
}

function compileCircuitBreakers(cb: CircuitBreakers | undefined, err: Err): CircuitBreakerThresholds {
  const d = CLUSTER_DEFAULTS;
  const found = cb ? defaultThresholds(cb.thresholds) : undefined;
  const t = found?.t;
  let retryBudget: CircuitBreakerThresholds['retryBudget'] = null;
  if (t?.retryBudget) {
    const path = `circuit_breakers.thresholds[${found!.i}].retry_budget`;
    let budgetPercent: number = d.retryBudgetPercent;
    const p = t.retryBudget.budgetPercent?.value;
    if (p !== undefined) {
      if (!(p >= 0 && p <= 100)) err(`${path}.budget_percent.value`, `must be 0-100, got ${p}`);
      else budgetPercent = p;
    }
    retryBudget = { budgetPercent, minRetryConcurrency: t.retryBudget.minRetryConcurrency ?? d.retryBudgetMinConcurrency };
  }
  const perHost = cb ? defaultThresholds(cb.perHostThresholds)?.t : undefined;
  return {
    maxConnections: t?.maxConnections ?? d.maxConnections,
    maxPendingRequests: t?.maxPendingRequests ?? d.maxPendingRequests,
    maxRequests: t?.maxRequests ?? d.maxRequests,
    maxRetries: t?.maxRetries ?? d.maxRetries,
    retryBudget,
    perHostMaxConnections: perHost?.maxConnections ?? null,
  };
}

function compileOutlierDetection(od: OutlierDetection, err: Err): OutlierDetectionConfig {
  const d = CLUSTER_DEFAULTS;
  const percent = (v: number | undefined, name: string, def: number): number => {
    if (v === undefined) return def;
    if (v > 100) {
      err(`outlier_detection.${name}`, `must be 0-100, got ${v}`);
      return def;
    }
    return v;
  };
  const intervalMs = durationMs(od.interval, 'outlier_detection.interval', err, d.outlierIntervalMs);
  const baseEjectionTimeMs = durationMs(od.baseEjectionTime, 'outlier_detection.base_ejection_time', err, d.baseEjectionTimeMs);
  const maxEjectionTimeMs = durationMs(od.maxEjectionTime, 'outlier_detection.max_ejection_time', err, Math.max(d.maxEjectionTimeMs, baseEjectionTimeMs));
  if (maxEjectionTimeMs < baseEjectionTimeMs) {
    err('outlier_detection.max_ejection_time', `cannot be smaller than base_ejection_time (${baseEjectionTimeMs}ms), got ${maxEjectionTimeMs}ms`);
  }
  const maxEjectionTimeJitterMs = durationMs(od.maxEjectionTimeJitter, 'outlier_detection.max_ejection_time_jitter', err, d.maxEjectionTimeJitterMs, true);
  return {
    consecutive5xx: od.consecutive5xx ?? d.consecutive5xx,
    enforcingConsecutive5xx: percent(od.enforcingConsecutive5xx, 'enforcing_consecutive_5xx', d.enforcingConsecutive5xx),
    consecutiveGatewayFailure: od.consecutiveGatewayFailure ?? d.consecutiveGatewayFailure,
    enforcingConsecutiveGatewayFailure: percent(od.enforcingConsecutiveGatewayFailure, 'enforcing_consecutive_gateway_failure', d.enforcingConsecutiveGatewayFailure),
    splitExternalLocalOriginErrors: od.splitExternalLocalOriginErrors,
    consecutiveLocalOriginFailure: od.consecutiveLocalOriginFailure ?? d.consecutiveLocalOriginFailure,
    enforcingConsecutiveLocalOriginFailure: percent(od.enforcingConsecutiveLocalOriginFailure, 'enforcing_consecutive_local_origin_failure', d.enforcingConsecutiveLocalOriginFailure),
    intervalMs,
    baseEjectionTimeMs,
    maxEjectionTimeMs,
    maxEjectionTimeJitterMs,
    maxEjectionPercent: percent(od.maxEjectionPercent, 'max_ejection_percent', d.maxEjectionPercent),
    alwaysEjectOneHost: od.alwaysEjectOneHost ?? false,
  };
}

/**
 * A Duration in ms (fractions rounded up), `fallback` when unset. Must be > 0 (or >= 0
 * with `zeroOk`) and fit a timer (<= 2^31-1 ms).
 */
function durationMs(d: Duration | undefined, path: string, err: Err, fallback: number, zeroOk = false): number {
  if (!d) return fallback;
  const { seconds, nanos } = d;
  const shown = `${seconds}s${nanos ? ` ${nanos}ns` : ''}`;
  if (nanos < -999_999_999 || nanos > 999_999_999 || (seconds > 0n && nanos < 0) || (seconds < 0n && nanos > 0)) {
    err(path, `is not a valid duration (${shown})`);
    return fallback;
  }
  if (seconds < 0n || nanos < 0) {
    err(path, `must not be negative, got ${shown}`);
    return fallback;
  }
  if (seconds > BigInt(Math.ceil(MAX_MS / 1000))) {
    err(path, `must be at most ${MAX_MS}ms, got ${shown}`);
    return fallback;
  }
  const ms = Math.ceil(Number(seconds) * 1000 + nanos / 1e6);
  if (ms > MAX_MS) {
    err(path, `must be at most ${MAX_MS}ms, got ${shown}`);
    return fallback;
  }
  if (ms === 0 && !zeroOk) {
    err(path, `must be > 0, got ${shown}`);
    return fallback;
  }
  return ms;
}
