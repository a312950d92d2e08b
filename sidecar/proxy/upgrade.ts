/**
 * HTTP/1.1 upgrade pass-through (WebSocket), as Envoy's router does it for an upgrade type
 * listed in the HttpConnectionManager's `upgrade_configs`:
 *
 *   upgrade(req, socket, head, table, allowed)
 *     → Upgrade type not in `allowed`            403 Forbidden, empty body (Envoy's `upgrade_failed`)
 *     → table.match(Host, url, method)           null: 404 "no route"; redirect / direct: answered here
 *     → cluster → circuit.tryAcquireRequest()    503 "cluster not found" / "upstream overflow"
 *     → cluster.pick()                           null: 503 "no healthy upstream"
 *     → a new HTTP/1.1 connection to the host (never pooled) with the request head: headers as
 *       the forwarder sends them (hop-by-hop ones dropped, x-forwarded-*, x-request-id) plus
 *       `connection: Upgrade` and the client's `upgrade`
 *     → upstream 101: relayed, then the two sockets piped both ways
 *       any other status: relayed (`connection: close`), body and all, then both closed
 *       no answer (connect failure, reset): 503 as Envoy ("upstream connect error or disconnect/reset before headers…");
 *       the route timeout before the response head: 504 "upstream request timeout"
 *
 * Once upgraded the connection is bytes: no route timeout (Envoy's applies until the
 * response head only), backpressure by stream.pipe, a FIN on one side is passed to the other
 * (both sockets allow half-open), an error or reset on one side destroys the other. The
 * cluster's request slot (circuit breaker) is held until both sockets have closed, and so is
 * the host's active request count; the upstream's outcome (101, another status, or how it
 * failed) is reported to outlier detection once.
 *
 * The upstream connection is always HTTP/1.1: a cluster with HTTP/2 protocol options gets an
 * HTTP/1.1 upgrade too (Envoy would use extended CONNECT, RFC 8441, which is not done here).
 * Local replies and relayed non-101 responses carry `connection: close`: the downstream
 * connection is not reused after an upgrade request.
 */
import { request as httpRequest, STATUS_CODES, type ClientRequest, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { MatchedRoute, RouteTable } from '../routing/route-table.ts';
import type { Host } from '../upstream/host.ts';
import type { UpstreamResult } from '../upstream/outlier-detector.ts';
import type { UpstreamCluster } from '../upstream/upstream-cluster.ts';
import { classifyUpstreamError } from '../upstream/upstream-result.ts';
import { routeToCluster } from './route-target.ts';
import { upstreamHeaders } from './upstream-headers.ts';
import { responseHeaders } from './hop-by-hop.ts';
import { UPSTREAM_CONNECT_FAILURE, UPSTREAM_RESET } from './local-reply.ts';
import { factsOfSocket } from '../telemetry/request-facts.ts';

/** What the inbound listener lets through to the workload, as Istio's inbound HttpConnectionManager. */
export const INBOUND_UPGRADE_TYPES: readonly string[] = ['websocket'];

/** After one side of an upgraded connection closed, how long the other may take to flush and close, ms. */
export const UPGRADE_LINGER_MS = 1000;

export interface UpgraderOptions {
  /** The cluster by name, as the current snapshot has it; undefined when unknown. */
  getCluster(name: string): UpstreamCluster | undefined;
  /** [0, 1); weighted cluster picks. Default Math.random. */
  readonly random?: () => number;
}

export interface Upgrader {
  /**
   * Routes and relays one HTTP/1.1 upgrade request (Node's 'upgrade' event) on its raw
   * socket. `allowed` lists the upgrade types (lowercase) the listener's HCM enables;
   * `respond` is told the status sent downstream, once. Never throws for request-level
   * failures; always ends or destroys `socket`.
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, table: RouteTable, allowed: readonly string[], respond: (status: number) => void): void;
}

/** A response head with `connection: close`, written on the raw socket. */
function head(status: number, headers: ReadonlyArray<readonly [string, string]>, reason = STATUS_CODES[status] ?? ''): string {
  let out = `HTTP/1.1 ${status} ${reason}\r\n`;
  for (const [name, value] of headers) out += `${name}: ${value}\r\n`;
  return `${out}\r\n`;
}

/** Ends `socket` (after `data`), and destroys it if the peer has not closed within UPGRADE_LINGER_MS. */
function endAndLinger(socket: Duplex): void {
  const timer = setTimeout(() => socket.destroy(), UPGRADE_LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.end();
}

/**
 * Answers an upgrade request on its raw socket with `status` (text body, `connection: close`)
 * and closes it; `respond` is told the status.
 */
export function refuseUpgrade(socket: Duplex, respond: (status: number) => void, status: number, body: string): void {
  localReply(socket, respond, status, body);
}

function localReply(socket: Duplex, respond: (status: number) => void, status: number, body: string | Uint8Array | null, extra: ReadonlyArray<readonly [string, string]> = []): void {
  respond(status);
  const bytes = body === null ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
  const headers: Array<readonly [string, string]> = [...extra];
  if (bytes > 0) headers.push(['content-type', 'text/plain']);
  headers.push(['content-length', String(bytes)], ['connection', 'close']);
  if (socket.destroyed) return;
  const facts = factsOfSocket(socket);
  if (facts !== undefined) facts.bytesSent = bytes;
  socket.write(head(status, headers));
  if (body !== null && bytes > 0) socket.write(body);
  endAndLinger(socket);
}

/** Builds the upgrade relay over a cluster lookup. */
export function createUpgrader(options: UpgraderOptions): Upgrader {
  const getCluster = options.getCluster;
  const random = options.random ?? Math.random;

  function upgrade(req: IncomingMessage, socket: Duplex, first: Buffer, table: RouteTable, allowed: readonly string[], respond: (status: number) => void): void {
    const type = (req.headers.upgrade ?? '').trim().toLowerCase();
    if (!allowed.includes(type)) {
      localReply(socket, respond, 403, null);
      return;
    }
    let authority = req.headers.host ?? '';
    let path = req.url ?? '/';
    if (!path.startsWith('/')) {
      // Absolute form: the workload uses the sidecar as its HTTP proxy.
      let url: URL | null = null;
      try {
        url = new URL(path);
      } catch {
        // Refused below.
      }
      if (url === null || (url.protocol !== 'http:' && url.protocol !== 'ws:')) {
        localReply(socket, respond, 400, 'bad request target');
        return;
      }
      authority = url.host;
      path = `${url.pathname}${url.search}`;
    }
    const scheme = (socket as TLSSocket).encrypted === true ? 'https' : 'http';
    const target = routeToCluster(table, { authority, path, method: req.method ?? 'GET', headers: req.headers, scheme }, getCluster, random, (status, body, location) => {
      localReply(socket, respond, status, body, location === null ? [] : [['location', location]]);
    });
    if (target === null) return;
    const { route, cluster } = target;
    const host = cluster.pick();
    if (host === null) {
      cluster.circuit.releaseRequest();
      localReply(socket, respond, 503, 'no healthy upstream');
      return;
    }
    new UpgradeExchange(req, socket, first, cluster, host, route, authority, path, type, respond).start();
  }

  return { upgrade };
}

/** One upgrade request's trip upstream and, after a 101, the relayed connection. */
class UpgradeExchange {
  readonly down: Duplex;
  /** Bytes the client sent after its request head, for the upstream once upgraded. */
  readonly first: Buffer;
  readonly cluster: UpstreamCluster;
  readonly host: Host;
  readonly route: MatchedRoute;
  readonly respond: (status: number) => void;
  readonly upReq: ClientRequest;
  up: Duplex | null = null;
  /** The response head has arrived (or the exchange failed before it). */
  answered = false;
  /** The outcome to report once the exchange is over; null until known. */
  result: UpstreamResult | null = null;
  routeTimer: ReturnType<typeof setTimeout> | null = null;
  connectTimer: ReturnType<typeof setTimeout> | null = null;
  downClosed = false;
  upClosed = false;
  done = false;

  constructor(req: IncomingMessage, down: Duplex, first: Buffer, cluster: UpstreamCluster, host: Host, route: MatchedRoute, authority: string, path: string, type: string, respond: (status: number) => void) {
    this.down = down;
    this.first = first;
    this.cluster = cluster;
    this.host = host;
    this.route = route;
    this.respond = respond;
    const facts = factsOfSocket(down);
    if (facts !== undefined) {
      if (route.name !== '') facts.route = route.name;
      facts.cluster = cluster.config.name;
      facts.upstreamHost = host.key;
      facts.attempts = 1;
    }
    const headers = upstreamHeaders(req, authority, route.hostRewriteLiteral);
    headers.push('connection', 'Upgrade', 'upgrade', req.headers.upgrade ?? type);
    const connectTimeoutMs = cluster.config.connectTimeoutMs;
    this.upReq = httpRequest({
      host: host.address,
      port: host.port,
      method: req.method ?? 'GET',
      path: route.rewritePath(path),
      headers,
      setHost: false,
      agent: false,
      // Half-open, so a FIN from one side does not end the other direction.
      createConnection: () => connect({ host: host.address, port: host.port, allowHalfOpen: true }),
    });
    if (connectTimeoutMs > 0) {
      this.connectTimer = setTimeout(() => this.fail('connect-failure'), connectTimeoutMs);
    }
  }

  start(): void {
    const down = this.down;
    const upReq = this.upReq;
    this.cluster.startRequest(this.host);
    if (this.route.timeoutMs > 0) this.routeTimer = setTimeout(() => this.fail('timeout'), this.route.timeoutMs);
    upReq.once('socket', (s: Socket) => {
      if (s.connecting) s.once('connect', () => this.clearConnectTimer());
      else this.clearConnectTimer();
    });
    upReq.on('error', (err) => this.fail(classifyUpstreamError(err)));
    upReq.once('upgrade', (res: IncomingMessage, up: Duplex, upHead: Buffer) => this.onUpgrade(res, up, upHead));
    upReq.once('response', (res: IncomingMessage) => this.onResponse(res));
    down.on('error', () => this.destroyBoth());
    down.once('close', () => {
      this.downClosed = true;
      if (!this.answered) this.fail('reset');
      else this.onSideClosed(this.up);
    });
    upReq.end();
  }

  clearConnectTimer(): void {
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
  }

  /** The response head arrived: no more timeouts. */
  answer(): void {
    this.answered = true;
    this.clearConnectTimer();
    if (this.routeTimer !== null) clearTimeout(this.routeTimer);
    this.routeTimer = null;
  }

  onUpgrade(res: IncomingMessage, up: Duplex, upHead: Buffer): void {
    if (this.answered) {
      up.destroy();
      return;
    }
    this.answer();
    this.result = 101;
    this.up = up;
    const down = this.down;
    // Telemetry: the bytes relayed each way (a field increment per chunk).
    const facts = factsOfSocket(down);
    if (facts !== undefined) {
      facts.bytesSent = upHead.length;
      facts.bytesReceived = this.first.length;
      up.on('data', (c: Buffer) => (facts.bytesSent += c.length));
      down.on('data', (c: Buffer) => (facts.bytesReceived += c.length));
    }
    up.on('error', () => this.destroyBoth());
    up.once('close', () => {
      this.upClosed = true;
      this.onSideClosed(down);
    });
    if (down.destroyed) {
      up.destroy();
      return;
    }
    const headers: Array<readonly [string, string]> = [];
    const raw = res.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const lower = raw[i]!.toLowerCase();
      if (lower === 'keep-alive' || lower === 'proxy-connection' || lower === 'transfer-encoding' || lower === 'content-length') continue;
      headers.push([raw[i]!, raw[i + 1]!]);
    }
    this.respond(101);
    down.write(head(101, headers, res.statusMessage || 'Switching Protocols'));
    if (upHead.length > 0) down.write(upHead);
    if (this.first.length > 0) up.write(this.first);
    // pipe(): backpressure both ways, and end() on the other side at a FIN.
    up.pipe(down);
    down.pipe(up);
  }

  onResponse(res: IncomingMessage): void {
    if (this.answered) {
      res.destroy();
      return;
    }
    this.answer();
    const status = res.statusCode ?? 502;
    this.result = status;
    const down = this.down;
    const headers = Object.entries(responseHeaders(res.headers)).flatMap(([name, v]) => (Array.isArray(v) ? v.map((x) => [name, x] as const) : [[name, v] as const]));
    headers.push(['connection', 'close']);
    this.respond(status);
    res.on('error', () => this.destroyBoth());
    res.once('close', () => {
      this.upClosed = true;
      if (!res.complete) down.destroy();
      this.maybeFinish();
    });
    if (down.destroyed) {
      res.destroy();
      return;
    }
    // Without content-length the body is delimited by the close.
    down.write(head(status, headers, res.statusMessage));
    res.pipe(down, { end: false });
    res.once('end', () => endAndLinger(down));
  }

  /** Fails before the response head: the outcome reported, a local reply sent (or the client gone). */
  fail(result: Exclude<UpstreamResult, number>): void {
    if (this.answered || this.done) return;
    this.answer();
    this.result = result;
    this.upReq.destroy();
    this.upClosed = true;
    if (this.downClosed || this.down.destroyed) {
      this.maybeFinish();
      return;
    }
    if (result === 'connect-failure') localReply(this.down, this.respond, 503, UPSTREAM_CONNECT_FAILURE);
    else if (result === 'timeout') localReply(this.down, this.respond, 504, 'upstream request timeout');
    else localReply(this.down, this.respond, 503, UPSTREAM_RESET);
    this.maybeFinish();
  }

  /** One side of the relayed connection closed: the other gets a FIN and a little time to flush. */
  onSideClosed(other: Duplex | null): void {
    if (other !== null && !other.destroyed) endAndLinger(other);
    this.maybeFinish();
  }

  destroyBoth(): void {
    this.down.destroy();
    this.up?.destroy();
    if (!this.answered) this.fail('reset');
  }

  /** Over once both sides have closed: the outcome reported, the request slot given back. */
  maybeFinish(): void {
    if (this.done || !this.downClosed || !this.upClosed) return;
    this.done = true;
    this.clearConnectTimer();
    if (this.routeTimer !== null) clearTimeout(this.routeTimer);
    this.cluster.reportResult(this.host, this.result ?? 'reset');
    this.cluster.circuit.releaseRequest();
  }
}
