/**
 * What an Envoy configured by the control plane sends the rate limit service for one request:
 * the ratelimit filters and route rate_limits of control/translate/envoy-ratelimit.ts
 * (envoyQuotaFilters on a real DesiredState), evaluated the way Envoy evaluates rate limit
 * actions (an action that yields nothing drops that rate_limits entry's descriptor; each
 * filter sends the descriptors of its stage). So the RLS tests call the server with exactly
 * the descriptors the translator makes Envoy build.
 */
import { create, toJson, type JsonObject } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { envoyQuotaFilters, RATELIMIT_FILTER_NAME } from '../../../control/translate/envoy-ratelimit.ts';
import type { DesiredState } from '../../../control/config/state.ts';
import { RateLimitSchema as RouteRateLimitSchema } from '../../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { RateLimitSchema as RateLimitFilterSchema } from '../../../xds/gen/envoy/extensions/filters/http/ratelimit/v3/rate_limit_pb.js';
import { RateLimitRequestSchema, type RateLimitRequest } from '../../../xds/gen/envoy/service/ratelimit/v3/rls_pb.js';

export interface EnvoyRequest {
  readonly method?: string;
  readonly path: string;
  /** Lower-case names. */
  readonly headers?: Record<string, string>;
  readonly remoteAddress?: string;
}

/** One ratelimit filter of the Envoy: its domain, stage and failure_mode_deny. */
export interface EnvoyRateLimitFilter {
  readonly domain: string;
  readonly stage: number;
  readonly failureModeDeny: boolean;
}

type Entry = { key: string; value: string };

function header(req: EnvoyRequest, name: string): string | undefined {
  if (name === ':path') return req.path;
  if (name === ':method') return req.method ?? 'GET';
  return req.headers?.[name];
}

function stringMatches(m: JsonObject, v: string): boolean {
  if (typeof m.prefix === 'string') return v.startsWith(m.prefix);
  if (typeof m.exact === 'string') return v === m.exact;
  const re = (m.safe_regex as JsonObject | undefined)?.regex;
  if (typeof re === 'string') return new RegExp(re).test(v);
  throw new Error(`unsupported string_match ${JSON.stringify(m)}`);
}

/** Envoy's HeaderMatcher: present_match or string_match, then invert_match. */
function headerMatches(m: JsonObject, req: EnvoyRequest): boolean {
  const v = header(req, m.name as string);
  let ok: boolean;
  if (m.present_match !== undefined) ok = v !== undefined;
  else if (m.string_match !== undefined) ok = v !== undefined && stringMatches(m.string_match as JsonObject, v);
  else throw new Error(`unsupported header matcher ${JSON.stringify(m)}`);
  return m.invert_match === true ? !ok : ok;
}

/** One action's entry, or null: the descriptor is not produced. */
function actionEntry(a: JsonObject, req: EnvoyRequest): Entry | null {
  if (a.generic_key !== undefined) {
    const g = a.generic_key as JsonObject;
    return { key: (g.descriptor_key as string | undefined) ?? 'generic_key', value: g.descriptor_value as string };
  }
  if (a.remote_address !== undefined) return { key: 'remote_address', value: req.remoteAddress ?? '127.0.0.1' };
  if (a.request_headers !== undefined) {
    const h = a.request_headers as JsonObject;
    const v = header(req, h.header_name as string);
    return v === undefined ? null : { key: h.descriptor_key as string, value: v };
  }
  if (a.header_value_match !== undefined) {
    const h = a.header_value_match as JsonObject;
    const expect = h.expect_match !== false;
    const all = (h.headers as JsonObject[]).every((m) => headerMatches(m, req));
    return all === expect ? { key: (h.descriptor_key as string | undefined) ?? 'header_match', value: h.descriptor_value as string } : null;
  }
  throw new Error(`unsupported action ${JSON.stringify(a)}`);
}

/** The ratelimit (global Quota) filters of an Envoy fronting `service` of `namespace`. */
export function envoyRateLimitFilters(state: DesiredState, namespace: string, service: string): EnvoyRateLimitFilter[] {
  return envoyQuotaFilters(state, namespace, service).filters
    .filter((f) => f.name.startsWith(`${RATELIMIT_FILTER_NAME}.`))
    .map((f) => {
      if (f.configType.case !== 'typedConfig') throw new Error(`filter ${f.name} has no typed_config`);
      const c = anyUnpack(f.configType.value, RateLimitFilterSchema)!;
      return { domain: c.domain, stage: c.stage, failureModeDeny: c.failureModeDeny };
    });
}

/**
 * The ShouldRateLimit request the Envoy's filter for `domain` sends for `req`; null when its
 * rate_limits yield no descriptor (Envoy then makes no call).
 */
export function envoyRateLimitRequest(state: DesiredState, namespace: string, service: string, domain: string, req: EnvoyRequest): RateLimitRequest | null {
  const out = envoyQuotaFilters(state, namespace, service);
  const filter = envoyRateLimitFilters(state, namespace, service).find((f) => f.domain === domain);
  if (filter === undefined) throw new Error(`no ratelimit filter for domain ${domain}`);
  const descriptors: { entries: Entry[] }[] = [];
  for (const rl of out.rateLimits) {
    if (rl.stage !== filter.stage) continue;
    const json = toJson(RouteRateLimitSchema, rl, { useProtoFieldName: true }) as JsonObject;
    const entries: Entry[] = [];
    let produced = true;
    for (const a of json.actions as JsonObject[]) {
      const e = actionEntry(a, req);
      if (e === null) {
        produced = false;
        break;
      }
      entries.push(e);
    }
    if (produced) descriptors.push({ entries });
  }
  return descriptors.length === 0 ? null : create(RateLimitRequestSchema, { domain, descriptors });
}
