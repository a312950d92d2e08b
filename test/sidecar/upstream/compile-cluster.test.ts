import { describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { anyPack } from '@bufbuild/protobuf/wkt';
import { ClusterSchema, Cluster_DiscoveryType, Cluster_DnsLookupFamily, Cluster_LbPolicy, type Cluster } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { ClusterLoadAssignment } from '../../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { HttpProtocolOptionsSchema } from '../../../xds/gen/envoy/extensions/upstreams/http/v3/http_protocol_options_pb.js';
import { RoutingPriority } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import { compileCluster } from '../../../sidecar/upstream/compile-cluster.ts';
import { buildCluster } from '../../../control/translate/clusters.ts';
import type { ServiceResource } from '../../../control/config/schema.ts';
import { cla, edsCluster, ep, HealthStatus, http2Options, locality, ms, staticCluster } from './fixtures.ts';

const A = cla('svc', [locality([ep('10.0.0.1', 80)])]);

function dnsCluster(type: Cluster_DiscoveryType, endpoints = [ep('backend.local', 8080)]): Cluster {
  return create(ClusterSchema, {
    name: 'dns',
    clusterDiscoveryType: { case: 'type', value: type },
    loadAssignment: { clusterName: 'dns', endpoints: [locality(endpoints)] },
  });
}

describe('compileCluster rejects what it cannot honour, naming each field', () => {
  it.each<[string, Cluster, ClusterLoadAssignment | undefined, string[]]>([
    ['an EDS cluster without its assignment', edsCluster('svc'), undefined,
      ['eds_cluster_config: an EDS cluster needs its ClusterLoadAssignment "svc", none was given']],
    ['MAGLEV', edsCluster('svc', { lbPolicy: Cluster_LbPolicy.MAGLEV }), A,
      ['lb_policy: MAGLEV is not supported (supported: ROUND_ROBIN, LEAST_REQUEST, RANDOM)']],
    ['RING_HASH', edsCluster('svc', { lbPolicy: Cluster_LbPolicy.RING_HASH }), A,
      ['lb_policy: RING_HASH is not supported (supported: ROUND_ROBIN, LEAST_REQUEST, RANDOM)']],
    ['ORIGINAL_DST', edsCluster('svc', { clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.ORIGINAL_DST } }), undefined,
      ['type: ORIGINAL_DST is not supported (supported: STATIC, STRICT_DNS, LOGICAL_DNS, EDS)']],
    ['an assignment for another service', edsCluster('svc'), cla('other', [locality([ep('10.0.0.1', 80)])]),
      ['cluster_load_assignment.cluster_name: must be the cluster\'s EDS service name "svc", got "other"']],
    ['a host name in an EDS assignment', edsCluster('svc'), cla('svc', [locality([ep('api.local', 80)])]),
      ['cluster_load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: a EDS cluster needs IP addresses, got "api.local" (use STRICT_DNS or LOGICAL_DNS for host names)']],
    ['a STATIC cluster without endpoints', create(ClusterSchema, { name: 's' }), undefined,
      ['load_assignment: a STATIC cluster needs its endpoints inline']],
    ['an EDS assignment for a STATIC cluster', staticCluster('svc', [locality([ep('10.0.0.1', 80)])]), A,
      ['cluster_load_assignment: a STATIC cluster takes its endpoints from load_assignment, not from EDS']],
    ['port 0 and a duplicate endpoint', staticCluster('s', [locality([ep('10.0.0.1', 0), ep('10.0.0.2', 80)]), locality([ep('10.0.0.2', 80)])]), undefined, [
      'load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: must be 1-65535, got 0',
      'load_assignment.endpoints[1].lb_endpoints[0]: duplicate endpoint 10.0.0.2:80 (also at load_assignment.endpoints[0].lb_endpoints[1])',
    ]],
    ['weights of 0 and a priority above 128', edsCluster('svc'), cla('svc', [{ ...locality([ep('10.0.0.1', 80, { weight: 0 })]), loadBalancingWeight: 0, priority: 129 }]), [
      'cluster_load_assignment.endpoints[0].priority: must be <= 128, got 129',
      'cluster_load_assignment.endpoints[0].load_balancing_weight: must be >= 1, got 0',
      'cluster_load_assignment.endpoints[0].lb_endpoints[0].load_balancing_weight: must be >= 1, got 0',
    ]],
    ['a named port and a pipe', edsCluster('svc'), cla('svc', [locality([
      { hostIdentifier: { case: 'endpoint', value: { address: { address: { case: 'socketAddress', value: { address: '10.0.0.1', portSpecifier: { case: 'namedPort', value: 'http' } } } } } } },
      { hostIdentifier: { case: 'endpoint', value: { address: { address: { case: 'pipe', value: { path: '/run/x.sock' } } } } } },
      { hostIdentifier: { case: 'endpointName', value: 'e1' } },
    ])]), [
      'cluster_load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.named_port: named ports are not supported; use port_value',
      'cluster_load_assignment.endpoints[0].lb_endpoints[1].endpoint.address.pipe: only socket addresses are supported',
      'cluster_load_assignment.endpoints[0].lb_endpoints[2].endpoint_name: named endpoints are not supported',
    ]],
    ['LEAST_REQUEST with choice_count 1 and a negative bias', edsCluster('svc', {
      lbPolicy: Cluster_LbPolicy.LEAST_REQUEST,
      lbConfig: { case: 'leastRequestLbConfig', value: { choiceCount: 1, activeRequestBias: { defaultValue: -1, runtimeKey: 'k' } } },
    }), A, [
      'least_request_lb_config.choice_count: must be >= 2, got 1',
      'least_request_lb_config.active_request_bias.default_value: must be a number >= 0, got -1',
    ]],
    ['outlier detection out of range', edsCluster('svc', {
      outlierDetection: { interval: ms(0), baseEjectionTime: ms(60_000), maxEjectionTime: ms(1000), maxEjectionPercent: 101, enforcingConsecutive5xx: 150 },
    }), A, [
      'outlier_detection.interval: must be > 0, got 0s',
      'outlier_detection.max_ejection_time: cannot be smaller than base_ejection_time (60000ms), got 1000ms',
      'outlier_detection.enforcing_consecutive_5xx: must be 0-100, got 150',
      'outlier_detection.max_ejection_percent: must be 0-100, got 101',
    ]],
    ['a negative connect_timeout', edsCluster('svc', { connectTimeout: { seconds: -1n } }), A,
      ['connect_timeout: must not be negative, got -1s']],
    ['upstream TLS without an UpstreamTlsContext', edsCluster('svc', { transportSocket: { name: 'envoy.transport_sockets.tls' } }), A,
      ['transport_socket.typed_config: is required for envoy.transport_sockets.tls (an UpstreamTlsContext)']],
    ['HTTP/3', edsCluster('svc', {
      typedExtensionProtocolOptions: {
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': anyPack(HttpProtocolOptionsSchema, create(HttpProtocolOptionsSchema, {
          upstreamProtocolOptions: { case: 'explicitHttpConfig', value: { protocolConfig: { case: 'http3ProtocolOptions', value: {} } } },
        })),
      },
    }), A, ['typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].explicit_http_config.http3_protocol_options: HTTP/3 upstreams are not supported']],
    ['a LOGICAL_DNS cluster with two endpoints', dnsCluster(Cluster_DiscoveryType.LOGICAL_DNS, [ep('a.local', 80), ep('b.local', 80)]), undefined,
      ['load_assignment: a LOGICAL_DNS cluster needs exactly one locality with exactly one endpoint']],
    ['subset load balancing and slow start', edsCluster('svc', {
      lbSubsetConfig: { subsetSelectors: [{ keys: ['version'] }] },
      lbConfig: { case: 'roundRobinLbConfig', value: { slowStartConfig: {} } },
    }), A, ['lb_subset_config: subset load balancing is not supported', 'round_robin_lb_config.slow_start_config: slow start is not supported']],
    ['several problems at once', create(ClusterSchema, {
      name: '',
      lbPolicy: Cluster_LbPolicy.MAGLEV,
      clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.EDS },
      outlierDetection: { baseEjectionTime: ms(0) },
    }), undefined, [
      'name: must not be empty',
      'eds_cluster_config: an EDS cluster needs its ClusterLoadAssignment "", none was given',
      'lb_policy: MAGLEV is not supported (supported: ROUND_ROBIN, LEAST_REQUEST, RANDOM)',
      'outlier_detection.base_ejection_time: must be > 0, got 0s',
    ]],
  ])('rejects %s', (_what, cluster, assignment, errors) => {
    expect(compileCluster(cluster, assignment)).toEqual({ valid: false, errors });
  });
});

describe('compileCluster accepts Envoy clusters and applies Envoy defaults', () => {
  it('fills every default for a bare EDS cluster and freezes the result', () => {
    const r = compileCluster(edsCluster('svc'), A);
    expect(r).toEqual({
      valid: true,
      result: {
        name: 'svc',
        discoveryType: 'EDS',
        lbPolicy: 'ROUND_ROBIN',
        choiceCount: 2,
        activeRequestBias: 1,
        connectTimeoutMs: 5000,
        protocol: 'http1',
        maxRequestsPerConnection: null,
        circuitBreakers: { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3, retryBudget: null, perHostMaxConnections: null },
        outlierDetection: null,
        overprovisioningFactor: 140,
        localities: [{ region: 'r', zone: '', subZone: '', priority: 0, weight: null, endpoints: [{ address: '10.0.0.1', port: 80, weight: 1, health: 'UNKNOWN', hostname: '' }] }],
        dns: null,
      },
    });
    expect(r.valid && Object.isFrozen(r.result.localities[0]!.endpoints[0])).toBe(true);
  });

  it('takes outlier detection defaults from Envoy when the message is empty', () => {
    const r = compileCluster(edsCluster('svc', { outlierDetection: {} }), A);
    expect(r.valid && r.result.outlierDetection).toEqual({
      consecutive5xx: 5, enforcingConsecutive5xx: 100, consecutiveGatewayFailure: 5, enforcingConsecutiveGatewayFailure: 0,
      splitExternalLocalOriginErrors: false, consecutiveLocalOriginFailure: 5, enforcingConsecutiveLocalOriginFailure: 100,
      intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionTimeMs: 300_000, maxEjectionTimeJitterMs: 0,
      maxEjectionPercent: 10, alwaysEjectOneHost: false,
    });
  });

  it('reads every supported setting', () => {
    const cluster = edsCluster('svc', {
      lbPolicy: Cluster_LbPolicy.LEAST_REQUEST,
      lbConfig: { case: 'leastRequestLbConfig', value: { choiceCount: 3, activeRequestBias: { defaultValue: 0.5, runtimeKey: 'k' } } },
      connectTimeout: ms(250),
      typedExtensionProtocolOptions: http2Options(),
      circuitBreakers: {
        thresholds: [
          { priority: RoutingPriority.HIGH, maxRequests: 9 },
          { priority: RoutingPriority.DEFAULT, maxConnections: 7, maxPendingRequests: 8, maxRequests: 2, maxRetries: 1, retryBudget: { budgetPercent: { value: 50 } } },
        ],
        perHostThresholds: [{ maxConnections: 4 }],
      },
      outlierDetection: {
        consecutive5xx: 3, interval: ms(50), baseEjectionTime: ms(100), maxEjectionPercent: 50,
        splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailure: 2, alwaysEjectOneHost: true, maxEjectionTimeJitter: ms(5),
      },
    });
    const assignment = cla('svc', [
      locality([ep('10.0.0.1', 80, { weight: 3, health: HealthStatus.HEALTHY }), ep('::1', 81, { health: HealthStatus.DEGRADED })], { zone: 'a', weight: 2 }),
      locality([ep('10.0.0.3', 80)], { zone: 'b', priority: 1 }),
    ]);
    assignment.policy = { dropOverloads: [], overprovisioningFactor: 100, weightedPriorityHealth: false } as never;
    const r = compileCluster(cluster, assignment);
    expect(r.valid).toBe(true);
    if (!r.valid) return;
    expect(r.result).toMatchObject({
      lbPolicy: 'LEAST_REQUEST', choiceCount: 3, activeRequestBias: 0.5, connectTimeoutMs: 250, protocol: 'http2', overprovisioningFactor: 100,
      circuitBreakers: { maxConnections: 7, maxPendingRequests: 8, maxRequests: 2, maxRetries: 1, retryBudget: { budgetPercent: 50, minRetryConcurrency: 3 }, perHostMaxConnections: 4 },
      outlierDetection: {
        consecutive5xx: 3, intervalMs: 50, baseEjectionTimeMs: 100, maxEjectionTimeMs: 300_000, maxEjectionPercent: 50,
        splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailure: 2, alwaysEjectOneHost: true, maxEjectionTimeJitterMs: 5,
      },
      localities: [
        { zone: 'a', weight: 2, priority: 0, endpoints: [{ address: '10.0.0.1', weight: 3, health: 'HEALTHY' }, { address: '::1', port: 81, weight: 1, health: 'DEGRADED' }] },
        { zone: 'b', weight: null, priority: 1, endpoints: [{ address: '10.0.0.3' }] },
      ],
    });
  });

  it('compiles STRICT_DNS and LOGICAL_DNS clusters without resolving anything', () => {
    const strict = create(ClusterSchema, {
      ...dnsCluster(Cluster_DiscoveryType.STRICT_DNS, [ep('does-not-exist.invalid', 80), ep('10.0.0.9', 81)]),
      dnsLookupFamily: Cluster_DnsLookupFamily.V4_ONLY,
      dnsRefreshRate: ms(2000),
    });
    const r = compileCluster(strict, undefined);
    expect(r.valid && r.result.dns).toEqual({ lookupFamily: 'V4_ONLY', refreshRateMs: 2000, failureRefreshRateMs: 2000 });
    expect(r.valid && r.result.localities[0]!.endpoints.map((e) => e.address)).toEqual(['does-not-exist.invalid', '10.0.0.9']);
    const logical = compileCluster(dnsCluster(Cluster_DiscoveryType.LOGICAL_DNS), undefined);
    expect(logical.valid && [logical.result.discoveryType, logical.result.dns]).toEqual(['LOGICAL_DNS', { lookupFamily: 'AUTO', refreshRateMs: 5000, failureRefreshRateMs: 5000 }]);
  });
});

describe('compileCluster on what our control plane emits', () => {
  const service = (endpoints: { address: string; port: number; weight: number }[], protocol: 'http' | 'grpc' = 'http'): ServiceResource => ({
    apiVersion: 'palisade.dev/v1',
    kind: 'Service',
    metadata: { name: 'api', namespace: 'shop' },
    spec: { protocol, port: 80, endpoints },
    source: { file: 'x.yaml', index: 0 },
  } as unknown as ServiceResource);

  it('accepts an EDS cluster with its assignment, weights intact', () => {
    const out = buildCluster(service([{ address: '10.0.0.1', port: 8080, weight: 3 }, { address: '10.0.0.2', port: 8080, weight: 1 }]), undefined, 'sidecar');
    const r = compileCluster(out.cluster, out.loadAssignment);
    expect(r.valid).toBe(true);
    if (!r.valid) return;
    expect([r.result.discoveryType, r.result.protocol, r.result.connectTimeoutMs]).toEqual(['EDS', 'http1', 5000]);
    expect(r.result.localities.flatMap((l) => l.endpoints.map((e) => `${e.address}:${e.port}×${e.weight}`))).toEqual(['10.0.0.1:8080×3', '10.0.0.2:8080×1']);
  });

  it('accepts a STRICT_DNS cluster with inline endpoints, and HTTP/2 for gRPC Services', () => {
    const out = buildCluster(service([{ address: 'api.shop.internal', port: 9000, weight: 1 }], 'grpc'), undefined, 'envoy');
    expect(out.loadAssignment).toBeUndefined();
    const r = compileCluster(out.cluster, undefined);
    expect(r.valid && [r.result.discoveryType, r.result.protocol, r.result.dns?.lookupFamily]).toEqual(['STRICT_DNS', 'http2', 'V4_PREFERRED']);
  });
});
