/**
 * Quotas for Envoy nodes (issue #7). Envoy cannot run Palisade's quota engine, so each Quota
 * selecting the Service an Envoy fronts becomes, on its inbound HCM (inbound.ts):
 *
 *   scope local   →  envoy.filters.http.local_ratelimit, stage N: one LocalRateLimitDescriptor
 *                    (token bucket max_tokens = tokens + burst, tokens_per_fill = tokens,
 *                    fill_interval = interval) per limit; requests no limit matches fall to
 *                    the filter's own bucket, which is never empty (the quota does not limit
 *                    them); filter_enforced 0% in shadow mode.
 *   scope global  →  envoy.filters.http.ratelimit, stage N, domain "<namespace>/<name>", gRPC
 *                    to the STATIC cluster `palisade_ratelimit` (ENVOY_RATELIMIT_ADDRESS:PORT),
 *                    failure_mode_deny = failureMode closed. Limits, per-value buckets and
 *                    shadow mode are the rate limit service's business (it reads the Quota).
 *
 * plus, on the route, `rate_limits` of stage N whose actions build the descriptor entries:
 *
 *   header h          request_headers {h}; with a default, a second variant whose
 *                     header_value_match (expect_match false, h present) yields the default
 *   method            request_headers {:method}
 *   remoteAddress     remote_address (Envoy names the entry `remote_address`)
 *   route             generic_key {route name}, one variant per quota route
 *   principal         none: no Envoy action reads the peer certificate's URI SAN
 *   jwtClaim          none: Envoy nodes get no jwt_authn filter (RequestAuthentication is
 *                     enforced by sidecars only), so there is no claim to read
 *
 * A quota with routes leads each variant with header_value_match (:path prefix, :method)
 * yielding (ROUTE_GATE_KEY, "<namespace>/<name>"), the same entry for every route, so a limit
 * keeps one bucket across routes; earlier overlapping routes are excluded with inverted
 * matchers (first match wins), split into two variants where the exclusion is a disjunction.
 * Variants are mutually exclusive: one descriptor per request.
 *
 * Not expressible, so the Quota is left out for Envoy (and `palisade analyze` says why):
 * principal or jwtClaim sources; with scope local a limit leaving a descriptor key open
 * (local_ratelimit matches entries verbatim: there is no bucket per value); more than
 * MAX_ENVOY_RATE_LIMITS variants; more than
 * MAX_ENVOY_QUOTAS Quotas on one Service (stages 0..10). Priority classes are not enforced
 * by Envoy (a warning, the limits still apply).
 */
import { staticCluster } from './static-cluster.ts';
import { create, fromJson, type JsonObject, type JsonValue } from '@bufbuild/protobuf';
import { anyPack } from '@bufbuild/protobuf/wkt';
import { LocalRateLimitSchema } from '../../xds/gen/envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit_pb.js';
import { RateLimitSchema as RateLimitFilterSchema } from '../../xds/gen/envoy/extensions/filters/http/ratelimit/v3/rate_limit_pb.js';
import { RateLimitSchema, type RateLimit } from '../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { HttpFilterSchema, type HttpFilter } from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import type { Cluster } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { DEFAULT_QUOTA_ROUTE, parseDuration } from '../config/schema.ts';
import type { QuotaDescriptor, QuotaResource, QuotaRoute } from '../config/schema.ts';
import type { DesiredState } from '../config/state.ts';

export const LOCAL_RATELIMIT_FILTER_NAME = 'envoy.filters.http.local_ratelimit';
export const RATELIMIT_FILTER_NAME = 'envoy.filters.http.ratelimit';
/** The rate limit service (envoy.service.ratelimit.v3, gRPC) of global Quotas, next to the Envoy. */
export const ENVOY_RATELIMIT_CLUSTER = 'palisade_ratelimit';
export const ENVOY_RATELIMIT_ADDRESS = '127.0.0.1';
/** Also the sidecar bootstrap's rateLimitService default (sidecar/bootstrap/bootstrap.ts BOOTSTRAP_DEFAULTS). */
export const ENVOY_RATELIMIT_PORT = 8081;
/** Response header naming the Quota ("<namespace>/<name>") that refused a request. */
export const QUOTA_RESPONSE_HEADER = 'x-palisade-quota';
/** Descriptor key of the entry that says a request matched one of the Quota's routes. */
export const ROUTE_GATE_KEY = 'palisade_quota';
/** Rate limit stages are 0..10: one per Quota. */
export const MAX_ENVOY_QUOTAS = 11;
/** Largest number of `rate_limits` entries (action variants) one Quota may need. */
export const MAX_ENVOY_RATE_LIMITS = 256;
/** Envoy's entry key for a remote_address action (it has no descriptor_key); the sidecar's rate limit service reads it (sidecar/quota/rls-server.ts). */
export const REMOTE_ADDRESS_KEY = 'remote_address';
const UINT32_MAX = 4_294_967_295;

/** How one Quota is enforced on an Envoy. */
export interface EnvoyQuotaTranslation {
  readonly quota: string;
  /** 'none': left out, see `reason`. */
  readonly kind: 'local_ratelimit' | 'ratelimit' | 'none';
  /** The rate limit stage, or null when left out. */
  readonly stage: number | null;
  /** Why the Quota is left out; '' otherwise. */
  readonly reason: string;
  /** What Envoy does not enforce although the Quota is translated. */
  readonly warnings: readonly string[];
}

export interface EnvoyQuotaOutput {
  /** HTTP filters to insert before the router, in Quota key order. */
  readonly filters: HttpFilter[];
  /** The route's rate_limits (every Quota's, by stage). */
  readonly rateLimits: RateLimit[];
  /** The rate limit service cluster when a global Quota is translated, else empty. */
  readonly clusters: Cluster[];
  readonly translations: EnvoyQuotaTranslation[];
}

/** One way a request yields its descriptor: the actions and, per descriptor, the entry key and fixed value (route). */
export interface EnvoyRateLimitVariant {
  readonly actions: JsonObject[];
  /** The route name of this variant ('default' without routes). */
  readonly route: string;
}

/** `envoyQuotaAnalysis`'s verdict: the action variants and warnings, or why Envoy cannot enforce the Quota. */
export type EnvoyQuotaAnalysis = { expressible: true; variants: EnvoyRateLimitVariant[]; warnings: string[] } | { expressible: false; reason: string };

/** Whether (and how) Envoy can enforce `quota`; stage limits are checked per Service by `envoyQuotaFilters`. */
export function envoyQuotaAnalysis(key: string, quota: QuotaResource): EnvoyQuotaAnalysis {
  const spec = quota.spec;
  for (const d of spec.descriptors) {
    if (d.from.principal === true) return { expressible: false, reason: `descriptor ${JSON.stringify(d.key)} reads the principal: no Envoy rate limit action reads the peer certificate's SPIFFE ID` };
    if (d.from.jwtClaim !== undefined) {
      return { expressible: false, reason: `descriptor ${JSON.stringify(d.key)} reads a JWT claim: Envoy nodes verify no JWTs (RequestAuthentication is enforced by sidecars only)` };
    }
  }
  if (spec.scope === 'local') {
    for (const l of spec.limits) {
      const open = spec.descriptors.filter((d) => l.match?.[d.key] === undefined).map((d) => d.key);
      if (open.length > 0) {
        return {
          expressible: false,
          reason: `limit ${JSON.stringify(l.name)} leaves ${open.map((k) => JSON.stringify(k)).join(', ')} open (a bucket per value): local_ratelimit matches descriptor values exactly; use scope global`,
        };
      }
    }
  }
  const gates = routeGates(key, spec.routes ?? []);
  const perDescriptor: Array<Array<JsonObject | 'route'>> = spec.descriptors.map(descriptorAlternatives);
  const variants: EnvoyRateLimitVariant[] = [];
  let count = gates.length;
  for (const alts of perDescriptor) count *= alts.length;
  if (count > MAX_ENVOY_RATE_LIMITS) return { expressible: false, reason: `it needs ${count} rate_limits entries (route exclusions × headers with a default), more than ${MAX_ENVOY_RATE_LIMITS}` };
  for (const gate of gates) {
    let partial: JsonObject[][] = [gate.actions];
    spec.descriptors.forEach((d, i) => {
      const next: JsonObject[][] = [];
      for (const p of partial) {
        for (const alt of perDescriptor[i]!) next.push([...p, alt === 'route' ? { generic_key: { descriptor_key: d.key, descriptor_value: gate.route } } : alt]);
      }
      partial = next;
    });
    for (const actions of partial) variants.push({ actions, route: gate.route });
  }
  const warnings: string[] = [];
  if (spec.priority !== undefined) warnings.push('priority classes are not enforced by Envoy (no priority shedding); the limits are');
  if (spec.scope === 'global' && spec.shadow) warnings.push(`shadow mode is up to the rate limit service at ${ENVOY_RATELIMIT_CLUSTER}: the ratelimit filter has no shadow switch`);
  return { expressible: true, variants, warnings };
}

/** The ways one descriptor's entry is produced; 'route' is filled in per route variant. */
function descriptorAlternatives(d: QuotaDescriptor): Array<JsonObject | 'route'> {
  const from = d.from;
  if (from.route === true) return ['route'];
  if (from.remoteAddress === true) return [{ remote_address: {} }];
  if (from.method === true) return [{ request_headers: { header_name: ':method', descriptor_key: d.key } }];
  const header = from.header!.toLowerCase();
  const present: JsonObject = { request_headers: { header_name: header, descriptor_key: d.key } };
  if (d.default === undefined) return [present];
  return [present, { header_value_match: { descriptor_key: d.key, descriptor_value: d.default, expect_match: false, headers: [{ name: header, present_match: true }] } }];
}

/** The entry key a descriptor's action yields. */
function entryKey(d: QuotaDescriptor): string {
  return d.from.remoteAddress === true ? REMOTE_ADDRESS_KEY : d.key;
}

function methodRegex(methods: readonly string[]): string {
  return `^(?:${methods.map((m) => m.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')).join('|')})$`;
}

/**
 * Per quota route, its gate actions: header_value_match on :path and :method, the earlier
 * overlapping routes excluded (first match wins). Excluding a route that has both a path and
 * methods is a disjunction (another path, or the same path with another method): it splits
 * the gate into two mutually exclusive variants. One empty gate without routes; a route an
 * earlier one shadows entirely is dropped (it never matches).
 */
function routeGates(key: string, routes: readonly QuotaRoute[]): Array<{ actions: JsonObject[]; route: string }> {
  if (routes.length === 0) return [{ actions: [], route: DEFAULT_QUOTA_ROUTE }];
  const out: Array<{ actions: JsonObject[]; route: string }> = [];
  const path = (prefix: string, invert: boolean): JsonObject => ({ name: ':path', string_match: { prefix }, ...(invert ? { invert_match: true } : {}) });
  const method = (methods: readonly string[], invert: boolean): JsonObject => ({
    name: ':method', string_match: { safe_regex: { regex: methodRegex(methods) } }, ...(invert ? { invert_match: true } : {}),
  });
  for (const [i, r] of routes.entries()) {
    const rm = r.methods ?? [];
    let alternatives: JsonObject[][] = [[path(r.pathPrefix, false), ...(rm.length > 0 ? [method(rm, false)] : [])]];
    for (const earlier of routes.slice(0, i)) {
      const em = earlier.methods ?? [];
      const methodsMeet = em.length === 0 || rm.length === 0 || rm.some((m) => em.includes(m));
      const within = r.pathPrefix.startsWith(earlier.pathPrefix); // r's paths ⊆ earlier's
      const around = earlier.pathPrefix.startsWith(r.pathPrefix); // earlier's paths ⊆ r's
      if (!methodsMeet || (!within && !around)) continue;
      const methodsWithin = em.length === 0 || (rm.length > 0 && rm.every((m) => em.includes(m)));
      if (within && methodsWithin) {
        alternatives = [];
        break;
      }
      if (methodsWithin) alternatives = alternatives.map((h) => [...h, path(earlier.pathPrefix, true)]);
      else if (within) alternatives = alternatives.map((h) => [...h, method(em, true)]);
      else alternatives = alternatives.flatMap((h) => [[...h, path(earlier.pathPrefix, true)], [...h, path(earlier.pathPrefix, false), method(em, true)]]);
      if (alternatives.length > MAX_ENVOY_RATE_LIMITS) break;
    }
    for (const headers of alternatives) out.push({ actions: [{ header_value_match: { descriptor_key: ROUTE_GATE_KEY, descriptor_value: key, headers } }], route: r.name });
  }
  return out;
}

/** The LocalRateLimitDescriptors of a local Quota: one per (limit, distinct entry list), first limit wins. */
function localDescriptors(key: string, quota: QuotaResource, variants: readonly EnvoyRateLimitVariant[]): JsonObject[] {
  const spec = quota.spec;
  const seen = new Set<string>();
  const out: JsonObject[] = [];
  for (const l of spec.limits) {
    for (const v of variants) {
      const entries: JsonObject[] = (spec.routes ?? []).length > 0 ? [{ key: ROUTE_GATE_KEY, value: key }] : [];
      let applies = true;
      for (const d of spec.descriptors) {
        const value = l.match![d.key]!;
        if (d.from.route === true && value !== v.route) applies = false;
        entries.push({ key: entryKey(d), value });
      }
      const id = JSON.stringify(entries);
      if (!applies || seen.has(id)) continue;
      seen.add(id);
      out.push({
        entries,
        token_bucket: { max_tokens: l.tokens + l.burst, tokens_per_fill: l.tokens, fill_interval: `${parseDuration(l.interval) / 1000}s` },
      });
    }
  }
  return out;
}

function statPrefix(quota: QuotaResource): string {
  return `palisade_quota.${quota.metadata.namespace}.${quota.metadata.name}`;
}

function runtimePercent(quota: QuotaResource, what: string, numerator: number): JsonObject {
  return { default_value: { numerator, denominator: 'HUNDRED' }, runtime_key: `palisade.quota.${quota.metadata.namespace}.${quota.metadata.name}.${what}` };
}

function quotaHeader(key: string): JsonObject[] {
  return [{ header: { key: QUOTA_RESPONSE_HEADER, value: key }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }];
}

function localFilter(key: string, quota: QuotaResource, stage: number, variants: readonly EnvoyRateLimitVariant[]): HttpFilter {
  const config = fromJson(LocalRateLimitSchema, {
    stat_prefix: statPrefix(quota),
    // Requests no limit matches take from this bucket, which never runs dry.
    token_bucket: { max_tokens: UINT32_MAX, tokens_per_fill: UINT32_MAX, fill_interval: '1s' },
    filter_enabled: runtimePercent(quota, 'enabled', 100),
    filter_enforced: runtimePercent(quota, 'enforced', quota.spec.shadow ? 0 : 100),
    response_headers_to_add: quotaHeader(key),
    descriptors: localDescriptors(key, quota, variants),
    stage,
    enable_x_ratelimit_headers: 'DRAFT_VERSION_03',
    always_consume_default_token_bucket: false,
  } as JsonValue);
  return create(HttpFilterSchema, {
    name: `${LOCAL_RATELIMIT_FILTER_NAME}.${quota.metadata.namespace}.${quota.metadata.name}`,
    configType: { case: 'typedConfig', value: anyPack(LocalRateLimitSchema, config) },
  });
}

function globalFilter(key: string, quota: QuotaResource, stage: number): HttpFilter {
  const config = fromJson(RateLimitFilterSchema, {
    domain: key,
    stage,
    failure_mode_deny: quota.spec.failureMode === 'closed',
    // A store failure refused under failureMode closed answers 429, as a sidecar does (Envoy's default is 500).
    status_on_error: { code: 'TooManyRequests' },
    // Longer than the sidecar's Redis command timeout (quota.redis.timeout, default 50 ms), so the
    // service answers from its fallback bucket (failureMode open) before Envoy gives up on it.
    timeout: `${ENVOY_RATELIMIT_TIMEOUT_MS / 1000}s`,
    rate_limit_service: { grpc_service: { envoy_grpc: { cluster_name: ENVOY_RATELIMIT_CLUSTER } }, transport_api_version: 'V3' },
    enable_x_ratelimit_headers: 'DRAFT_VERSION_03',
    response_headers_to_add: quotaHeader(key),
    stat_prefix: statPrefix(quota),
  } as JsonValue);
  return create(HttpFilterSchema, {
    name: `${RATELIMIT_FILTER_NAME}.${quota.metadata.namespace}.${quota.metadata.name}`,
    configType: { case: 'typedConfig', value: anyPack(RateLimitFilterSchema, config) },
  });
}

/** How long Envoy waits for the rate limit service, ms (Envoy's default is 20 ms). */
export const ENVOY_RATELIMIT_TIMEOUT_MS = 250;

/** The rate limit service cluster: STATIC, HTTP/2 (gRPC), ENVOY_RATELIMIT_ADDRESS:ENVOY_RATELIMIT_PORT. */
export function envoyRateLimitCluster(): Cluster {
  return staticCluster({ name: ENVOY_RATELIMIT_CLUSTER, address: ENVOY_RATELIMIT_ADDRESS, port: ENVOY_RATELIMIT_PORT, connectTimeoutSeconds: 1, http2: true });
}

/** Whether a Quota's selector selects Service `name` of its namespace. */
export function quotaSelectsService(quota: QuotaResource, name: string): boolean {
  const services = quota.spec.selector.services ?? [];
  return services.length === 0 || services.includes(name);
}

/**
 * The rate limit filters, route rate_limits and clusters of an Envoy fronting Service
 * `service` of `namespace`: one filter per Quota selecting it, in key order, stage = its
 * position among the translated ones. Pure.
 */
export function envoyQuotaFilters(state: DesiredState, namespace: string, service: string): EnvoyQuotaOutput {
  const filters: HttpFilter[] = [];
  const rateLimits: RateLimit[] = [];
  const translations: EnvoyQuotaTranslation[] = [];
  let global = false;
  for (const [key, quota] of state.quotas) {
    if (quota.metadata.namespace !== namespace || !quotaSelectsService(quota, service)) continue;
    const analysis = envoyQuotaAnalysis(key, quota);
    if (!analysis.expressible) {
      translations.push({ quota: key, kind: 'none', stage: null, reason: analysis.reason, warnings: [] });
      continue;
    }
    const stage = filters.length;
    if (stage >= MAX_ENVOY_QUOTAS) {
      translations.push({ quota: key, kind: 'none', stage: null, reason: `more than ${MAX_ENVOY_QUOTAS} Quotas select Service ${JSON.stringify(`${namespace}/${service}`)}: Envoy has rate limit stages 0..10`, warnings: [] });
      continue;
    }
    const local = quota.spec.scope === 'local';
    filters.push(local ? localFilter(key, quota, stage, analysis.variants) : globalFilter(key, quota, stage));
    for (const v of analysis.variants) rateLimits.push(fromJson(RateLimitSchema, { stage, actions: v.actions } as JsonValue));
    global ||= !local;
    translations.push({ quota: key, kind: local ? 'local_ratelimit' : 'ratelimit', stage, reason: '', warnings: analysis.warnings });
  }
  return { filters, rateLimits, clusters: global ? [envoyRateLimitCluster()] : [], translations };
}
