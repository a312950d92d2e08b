/**
 * The usage meter (issue #7): every finished request counted per (listener, cluster, tenant,
 * route) — requests, bytes in, bytes out, denials, errors — until the load reporter takes the
 * counters for the next LRS report (sidecar/telemetry/load-reporter.ts).
 *
 * Per request: the tenant (facts.tenant when a stage set it, else read from the request's
 * headers or verified token as the Mesh says, sidecar/telemetry/tenant.ts), one composite
 * string key and one Map lookup; the counter object is created once per key and interval.
 * Cardinality is bounded: at most `maxTenants` distinct tenants per interval (the rest count as
 * "other"), tenants cut to 128 bytes.
 *
 * Denied: a 401/403/429 local reply — the policy denied or the caller was unauthenticated
 * (facts.policy deny/unauthenticated), or a quota refused (facts.quota over/shed; shed is a
 * 503). Errors: any 5xx that is not such a denial.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { DEFAULT_TENANT_SETTINGS, OTHER_TENANT, UNKNOWN_TENANT, type JwtPayloads, type TenantSettings } from './tenant.ts';

/** The route of a request no route (or quota route) named, or one whose route has no name. */
export const NO_ROUTE = '-';

/**
 * What the meter reads of a finished request: the telemetry wrapper's RequestRecord
 * (sidecar/telemetry/request-facts.ts for `facts`) satisfies it; `headers` and `facts.jwt` are
 * read only when `facts.tenant` is null.
 */
export interface UsageRecord {
  /** `inbound`; anything else counts as outbound. */
  readonly listener: string;
  readonly status: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** The request headers, for a header tenant. */
  readonly headers?: IncomingHttpHeaders | null;
  readonly facts: {
    readonly route: string | null;
    readonly cluster: string | null;
    readonly policy: { readonly decision: string } | null;
    readonly quota: { readonly result: string } | null;
    /** Set by a stage that already knows the tenant; null: the meter reads it. */
    readonly tenant: string | null;
    /** Verified token payloads by provider, for a claim tenant. */
    readonly jwt?: JwtPayloads | null;
  };
}

/** One key's counts over an interval. */
export interface UsageCounter {
  readonly listener: 'inbound' | 'outbound';
  /** The upstream cluster (inbound: `inbound|<port>||<service>`); the listener's name when the request reached none. */
  readonly cluster: string;
  readonly tenant: string;
  readonly route: string;
  requests: number;
  bytesIn: number;
  bytesOut: number;
  denied: number;
  errors: number;
}

export interface UsageMeterStats {
  /** Requests metered since start. */
  readonly requests: number;
  /** Requests counted as "other" because the interval's tenant budget was spent. */
  readonly overflowed: number;
  /** Keys held now (counters not yet taken). */
  readonly keys: number;
  readonly tenantSource: string;
}

const DENY_DECISIONS = new Set(['deny', 'unauthenticated']);
const DENY_QUOTA = new Set(['over', 'shed']);

/** Whether a finished request was refused by policy, authentication or quota. */
export function isDenied(r: UsageRecord): boolean {
  const { policy, quota } = r.facts;
  if (policy !== null && DENY_DECISIONS.has(policy.decision) && (r.status === 401 || r.status === 403)) return true;
  if (quota !== null && DENY_QUOTA.has(quota.result) && (r.status === 429 || r.status === 503)) return true;
  return false;
}

export class UsageMeter {
  #settings: TenantSettings;
  #counters = new Map<string, UsageCounter>();
  /** Tenants seen this interval (the budget). */
  #tenants = new Set<string>();
  #requests = 0;
  #overflowed = 0;

  constructor(settings: TenantSettings = DEFAULT_TENANT_SETTINGS) {
    this.#settings = settings;
  }

  /** New metering settings (a MeshConfig update); counters and this interval's budget stay. */
  setSettings(settings: TenantSettings): void {
    this.#settings = settings;
  }

  get settings(): TenantSettings {
    return this.#settings;
  }

  /** The tenant of a request as the mesh says, bounded in length (not yet in number). */
  tenantOf(headers: IncomingHttpHeaders | null, jwt: JwtPayloads | null): string {
    return this.#settings.source.tenantOf(headers, jwt);
  }

  /**
   * At request start (the telemetry wrapper's handler): sets facts.tenant from the request's
   * header when the tenant comes from a header, so the access log and the meter see it; a claim
   * tenant is read from facts.jwt when the request ends.
   */
  stamp(headers: IncomingHttpHeaders, facts: { tenant: string | null } | undefined): void {
    const source = this.#settings.source;
    if (facts !== undefined && facts.tenant === null && source.fromHeaders) facts.tenant = source.tenantOf(headers, null);
  }

  /** Counts one finished request. Never throws for a well-formed record. */
  record(r: UsageRecord): void {
    this.#requests++;
    const f = r.facts;
    let tenant = f.tenant ?? this.#settings.source.tenantOf(r.headers ?? null, f.jwt ?? null);
    if (tenant === '') tenant = UNKNOWN_TENANT;
    if (!this.#tenants.has(tenant)) {
      if (this.#tenants.size >= this.#settings.maxTenants) {
        this.#overflowed++;
        tenant = OTHER_TENANT;
      } else {
        this.#tenants.add(tenant);
      }
    }
    const route = f.route || NO_ROUTE;
    const listener = r.listener === 'inbound' ? 'inbound' : 'outbound';
    const cluster = f.cluster ?? listener;
    const key = `${listener}\u0000${cluster}\u0000${tenant}\u0000${route}`;
    let c = this.#counters.get(key);
    if (c === undefined) {
      c = { listener, cluster, tenant, route, requests: 0, bytesIn: 0, bytesOut: 0, denied: 0, errors: 0 };
      this.#counters.set(key, c);
    }
    c.requests++;
    c.bytesIn += r.bytesIn;
    c.bytesOut += r.bytesOut;
    if (isDenied(r)) c.denied++;
    else if (r.status >= 500) c.errors++;
  }

  /** The counters since the last take (deltas), and a new interval: counters and tenant budget start over. */
  take(): UsageCounter[] {
    const out = [...this.#counters.values()];
    this.#counters = new Map();
    this.#tenants = new Set();
    return out;
  }

  stats(): UsageMeterStats {
    return { requests: this.#requests, overflowed: this.#overflowed, keys: this.#counters.size, tenantSource: this.#settings.source.description };
  }
}
