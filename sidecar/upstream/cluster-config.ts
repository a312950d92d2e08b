/**
 * The validated model of one upstream cluster: what `compileCluster` makes of a CDS `Cluster`
 * plus its `ClusterLoadAssignment`, and what `UpstreamCluster` runs on. Past `xds/` nothing
 * reads protos (CONVENTIONS "Types and errors"), so every field here is resolved: defaults
 * applied, durations in milliseconds, enums as string literals. Instances are deep-frozen.
 */

import type { CompiledStringMatcher } from '../routing/string-matcher.ts';

export type DiscoveryType = 'STATIC' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'EDS';
export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM';
/** `http1`: HTTP/1.1. `http2`: HTTP/2 over cleartext with prior knowledge (h2c). */
export type UpstreamProtocol = 'http1' | 'http2';
/** EDS `LbEndpoint.health_status`. UNHEALTHY, DRAINING and TIMEOUT hosts get no traffic. */
export type EndpointHealth = 'UNKNOWN' | 'HEALTHY' | 'UNHEALTHY' | 'DRAINING' | 'TIMEOUT' | 'DEGRADED';
/** `Cluster.dns_lookup_family`, for STRICT_DNS and LOGICAL_DNS clusters. */
export type DnsLookupFamily = 'AUTO' | 'V4_ONLY' | 'V6_ONLY' | 'V4_PREFERRED' | 'ALL';

export interface EndpointConfig {
  /** An IP address; for DNS clusters possibly a host name, resolved at run time. */
  readonly address: string;
  /** 1–65535. */
  readonly port: number;
  /** `load_balancing_weight`, >= 1 (default 1). */
  readonly weight: number;
  readonly health: EndpointHealth;
  /** `Endpoint.hostname` ('' when unset): informational, shown in stats. */
  readonly hostname: string;
  /**
   * Upstream TLS for this endpoint: the cluster's `transport_socket_matches` entry its
   * `envoy.transport_socket_match` metadata selects, else the cluster's `transport_socket`.
   * Absent (not undefined-valued: the property is left out) for plaintext (raw_buffer).
   */
  readonly tls?: UpstreamTlsConfig;
}

/** A SAN check of `match_typed_subject_alt_names` (or `ANY` for legacy `match_subject_alt_names`). */
export interface SanMatcherConfig {
  readonly sanType: 'URI' | 'DNS' | 'EMAIL' | 'IP_ADDRESS' | 'ANY';
  readonly matcher: CompiledStringMatcher;
}

/** node:tls protocol version names. */
export type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

/** Where the client certificate comes from: a TlsSecrets name (SDS) or inline PEM. */
export type UpstreamCertificateSource =
  | { readonly kind: 'sds'; readonly name: string }
  | { readonly kind: 'inline'; readonly keyPem: string; readonly chainPem: string };

/** How the server certificate is verified. */
export interface UpstreamValidationConfig {
  /** TlsSecrets validation name (trust bundle + revoked serials), or null. Wins over `trustedCaPem`. */
  readonly sdsName: string | null;
  /** Inline `validation_context.trusted_ca`, or null. */
  readonly trustedCaPem: string | null;
  /** Empty: any certificate chaining to the roots. Else at least one SAN must match at least one matcher. */
  readonly sanMatchers: readonly SanMatcherConfig[];
}

/** An `UpstreamTlsContext`, validated (compile-transport-socket.ts). */
export interface UpstreamTlsConfig {
  /** The `transport_socket_matches` entry's name, or `transport_socket` for the cluster default. */
  readonly name: string;
  /** SNI to send; '' sends none. */
  readonly sni: string;
  /** ALPN offered; empty offers none. */
  readonly alpn: readonly string[];
  /** Null: no client certificate. */
  readonly certificate: UpstreamCertificateSource | null;
  /** Null: the server certificate is not verified (Envoy's behaviour without a validation context). */
  readonly validation: UpstreamValidationConfig | null;
  /** Default TLSv1.2 (Envoy's client default). */
  readonly minVersion: TlsVersion;
  /** Default TLSv1.2 (Envoy's client default). */
  readonly maxVersion: TlsVersion;
  /** `max_session_keys`: TLS sessions kept per host for resumption; 0 disables resumption. Default 1. */
  readonly maxSessionKeys: number;
  /** A stable text of all of the above: two endpoints with the same key share secure contexts, and a host whose key changes gets a new pool. */
  readonly key: string;
}

export interface LocalityConfig {
  readonly region: string;
  readonly zone: string;
  readonly subZone: string;
  /** 0 is the highest priority; at most 128. */
  readonly priority: number;
  /** `load_balancing_weight`, >= 1, or null when unset. */
  readonly weight: number | null;
  readonly endpoints: readonly EndpointConfig[];
}

export interface RetryBudgetConfig {
  /** Share of active plus pending requests that may be retries, 0–100 (default 20). */
  readonly budgetPercent: number;
  /** Retries always allowed whatever the budget says (default 3). */
  readonly minRetryConcurrency: number;
}

/** The DEFAULT-priority entry of `circuit_breakers.thresholds`, with Envoy's defaults. */
export interface CircuitBreakerThresholds {
  /** Default 1024. Enforced per endpoint as the undici Pool's `connections` (see UpstreamCluster). */
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  /** Ignored while `retryBudget` is set, as in Envoy. */
  readonly maxRetries: number;
  readonly retryBudget: RetryBudgetConfig | null;
  /** `per_host_thresholds[DEFAULT].max_connections`, or null: then maxConnections caps each pool. */
  readonly perHostMaxConnections: number | null;
}

/**
 * `outlier_detection` with Envoy's defaults. Only consecutive-error detectors are modelled
 * (5xx, gateway failure, local-origin failure); success-rate and failure-percentage
 * detection are not (see docs of UpstreamCluster).
 */
export interface OutlierDetectionConfig {
  /** Consecutive 5xx (and, unless split, local-origin failures) before ejection; 0 disables. Default 5. */
  readonly consecutive5xx: number;
  /** Chance in % that a consecutive-5xx outlier is really ejected. Default 100. */
  readonly enforcingConsecutive5xx: number;
  /** Consecutive 502/503/504 before ejection. Default 5. */
  readonly consecutiveGatewayFailure: number;
  /** Default 0: gateway-failure outliers are detected but not ejected, as in Envoy. */
  readonly enforcingConsecutiveGatewayFailure: number;
  /** When true, connect failures, resets and timeouts count apart from HTTP 5xx. */
  readonly splitExternalLocalOriginErrors: boolean;
  /** Only with the split: consecutive local-origin failures before ejection. Default 5. */
  readonly consecutiveLocalOriginFailure: number;
  /** Default 100. */
  readonly enforcingConsecutiveLocalOriginFailure: number;
  /** Period of the sweep that re-admits hosts, ms. Default 10 000. */
  readonly intervalMs: number;
  /** Ejection time is this times the host's ejection backoff, ms. Default 30 000. */
  readonly baseEjectionTimeMs: number;
  /** Cap on one ejection's time, ms. Default max(300 000, baseEjectionTimeMs). */
  readonly maxEjectionTimeMs: number;
  /** A random 0..jitter ms is added to each ejection. Default 0. */
  readonly maxEjectionTimeJitterMs: number;
  /** 0–100. Default 10. A host is ejected only if 100·(ejected+1)/hosts <= this. */
  readonly maxEjectionPercent: number;
  /** Eject one host even when maxEjectionPercent forbids it, if none is ejected. Default false. */
  readonly alwaysEjectOneHost: boolean;
}

export interface DnsConfig {
  readonly lookupFamily: DnsLookupFamily;
  /** How often host names are resolved again, ms. Default 5000. */
  readonly refreshRateMs: number;
  /** After a failed resolution, ms. Default refreshRateMs. */
  readonly failureRefreshRateMs: number;
}

export interface ClusterConfig {
  readonly name: string;
  readonly discoveryType: DiscoveryType;
  readonly lbPolicy: LbPolicy;
  /** LEAST_REQUEST only: random distinct hosts compared per pick (>= 2, default 2). */
  readonly choiceCount: number;
  /** LEAST_REQUEST with unequal weights: weight / (active + 1)^bias (>= 0, default 1). */
  readonly activeRequestBias: number;
  /** TCP connect timeout, ms. Default 5000. */
  readonly connectTimeoutMs: number;
  readonly protocol: UpstreamProtocol;
  /** Requests per connection before it is closed; null: unlimited. */
  readonly maxRequestsPerConnection: number | null;
  readonly circuitBreakers: CircuitBreakerThresholds;
  readonly outlierDetection: OutlierDetectionConfig | null;
  /** `policy.overprovisioning_factor` in %, scales locality health. Default 140. */
  readonly overprovisioningFactor: number;
  readonly localities: readonly LocalityConfig[];
  /** Set for STRICT_DNS and LOGICAL_DNS clusters. */
  readonly dns: DnsConfig | null;
}

/** Envoy's defaults, in one place (CONVENTIONS "Configuration and validation"). */
export const CLUSTER_DEFAULTS = Object.freeze({
  connectTimeoutMs: 5000,
  choiceCount: 2,
  activeRequestBias: 1,
  overprovisioningFactor: 140,
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxRequests: 1024,
  maxRetries: 3,
  retryBudgetPercent: 20,
  retryBudgetMinConcurrency: 3,
  consecutive5xx: 5,
  enforcingConsecutive5xx: 100,
  consecutiveGatewayFailure: 5,
  enforcingConsecutiveGatewayFailure: 0,
  consecutiveLocalOriginFailure: 5,
  enforcingConsecutiveLocalOriginFailure: 100,
  outlierIntervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionTimeJitterMs: 0,
  maxEjectionPercent: 10,
  dnsRefreshRateMs: 5000,
});

export { deepFreeze } from '../../xds/deep-freeze.ts';
