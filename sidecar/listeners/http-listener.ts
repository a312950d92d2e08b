/**
 * One of the sidecar's HTTP/1.1 listeners (inbound, outbound): a node:http server that
 * counts requests and response code classes, knows how many requests are in flight, and
 * drains: stop accepting, let the requests in flight finish (up to a deadline), then close
 * every connection.
 *
 * Malformed requests are refused as Envoy's HTTP/1 codec does: Node's strict parser (llhttp;
 * `insecureHTTPParser` stays off) rejects bad header names and values, conflicting
 * Content-Length / Transfer-Encoding, duplicate Content-Length, unknown or non-final
 * Transfer-Encoding codings, bad chunk sizes and bad request lines, and emits 'clientError';
 * HTTP/0.9 requests (which llhttp accepts) and HTTP/1.1 requests without Host are refused here.
 * The listener answers `400 Bad Request` (`431 Request Header Fields Too Large` past
 * `maxHeaderBytes`, `408 Request Timeout` past the headers / request timeout) with
 * `connection: close` and a short text body, then closes the connection: it half-closes
 * after the reply and drops the socket when the peer closes too or after `LINGER_MS`
 * (Envoy's delayed close), so the client reads the reply instead of a reset. Responses to
 * requests received before the malformed bytes (pipelined, keep-alive) finish first; when
 * the malformed bytes belong to a request whose response already started, or the socket is no
 * longer writable, the connection is closed without a reply.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** Envoy's default `max_request_headers_kb` (60 KiB): the request line and headers together. */
export const DEFAULT_MAX_HEADER_BYTES = 60 * 1024;
/** Until the request headers are complete, ms (Node's default; Envoy has none by default). */
export const DEFAULT_HEADERS_TIMEOUT_MS = 60_000;
/** Until the whole request is received, ms; 0 disables (Node's default 300 s; Envoy has none by default). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000;
/** After a rejection reply, how long the half-closed socket waits for the peer to close, ms (Envoy's `delayed_close_timeout`). */
export const LINGER_MS = 1000;

export interface HttpListenerOptions {
  /** Largest request line plus header block accepted, bytes; larger gets 431. Default DEFAULT_MAX_HEADER_BYTES. */
  readonly maxHeaderBytes?: number;
  /** Default DEFAULT_HEADERS_TIMEOUT_MS; past it the client gets 408 and the connection closes. */
  readonly headersTimeoutMs?: number;
  /** Default DEFAULT_REQUEST_TIMEOUT_MS; past it the client gets 408 (unless a response started) and the connection closes. Node requires it ≥ headersTimeoutMs. */
  readonly requestTimeoutMs?: number;
}

/** What the listener knows of one connection, for rejecting malformed bytes at the right point. */
interface Conn {
  /** Responses not yet finished, in request order. */
  readonly pending: Set<ServerResponse>;
  lastReq: IncomingMessage | null;
  lastRes: ServerResponse | null;
  /** Set while a rejection waits for earlier responses to finish. */
  onSettled: (() => void) | null;
}

const REASONS: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };
const BODIES: Record<number, string> = { 400: 'bad request', 408: 'request timeout', 431: 'request header fields too large' };

/** The status a parser / socket error is answered with. */
function rejectStatus(err: Error & { code?: string }): number {
  if (err.code === 'HPE_HEADER_OVERFLOW') return 431;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return 400;
}

function rejectReply(status: number): string {
  const body = BODIES[status]!;
  return `HTTP/1.1 ${status} ${REASONS[status]!}\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
}

/** Counters of one listener, for /stats. */
export interface ListenerStats {
  /** Requests received. */
  requests: number;
  /** Responses sent, by code class: 1xx..5xx; `reset` for exchanges that ended without a complete response. */
  responses: Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx' | 'reset', number>;
  /** Requests in flight now. */
  inFlight: number;
  /** Malformed requests and timeouts refused by the listener itself (400 / 408 / 431); not in `requests`. */
  rejected: number;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

export class HttpListener {
  readonly name: string;
  readonly #server: Server;
  readonly #stats: ListenerStats = { requests: 0, responses: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0, reset: 0 }, inFlight: 0, rejected: 0 };
  readonly #conns = new WeakMap<Socket, Conn>();
  /** Sockets already being rejected: later parser errors on them are ignored. */
  readonly #rejecting = new WeakSet<Socket>();
  #handler: RequestHandler | null = null;
  #draining = false;
  #idle: Array<() => void> = [];
  #closed: Promise<void> | null = null;

  /** `handler` may be set later (setHandler); until then requests get 503 "not ready". */
  constructor(name: string, handler: RequestHandler | null = null, options: HttpListenerOptions = {}) {
    this.name = name;
    this.#handler = handler;
    const headersTimeout = options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
    const requestTimeout = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const shortest = Math.min(...[headersTimeout, requestTimeout].filter((t) => t > 0), 120_000);
    this.#server = createServer({
      maxHeaderSize: options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
      headersTimeout,
      requestTimeout,
      // Node's own bare 400 for a missing Host is replaced by #onRequest's, with a body.
      requireHostHeader: false,
      insecureHTTPParser: false,
      // Node checks the two timeouts every 30 s by default; check often enough to honour them.
      connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(shortest / 4))),
    }, (req, res) => this.#onRequest(req, res));
    this.#server.on('connection', (socket: Socket) => {
      this.#conns.set(socket, { pending: new Set(), lastReq: null, lastRes: null, onSettled: null });
    });
    this.#server.on('clientError', (err: Error, socket: Socket) => this.#onClientError(err, socket));
  }

  setHandler(handler: RequestHandler): void {
    this.#handler = handler;
  }

  /** Binds; resolves with the port actually bound (the address may ask for 0). */
  listen(address: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#server.once('error', onError);
      this.#server.listen(port, address, () => {
        this.#server.off('error', onError);
        resolve((this.#server.address() as AddressInfo).port);
      });
    });
  }

  get listening(): boolean {
    return this.#server.listening;
  }

  /** The bound port; 0 when not listening. */
  get port(): number {
    const a = this.#server.address();
    return a !== null && typeof a === 'object' ? a.port : 0;
  }

  stats(): ListenerStats {
    return { ...this.#stats, responses: { ...this.#stats.responses } };
  }

  /**
   * Stops accepting connections and waits for the requests in flight to finish, at most
   * `deadlineMs`; then closes every connection. Resolves true when everything in flight
   * finished in time. Idempotent (a second call waits for the same close).
   */
  async drain(deadlineMs: number): Promise<boolean> {
    this.#draining = true;
    if (this.#closed === null) {
      this.#closed = this.#server.listening
        ? new Promise<void>((resolve) => this.#server.close(() => resolve()))
        : Promise.resolve();
    }
    this.#server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    const finished = this.#stats.inFlight === 0 ? true : await Promise.race([
      new Promise<boolean>((resolve) => this.#idle.push(() => resolve(true))),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), deadlineMs);
      }),
    ]);
    clearTimeout(timer);
    this.#server.closeAllConnections();
    await this.#closed;
    return finished;
  }

  /** Closes at once: connections included, requests in flight are cut. */
  close(): Promise<void> {
    return this.drain(0).then(() => undefined);
  }

  /**
   * A parser error (or headers / request timeout) on `socket`. The bytes in error belong to
   * the last request when that one is incomplete, else to a new one; responses to the
   * complete requests before them are let finish, then the reply goes out and the connection
   * closes.
   */
  #onClientError(err: Error, socket: Socket): void {
    if (this.#rejecting.has(socket)) return;
    this.#rejecting.add(socket);
    if (!socket.writable || (err as { code?: string }).code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    this.#stats.rejected++;
    const status = rejectStatus(err);
    const conn = this.#conns.get(socket);
    const own = conn !== undefined && conn.lastReq !== null && !conn.lastReq.complete ? conn.lastRes : null;
    const settled = () => conn === undefined || [...conn.pending].every((r) => r === own);
    const reply = () => {
      if (conn !== undefined) conn.onSettled = null;
      if (socket.destroyed) return;
      if (!socket.writable || (own !== null && own.headersSent)) {
        this.#linger(socket, null);
        return;
      }
      this.#linger(socket, rejectReply(status));
    };
    if (settled()) {
      reply();
      return;
    }
    conn!.onSettled = () => {
      if (settled()) reply();
    };
  }

  /** Sends `data` (if any), half-closes, and drops the socket once the peer closes or after LINGER_MS. */
  #linger(socket: Socket, data: string | null): void {
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    const drop = () => socket.destroy();
    if (socket.readableEnded) {
      if (data === null) socket.end(drop);
      else socket.end(data, drop);
      return;
    }
    socket.once('end', drop);
    if (data === null) socket.end();
    else socket.end(data);
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const conn = this.#conns.get(req.socket);
    if (conn !== undefined) {
      conn.pending.add(res);
      conn.lastReq = req;
      conn.lastRes = res;
      const settle = () => {
        conn.pending.delete(res);
        conn.onSettled?.();
      };
      res.once('finish', settle);
      res.once('close', settle);
    }
    const s = this.#stats;
    // llhttp takes `GET /` as HTTP/0.9; Envoy refuses it, and an HTTP/1.1 request needs a Host.
    if (req.httpVersionMajor !== 1 || (req.httpVersionMinor === 1 && req.headers.host === undefined)) {
      s.rejected++;
      this.#rejecting.add(req.socket);
      const body = BODIES[400]!;
      res.writeHead(400, { connection: 'close', 'content-type': 'text/plain', 'content-length': body.length });
      res.end(body);
      return;
    }
    s.requests++;
    s.inFlight++;
    // While draining, no connection is kept for another request.
    if (this.#draining) res.shouldKeepAlive = false;
    let done = false;
    const end = (complete: boolean) => {
      if (done) return;
      done = true;
      s.inFlight--;
      if (complete) {
        const cls = `${Math.floor(res.statusCode / 100)}xx` as keyof ListenerStats['responses'];
        if (cls in s.responses) s.responses[cls]++;
      } else {
        s.responses.reset++;
      }
      if (s.inFlight === 0 && this.#idle.length > 0) for (const f of this.#idle.splice(0)) f();
    };
    res.once('finish', () => end(true));
    res.once('close', () => end(res.writableFinished));
    const handler = this.#handler;
    if (handler === null) {
      res.writeHead(503, { 'content-type': 'text/plain', 'content-length': 9 });
      res.end('not ready');
      return;
    }
    handler(req, res);
  }
}
