/**
 * One downstream request's trip upstream once it is routed: attempts, retries, bodies, timers.
 *
 * Bodies stream both ways: the request body is `req` itself handed to undici (or, when the
 * route has a retry policy, a ReplayBody attempt body fed from it); the response goes through
 * undici's dispatch handler API (Attempt): headers and each body chunk are written straight into
 * `res`, and undici's parser is paused while `res` is full. No Readable per response and no
 * stream.pipeline: in a naive undici proxy those cost more than the rest of the exchange.
 *
 * Retries with a body (replay-body.ts), as Envoy's router: a request with a body (Transfer-
 * Encoding, or Content-Length other than 0) on a route with a retry policy keeps its body, up to
 * the route's `per_request_buffer_limit_bytes` (else the virtual host's, else 1 MiB), while it
 * streams it upstream as it arrives. A retry sends the kept bytes, then the rest as it arrives.
 * Once the body outgrows the limit the request is no longer retried (the cluster counts
 * `retry_or_shadow_abandoned`) and goes on as a plain streamed request: the first answer goes
 * downstream. When that happens during a back-off, with no attempt to continue, the answer is
 * Envoy's 507. Backpressure holds throughout: nothing past the limit is buffered, and a slow
 * upstream slows the client down. Without a retry policy the body is never kept.
 *
 * Retries: conditions follow Envoy's router:
 * `5xx`, `gateway-error`, `reset` and `connect-failure` (the first three also cover resets and
 * per-try timeouts), `retriable-4xx` (409), `retriable-status-codes`; `refused-stream` is an
 * HTTP/2 condition and never fires on HTTP/1.1 upstreams. Each retry holds one slot of the
 * cluster's retry circuit (`tryAcquireRetry`) from its back-off until its response headers
 * arrive or it fails; when the circuit refuses, the last upstream answer (or error) goes
 * downstream. With a `retry_budget` the retry circuit allows max(min_retry_concurrency,
 * budget_percent% of the cluster's active + pending requests) concurrent retries and ignores
 * max_retries (circuit-breaker.ts). Back-off is Envoy's default: full jitter over
 * min(25 ms · 2^(n-1), 250 ms), and no retry starts whose back-off would end past the route
 * timeout.
 *
 * Every attempt's outcome is reported to the cluster (outlier detection) once, when its
 * response headers arrive or when it fails; a downstream disconnect before that reports a
 * `reset` (UpstreamCluster has no neutral "cancelled" outcome yet). The attempt counts in its
 * host's active requests (least-request balancing) until its response body has ended or failed,
 * or until it is abandoned for a retry or a timeout, as Envoy's `rq_active`.
 *
 * Timers: the route timeout (whole exchange, including retries and the response body) and the
 * per-try timeout (until response headers) run on the shared coarse timers
 * (../timers/coarse-timers.ts): from 1 s on, one native tick every 250 ms serves every request,
 * so such a timeout fires no earlier than asked and less than 250 ms (at most 1/4) late;
 * shorter ones use a native timer. Arming and clearing allocate nothing past the two timer
 * handles an exchange makes. The back-off stays a native `setTimeout`: short and rare.
 */
import { withAddedHeaders } from './added-headers.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { MatchedRoute, RouteRetryPolicy } from '../routing/route-table.ts';
import type { Host } from '../upstream/host.ts';
import type { UpstreamCluster } from '../upstream/upstream-cluster.ts';
import { classifyUpstreamError } from '../upstream/upstream-result.ts';
import type { UpstreamResult } from '../upstream/outlier-detector.ts';
import { type CoarseTimer, coarseTimers } from '../timers/coarse-timers.ts';
import { responseHeaders } from './hop-by-hop.ts';
import { localReply, UPSTREAM_CONNECT_FAILURE, UPSTREAM_RESET } from './local-reply.ts';
import { ReplayBody } from './replay-body.ts';
import { hasBody, upstreamHeaders } from './upstream-headers.ts';
import { factsOf, type RequestFacts, type ResponseFlag } from '../telemetry/request-facts.ts';

/** Envoy's default retry back-off base interval, ms. */
export const RETRY_BACKOFF_BASE_MS = 25;
/** Envoy's default retry back-off cap: 10 × the base, ms. */
export const RETRY_BACKOFF_MAX_MS = 250;

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

/** Shared timer callbacks: the exchange is the argument, so arming a timer allocates no closure. */
function routeTimedOut(x: Exchange): void {
  x.onRouteTimeout();
}

function tryTimedOut(x: Exchange): void {
  x.onTryTimeout();
}

function backedOff(x: Exchange): void {
  x.attempt();
}

/** What undici is told when an attempt is abandoned; made once, its stack is never read. */
const ABANDONED = new Error('attempt abandoned by the sidecar');
/** A retried answer's body is read to its end (so the connection is reused) up to this size, then the connection is closed. */
const RETRY_DRAIN_MAX_BYTES = 128 * 1024;

/**
 * One attempt: undici's dispatch handler, writing the upstream response straight into the
 * downstream one (no intermediate Readable, no stream.pipeline: that is most of a naive
 * proxy's cost). Backpressure: a `res.write` that returns false pauses undici's parser until
 * 'drain'. Once cancelled (timeout, retry, downstream gone) every later event is ignored; a
 * cancel before undici started the request aborts it as soon as it starts.
 */
class Attempt implements Dispatcher.DispatchHandler {
  readonly x: Exchange;
  ctl: Dispatcher.DispatchController | null = null;
  cancelled = false;
  /** Response headers went downstream: a later failure cuts the downstream response. */
  started = false;
  /** The answer is being retried: its body is read and dropped; -1 when not draining. */
  drained = -1;
  #resume: (() => void) | null = null;

  constructor(x: Exchange) {
    this.x = x;
  }

  cancel(): void {
    this.cancelled = true;
    this.ctl?.abort(ABANDONED);
  }

  onRequestStart(ctl: Dispatcher.DispatchController): void {
    this.ctl = ctl;
    if (this.cancelled) ctl.abort(ABANDONED);
  }

  onResponseStart(ctl: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>): void {
    if (this.cancelled) return;
    if (this.x.onResponseStart(status, headers)) {
      this.started = true;
      return;
    }
    this.x.inFlight = null;
    this.drained = 0;
  }

  onResponseData(ctl: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.drained >= 0) {
      this.drained += chunk.length;
      if (this.drained > RETRY_DRAIN_MAX_BYTES) {
        this.cancelled = true;
        ctl.abort(ABANDONED);
      }
      return;
    }
    if (this.cancelled) return;
    const res = this.x.res;
    const facts = this.x.facts;
    if (facts !== null) facts.bytesSent += chunk.length;
    if (!res.write(chunk)) {
      ctl.pause();
      res.once('drain', (this.#resume ??= () => ctl.resume()));
    }
  }

  onResponseEnd(): void {
    if (this.cancelled || this.drained >= 0) return;
    this.x.onResponseEnd();
  }

  onResponseError(ctl: Dispatcher.DispatchController, err: Error): void {
    if (this.cancelled || this.drained >= 0) return;
    this.cancelled = true;
    if (this.started) this.x.onResponseAbort();
    else this.x.onAttemptError(err);
  }
}

/** One downstream request's trip upstream, retries included. Every field set in the constructor. */
export class Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly cluster: UpstreamCluster;
  readonly route: MatchedRoute;
  readonly opts: Dispatcher.DispatchOptions;
  /** Null when retries are off: no policy, or the request body outgrew the retry buffer. */
  retry: RouteRetryPolicy | null;
  /** The request body kept for retries; null without a body or without a retry policy. */
  readonly replay: ReplayBody | null;
  readonly now: () => number;
  readonly random: () => number;
  /** performance.now() at which the route timeout fires; Infinity for none. */
  readonly deadline: number;
  retriesDone = 0;
  /** Holds a slot of the retry circuit for the attempt (or back-off) in progress. */
  retrySlot = false;
  host: Host | null = null;
  /** The current attempt's outcome has been reported to the cluster. */
  reported = true;
  /** The current attempt still counts in its host's activeRequests (until its body ends). */
  active = false;
  /** The attempt in flight (its undici handler); null between attempts and once the exchange is over. */
  inFlight: Attempt | null = null;
  /** Shared coarse timers (native below 1 s); null when the route has no such timeout. */
  readonly routeTimer: CoarseTimer<Exchange> | null;
  readonly tryTimer: CoarseTimer<Exchange> | null;
  /** Back-off stays a native timer: it is short (<= 250 ms) and rare. */
  backoffTimer: ReturnType<typeof setTimeout> | null = null;
  done = false;
  /** The request's telemetry facts (route, cluster, upstream host, attempts, flags); null without the telemetry wrapper. */
  readonly facts: RequestFacts | null;

  constructor(req: IncomingMessage, res: ServerResponse, cluster: UpstreamCluster, route: MatchedRoute, authority: string, path: string, now: () => number, random: () => number) {
    this.req = req;
    this.res = res;
    this.cluster = cluster;
    this.route = route;
    const facts = factsOf(req) ?? null;
    this.facts = facts;
    if (facts !== null) {
      if (route.name !== '') facts.route = route.name;
      facts.cluster = cluster.config.name;
    }
    const body = hasBody(req);
    const retry = route.retry;
    this.retry = retry;
    // Kept only when a retry can happen at all, as Envoy buffers only with its retry state enabled.
    const keep = body && retry !== null && retry.numRetries > 0 && retry.on.size > 0;
    this.replay = keep ? new ReplayBody(req, route.perRequestBufferLimitBytes, () => this.onBodyOverflow()) : null;
    this.now = now;
    this.random = random;
    this.opts = {
      path: route.rewritePath(path),
      method: req.method as Dispatcher.HttpMethod,
      headers: upstreamHeaders(req, authority, route.hostRewriteLiteral),
      body: body && this.replay === null ? req : null,
    };
    this.deadline = route.timeoutMs > 0 ? now() + route.timeoutMs : Infinity;
    this.routeTimer = route.timeoutMs > 0 ? coarseTimers.create<Exchange>(routeTimedOut, this) : null;
    this.tryTimer = route.retry?.perTryTimeoutMs != null ? coarseTimers.create<Exchange>(tryTimedOut, this) : null;
    this.routeTimer?.start(route.timeoutMs);
    res.once('close', () => this.onDownstreamClose());
  }

  attempt(): void {
    this.backoffTimer = null;
    const host = this.cluster.pick();
    if (host === null) {
      this.finish();
      this.flag('UH');
      localReply(this.res, 503, 'no healthy upstream');
      return;
    }
    this.cluster.startRequest(host);
    this.host = host;
    const facts = this.facts;
    if (facts !== null) {
      facts.attempts++;
      facts.upstreamHost = host.key;
    }
    this.reported = false;
    this.active = true;
    if (this.replay !== null) this.opts.body = this.replay.attach();
    const t = this.tryTimer;
    if (t !== null) {
      const perTry = this.route.retry!.perTryTimeoutMs!;
      if (this.now() + perTry < this.deadline) t.start(perTry);
    }
    const a = new Attempt(this);
    this.inFlight = a;
    host.pool.dispatch(this.opts, a);
  }

  /** Abandons the attempt in flight (timeout, retry, downstream gone): undici stops it, its late events are ignored. */
  cancelAttempt(): void {
    const a = this.inFlight;
    if (a === null) return;
    this.inFlight = null;
    a.cancel();
  }

  report(result: UpstreamResult): void {
    if (this.reported || this.host === null) return;
    this.reported = true;
    this.cluster.reportResult(this.host, result);
  }

  /** The current attempt no longer counts on its host (body over, or abandoned). */
  endAttempt(): void {
    if (this.active && this.host !== null) {
      this.active = false;
      this.cluster.endRequest(this.host);
    }
  }

  releaseRetrySlot(): void {
    if (this.retrySlot) {
      this.retrySlot = false;
      this.cluster.circuit.releaseRetry();
    }
  }

  /** Starts a back-off then a new attempt when the policy, the budget, the body and the clock allow. */
  tryRetry(result: UpstreamResult): boolean {
    const p = this.retry;
    if (p === null || this.retriesDone >= p.numRetries || !shouldRetry(p, result)) return false;
    if (this.replay !== null && !this.replay.replayable) return false; // aborted downstream body
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
    this.replay?.detachAttempt();
    this.backoffTimer = setTimeout(backedOff, delay, this);
    return true;
  }

  /** The attempt failed before its response started (connect error, reset, upstream timeout). */
  onAttemptError(err: Error): void {
    this.tryTimer?.clear();
    this.inFlight = null;
    const result = classifyUpstreamError(err);
    this.report(result);
    this.endAttempt();
    if (this.tryRetry(result)) return;
    this.finish();
    this.failLocal(result);
  }

  /**
   * Response headers of the attempt in flight: retried (the attempt then reads its small body to
   * the end so the connection is reused), or sent downstream. Returns whether the body goes
   * downstream.
   */
  onResponseStart(status: number, headers: Record<string, string | string[] | undefined>): boolean {
    this.tryTimer?.clear();
    this.report(status);
    if (this.tryRetry(status)) {
      this.endAttempt();
      return false;
    }
    this.releaseRetrySlot();
    if (this.retriesDone > 0 && this.retry !== null && shouldRetry(this.retry, status)) this.flag('URX');
    this.replay?.stopBuffering();
    if (this.facts !== null) this.facts.bytesSent = 0;
    this.res.writeHead(status, withAddedHeaders(this.res, responseHeaders(headers)));
    return true;
  }

  /** The upstream body ended: so does the downstream response, and the exchange. */
  onResponseEnd(): void {
    this.inFlight = null;
    this.finish();
    this.res.end();
  }

  /** The upstream failed after the response started: the downstream response is cut. */
  onResponseAbort(): void {
    this.inFlight = null;
    this.finish();
    this.flag('UC');
    this.res.destroy();
  }

  failLocal(result: Exclude<UpstreamResult, number>): void {
    this.flag(result === 'connect-failure' ? 'UF' : result === 'timeout' ? 'UT' : 'UC');
    if (this.retriesDone > 0) this.flag('URX');
    if (result === 'connect-failure') localReply(this.res, 503, UPSTREAM_CONNECT_FAILURE);
    else if (result === 'timeout') localReply(this.res, 504, 'upstream request timeout');
    else localReply(this.res, 503, UPSTREAM_RESET);
  }

  /** The per-try timer is cleared whenever its attempt ends, so it always means the current one. */
  onTryTimeout(): void {
    if (this.done) return;
    this.cancelAttempt();
    this.report('timeout');
    this.endAttempt();
    if (this.tryRetry('timeout')) return;
    this.finish();
    this.flag('UT');
    if (this.retriesDone > 0) this.flag('URX');
    localReply(this.res, 504, 'upstream request timeout');
  }

  onRouteTimeout(): void {
    if (this.done) return;
    this.cancelAttempt();
    this.report('timeout');
    this.finish();
    this.flag('UT');
    localReply(this.res, 504, 'upstream request timeout'); // destroys res when headers went out
  }

  /**
   * The body outgrew the retry buffer: no more retries (Envoy's `retry_or_shadow_abandoned`).
   * An attempt in flight goes on streaming; in a back-off there is none to continue, so the
   * request ends with Envoy's 507.
   */
  onBodyOverflow(): void {
    this.cluster.retryOrShadowAbandoned++;
    this.retry = null;
    if (this.backoffTimer === null || this.done) return;
    clearTimeout(this.backoffTimer);
    this.backoffTimer = null;
    this.finish();
    localReply(this.res, 507, 'exceeded request buffer limit while retrying upstream');
  }

  onDownstreamClose(): void {
    if (this.done) return;
    this.cancelAttempt();
    this.report('reset');
    this.finish();
  }

  /** Adds an Envoy response flag to the request's facts (once). */
  flag(f: ResponseFlag): void {
    const facts = this.facts;
    if (facts !== null && !facts.flags.includes(f)) facts.flags.push(f);
  }

  /** Ends the exchange: timers off, host and slots given back, the body let go. Idempotent. */
  finish(): void {
    if (this.done) return;
    this.done = true;
    this.routeTimer?.clear();
    this.tryTimer?.clear();
    if (this.backoffTimer !== null) clearTimeout(this.backoffTimer);
    this.backoffTimer = null;
    this.cancelAttempt();
    this.endAttempt();
    this.releaseRetrySlot();
    this.replay?.close();
    this.cluster.circuit.releaseRequest();
  }
}
