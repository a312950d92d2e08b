/**
 * The sidecar's route table: an Envoy `RouteConfiguration` (already PGV-validated) compiled
 * into an immutable structure for the request path.
 *
 *   match(authority, path, method, headers)
 *     → DomainIndex: exact Map hit, else wildcards longest first, else `*`   (domain-index.ts)
 *     → the virtual host's routes in order, first match wins; per route:
 *         path kind (startsWith / ASCII-folded compare, no split, no regex)
 *         → header matchers (null when none) → gRPC / query checks
 *         → a safe_regex path last, on the path without its query (sliced once per request)
 *     → the route's precompiled, frozen MatchedRoute
 *
 * Every route compiles to one `CompiledRoute` of the same shape (monomorphic), with empty
 * matcher lists as null so a plain prefix route costs one `startsWith` and two null checks.
 * Matching allocates nothing unless the authority has capitals or needs its port stripped, a
 * wildcard length group has more than 16 domains, the path has a query and reaches a regex
 * route, or a route with query matchers finds its parameter.
 *
 * Envoy path semantics kept: the query (and fragment) is never part of the matched path;
 * `case_sensitive: false` folds ASCII only; `path_separated_prefix` needs the prefix to end at
 * a `/` or the end of the path; `safe_regex` must match the whole path (RE2 FullMatch).
 */
import type { Any } from '@bufbuild/protobuf/wkt';
import type { RouteConfiguration } from '../../xds/gen/envoy/config/route/v3/route_pb.js';
import type { Route, VirtualHost } from '../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { VirtualHost_TlsRequirementType } from '../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { lowerAscii, startsWithIgnoreCase } from './ascii.ts';
import { DomainIndex } from './domain-index.ts';
import { type CompiledHeaderMatcher, compileHeaderMatcher, type HeaderLookup, headerMatches } from './header-matcher.ts';
import { type CompiledQueryMatcher, compileQueryMatcher, queryMatches } from './query-matcher.ts';
import { pathEnd } from './path-rewrite.ts';
import { compileFullMatch } from './re2.ts';
import type { CompiledFault } from '../fault/http-fault.ts';
import {
  compileMatchedRoute, compileRetryPolicy, DEFAULT_MAX_DIRECT_RESPONSE_BODY_BYTES, EMPTY_FILTER_CONFIG, faultOf, mergeFilterConfig,
  type MatchedRoute, type RouteContext, type SloRoute,
} from './route-action.ts';

export type { HeaderLookup } from './header-matcher.ts';
export type {
  ClusterAction, DirectResponse, MatchedAction, MatchedRoute, RedirectResponse, RouteRetryPolicy, SloRoute, WeightedCluster,
  WeightedClustersAction,
} from './route-action.ts';
export { DEFAULT_PER_REQUEST_BUFFER_LIMIT_BYTES, DEFAULT_ROUTE_TIMEOUT_MS } from './route-action.ts';
export type { RegexRewrite } from './re2.ts';

export interface RouteTable {
  /** The RouteConfiguration's name. */
  readonly name: string;
  /**
   * The route for a request, or null when no virtual host or no route matches (Envoy's 404 NR).
   * `authority` is the Host / :authority as received; `path` the request target with its
   * query; `method` as received (`GET`); `headers` returns a header's value by lowercase name.
   */
  match(authority: string, path: string, method: string, headers: HeaderLookup): MatchedRoute | null;
  /** The name of the virtual host `authority` selects, or null. */
  virtualHostFor(authority: string): string | null;
  /** The SLO of the route named `routeName` (the first route of that name), or null (for the SLO counters). */
  sloRoute(routeName: string): SloRoute | null;
}

export type RouteTableResult = { valid: true; result: RouteTable } | { valid: false; errors: string[] };

const PATH_PREFIX = 0;
const PATH_PREFIX_NOCASE = 1;
const PATH_EXACT = 2;
const PATH_EXACT_NOCASE = 3;
const PATH_SEPARATED = 4;
const PATH_SEPARATED_NOCASE = 5;
const PATH_REGEX = 6;
/** A prefix or path with `?` or `#` in it: Envoy compares it with the path without the query, so it never matches. */
const PATH_NEVER = 7;

const QUESTION = 63;
const HASH = 35;
const SLASH = 47;

class CompiledRoute {
  readonly pathKind: number;
  /** The prefix or exact path; ASCII-lowercase for the NOCASE kinds; "" for regex. */
  readonly pathValue: string;
  readonly regex: RegExp | null;
  readonly headers: readonly CompiledHeaderMatcher[] | null;
  readonly query: readonly CompiledQueryMatcher[] | null;
  /** `grpc: {}`: content-type must be application/grpc or application/grpc+…. */
  readonly grpc: boolean;
  readonly result: MatchedRoute;

  constructor(pathKind: number, pathValue: string, regex: RegExp | null, headers: CompiledHeaderMatcher[], query: CompiledQueryMatcher[], grpc: boolean, result: MatchedRoute) {
    this.pathKind = pathKind;
    this.pathValue = pathValue;
    this.regex = regex;
    this.headers = headers.length > 0 ? Object.freeze(headers) : null;
    this.query = query.length > 0 ? Object.freeze(query) : null;
    this.grpc = grpc;
    this.result = result;
    Object.freeze(this);
  }
}

class CompiledVirtualHost {
  readonly name: string;
  readonly routes: readonly CompiledRoute[];

  constructor(name: string, routes: CompiledRoute[]) {
    this.name = name;
    this.routes = Object.freeze(routes);
    Object.freeze(this);
  }
}

/** Whether the path proper ends at `n`: the end, or a query or fragment starts there. */
function endsAt(path: string, n: number): boolean {
  if (n === path.length) return true;
  const c = path.charCodeAt(n);
  return c === QUESTION || c === HASH;
}

/** The path checks that need no allocation; regex routes pass here and are checked last. */
function pathMatches(r: CompiledRoute, path: string): boolean {
  const v = r.pathValue;
  switch (r.pathKind) {
    case PATH_PREFIX: return path.startsWith(v);
    case PATH_PREFIX_NOCASE: return startsWithIgnoreCase(path, v, 0);
    case PATH_EXACT: return path.startsWith(v) && endsAt(path, v.length);
    case PATH_EXACT_NOCASE: return startsWithIgnoreCase(path, v, 0) && endsAt(path, v.length);
    case PATH_SEPARATED: return path.startsWith(v) && (endsAt(path, v.length) || path.charCodeAt(v.length) === SLASH);
    case PATH_SEPARATED_NOCASE: return startsWithIgnoreCase(path, v, 0) && (endsAt(path, v.length) || path.charCodeAt(v.length) === SLASH);
    case PATH_REGEX: return true;
    default: return false;
  }
}

/** Envoy's `Grpc::Common::hasGrpcContentType`. */
function isGrpc(contentType: string | undefined): boolean {
  if (contentType === undefined || !contentType.startsWith('application/grpc')) return false;
  return contentType.length === 16 || contentType.charCodeAt(16) === 43 /* + */;
}

class CompiledRouteTable implements RouteTable {
  readonly name: string;
  readonly #hosts: DomainIndex<CompiledVirtualHost>;
  readonly #slo: ReadonlyMap<string, SloRoute>;

  constructor(name: string, hosts: DomainIndex<CompiledVirtualHost>, vhosts: readonly CompiledVirtualHost[]) {
    this.name = name;
    this.#hosts = hosts;
    const slo = new Map<string, SloRoute>();
    for (const vh of vhosts) {
      for (const r of vh.routes) if (r.result.sloRoute !== null && !slo.has(r.result.name)) slo.set(r.result.name, r.result.sloRoute);
    }
    this.#slo = slo;
    Object.freeze(this);
  }

  sloRoute(routeName: string): SloRoute | null {
    return this.#slo.get(routeName) ?? null;
  }

  virtualHostFor(authority: string): string | null {
    return this.#hosts.find(authority)?.name ?? null;
  }

  match(authority: string, path: string, method: string, headers: HeaderLookup): MatchedRoute | null {
    const vh = this.#hosts.find(authority);
    if (vh === null) return null;
    const routes = vh.routes;
    let bare: string | null = null;
    outer: for (let i = 0; i < routes.length; i++) {
      const r = routes[i]!;
      if (!pathMatches(r, path)) continue;
      const hs = r.headers;
      if (hs !== null) {
        for (let j = 0; j < hs.length; j++) if (!headerMatches(hs[j]!, method, authority, path, headers)) continue outer;
      }
      if (r.grpc && !isGrpc(headers('content-type'))) continue;
      const qs = r.query;
      if (qs !== null) {
        const q = path.indexOf('?');
        for (let j = 0; j < qs.length; j++) if (!queryMatches(qs[j]!, path, q)) continue outer;
      }
      if (r.regex !== null) {
        if (bare === null) bare = path.slice(0, pathEnd(path));
        if (!r.regex.test(bare)) continue;
      }
      return r.result;
    }
    return null;
  }
}

/**
 * Compiles a RouteConfiguration, or lists every problem with its field path
 * (`virtual_hosts[0].routes[2].match.safe_regex.regex: Invalid regular expression: …`).
 *
 * Refused (errors): regexes JS cannot run; duplicate domains; `cluster_header`, cluster
 * specifier plugins, `filter_action`/`non_forwarding_action`; match features the sidecar cannot
 * evaluate (`runtime_fraction`, `tls_context`, `dynamic_metadata`, `connect_matcher`,
 * `path_match_policy`, custom string matchers); `vhds`, virtual host `matcher` trees,
 * `require_tls`, `ignore_path_parameters_in_path_matching`; non-inline direct response bodies.
 * Ignoring those would route requests where the control plane did not mean them to go.
 *
 * Not carried (accepted, no effect here): header mutations, CORS, rate limits, hash policy,
 * mirrors, hedging, retry back-off and host predicates, `metadata_match`, `auto_host_rewrite`
 * and the other host rewrites but the literal, weighted clusters' per-cluster config, runtime
 * keys, `cluster_not_found_response_code`, `idle_timeout`, gRPC timeout headers.
 */
export function compileRouteTable(rc: RouteConfiguration): RouteTableResult {
  const errors: string[] = [];
  if (rc.vhds) errors.push('vhds: on-demand virtual hosts are not supported by the sidecar');
  if (rc.ignorePathParametersInPathMatching) errors.push('ignore_path_parameters_in_path_matching: not supported by the sidecar');
  const rcFilterConfig = mergeFilterConfig(EMPTY_FILTER_CONFIG, rc.typedPerFilterConfig);
  const maxBody = rc.maxDirectResponseBodySizeBytes ?? DEFAULT_MAX_DIRECT_RESPONSE_BODY_BYTES;
  const rcFault = faultOf(rc.typedPerFilterConfig, null, '', errors);
  const entries = rc.virtualHosts.map((vh, i) => ({
    domains: vh.domains,
    value: compileVirtualHost(vh, rcFilterConfig, rcFault, maxBody, `virtual_hosts[${i}]`, errors),
    path: `virtual_hosts[${i}]`,
  }));
  const index = DomainIndex.tryNew(entries, rc.ignorePortInHostMatching);
  if (!index.valid) errors.push(...index.errors);
  if (errors.length > 0 || !index.valid) return { valid: false, errors };
  return { valid: true, result: new CompiledRouteTable(rc.name, index.result, entries.map((e) => e.value)) };
}

function compileVirtualHost(
  vh: VirtualHost, rcFilterConfig: Readonly<Record<string, Any>>, rcFault: CompiledFault | null, maxBody: number, path: string, errors: string[],
): CompiledVirtualHost {
  if (vh.matcher) errors.push(`${path}.matcher: matcher trees are not supported by the sidecar; use routes`);
  if (vh.requireTls !== VirtualHost_TlsRequirementType.NONE) errors.push(`${path}.require_tls: not supported by the sidecar`);
  const ctx: RouteContext = {
    virtualHost: vh.name,
    retry: vh.retryPolicy ? compileRetryPolicy(vh.retryPolicy) : null,
    perRequestBufferLimitBytes: vh.perRequestBufferLimitBytes ?? null,
    typedPerFilterConfig: mergeFilterConfig(rcFilterConfig, vh.typedPerFilterConfig),
    maxDirectResponseBodyBytes: maxBody,
    fault: faultOf(vh.typedPerFilterConfig, rcFault, path, errors),
  };
  const routes: CompiledRoute[] = [];
  vh.routes.forEach((route, j) => {
    const r = compileRoute(route, ctx, `${path}.routes[${j}]`, errors);
    if (r) routes.push(r);
  });
  return new CompiledVirtualHost(vh.name, routes);
}

function compileRoute(route: Route, ctx: RouteContext, path: string, errors: string[]): CompiledRoute | null {
  const before = errors.length;
  const m = route.match;
  if (!m) {
    errors.push(`${path}.match: required`);
    return null;
  }
  const mpath = `${path}.match`;
  for (const [field, set] of [
    ['runtime_fraction', m.runtimeFraction], ['tls_context', m.tlsContext], ['dynamic_metadata', m.dynamicMetadata.length > 0],
  ] as const) {
    if (set) errors.push(`${mpath}.${field}: not supported by the sidecar`);
  }
  const ignoreCase = m.caseSensitive === false;
  const spec = m.pathSpecifier;
  let kind = PATH_NEVER;
  let value = '';
  let regex: RegExp | null = null;
  let matchedLength = -1;
  switch (spec.case) {
    case 'prefix':
    case 'path':
    case 'pathSeparatedPrefix': {
      value = ignoreCase ? lowerAscii(spec.value) : spec.value;
      matchedLength = value.length;
      const base = spec.case === 'prefix' ? PATH_PREFIX : spec.case === 'path' ? PATH_EXACT : PATH_SEPARATED;
      kind = value.includes('?') || value.includes('#') ? PATH_NEVER : base + (ignoreCase ? 1 : 0);
      break;
    }
    case 'safeRegex': {
      const re = compileFullMatch(spec.value.regex);
      if (typeof re === 'string') errors.push(`${mpath}.safe_regex.regex: ${re}`);
      else {
        kind = PATH_REGEX;
        regex = re;
      }
      break;
    }
    case 'connectMatcher': errors.push(`${mpath}.connect_matcher: CONNECT routes are not supported by the sidecar`); break;
    case 'pathMatchPolicy': errors.push(`${mpath}.path_match_policy: path match extensions are not supported by the sidecar`); break;
    default: errors.push(`${mpath}: no path_specifier set`);
  }
  const headers: CompiledHeaderMatcher[] = [];
  m.headers.forEach((h, k) => {
    const c = compileHeaderMatcher(h, `${mpath}.headers[${k}]`, errors);
    if (c) headers.push(c);
  });
  const query: CompiledQueryMatcher[] = [];
  m.queryParameters.forEach((q, k) => {
    const c = compileQueryMatcher(q, `${mpath}.query_parameters[${k}]`, errors);
    if (c) query.push(c);
  });
  const result = compileMatchedRoute(route, ctx, matchedLength, path, errors);
  if (result === null || errors.length > before) return null;
  return new CompiledRoute(kind, value, regex, headers, query, m.grpc !== undefined, result);
}
