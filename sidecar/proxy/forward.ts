/**
 * The HTTP forwarding core (HTTP/1.1 and HTTP/2 downstreams) the sidecar's listeners call: one function of (request,
 * response, route table) that routes, balances, limits, forwards, times out and retries.
 *
 *   handle(req, res, table)
 *     → table.match(Host, url, method)       null: 404 "no route"
 *     → route.fault (sidecar/fault/)         abort: answered; delay: held, then on (or aborted)
 *     → redirect / direct: answered here
 *     → cluster name (weighted: action.pick(random)) → getCluster(name)   missing: 503 "cluster not found"
 *     → cluster.circuit.tryAcquireRequest()   false: 503 "upstream overflow"
 *     → attempt: cluster.pick()               null: 503 "no healthy upstream"
 *         startRequest(host) → host.pool.dispatch(opts, Attempt) → reportResult(host, status | error class)
 *         retriable (policy, body still replayable, tryAcquireRetry) → endRequest(host)
 *           → backoff (full jitter) → attempt
 *     → response headers (hop-by-hop removed) → body chunks written to res, undici paused while res is full
 *     → endRequest(host), circuit.releaseRequest() once the exchange is over, whichever way it ends
 *
 * Local replies: 404 `no route`, 503 `cluster not found`, 503 `upstream overflow`, 503 `no
 * healthy upstream`, 503 `upstream connect error or disconnect/reset before headers. reset
 * reason: connection failure` (connect failure after retries; `…: connection termination` for a
 * reset before headers), as Envoy's router answers both, 504 `upstream request timeout` (route timeout or
 * the last per-try timeout), 507 `exceeded request buffer limit while retrying upstream`.
 * All `text/plain`.
 *
 * Headers: see hop-by-hop.ts for what is dropped. x-request-id is kept or generated
 * (crypto.randomUUID); the peer address is appended to x-forwarded-for; x-forwarded-proto
 * (http / https by the downstream socket) and x-forwarded-host (the Host received) are set,
 * replacing what the client sent, as Envoy does for an untrusted downstream.
 *
 * The exchange itself (attempts, retries, bodies, timers) is exchange.ts; the upstream request
 * headers are upstream-headers.ts.
 */
import { withAddedHeaders } from './added-headers.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { MatchedRoute, RouteTable } from '../routing/route-table.ts';
import type { UpstreamCluster } from '../upstream/upstream-cluster.ts';
import type { DownstreamRequest, DownstreamResponse } from '../listeners/http-listener.ts';
import { Exchange } from './exchange.ts';
import { headerLookup, matchRoute, type RouteRequest, targetOf } from './route-target.ts';
import { FaultInjector, type FaultStats } from '../fault/fault-injector.ts';
import { localReply, TEXT_PLAIN } from './local-reply.ts';
import { factsOf, flag } from '../telemetry/request-facts.ts';

export interface ForwarderOptions {
  /** The cluster by name, as the current snapshot has it; undefined when unknown. */
  getCluster(name: string): UpstreamCluster | undefined;
  /** Monotonic clock, ms; caps per-try timeouts by what remains of the route timeout. Default performance.now. */
  readonly now?: () => number;
  /** [0, 1); weighted cluster picks and back-off jitter. Default Math.random. */
  readonly random?: () => number;
  /** [0, 1); the fault filter's percentage rolls. Default Math.random. */
  readonly faultRandom?: () => number;
}

export interface Forwarder {
  /**
   * Routes and forwards one HTTP/1.1 or HTTP/2 (node:http2 compat) request; always answers
   * `res` (or destroys it when the upstream fails after the response started). Never throws
   * for request-level failures. HTTP/2: the host is `:authority` (else `host`), the
   * pseudo-headers are never forwarded as headers.
   */
  handle(req: DownstreamRequest, res: DownstreamResponse, table: RouteTable): void;
  /** The fault filter's counters (sidecar/fault/fault-injector.ts). */
  faultStats(): FaultStats;
}

/** Builds the forwarder over a cluster lookup. */
export function createForwarder(options: ForwarderOptions): Forwarder {
  const getCluster = options.getCluster;
  const now = options.now ?? (() => performance.now());
  const random = options.random ?? Math.random;
  const faults = new FaultInjector({ random: options.faultRandom ?? Math.random });

  function handle(downstreamReq: DownstreamRequest, downstreamRes: DownstreamResponse, table: RouteTable): void {
    // The http2 compat objects have every member used here and in Exchange, the same way.
    const req = downstreamReq as IncomingMessage;
    const res = downstreamRes as ServerResponse;
    const headers = req.headers;
    const h2Authority = req.httpVersionMajor === 2 ? headers[':authority'] : undefined;
    const authority = (typeof h2Authority === 'string' ? h2Authority : headers.host) ?? '';
    const path = req.url ?? '/';
    const scheme = (req.socket as TLSSocket).encrypted === true ? 'https' : 'http';
    const r: RouteRequest = { authority, path, method: req.method ?? 'GET', headers, scheme };
    const lookup = headerLookup(headers);
    const route = matchRoute(table, r, lookup);
    if (route === null) {
      flag(downstreamReq, 'NR');
      localReply(res, 404, 'no route');
      return;
    }
    const facts = factsOf(downstreamReq);
    // The inbound catch-all route has no name: the quota's route (set earlier) stays.
    if (facts !== undefined && route.name !== '') facts.route = route.name;
    // The fault filter runs before the router (sidecar/fault/); a route without a fault pays one null check.
    const fault = route.fault;
    if (fault !== null && !faults.apply(fault, downstreamReq, downstreamRes, { method: r.method, authority, path, lookup }, () => forward(req, res, route, r))) return;
    forward(req, res, route, r);
  }

  /** The router: direct responses and redirects, the cluster and its circuit, the exchange. */
  function forward(req: IncomingMessage, res: ServerResponse, route: MatchedRoute, r: RouteRequest): void {
    const target = targetOf(route, r, getCluster, random, (status, body, location) => {
      if (body === 'cluster not found') flag(req, 'NC');
      else if (body === 'upstream overflow') flag(req, 'UO');
      if (location !== null) {
        res.writeHead(status, withAddedHeaders(res, { location, 'content-length': 0 }));
        res.end();
      } else if (body === null) {
        res.writeHead(status, withAddedHeaders(res, { 'content-length': 0 }));
        res.end();
      } else if (typeof body === 'string') {
        localReply(res, status, body);
      } else {
        res.writeHead(status, withAddedHeaders(res, { 'content-type': TEXT_PLAIN, 'content-length': body.byteLength }));
        res.end(body);
      }
    });
    if (target === null) return;
    new Exchange(req, res, target.cluster, target.route, r.authority, r.path, now, random).attempt();
  }

  return { handle, faultStats: () => faults.stats() };
}
