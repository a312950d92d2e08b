/**
 * What the stages of one request's path learn about it, for telemetry (metrics, access log,
 * trace span, usage meter) to read once the response is over. The telemetry wrapper attaches
 * one object per request before any stage runs; each stage (authz, quota, fault, forwarder)
 * fills its own fields on it, so no stage knows about metrics or logs, and telemetry reads
 * plain fields instead of asking each stage.
 *
 * The object is created with every field set (one hidden class); stages write, never delete.
 */
import type { DownstreamRequest } from '../listeners/http-listener.ts';

/** Envoy's access-log response flags this sidecar sets (a subset: %RESPONSE_FLAGS%). */
export type ResponseFlag =
  | 'UF' // upstream connection failure
  | 'UO' // upstream overflow (circuit breaker)
  | 'NR' // no route
  | 'NC' // no cluster
  | 'UH' // no healthy upstream
  | 'UT' // upstream request timeout
  | 'URX' // retry limit exceeded
  | 'UC' // upstream connection termination
  | 'DC' // downstream connection termination
  | 'RL' // rate limited (quota)
  | 'RLSE' // rate limit service error
  | 'UAEX' // unauthorized (external authorization / policy)
  | 'DI' // fault: delay injected
  | 'FI' // fault: abort injected
  | 'OM'; // overload manager

export type PolicyDecision = 'allow' | 'deny' | 'dry-run-deny' | 'error' | 'unauthenticated';
export type QuotaResult = 'ok' | 'over' | 'shadow-over' | 'store-error-open' | 'store-error-closed' | 'shed';

export interface RequestFacts {
  /** Route name (outbound: the RDS route's name; inbound: the quota route, when a quota matched). */
  route: string | null;
  /** Upstream cluster name. */
  cluster: string | null;
  /** The upstream host:port the last attempt went to. */
  upstreamHost: string | null;
  /** Attempts made upstream (1 + retries); 0 when none was made. */
  attempts: number;
  /** Envoy response flags set on the way. */
  flags: ResponseFlag[];
  /** The peer's SPIFFE ID (inbound mTLS), or null. */
  principal: string | null;
  /** The first deciding Policy and its decision; null when no policy judged the request. */
  policy: { readonly name: string; readonly decision: PolicyDecision } | null;
  /** The quota that decided (the refusing one, else the last applied); null when none applied. */
  quota: { readonly name: string; readonly limit: string; readonly result: QuotaResult; readonly remaining: number } | null;
  /** The tenant the usage meter counts this request for; null when unknown. */
  tenant: string | null;
  /** Verified JWT payloads by provider (set by inbound authn); null when no token was verified. */
  jwt: Readonly<Record<string, unknown>> | null;
  /**
   * Response body bytes written downstream, counted by the stage that wrote the body: the
   * forwarder per upstream chunk, local replies their body, the upgrade relay what it relayed.
   * -1 when no stage counted: the telemetry wrapper then takes a finished response's declared
   * Content-Length (the other local replies all declare one).
   */
  bytesSent: number;
  /** Request body bytes read from the downstream (the telemetry wrapper counts them, the upgrade relay what it relayed). */
  bytesReceived: number;
}

const FACTS = Symbol('palisade.requestFacts');

type WithFacts = DownstreamRequest & { [FACTS]?: RequestFacts };

/** Attaches a fresh facts object to a request (the telemetry wrapper, first thing). */
export function attachFacts(req: DownstreamRequest): RequestFacts {
  const facts: RequestFacts = { route: null, cluster: null, upstreamHost: null, attempts: 0, flags: [], principal: null, policy: null, quota: null, tenant: null, jwt: null, bytesSent: -1, bytesReceived: 0 };
  (req as WithFacts)[FACTS] = facts;
  return facts;
}

/** The request's facts, or undefined when no telemetry wrapper attached them (e.g. in unit tests of a stage). */
export function factsOf(req: DownstreamRequest): RequestFacts | undefined {
  return (req as WithFacts)[FACTS];
}

/**
 * Attaches a request's facts to its raw socket too (an upgrade request: the refusals and the
 * relay see only the socket).
 */
export function attachFactsToSocket(socket: object, facts: RequestFacts): void {
  (socket as { [FACTS]?: RequestFacts })[FACTS] = facts;
}

/** The facts attachFactsToSocket put on an upgrade's socket, or undefined. */
export function factsOfSocket(socket: object): RequestFacts | undefined {
  return (socket as { [FACTS]?: RequestFacts })[FACTS];
}

/** Adds a response flag once. */
export function flag(req: DownstreamRequest, f: ResponseFlag): void {
  const facts = (req as WithFacts)[FACTS];
  if (facts !== undefined && !facts.flags.includes(f)) facts.flags.push(f);
}
