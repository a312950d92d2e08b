/**
 * The HTTP/1.1 forwarding core the sidecar's listeners call: one function of (request,
 * response, route table) that routes, balances, limits, forwards, times out and retries.
 *
 *   handle(req, res, table)
 *     → table.match(Host, url, method)       null: 404 "no route"; redirect / direct: answered here
 *     → cluster name (weighted: action.pick(random)) → getCluster(name)   missing: 503 "cluster not found"
 *     → cluster.circuit.tryAcquireRequest()   false: 503 "upstream overflow"
 *     → attempt: cluster.pick()               null: 503 "no healthy upstream"
 *         startRequest(host) → host.pool.request(...) → reportResult(host, status | error class)
 *         retriable (policy, no request body, tryAcquireRetry) → backoff (full jitter) → attempt
 *     → response headers (hop-by-hop removed) → body piped to res with backpressure
 *     → circuit.releaseRequest() once the exchange is over, whichever way it ends
 *
 * Bodies stream both ways: the request body is `req` itself handed to undici, the response
 * body undici's Readable piped into `res` (stream.pipeline), so neither is buffered whole.
 *
 * Retries: only requests without a body (no Transfer-Encoding, Content-Length absent or 0)
 * are retried, since a streamed body cannot be replayed. Conditions follow Envoy's router:
 * `5xx`, `gateway-error`, `reset` and `connect-failure` (the first three also cover resets and
 * per-try timeouts), `retriable-4xx` (409), `retriable-status-codes`; `refused-stream` is an
 * HTTP/2 condition and never fires on HTTP/1.1 upstreams. Each retry holds one slot of the
 * cluster's retry circuit (`tryAcquireRetry`) from its back-off until its response headers
 * arrive or it fails; when the circuit refuses, the last upstream answer (or error) goes
 * downstream. Back-off is Envoy's default: full jitter over min(25 ms · 2^(n-1), 250 ms), and
 * no retry starts whose back-off would end past the route timeout.
 *
 * Every attempt's outcome is reported to the cluster (outlier detection) once, when its
 * response headers arrive or when it fails; a downstream disconnect before that reports a
 * `reset` (UpstreamCluster has no neutral "cancelled" outcome yet).
 *
 * Local replies: 404 `no route`, 503 `cluster not found`, 503 `upstream overflow`, 503 `no
 * healthy upstream`, 502 `upstream connect error` (connect failure after retries), 502
 * `upstream reset` (reset before headers), 504 `upstream request timeout` (route timeout or
 * the last per-try timeout). All `text/plain`.
 *
 * Headers: see hop-by-hop.ts for what is dropped. x-request-id is kept or generated
 * (crypto.randomUUID); the peer address is appended to x-forwarded-for; x-forwarded-proto
 * (http / https by the downstream socket) and x-forwarded-host (the Host received) are set,
 * replacing what the client sent, as Envoy does for an untrusted downstream.
 *
 * Timers: the route timeout (whole exchange, including retries and the response body), the
 * per-try timeout (until response headers) and the back-off are per-request `setTimeout`s
 * for now; moving them onto a shared coarse timer (CONVENTIONS "Hot path", undici
 * `lib/util/timers.js`) is still to do.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Dispatcher } from 'undici';
import type { MatchedRoute, RouteRetryPolicy, RouteTable } from '../routing/route-table.ts';
import type { Host } from '../upstream/host.ts';
import type { UpstreamCluster } from '../upstream/upstream-cluster.ts';
import { classifyUpstreamError } from '../upstream/upstream-result.ts';
import type { UpstreamResult } from '../upstream/outlier-detector.ts';
import { connectionTokens, HOP_BY_HOP, responseHeaders, teHasTrailers } from './hop-by-hop.ts';

/** Envoy's default retry back-off base interval, ms. */
export const RETRY_BACKOFF_BASE_MS = 25;
/** Envoy's default retry back-off cap: 10 × the base, ms. */
export const RETRY_BACKOFF_MAX_MS = 250;

export interface ForwarderOptions {
  /** The cluster by name, as the current snapshot has it; undefined when unknown. */
  getCluster(name: string): UpstreamCluster | undefined;
  /** Monotonic clock, ms; caps per-try timeouts by what remains of the route timeout. Default performance.now. */
  readonly now?: () => number;
  /** [0, 1); weighted cluster picks and back-off jitter. Default Math.random. */
  readonly random?: () => number;
}

export interface Forwarder {
  /**
   * Routes and forwards one HTTP/1.1 request; always answers `res` (or destroys it when the
   * upstream fails after the response started). Never throws for request-level failures.
   */
  handle(req: IncomingMessage, res: ServerResponse, table: RouteTable): void;
}

const TEXT_PLAIN = 'text/plain';

/** Envoy's `RETRY_ON_*` conditions as they apply to one attempt's outcome. */
function shouldRetry(policy: RouteRetryPolicy, result: UpstreamResult): boolean {
  const on = policy.on;
  if (typeof result === 'number') {
    if (result >= 500 && on.has('5xx')) return true;
    if ((result === 502 || result === 503 || result === 504) && on.has('gateway-error')) return true;
    if (result === 409 && on.has('retriable-4xx')) return true;
    return on.has('retriable-status-codes') && policy.retriableStatusCodes.has(result);
  }
  if (on.has('5xx') || on.has('gateway-error') || on.has('reset')) return true;
  return result === 'connect-failure' && on.has('connect-failure');
}

/** Whether the request carries a body (and so cannot be replayed). */
function hasBody(req: IncomingMessage): boolean {
  const h = req.headers;
  if (h['transfer-encoding'] !== undefined) return true;
  const cl = h['content-length'];
  return cl !== undefined && cl !== '0';
}

function localReply(res: ServerResponse, status: number, body: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': TEXT_PLAIN, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * The upstream request headers: the downstream's raw headers (case kept) less the hop-by-hop
 * fields, plus x-request-id (kept or generated), x-forwarded-for (peer appended),
 * x-forwarded-proto and x-forwarded-host, as a flat [name, value, …] list for undici.
 */
function upstreamHeaders(req: IncomingMessage, authority: string, hostRewrite: string | null): string[] {
  const raw = req.rawHeaders;
  const named = connectionTokens(req.headers['connection']);
  const out: string[] = [];
  let requestId: string | null = null;
  let xff: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower === 'expect' || lower === 'x-forwarded-proto' || lower === 'x-forwarded-host') continue;
    if (named !== null && named.has(lower)) continue;
    switch (lower) {
      case 'te':
        if (teHasTrailers(value)) out.push('te', 'trailers');
        continue;
      case 'host':
        if (hostRewrite !== null) continue;
        break;
      case 'x-request-id':
        if (requestId === null) requestId = value;
        continue;
      case 'x-forwarded-for':
        xff = xff === null ? value : `${xff}, ${value}`;
        continue;
    }
    out.push(name, value);
  }
  if (hostRewrite !== null) out.push('host', hostRewrite);
  const peer = req.socket.remoteAddress;
  if (peer !== undefined) xff = xff === null ? peer : `${xff}, ${peer}`;
  if (xff !== null) out.push('x-forwarded-for', xff);
  out.push('x-forwarded-proto', (req.socket as TLSSocket).encrypted === true ? 'https' : 'http');
  out.push('x-forwarded-host', authority);
  out.push('x-request-id', requestId ?? randomUUID());
  return out;
}

/** One downstream request's trip upstream, retries included. Every field set in the constructor. */
class Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly cluster: UpstreamCluster;
  readonly route: MatchedRoute;
  readonly opts: Dispatcher.RequestOptions;
  /** Null when retries are off (no policy, or the request has a body). */
  readonly retry: RouteRetryPolicy | null;
  readonly now: () => number;
  readonly random: () => number;
  /** performance.now() at which the route timeout fires; Infinity for none. */
  readonly deadline: number;
  retriesDone = 0;
  /** Holds a slot of the retry circuit for the attempt (or back-off) in progress. */
  retrySlot = false;
  /** Bumped whenever the attempt in flight is abandoned, so its late callback is ignored. */
  generation = 0;
  host: Host | null = null;
  /** The current attempt's outcome has been reported to the cluster. */
  reported = true;
  abort: AbortController | null = null;
  routeTimer: ReturnType<typeof setTimeout> | null = null;
  tryTimer: ReturnType<typeof setTimeout> | null = null;
  backoffTimer: ReturnType<typeof setTimeout> | null = null;
  done = false;

  constructor(req: IncomingMessage, res: ServerResponse, cluster: UpstreamCluster, route: MatchedRoute, authority: string, path: string, now: () => number, random: () => number) {
    this.req = req;
    this.res = res;
    this.cluster = cluster;
    this.route = route;
    const body = hasBody(req);
    this.retry = body ? null : route.retry;
    this.now = now;
    this.random = random;
    this.opts = {
      path: route.rewritePath(path),
      method: req.method as Dispatcher.HttpMethod,
      headers: upstreamHeaders(req, authority, route.hostRewriteLiteral),
      body: body ? req : null,
      signal: null,
    };
    this.deadline = route.timeoutMs > 0 ? now() + route.timeoutMs : Infinity;
    if (route.timeoutMs > 0) this.routeTimer = setTimeout(() => this.onRouteTimeout(), route.timeoutMs);
    res.once('close', () => this.onDownstreamClose());
  }

  attempt(): void {
    this.backoffTimer = null;
    const host = this.cluster.pick();
    if (host === null) {
      this.finish();
      localReply(this.res, 503, 'no healthy upstream');
      return;
    }
    this.cluster.startRequest(host);
    this.host = host;
    this.reported = false;
    const gen = ++this.generation;
    const ac = new AbortController();
    this.abort = ac;
    this.opts.signal = ac.signal;
    const perTry = this.route.retry?.perTryTimeoutMs ?? null;
    if (perTry !== null && this.now() + perTry < this.deadline) this.tryTimer = setTimeout(() => this.onTryTimeout(gen), perTry);
    host.pool.request(this.opts, (err, data) => this.onResponse(gen, err, data));
  }

  report(result: UpstreamResult): void {
    if (this.reported || this.host === null) return;
    this.reported = true;
    this.cluster.reportResult(this.host, result);
  }

  clearTryTimer(): void {
    if (this.tryTimer !== null) clearTimeout(this.tryTimer);
    this.tryTimer = null;
  }

  releaseRetrySlot(): void {
    if (this.retrySlot) {
      this.retrySlot = false;
      this.cluster.circuit.releaseRetry();
    }
  }

  /** Starts a back-off then a new attempt when the policy, the budget and the clock allow. */
  tryRetry(result: UpstreamResult): boolean {
    const p = this.retry;
    if (p === null || this.retriesDone >= p.numRetries || !shouldRetry(p, result)) return false;
    this.releaseRetrySlot();
    if (!this.cluster.circuit.tryAcquireRetry()) return false;
    this.retrySlot = true;
    this.retriesDone++;
    const ceiling = Math.min(RETRY_BACKOFF_BASE_MS * 2 ** (this.retriesDone - 1), RETRY_BACKOFF_MAX_MS);
    const delay = Math.floor(this.random() * ceiling);
    if (this.now() + delay >= this.deadline) {
      this.releaseRetrySlot();
      this.retriesDone--;
      return false;
    }
    this.backoffTimer = setTimeout(() => this.attempt(), delay);
    return true;
  }

  onResponse(gen: number, err: Error | null, data: Dispatcher.ResponseData | null | undefined): void {
    if (gen !== this.generation || this.done) {
      if (err === null && data) data.body.destroy(); // with an error undici passes `{ opaque }`, no body
      return;
    }
    this.clearTryTimer();
    this.abort = null;
    if (err !== null || !data) {
      const result = classifyUpstreamError(err);
      this.report(result);
      if (this.tryRetry(result)) return;
      this.finish();
      this.failLocal(result);
      return;
    }
    const status = data.statusCode;
    this.report(status);
    if (this.tryRetry(status)) {
      // Reads a small body to its end so the connection can be reused; closes it past 128 KiB.
      data.body.dump().catch(() => {});
      return;
    }
    this.releaseRetrySlot();
    const res = this.res;
    res.writeHead(status, responseHeaders(data.headers));
    pipeline(data.body, res, (e) => {
      if (e) res.destroy();
      this.finish();
    });
  }

  failLocal(result: Exclude<UpstreamResult, number>): void {
    if (result === 'connect-failure') localReply(this.res, 502, 'upstream connect error');
    else if (result === 'timeout') localReply(this.res, 504, 'upstream request timeout');
    else localReply(this.res, 502, 'upstream reset');
  }

  onTryTimeout(gen: number): void {
    this.tryTimer = null;
    if (gen !== this.generation || this.done) return;
    this.generation++;
    this.abort?.abort();
    this.abort = null;
    this.report('timeout');
    if (this.tryRetry('timeout')) return;
    this.finish();
    localReply(this.res, 504, 'upstream request timeout');
  }

  onRouteTimeout(): void {
    this.routeTimer = null;
    if (this.done) return;
    this.generation++;
    this.abort?.abort();
    this.report('timeout');
    this.finish();
    localReply(this.res, 504, 'upstream request timeout'); // destroys res when headers went out
  }

  onDownstreamClose(): void {
    if (this.done) return;
    this.generation++;
    this.abort?.abort();
    this.report('reset');
    this.finish();
  }

  /** Ends the exchange: timers off, slots given back. Idempotent. */
  finish(): void {
    if (this.done) return;
    this.done = true;
    if (this.routeTimer !== null) clearTimeout(this.routeTimer);
    if (this.backoffTimer !== null) clearTimeout(this.backoffTimer);
    this.clearTryTimer();
    this.routeTimer = this.backoffTimer = null;
    this.abort = null;
    this.releaseRetrySlot();
    this.cluster.circuit.releaseRequest();
  }
}

/** Builds the forwarder over a cluster lookup. */
export function createForwarder(options: ForwarderOptions): Forwarder {
  const getCluster = options.getCluster;
  const now = options.now ?? (() => performance.now());
  const random = options.random ?? Math.random;

  function handle(req: IncomingMessage, res: ServerResponse, table: RouteTable): void {
    const headers = req.headers;
    const authority = headers.host ?? '';
    const path = req.url ?? '/';
    const method = req.method ?? 'GET';
    const route = table.match(authority, path, method, (name) => {
      const v = headers[name];
      return typeof v === 'string' || v === undefined ? v : v.join(',');
    });
    if (route === null) {
      localReply(res, 404, 'no route');
      return;
    }
    const action = route.action;
    let clusterName: string;
    switch (action.kind) {
      case 'cluster':
        clusterName = action.cluster;
        break;
      case 'weighted':
        clusterName = action.pick(random());
        break;
      case 'direct': {
        const body = action.body;
        res.writeHead(action.status, body === null ? { 'content-length': 0 } : { 'content-type': TEXT_PLAIN, 'content-length': body.byteLength });
        res.end(body ?? undefined);
        return;
      }
      case 'redirect': {
        const scheme = (req.socket as TLSSocket).encrypted === true ? 'https' : 'http';
        res.writeHead(action.status, { location: action.location(scheme, authority, path), 'content-length': 0 });
        res.end();
        return;
      }
    }
    const cluster = getCluster(clusterName);
    if (cluster === undefined) {
      localReply(res, 503, 'cluster not found');
      return;
    }
    if (!cluster.circuit.tryAcquireRequest()) {
      localReply(res, 503, 'upstream overflow');
      return;
    }
    new Exchange(req, res, cluster, route, authority, path, now, random).attempt();
  }

  return { handle };
}
