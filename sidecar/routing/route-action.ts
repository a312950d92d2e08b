/**
 * What a matched route tells the router, compiled once per route at config time: the action
 * (one cluster, weighted clusters, a redirect or a direct response), timeouts, the retry policy,
 * per-filter config and rewrites. `RouteTable.match` hands back this same frozen object for
 * every request that hits the route, so matching allocates nothing for it.
 */
import type { Any, Duration } from '@bufbuild/protobuf/wkt';
import type {
  DirectResponseAction as DirectResponseProto, RedirectAction as RedirectProto, RetryPolicy as RetryPolicyProto,
  Route, RouteAction as RouteActionProto, WeightedCluster as WeightedClusterProto,
} from '../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { PathRewrite } from './path-rewrite.ts';
import { compileRegexRewrite, type RegexRewrite } from './re2.ts';
import { compileHttpFault, type CompiledFault, FAULT_FILTER_NAME } from '../fault/http-fault.ts';

/** Envoy's route timeout when `timeout` is unset. */
export const DEFAULT_ROUTE_TIMEOUT_MS = 15_000;
/**
 * The retry buffer limit when neither the route nor its virtual host sets
 * `per_request_buffer_limit_bytes`: Envoy's listener `per_connection_buffer_limit_bytes` default, 1 MiB.
 */
export const DEFAULT_PER_REQUEST_BUFFER_LIMIT_BYTES = 1024 * 1024;
/** Envoy's `max_direct_response_body_size_bytes` default. */
export const DEFAULT_MAX_DIRECT_RESPONSE_BODY_BYTES = 4096;
/** Envoy refuses weighted clusters whose weights add up to more than a uint32. */
const MAX_TOTAL_WEIGHT = 0xffff_ffff;
const REDIRECT_STATUS = [301, 302, 303, 307, 308] as const;

export interface ClusterAction {
  readonly kind: 'cluster';
  readonly cluster: string;
}

export interface WeightedCluster {
  readonly name: string;
  readonly weight: number;
}

export interface WeightedClustersAction {
  readonly kind: 'weighted';
  readonly clusters: readonly WeightedCluster[];
  /** Sum of the weights (> 0); `total_weight` in the proto is deprecated and ignored, as in Envoy. */
  readonly totalWeight: number;
  /**
   * The cluster for a random number in [0, 1): cluster i owns [start_i, end_i) of
   * floor(random · totalWeight), as Envoy's `pickWeightedCluster` with `random % total`.
   * A zero-weight cluster is never picked. Out-of-range input is clamped.
   */
  pick(random: number): string;
}

export interface RedirectResponse {
  readonly kind: 'redirect';
  readonly status: 301 | 302 | 303 | 307 | 308;
  /** New scheme (`scheme_redirect`, or "https" for `https_redirect`); null keeps the request's. */
  readonly scheme: string | null;
  readonly host: string | null;
  readonly port: number | null;
  /** `path_redirect`: replaces the path; keeps the request's query unless it has its own. */
  readonly path: string | null;
  readonly prefixRewrite: string | null;
  readonly regexRewrite: RegexRewrite | null;
  readonly stripQuery: boolean;
  /**
   * The `Location` value, as Envoy's `newUri`. `scheme` is the request's (x-forwarded-proto),
   * `authority` its Host, `path` its path with the query. A request port is dropped when a new
   * port is set, or when the scheme changes from http on :80 or https on :443.
   */
  location(scheme: string, authority: string, path: string): string;
}

export interface DirectResponse {
  readonly kind: 'direct';
  /** 200-599. */
  readonly status: number;
  /** The inline body, encoded once at config time; null for none. Do not mutate. */
  readonly body: Uint8Array | null;
}

export type MatchedAction = ClusterAction | WeightedClustersAction | RedirectResponse | DirectResponse;

export interface RouteRetryPolicy {
  /** `retry_on` conditions, trimmed (`5xx`, `connect-failure`, `retriable-status-codes`, gRPC names…). */
  readonly on: ReadonlySet<string>;
  /** Default 1, as Envoy. */
  readonly numRetries: number;
  /** Null when unset or 0 (no per-try timeout). */
  readonly perTryTimeoutMs: number | null;
  /** Consulted only when `on` has `retriable-status-codes`. */
  readonly retriableStatusCodes: ReadonlySet<number>;
}

/**
 * The SLO a route counts toward, from its `metadata.filter_metadata["palisade.slo"]` (written
 * by control/translate/routes.ts; control/slo/objectives.ts): read by the sidecar's SLO
 * counters (sidecar/telemetry/slo-counters.ts).
 */
export interface SloRoute {
  /** The SLO name (`<namespace>/<route>.<rule>`), shared by every route of the rule. */
  readonly name: string;
  /** A request slower than this is slow, ms; null when the SLO has no latency objective. */
  readonly latencyThresholdMs: number | null;
  /** The route's cluster (the first one of weighted clusters): where load of a request that never picked one is reported. */
  readonly cluster: string;
}

/** The RDS route metadata key of an SLO (control/slo/objectives.ts `SLO_METADATA_KEY`). */
export const SLO_METADATA_KEY = 'palisade.slo';

export interface MatchedRoute {
  /** The route's `name` (may be ""). */
  readonly name: string;
  /** The name of the virtual host the route belongs to. */
  readonly virtualHost: string;
  readonly action: MatchedAction;
  /** Upstream timeout, ms: the route's `timeout`, else 15000; 0 = none. 0 for redirects and direct responses. */
  readonly timeoutMs: number;
  /** `max_stream_duration.max_stream_duration`, ms; null when unset, 0 = disabled. */
  readonly maxStreamDurationMs: number | null;
  /** The route's retry policy, else its virtual host's (never merged, as Envoy); null for none. */
  readonly retry: RouteRetryPolicy | null;
  /**
   * How many bytes of a request body are kept so that a retry can resend it: the route's
   * `per_request_buffer_limit_bytes`, else its virtual host's, else 1 MiB. A longer body is
   * not retried once past it. 0 for redirects and direct responses.
   */
  readonly perRequestBufferLimitBytes: number;
  /**
   * Raw `typed_per_filter_config` by filter name, most specific wins:
   * RouteConfiguration < VirtualHost < Route. Filters unpack what they understand.
   */
  readonly typedPerFilterConfig: Readonly<Record<string, Any>>;
  readonly prefixRewrite: string | null;
  readonly regexRewrite: RegexRewrite | null;
  readonly hostRewriteLiteral: string | null;
  /** The SLO the route counts toward; null when it has none (always for redirects and direct responses). */
  readonly sloRoute: SloRoute | null;
  /**
   * The fault to inject (`typed_per_filter_config['envoy.filters.http.fault']`, most specific
   * wins, compiled at config time: sidecar/fault/); null for none.
   */
  readonly fault: CompiledFault | null;
  /** The upstream path (query kept) after `prefix_rewrite`/`regex_rewrite`; `path` itself when neither is set. */
  rewritePath(path: string): string;
}

/** What a route inherits from its virtual host and route configuration. */
export interface RouteContext {
  readonly virtualHost: string;
  readonly retry: RouteRetryPolicy | null;
  /** The virtual host's `per_request_buffer_limit_bytes`; null when unset. */
  readonly perRequestBufferLimitBytes: number | null;
  /** RouteConfiguration < VirtualHost per-filter config, already merged. */
  readonly typedPerFilterConfig: Readonly<Record<string, Any>>;
  readonly maxDirectResponseBodyBytes: number;
  /** The virtual host's (else the route configuration's) compiled fault; null for none. */
  readonly fault: CompiledFault | null;
}

/**
 * The fault of a level whose own `typed_per_filter_config` may name the fault filter: its own,
 * compiled (problems pushed with `path`), else `inherited`.
 */
export function faultOf(own: { [key: string]: Any }, inherited: CompiledFault | null, path: string, errors: string[]): CompiledFault | null {
  const any = own[FAULT_FILTER_NAME];
  const at = path === '' ? 'typed_per_filter_config' : `${path}.typed_per_filter_config`;
  return any === undefined ? inherited : compileHttpFault(any, `${at}['${FAULT_FILTER_NAME}']`, errors);
}

export const EMPTY_FILTER_CONFIG: Readonly<Record<string, Any>> = Object.freeze({});

/** `own` over `parent`; `parent` itself (shared, no copy) when `own` is empty. */
export function mergeFilterConfig(parent: Readonly<Record<string, Any>>, own: { [key: string]: Any }): Readonly<Record<string, Any>> {
  return Object.keys(own).length === 0 ? parent : Object.freeze({ ...parent, ...own });
}

/** Whole milliseconds of a Duration, truncated, as Envoy's `PROTOBUF_GET_MS_*`. */
export function durationMs(d: Duration): number {
  return Number(d.seconds) * 1000 + Math.trunc(d.nanos / 1e6);
}

export function compileRetryPolicy(p: RetryPolicyProto): RouteRetryPolicy {
  const perTry = p.perTryTimeout ? durationMs(p.perTryTimeout) : 0;
  return Object.freeze({
    on: new Set(p.retryOn.split(',').map((c) => c.trim()).filter((c) => c !== '')),
    numRetries: p.numRetries ?? 1,
    perTryTimeoutMs: perTry > 0 ? perTry : null,
    retriableStatusCodes: new Set(p.retriableStatusCodes),
  });
}

class WeightedPicker implements WeightedClustersAction {
  readonly kind = 'weighted' as const;
  readonly clusters: readonly WeightedCluster[];
  readonly totalWeight: number;
  readonly #names: readonly string[];
  /** Cumulative weights: cluster i owns [ends[i-1], ends[i]). */
  readonly #ends: Float64Array;

  constructor(clusters: readonly WeightedCluster[]) {
    this.clusters = Object.freeze(clusters.map((c) => Object.freeze({ ...c })));
    this.#names = clusters.map((c) => c.name);
    this.#ends = new Float64Array(clusters.length);
    let total = 0;
    clusters.forEach((c, i) => { this.#ends[i] = total += c.weight; });
    this.totalWeight = total;
    Object.freeze(this);
  }

  pick(random: number): string {
    const total = this.totalWeight;
    let v = Math.floor(random * total);
    if (!(v >= 0)) v = 0;
    else if (v >= total) v = total - 1;
    const ends = this.#ends;
    let lo = 0;
    let hi = ends.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ends[mid]! > v) hi = mid;
      else lo = mid + 1;
    }
    return this.#names[lo]!;
  }
}

function isScheme(s: string, want: string): boolean {
  return s.toLowerCase() === want;
}

class Redirect implements RedirectResponse {
  readonly kind = 'redirect' as const;
  readonly status: 301 | 302 | 303 | 307 | 308;
  readonly scheme: string | null;
  readonly host: string | null;
  readonly port: number | null;
  readonly path: string | null;
  readonly prefixRewrite: string | null;
  readonly regexRewrite: RegexRewrite | null;
  readonly stripQuery: boolean;
  readonly #rewrite: PathRewrite | null;
  readonly #pathHasQuery: boolean;

  constructor(r: RedirectProto, regexRewrite: RegexRewrite | null, matchedLength: number) {
    this.status = REDIRECT_STATUS[r.responseCode] ?? 301;
    const s = r.schemeRewriteSpecifier;
    this.scheme = s.case === 'schemeRedirect' && s.value !== '' ? s.value : s.case === 'httpsRedirect' && s.value ? 'https' : null;
    this.host = r.hostRedirect !== '' ? r.hostRedirect : null;
    this.port = r.portRedirect !== 0 ? r.portRedirect : null;
    const p = r.pathRewriteSpecifier;
    this.path = p.case === 'pathRedirect' && p.value !== '' ? p.value : null;
    this.prefixRewrite = p.case === 'prefixRewrite' && p.value !== '' ? p.value : null;
    this.regexRewrite = regexRewrite;
    this.stripQuery = r.stripQuery;
    this.#rewrite = this.prefixRewrite !== null || regexRewrite !== null ? new PathRewrite(this.prefixRewrite, regexRewrite, matchedLength) : null;
    this.#pathHasQuery = this.path !== null && this.path.includes('?');
    Object.freeze(this);
  }

  location(scheme: string, authority: string, path: string): string {
    const finalScheme = this.scheme ?? scheme;
    const finalPort = this.port !== null ? `:${this.port}` : '';
    const finalHost = this.host ?? requestHost(authority, scheme, finalScheme, finalPort);
    const current = this.#rewrite !== null ? this.#rewrite.apply(path) : path;
    let finalPath: string;
    if (this.path === null) finalPath = current;
    else if (this.#pathHasQuery) finalPath = this.path;
    else {
      const q = current.indexOf('?');
      finalPath = q >= 0 ? this.path + current.slice(q) : this.path;
    }
    if (!finalPath.startsWith('/')) finalPath = `/${finalPath}`;
    if (this.stripQuery && !this.#pathHasQuery) {
      const q = finalPath.indexOf('?');
      if (q >= 0) finalPath = finalPath.slice(0, q);
    }
    return `${finalScheme}://${finalHost}${finalPort}${finalPath}`;
  }
}

/** Envoy's `processRequestHost`: the request's host, without its port when the redirect changes it. */
function requestHost(authority: string, requestScheme: string, newScheme: string, newPort: string): string {
  if (authority === '') return authority;
  let hostEnd: number;
  if (authority.startsWith('[')) {
    hostEnd = authority.lastIndexOf(']:');
    if (hostEnd >= 0) hostEnd += 1;
  } else hostEnd = authority.lastIndexOf(':');
  if (hostEnd < 0) return authority;
  const port = authority.slice(hostEnd);
  let remove = newPort !== '';
  if (newScheme !== requestScheme) {
    remove ||= isScheme(requestScheme, 'https') && port === ':443';
    remove ||= isScheme(requestScheme, 'http') && port === ':80';
  }
  return remove ? authority.slice(0, hostEnd) : authority;
}

class RouteResult implements MatchedRoute {
  readonly name: string;
  readonly virtualHost: string;
  readonly action: MatchedAction;
  readonly timeoutMs: number;
  readonly maxStreamDurationMs: number | null;
  readonly retry: RouteRetryPolicy | null;
  readonly perRequestBufferLimitBytes: number;
  readonly typedPerFilterConfig: Readonly<Record<string, Any>>;
  readonly prefixRewrite: string | null;
  readonly regexRewrite: RegexRewrite | null;
  readonly hostRewriteLiteral: string | null;
  readonly sloRoute: SloRoute | null;
  readonly fault: CompiledFault | null;
  readonly #rewrite: PathRewrite | null;

  constructor(
    route: Route, ctx: RouteContext, action: MatchedAction,
    forward: {
      timeoutMs: number; maxStreamDurationMs: number | null; retry: RouteRetryPolicy | null; perRequestBufferLimitBytes: number;
      rewrite: PathRewrite | null; hostRewriteLiteral: string | null; sloRoute?: SloRoute | null;
    },
  ) {
    this.name = route.name;
    this.virtualHost = ctx.virtualHost;
    this.action = action;
    this.timeoutMs = forward.timeoutMs;
    this.maxStreamDurationMs = forward.maxStreamDurationMs;
    this.retry = forward.retry;
    this.perRequestBufferLimitBytes = forward.perRequestBufferLimitBytes;
    this.typedPerFilterConfig = mergeFilterConfig(ctx.typedPerFilterConfig, route.typedPerFilterConfig);
    this.prefixRewrite = forward.rewrite?.prefix ?? null;
    this.regexRewrite = forward.rewrite?.regex ?? null;
    this.hostRewriteLiteral = forward.hostRewriteLiteral;
    this.sloRoute = forward.sloRoute ?? null;
    this.fault = ctx.fault;
    this.#rewrite = forward.rewrite;
    Object.freeze(this);
  }

  rewritePath(path: string): string {
    return this.#rewrite === null ? path : this.#rewrite.apply(path);
  }
}

const NOT_FORWARDED = { timeoutMs: 0, maxStreamDurationMs: null, retry: null, perRequestBufferLimitBytes: 0, rewrite: null, hostRewriteLiteral: null };

/**
 * Compiles a route's action and policies. `matchedLength` is how much of the path the route's
 * matcher covers (prefix or exact path length; -1 for regex = the whole path), for prefix
 * rewrites. `path` names the route in errors (`virtual_hosts[0].routes[2]`).
 */
export function compileMatchedRoute(route: Route, parent: RouteContext, matchedLength: number, path: string, errors: string[]): MatchedRoute | null {
  const fault = faultOf(route.typedPerFilterConfig, parent.fault, path, errors);
  const ctx = fault === parent.fault ? parent : { ...parent, fault };
  const a = route.action;
  switch (a.case) {
    case 'route': return compileForward(route, a.value, ctx, matchedLength, `${path}.route`, errors);
    case 'redirect': {
      const r = a.value;
      let regex: RegexRewrite | null = null;
      if (r.pathRewriteSpecifier.case === 'regexRewrite') {
        regex = rewriteOf(r.pathRewriteSpecifier.value.pattern?.regex ?? '', r.pathRewriteSpecifier.value.substitution, `${path}.redirect.regex_rewrite`, errors);
        if (regex === null) return null;
      }
      return new RouteResult(route, ctx, new Redirect(r, regex, matchedLength), NOT_FORWARDED);
    }
    case 'directResponse': {
      const action = compileDirect(a.value, ctx.maxDirectResponseBodyBytes, `${path}.direct_response`, errors);
      return action && new RouteResult(route, ctx, action, NOT_FORWARDED);
    }
    case 'filterAction':
      errors.push(`${path}.filter_action: filter_action routes are not supported by the sidecar`);
      return null;
    case 'nonForwardingAction':
      errors.push(`${path}.non_forwarding_action: non_forwarding_action routes are not supported by the sidecar`);
      return null;
    default:
      errors.push(`${path}: the route has no action (route, redirect or direct_response)`);
      return null;
  }
}

function rewriteOf(pattern: string, substitution: string, path: string, errors: string[]): RegexRewrite | null {
  const r = compileRegexRewrite(pattern, substitution);
  if (typeof r === 'string') {
    errors.push(`${path}: ${r}`);
    return null;
  }
  return r;
}

function compileForward(route: Route, ra: RouteActionProto, ctx: RouteContext, matchedLength: number, path: string, errors: string[]): MatchedRoute | null {
  const before = errors.length;
  let action: MatchedAction | null = null;
  const spec = ra.clusterSpecifier;
  switch (spec.case) {
    case 'cluster': action = Object.freeze({ kind: 'cluster', cluster: spec.value }); break;
    case 'weightedClusters': action = compileWeighted(spec.value, `${path}.weighted_clusters`, errors); break;
    case 'clusterHeader': errors.push(`${path}.cluster_header: cluster_header is not supported by the sidecar`); break;
    case 'clusterSpecifierPlugin': errors.push(`${path}.cluster_specifier_plugin: cluster specifier plugins are not supported by the sidecar`); break;
    case 'inlineClusterSpecifierPlugin': errors.push(`${path}.inline_cluster_specifier_plugin: cluster specifier plugins are not supported by the sidecar`); break;
    default: errors.push(`${path}: no cluster_specifier set`);
  }
  if (ra.pathRewritePolicy) errors.push(`${path}.path_rewrite_policy: path rewrite extensions are not supported by the sidecar`);
  let rewrite: PathRewrite | null = null;
  if (ra.prefixRewrite !== '' && ra.regexRewrite) {
    errors.push(`${path}: specify only one of prefix_rewrite and regex_rewrite`);
  } else if (ra.regexRewrite) {
    const regex = rewriteOf(ra.regexRewrite.pattern?.regex ?? '', ra.regexRewrite.substitution, `${path}.regex_rewrite`, errors);
    if (regex) rewrite = new PathRewrite(null, regex, matchedLength);
  } else if (ra.prefixRewrite !== '') {
    rewrite = new PathRewrite(ra.prefixRewrite, null, matchedLength);
  }
  const sloRoute = action === null ? null : compileSloRoute(route, action, path.slice(0, -'.route'.length), errors);
  if (action === null || errors.length > before) return null;
  const msd = ra.maxStreamDuration?.maxStreamDuration;
  return new RouteResult(route, ctx, action, {
    timeoutMs: ra.timeout ? durationMs(ra.timeout) : DEFAULT_ROUTE_TIMEOUT_MS,
    maxStreamDurationMs: msd ? durationMs(msd) : null,
    retry: ra.retryPolicy ? compileRetryPolicy(ra.retryPolicy) : ctx.retry,
    perRequestBufferLimitBytes: route.perRequestBufferLimitBytes ?? ctx.perRequestBufferLimitBytes ?? DEFAULT_PER_REQUEST_BUFFER_LIMIT_BYTES,
    rewrite,
    hostRewriteLiteral: ra.hostRewriteSpecifier.case === 'hostRewriteLiteral' && ra.hostRewriteSpecifier.value !== '' ? ra.hostRewriteSpecifier.value : null,
    sloRoute,
  });
}

/** The route's `palisade.slo` metadata as a frozen SloRoute; null without one (or when it is malformed: the problem goes to `errors`). */
function compileSloRoute(route: Route, action: MatchedAction, path: string, errors: string[]): SloRoute | null {
  const md = route.metadata?.filterMetadata[SLO_METADATA_KEY];
  if (md === undefined) return null;
  const at = `${path}.metadata.filter_metadata["${SLO_METADATA_KEY}"]`;
  const name = md.name;
  const threshold = md.latency_threshold_ms;
  if (typeof name !== 'string' || name === '') {
    errors.push(`${at}.name: must be a non-empty string, got ${JSON.stringify(name ?? null)}`);
    return null;
  }
  if (threshold !== undefined && !(typeof threshold === 'number' && threshold > 0 && Number.isFinite(threshold))) {
    errors.push(`${at}.latency_threshold_ms: must be a positive number, got ${JSON.stringify(threshold)}`);
    return null;
  }
  const cluster = action.kind === 'cluster' ? action.cluster : action.kind === 'weighted' ? action.clusters[0]!.name : '';
  return Object.freeze({ name, latencyThresholdMs: threshold ?? null, cluster });
}

function compileWeighted(w: WeightedClusterProto, path: string, errors: string[]): WeightedClustersAction | null {
  const before = errors.length;
  const clusters: WeightedCluster[] = [];
  let total = 0;
  w.clusters.forEach((c, k) => {
    if (c.clusterHeader !== '') errors.push(`${path}.clusters[${k}].cluster_header: cluster_header is not supported by the sidecar`);
    else if (c.name === '') errors.push(`${path}.clusters[${k}].name: a weighted cluster needs a name`);
    const weight = c.weight ?? 0;
    total += weight;
    clusters.push({ name: c.name, weight });
  });
  if (clusters.length === 0) errors.push(`${path}.clusters: at least one cluster is required`);
  else if (total === 0) errors.push(`${path}.clusters: the sum of the weights must be greater than 0`);
  else if (total > MAX_TOTAL_WEIGHT) errors.push(`${path}.clusters: the sum of the weights (${total}) exceeds ${MAX_TOTAL_WEIGHT}`);
  return errors.length > before ? null : new WeightedPicker(clusters);
}

function compileDirect(d: DirectResponseProto, maxBytes: number, path: string, errors: string[]): DirectResponse | null {
  let body: Uint8Array | null = null;
  const s = d.body?.specifier;
  if (s?.case === 'inlineString') body = Buffer.from(s.value, 'utf8');
  else if (s?.case === 'inlineBytes') body = Uint8Array.from(s.value);
  else if (s?.case === 'filename' || s?.case === 'environmentVariable') {
    errors.push(`${path}.body.${s.case === 'filename' ? 'filename' : 'environment_variable'}: only inline bodies are supported by the sidecar`);
    return null;
  }
  if (body !== null && body.length > maxBytes) {
    errors.push(`${path}.body: response body is ${body.length} bytes; the maximum is ${maxBytes} (max_direct_response_body_size_bytes)`);
    return null;
  }
  return Object.freeze({ kind: 'direct', status: d.status, body });
}
