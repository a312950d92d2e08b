/**
 * One of the sidecar's HTTP/1.1 listeners (inbound, outbound): a node:http server that
 * counts requests and response code classes, knows how many requests are in flight, and
 * drains: stop accepting, let the requests in flight finish (up to a deadline), then close
 * every connection.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Counters of one listener, for /stats. */
export interface ListenerStats {
  /** Requests received. */
  requests: number;
  /** Responses sent, by code class: 1xx..5xx; `reset` for exchanges that ended without a complete response. */
  responses: Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx' | 'reset', number>;
  /** Requests in flight now. */
  inFlight: number;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

export class HttpListener {
  readonly name: string;
  readonly #server: Server;
  readonly #stats: ListenerStats = { requests: 0, responses: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0, reset: 0 }, inFlight: 0 };
  #handler: RequestHandler | null = null;
  #draining = false;
  #idle: Array<() => void> = [];
  #closed: Promise<void> | null = null;

  /** `handler` may be set later (setHandler); until then requests get 503 "not ready". */
  constructor(name: string, handler: RequestHandler | null = null) {
    this.name = name;
    this.#handler = handler;
    this.#server = createServer((req, res) => this.#onRequest(req, res));
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

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const s = this.#stats;
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
