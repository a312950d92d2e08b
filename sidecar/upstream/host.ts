/**
 * One upstream endpoint as the load balancer sees it: where it is, its weight, its undici
 * pool, and the counters that least-request balancing and outlier detection read. Every
 * field is set in the constructor so all hosts share one hidden class; the cluster mutates
 * them, callers only read (CONVENTIONS "Hot path").
 */
import type { Pool } from 'undici';
import type { EndpointHealth, LocalityConfig } from './cluster-config.ts';

export class Host {
  /** IP address (or, in a LOGICAL_DNS cluster, the host name resolved at each connect). */
  readonly address: string;
  readonly port: number;
  /** `address:port`, IPv6 bracketed: the host's identity across updates. */
  readonly key: string;
  /** Load-balancing weight, >= 1. */
  weight: number;
  /** EDS health status. */
  health: EndpointHealth;
  /** `Endpoint.hostname`, informational. */
  hostname: string;
  /** Priority of its locality, 0 = highest. */
  priority: number;
  locality: LocalityConfig;
  /** The endpoint's own connection pool: send the request through it. */
  pool: Pool;
  /** Requests started (`UpstreamCluster.startRequest`) and not yet ended (`endRequest`): response bodies included. */
  activeRequests = 0;
  totalRequests = 0;
  /** Results that were 5xx, connect failures, resets or timeouts. */
  totalErrors = 0;

  // Outlier detection state (outlier-detector.ts), kept across config updates.
  consecutive5xx = 0;
  consecutiveGatewayFailure = 0;
  consecutiveLocalOriginFailure = 0;
  ejected = false;
  /** performance.now() of the last ejection, ms. */
  ejectedAt = 0;
  /** Random extra ejection time drawn at the last ejection, ms. */
  ejectionJitterMs = 0;
  /** Multiplier of base_ejection_time: +1 per ejection, -1 per healthy interval. */
  ejectTimeBackoff = 0;
  timesEjected = 0;
  /** performance.now() of the last re-admission, or -1. */
  unejectedAt = -1;
  /** True once an update removed the host; results for it no longer feed detection. */
  removed = false;
  /** Stamp of the pool options the pool was made with (upstream-cluster.ts). */
  poolKey: string;

  constructor(address: string, port: number, key: string, pool: Pool, poolKey: string, weight: number, health: EndpointHealth, hostname: string, locality: LocalityConfig) {
    this.address = address;
    this.port = port;
    this.key = key;
    this.pool = pool;
    this.poolKey = poolKey;
    this.weight = weight;
    this.health = health;
    this.hostname = hostname;
    this.locality = locality;
    this.priority = locality.priority;
  }

  /** Gets traffic when its priority is chosen: HEALTHY or UNKNOWN to EDS, and not ejected. */
  get usable(): boolean {
    return !this.ejected && (this.health === 'HEALTHY' || this.health === 'UNKNOWN');
  }
}
