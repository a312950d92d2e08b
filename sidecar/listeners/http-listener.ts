/**
 * One of the sidecar's listeners (inbound, outbound, admin): HTTP/1.1 and HTTP/2 on one port,
 * as Envoy's HttpConnectionManager with `codec_type: AUTO`. It counts requests and response
 * code classes, knows how many requests are in flight, and drains: stop accepting, let the
 * requests in flight finish (up to a deadline), then close every connection.
 *
 *   accept ─┬─ plaintext: sniff the first 24 bytes ─┬─ "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" → node:http2 server (h2c)
 *           │                                      └─ anything else (at the first byte that differs) → node:http server
 *           └─ TLS: ALPN "h2" → node:http2 server; "http/1.1" or no ALPN → node:https
 *
 * With `tls`, the first byte of each raw connection is read first (bounded by the headers
 * timeout), as Envoy's `tls_inspector` does for a listener in PERMISSIVE mode:
 *
 *   accept ─┬─ 0x16 (TLS handshake record) → unshift → node:tls connection listener → the TLS path above
 *           └─ anything else ─┬─ plaintext 'refuse' (STRICT, the default) → closed at once, `plaintextRefused` counted
 *                             └─ plaintext 'accept' (PERMISSIVE) → the plaintext path above (a node:http
 *                                server that never listens serves HTTP/1), `plaintext` counted
 *
 * `connectionSecurity(req)` tells a handler whether the request came over mutual TLS.
 *
 * The node:http (or, with `tls`, node:https) server is the one that listens: its own
 * connection listener is taken off and called by the sniffer for HTTP/1 sockets (after the
 * sniffed bytes are unshifted), so Node's HTTP/1 machinery (timeouts, closeIdleConnections)
 * works unchanged; HTTP/2 sockets are emitted to an http2 server that never listens itself.
 * Both hand (req, res) to one handler: http.IncomingMessage / ServerResponse or the http2
 * compat Http2ServerRequest / Http2ServerResponse.
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
 * longer writable, the connection is closed without a reply. Where Node accepts what Envoy's
 * defaults refuse, the listener refuses it the same way: HTTP/1.0 (`426 Upgrade Required`,
 * Envoy's `accept_http_10: false`), a Transfer-Encoding other than `chunked`
 * (`501 Not Implemented`), more than MAX_HEADERS_COUNT headers (`431`).
 *
 * HTTP/2 framing errors are nghttp2's: a protocol error ends the session with GOAWAY, a bad
 * stream is reset. Session and stream 'error's are handled here so nothing reaches the
 * process. nghttp2 resets (PROTOCOL_ERROR) a request without `:authority` or `host`; one that
 * would still get here gets 400.
 *
 * Upgrades: an HTTP/1.1 request with `Connection: upgrade` and an `Upgrade` other than `h2c`
 * goes to the upgrade handler (setUpgradeHandler) with the raw socket; without one it is an
 * ordinary request (the forwarder drops the Upgrade header). `Upgrade: h2c` is never an
 * upgrade: as Envoy, the request is served as HTTP/1.1.
 */
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { constants as h2constants, createServer as createHttp2Server, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from 'node:http2';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { sniffFirstByte, TLS_HANDSHAKE_RECORD } from './first-byte-sniffer.ts';
import { sniffPreface } from './preface-sniffer.ts';
import { MAX_HEADERS_COUNT, refusalBody, refusalStatus, rejectReply, rejectStatus } from './refusals.ts';

export { MAX_HEADERS_COUNT };

/** Envoy's default `max_request_headers_kb` (60 KiB): the request line and headers together. */
export const DEFAULT_MAX_HEADER_BYTES = 60 * 1024;
/** Until the request headers are complete, ms (Node's default; Envoy has none by default). */
export const DEFAULT_HEADERS_TIMEOUT_MS = 60_000;
/** Until the whole request is received, ms; 0 disables (Node's default 300 s; Envoy has none by default). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000;
/** After a rejection reply, how long the half-closed socket waits for the peer to close, ms (Envoy's `delayed_close_timeout`). */
export const LINGER_MS = 1000;

const NGHTTP2_NO_ERROR = h2constants.NGHTTP2_NO_ERROR;

export interface HttpListenerTlsOptions {
  /** PEM private key. */
  readonly key: string | Buffer;
  /** PEM certificate chain. */
  readonly cert: string | Buffer;
  /**
   * PEM trust bundle. With it the listener requires mutual TLS: a client must present a
   * certificate chaining to one of these roots, or the handshake fails.
   */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /**
   * Checks a verified client certificate after the handshake (e.g. its SPIFFE ID's trust
   * domain): null accepts it, a string refuses it (the connection is closed, `tlsRefused`
   * counted). Only with `ca`.
   */
  readonly verifyPeer?: (cert: PeerCertificate) => string | null;
}

export interface HttpListenerOptions {
  /** Largest request line plus header block accepted, bytes; larger gets 431. Also HTTP/2's SETTINGS_MAX_HEADER_LIST_SIZE. Default DEFAULT_MAX_HEADER_BYTES. */
  readonly maxHeaderBytes?: number;
  /** Default DEFAULT_HEADERS_TIMEOUT_MS; past it the client gets 408 and the connection closes. Also bounds the preface sniff. */
  readonly headersTimeoutMs?: number;
  /** Default DEFAULT_REQUEST_TIMEOUT_MS; past it the client gets 408 (unless a response started) and the connection closes. Node requires it ≥ headersTimeoutMs. */
  readonly requestTimeoutMs?: number;
  /** Serve HTTP/2 besides HTTP/1.1 (h2c by prior knowledge; h2 by ALPN with `tls`). Default true. */
  readonly http2?: boolean;
  /** Terminate TLS with this key and certificate; ALPN offers `h2` (when http2) and `http/1.1`. Default: plaintext. */
  readonly tls?: HttpListenerTlsOptions;
  /**
   * Only with `tls`: what becomes of a connection that does not start with a TLS handshake.
   * `refuse` (default; the mesh's STRICT mTLS) closes it at once; `accept` (PERMISSIVE) serves
   * it as plaintext HTTP/1.1 or h2c. Changeable at run time with setPlaintext.
   */
  readonly plaintext?: PlaintextPolicy;
}

/** What a TLS listener does with a plaintext connection: see HttpListenerOptions.plaintext. */
export type PlaintextPolicy = 'refuse' | 'accept';

/** How a request reached the listener: mutual TLS (client certificate verified), server-only TLS, or cleartext. */
export type ConnectionSecurity = 'mtls' | 'tls' | 'plaintext';

/**
 * Whether `req` came over mutual TLS (a client certificate verified against the listener's
 * `ca`), TLS without a client certificate, or plaintext (including PERMISSIVE plaintext on a
 * TLS listener). HTTP/1 and HTTP/2 requests alike.
 */
export function connectionSecurity(req: DownstreamRequest): ConnectionSecurity {
  const socket = req.socket as TLSSocket | null;
  if (socket === null || socket.encrypted !== true) return 'plaintext';
  return socket.authorized === true ? 'mtls' : 'tls';
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

/** Key, certificate and (mTLS) trust bundle as node:tls takes them. */
function secureContextOptions(tls: HttpListenerTlsOptions): { key: string | Buffer; cert: string | Buffer; ca?: Array<string | Buffer>; requestCert: boolean; rejectUnauthorized: boolean } {
  const mutual = tls.ca !== undefined;
  return {
    key: tls.key,
    cert: tls.cert,
    ...(mutual ? { ca: Array.isArray(tls.ca) ? [...tls.ca] : [tls.ca as string | Buffer] } : {}),
    requestCert: mutual,
    rejectUnauthorized: mutual,
  };
}

/**
 * Whether an HTTP/1.1 request Node flagged as an upgrade (Connection: upgrade plus Upgrade)
 * is one for the upgrade handler: every protocol but `h2c`, which Envoy never upgrades to.
 */
function isUpgrade(req: IncomingMessage): boolean {
  const u = req.headers.upgrade;
  return u !== undefined && u.trim().toLowerCase() !== 'h2c';
}

/** Counters of one listener, for /stats. */
export interface ListenerStats {
  /** Requests received, HTTP/1 and HTTP/2, upgrades included. */
  requests: number;
  /** Responses sent, by code class: 1xx..5xx (a relayed 101 counts when the upgraded connection ends); `reset` for exchanges that ended without a complete response. */
  responses: Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx' | 'reset', number>;
  /** Requests in flight now (an upgraded connection until both its sides close). */
  inFlight: number;
  /** Malformed requests and timeouts refused by the listener itself (400 / 408 / 426 / 431 / 501); not in `requests`. */
  rejected: number;
  /**
   * TLS listeners: handshakes completed, of them resumed sessions, connections refused (failed
   * handshake or verifyPeer), plaintext connections served (`plaintext: 'accept'`) and
   * plaintext connections closed (`plaintext: 'refuse'`, or a client that sent nothing before
   * the headers timeout).
   */
  tls: { handshakes: number; resumed: number; refused: number; plaintext: number; plaintextRefused: number } | null;
}

/** A request as either server hands it over. */
export type DownstreamRequest = IncomingMessage | Http2ServerRequest;
/**
 * The matching response (ServerResponse for HTTP/1, Http2ServerResponse for HTTP/2), as what
 * the two have in common, so handlers write either the same way. On HTTP/2, connection-specific
 * headers (connection, keep-alive, transfer-encoding, upgrade…) must not be set: Node throws.
 */
export interface DownstreamResponse {
  statusCode: number;
  readonly headersSent: boolean;
  readonly writableFinished: boolean;
  writeHead(statusCode: number, headers?: OutgoingHttpHeaders): unknown;
  setHeader(name: string, value: number | string | readonly string[]): unknown;
  write(chunk: string | Uint8Array, callback?: (err?: Error | null) => void): boolean;
  end(callback?: () => void): unknown;
  end(chunk: string | Uint8Array, callback?: () => void): unknown;
  destroy(error?: Error): unknown;
  once(event: 'close' | 'finish', listener: () => void): unknown;
}

export type RequestHandler = (req: DownstreamRequest, res: DownstreamResponse) => void;

/**
 * Takes an HTTP/1.1 upgrade request and its raw socket (Node's 'upgrade' event: `head` holds
 * the bytes after the request head) and answers on the socket itself. `respond` is called once
 * with the status sent downstream, for the stats.
 */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer, respond: (status: number) => void) => void;

/** `res` is over: it no longer holds back a rejection waiting on this connection. */
function settle(conn: Conn | undefined, res: ServerResponse): void {
  if (conn === undefined) return;
  conn.pending.delete(res);
  conn.onSettled?.();
}

export class HttpListener {
  readonly name: string;
  readonly #server: Server;
  /** With `tls`: the node:http server (never listening) that serves plaintext HTTP/1 connections; else null. */
  readonly #plain: Server | null;
  /** HTTP/1 connection listeners of #server (after TLS) and of #plain, called once a connection is known to be HTTP/1. */
  readonly #h1: Array<(socket: Socket) => void>;
  readonly #plainH1: Array<(socket: Socket) => void>;
  #plaintext: PlaintextPolicy;
  readonly #h2: Http2Server | null;
  readonly #stats: ListenerStats = { requests: 0, responses: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0, reset: 0 }, inFlight: 0, rejected: 0, tls: null };
  readonly #conns = new WeakMap<Socket, Conn>();
  /** Sockets already being rejected: later parser errors on them are ignored. */
  readonly #rejecting = new WeakSet<Socket>();
  /** Connections whose first bytes are still being read to tell HTTP/2 from HTTP/1. */
  readonly #sniffing = new Set<Socket>();
  readonly #sessions = new Set<ServerHttp2Session>();
  /** Upgraded (or upgrading) connections, cut at the drain deadline. */
  readonly #upgraded = new Set<Duplex>();
  readonly #headersTimeoutMs: number;
  #tls: HttpListenerTlsOptions | null;
  /** Told why a client certificate was refused (for the log); optional. */
  #onTlsRefused: ((reason: string, socket: Socket) => void) | null = null;
  #handler: RequestHandler | null = null;
  #upgradeHandler: UpgradeHandler | null = null;
  /** Asked at each accept (the overload manager): false closes the new connection at once; null admits all. */
  #connectionGate: (() => boolean) | null = null;
  /** Downstream connections open now (accepted and admitted, not yet closed). */
  #connections = 0;
  readonly #connectionClosed = (): void => {
    this.#connections--;
  };
  #draining = false;
  #idle: Array<() => void> = [];
  #closed: Promise<void> | null = null;

  /** `handler` may be set later (setHandler); until then requests get 503 "not ready". */
  constructor(name: string, handler: RequestHandler | null = null, options: HttpListenerOptions = {}) {
    this.name = name;
    this.#handler = handler;
    const maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    const headersTimeout = options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
    const requestTimeout = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#headersTimeoutMs = headersTimeout;
    const shortest = Math.min(...[headersTimeout, requestTimeout].filter((t) => t > 0), 120_000);
    const http2 = options.http2 ?? true;
    const common = {
      maxHeaderSize: maxHeaderBytes,
      headersTimeout,
      requestTimeout,
      // Node's own bare 400 for a missing Host is replaced by #onRequest's, with a body.
      requireHostHeader: false,
      insecureHTTPParser: false,
      // Node checks the two timeouts every 30 s by default; check often enough to honour them.
      connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(shortest / 4))),
      shouldUpgradeCallback: (req: IncomingMessage) => this.#upgradeHandler !== null && isUpgrade(req),
    };
    const onRequest = (req: IncomingMessage, res: ServerResponse) => this.#onRequest(req, res);
    const tls = options.tls;
    this.#tls = tls ?? null;
    if (tls !== undefined) this.#stats.tls = { handshakes: 0, resumed: 0, refused: 0, plaintext: 0, plaintextRefused: 0 };
    const plaintext = options.plaintext ?? 'refuse';
    if (plaintext !== 'refuse' && plaintext !== 'accept') throw new Error(`plaintext must be 'refuse' or 'accept', got ${JSON.stringify(plaintext)}`);
    if (tls === undefined && options.plaintext !== undefined) throw new Error(`listener ${name}: plaintext applies only with tls`);
    this.#plaintext = plaintext;
    this.#server = tls === undefined
      ? createServer(common, onRequest)
      : createHttpsServer({
        ...common,
        ...secureContextOptions(tls),
        ALPNProtocols: http2 ? ['h2', 'http/1.1'] : ['http/1.1'],
        // Session resumption: Node's default session tickets, valid 5 minutes (Envoy's default too).
        sessionTimeout: 300,
        // A client that starts a handshake and stalls is held no longer than one that sends nothing.
        handshakeTimeout: headersTimeout > 0 ? Math.min(headersTimeout, 120_000) : 120_000,
      }, onRequest);
    // One more than the limit is kept, so that "too many" is seen (Node drops the rest silently).
    this.#server.maxHeadersCount = MAX_HEADERS_COUNT + 1;
    // Node's HTTP/1 connection listener runs only once the connection is known to be HTTP/1.
    const event = tls === undefined ? 'connection' : 'secureConnection';
    this.#h1 = this.#server.listeners(event) as Array<(socket: Socket) => void>;
    this.#server.removeAllListeners(event);
    this.#server.on(event, (socket: Socket) => this.#onConnection(socket));
    this.#wireH1(this.#server);
    if (tls === undefined) {
      this.#plain = null;
      this.#plainH1 = this.#h1;
    } else {
      // Plaintext (PERMISSIVE) HTTP/1 is served by a node:http server that never listens; its
      // connection tracking (headers / request timeouts) starts with the listening one's.
      const plain = createServer(common, onRequest);
      plain.maxHeadersCount = MAX_HEADERS_COUNT + 1;
      this.#plainH1 = plain.listeners('connection') as Array<(socket: Socket) => void>;
      plain.removeAllListeners('connection');
      this.#wireH1(plain);
      this.#server.once('listening', () => plain.emit('listening'));
      this.#plain = plain;
      // node:tls's own connection listener (which wraps the socket) runs after the first-byte sniff.
      const tlsListeners = this.#server.listeners('connection') as Array<(socket: Socket) => void>;
      this.#server.removeAllListeners('connection');
      this.#server.on('connection', (socket: Socket) => this.#sniffTls(socket, tlsListeners));
    }
    if (tls !== undefined) {
      this.#server.on('tlsClientError', (_err: Error, socket: TLSSocket) => {
        this.#stats.tls!.refused++;
        socket.destroy();
      });
    }
    this.#h2 = http2 ? this.#createH2(maxHeaderBytes) : null;
  }

  /**
   * Swaps the key, certificate and trust bundle for new handshakes (certificate rotation);
   * connections already established keep theirs, and nothing is dropped.
   */
  setTls(tls: HttpListenerTlsOptions): void {
    if (this.#tls === null) throw new Error(`listener ${this.name} was not created with tls`);
    if ((this.#tls.ca === undefined) !== (tls.ca === undefined)) throw new Error(`listener ${this.name}: setTls cannot turn mutual TLS on or off`);
    (this.#server as HttpsServer).setSecureContext(secureContextOptions(tls));
    this.#tls = tls;
  }

  /**
   * Switches the plaintext policy of a TLS listener (STRICT ⇄ PERMISSIVE) for new connections;
   * plaintext connections already served are left alone.
   */
  setPlaintext(mode: PlaintextPolicy): void {
    if (this.#tls === null) throw new Error(`listener ${this.name} was not created with tls`);
    if (mode !== 'refuse' && mode !== 'accept') throw new Error(`plaintext must be 'refuse' or 'accept', got ${JSON.stringify(mode)}`);
    this.#plaintext = mode;
  }

  /** The plaintext policy now in force; null for a listener without tls. */
  get plaintext(): PlaintextPolicy | null {
    return this.#tls === null ? null : this.#plaintext;
  }

  setHandler(handler: RequestHandler): void {
    this.#handler = handler;
  }

  /** Called with the reason whenever verifyPeer refuses a client certificate. */
  onTlsRefused(listener: (reason: string, socket: Socket) => void): void {
    this.#onTlsRefused = listener;
  }

  /**
   * Asked at each new connection, before anything is read: false closes it at once (the
   * overload manager's stop-accepting action; sidecar/overload/). Null (the default) admits all.
   */
  setConnectionGate(gate: (() => boolean) | null): void {
    this.#connectionGate = gate;
  }

  /** Connections open now (raw TCP, admitted by the gate). */
  get connections(): number {
    return this.#connections;
  }

  /** Requests in flight now (as stats().inFlight, without the copy). */
  get inFlight(): number {
    return this.#stats.inFlight;
  }

  /** Upgrade requests (WebSocket) go to `handler`; without one they are ordinary requests. */
  setUpgradeHandler(handler: UpgradeHandler): void {
    this.#upgradeHandler = handler;
  }

  /**
   * Binds; resolves with the port actually bound (the address may ask for 0). `reusePort`
   * sets SO_REUSEPORT, so several processes (sidecar workers) share the port.
   */
  listen(address: string, port: number, options: { readonly reusePort?: boolean } = {}): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#server.once('error', onError);
      this.#server.listen({ port, host: address, reusePort: options.reusePort === true }, () => {
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
    const s = this.#stats;
    return { ...s, responses: { ...s.responses }, tls: s.tls === null ? null : { ...s.tls } };
  }

  /**
   * Stops accepting connections and waits for the requests in flight to finish, at most
   * `deadlineMs`; then closes every connection. HTTP/2 sessions get a GOAWAY at once (no new
   * streams; the streams in flight go on); idle HTTP/1 connections are closed at once, busy
   * ones after their response (`connection: close`). Resolves true when everything in flight
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
    this.#plain?.closeIdleConnections();
    for (const s of this.#sniffing) s.destroy();
    for (const session of this.#sessions) session.close();
    let timer: NodeJS.Timeout | undefined;
    const finished = this.#stats.inFlight === 0 ? true : await Promise.race([
      new Promise<boolean>((resolve) => this.#idle.push(() => resolve(true))),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), deadlineMs);
      }),
    ]);
    clearTimeout(timer);
    this.#server.closeAllConnections();
    if (this.#plain !== null) {
      this.#plain.closeAllConnections();
      // Never listening: close() only stops its connection-checking timer (and says ERR_SERVER_NOT_RUNNING).
      this.#plain.close(() => {});
    }
    for (const session of this.#sessions) session.destroy();
    // Their 'close' (which settles the stats) may come after the server's.
    const upgraded = [...this.#upgraded].map((s) => new Promise<void>((resolve) => {
      s.once('close', () => resolve());
      s.destroy();
    }));
    await Promise.all([this.#closed, ...upgraded]);
    return finished;
  }

  /** Closes at once: connections included, requests in flight are cut. */
  close(): Promise<void> {
    return this.drain(0).then(() => undefined);
  }

  #createH2(maxHeaderBytes: number): Http2Server {
    const h2 = createHttp2Server({ settings: { maxHeaderListSize: maxHeaderBytes } });
    h2.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => this.#onH2Request(req, res));
    h2.on('session', (session: ServerHttp2Session) => {
      this.#sessions.add(session);
      session.on('close', () => this.#sessions.delete(session));
      // A protocol error destroys the session (nghttp2 sent GOAWAY); nothing more to do.
      session.on('error', () => {});
      if (this.#draining) session.close();
    });
    h2.on('sessionError', () => {});
    h2.on('stream', (stream) => stream.on('error', () => {}));
    return h2;
  }

  /** Parser errors and upgrades of an HTTP/1 server (the listening one, or the plaintext one next to TLS). */
  #wireH1(server: Server): void {
    server.on('clientError', (err: Error, socket: Socket) => this.#onClientError(err, socket));
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket, head));
  }

  /**
   * A raw connection to a TLS listener: a TLS handshake record goes to node:tls (the byte read
   * is unshifted first, and node:tls feeds what the socket buffered to the handshake);
   * anything else is plaintext, served or closed by the plaintext policy.
   */
  #sniffTls(socket: Socket, tlsListeners: Array<(socket: Socket) => void>): void {
    if (this.#draining || !this.#admit(socket)) {
      socket.destroy();
      return;
    }
    this.#sniffing.add(socket);
    sniffFirstByte(socket, this.#headersTimeoutMs, (first) => {
      this.#sniffing.delete(socket);
      const st = this.#stats.tls!;
      if (first === null) {
        st.plaintextRefused++;
        return;
      }
      if (first === TLS_HANDSHAKE_RECORD) {
        for (const f of tlsListeners) f.call(this.#server, socket);
        return;
      }
      if (this.#plaintext === 'refuse') {
        st.plaintextRefused++;
        socket.destroy();
        return;
      }
      st.plaintext++;
      if (this.#h2 === null) {
        this.#toH1(socket, this.#plainH1, this.#plain!);
        socket.resume();
      } else {
        this.#sniff(socket, this.#plainH1, this.#plain!);
        socket.resume();
      }
    });
  }

  /** A new connection (after the TLS handshake with `tls`): to the HTTP/2 or the HTTP/1 server. */
  #onConnection(socket: Socket): void {
    // A TLS socket was admitted at accept (#sniffTls); a plaintext one is admitted here.
    if ((socket as TLSSocket).encrypted !== true && !this.#admit(socket)) {
      socket.destroy();
      return;
    }
    if ((socket as TLSSocket).encrypted === true) {
      if (!this.#acceptTls(socket as TLSSocket)) return;
      // TLS: ALPN decides; a client that offers no ALPN speaks HTTP/1.1.
      if (this.#h2 !== null && (socket as TLSSocket).alpnProtocol === 'h2') this.#toH2(socket);
      else this.#toH1(socket, this.#h1, this.#server);
      return;
    }
    if (this.#h2 === null) this.#toH1(socket, this.#h1, this.#server);
    else this.#sniff(socket, this.#h1, this.#server);
  }

  /** A new raw connection: asks the gate, and counts it while open when admitted. */
  #admit(socket: Socket): boolean {
    const gate = this.#connectionGate;
    if (gate !== null && !gate()) return false;
    this.#connections++;
    socket.once('close', this.#connectionClosed);
    return true;
  }

  /** Counts the handshake and applies verifyPeer; false when the peer is refused (socket destroyed). */
  #acceptTls(socket: TLSSocket): boolean {
    const st = this.#stats.tls!;
    st.handshakes++;
    if (socket.isSessionReused()) st.resumed++;
    const tls = this.#tls;
    const reason = tls?.verifyPeer !== undefined && tls.ca !== undefined ? tls.verifyPeer(socket.getPeerCertificate()) : null;
    if (reason === null) return true;
    st.refused++;
    this.#onTlsRefused?.(reason, socket);
    socket.destroy();
    return false;
  }

  #toH1(socket: Socket, h1: Array<(socket: Socket) => void>, server: Server): void {
    this.#conns.set(socket, { pending: new Set(), lastReq: null, lastRes: null, onSettled: null });
    for (const f of h1) f.call(server, socket);
  }

  #toH2(socket: Socket): void {
    this.#h2!.emit('connection', socket);
  }

  #sniff(socket: Socket, h1: Array<(socket: Socket) => void>, server: Server): void {
    this.#sniffing.add(socket);
    sniffPreface(socket, this.#headersTimeoutMs, (h2) => {
      this.#sniffing.delete(socket);
      if (h2 === null) return;
      if (h2) {
        this.#toH2(socket);
      } else {
        this.#toH1(socket, h1, server);
        socket.resume();
      }
    });
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
    }
    const s = this.#stats;
    const refusal = refusalStatus(req);
    if (refusal !== 0) {
      s.rejected++;
      this.#rejecting.add(req.socket);
      res.once('close', () => settle(conn, res));
      const body = refusalBody(refusal);
      res.writeHead(refusal, { connection: 'close', 'content-type': 'text/plain', 'content-length': body.length });
      res.end(body);
      return;
    }
    s.requests++;
    s.inFlight++;
    // While draining, no connection is kept for another request.
    if (this.#draining) res.shouldKeepAlive = false;
    // One listener per request (hot path): 'close' follows 'finish', or a cut connection.
    res.once('close', () => {
      settle(conn, res);
      this.#ended(res.writableFinished ? res.statusCode : null);
    });
    this.#dispatch(req, res);
  }

  #onH2Request(req: Http2ServerRequest, res: Http2ServerResponse): void {
    const s = this.#stats;
    if (!req.headers[':authority'] && !req.headers.host) {
      s.rejected++;
      const body = refusalBody(400);
      res.writeHead(400, { 'content-type': 'text/plain', 'content-length': body.length });
      res.end(body);
      return;
    }
    s.requests++;
    s.inFlight++;
    // The compat response emits 'finish' (and says writableFinished) even for a reset stream:
    // complete means ended by the handler (`finished`) and closed with NO_ERROR (a stream
    // of a destroyed session closes with NO_ERROR too, unfinished).
    res.once('close', () => this.#ended(res.finished && res.stream.rstCode === NGHTTP2_NO_ERROR ? res.statusCode : null));
    this.#dispatch(req, res);
  }

  #dispatch(req: DownstreamRequest, res: DownstreamResponse): void {
    const handler = this.#handler;
    if (handler === null) {
      res.writeHead(503, { 'content-type': 'text/plain', 'content-length': 9 });
      res.end('not ready');
      return;
    }
    handler(req, res);
  }

  /** One exchange is over: `status` sent whole, or null for one that ended without a complete response. */
  #ended(status: number | null): void {
    const s = this.#stats;
    s.inFlight--;
    if (status !== null) {
      const cls = `${Math.floor(status / 100)}xx` as keyof ListenerStats['responses'];
      if (cls in s.responses) s.responses[cls]++;
    } else {
      s.responses.reset++;
    }
    if (s.inFlight === 0 && this.#idle.length > 0) for (const f of this.#idle.splice(0)) f();
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const s = this.#stats;
    // Errors on the raw socket are the upgrade handler's; this one only keeps them from the process.
    socket.on('error', () => {});
    const refusal = refusalStatus(req);
    if (refusal !== 0) {
      s.rejected++;
      socket.end(rejectReply(refusal));
      return;
    }
    s.requests++;
    s.inFlight++;
    this.#upgraded.add(socket);
    let status: number | null = null;
    socket.once('close', () => {
      this.#upgraded.delete(socket);
      this.#ended(status);
    });
    this.#upgradeHandler!(req, socket, head, (st) => {
      status ??= st;
    });
  }
}
