/**
 * The telemetry wrapper around a listener's request handler (inbound and outbound):
 *
 *   request → attachFacts(req) · start time · span (tracing on) → handler(req, res)
 *   res 'close' (once; after 'finish', or alone when the downstream went away: flag DC)
 *     → one RequestRecord → metrics.observe · accessLog.log · tracer.end · every sink
 *
 * Per request: one facts object, one 'close' listener closure, one record; no timers. What is
 * off costs nothing: without an access log or a tracer their branches are a null check, and
 * without sinks the loop does not run. A throwing sink is caught and logged (at most once per
 * sink), never breaking the response.
 *
 * Sizes are body bytes, as Envoy's BYTES_RECEIVED / BYTES_SENT, on HTTP/1 and HTTP/2 alike.
 * Received: the request body bytes read from the downstream, counted by a 'data' listener added
 * only to requests that carry a body (Content-Length above 0 or Transfer-Encoding; on HTTP/2 a
 * stream not ended with its HEADERS), added without changing the stream's flow mode; a body
 * the sidecar never reads (a local reply before forwarding) counts 0. Sent: counted by the
 * stage that wrote the body (facts.bytesSent: the forwarder per chunk, local replies their
 * body); when none did, a finished response's declared Content-Length (0 for HEAD, 204, 304).
 *
 * Upgrades (WebSocket) are recorded too (wrapUpgrade): one record when the upgrade is refused
 * or, after a 101, when the upgraded connection closes; sizes are what the relay carried each way.
 *
 * A throw in metrics, access log or tracer (a bug) is caught: the 'close' listener never
 * throws into the process; the first one is logged, then at most one a minute.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { Logger } from 'pino';
import type { Span } from '@opentelemetry/api';
import type { DownstreamRequest, DownstreamResponse, RequestHandler, UpgradeHandler } from '../listeners/http-listener.ts';
import type { AccessLog } from './access-log.ts';
import type { SidecarMetrics } from './metrics.ts';
import { attachFacts, attachFactsToSocket, factsOf, type RequestFacts } from './request-facts.ts';
import type { RequestRecord, RequestSink } from './request-record.ts';
import type { RequestTracer } from './tracing.ts';

export interface RequestTelemetryOptions {
  readonly metrics: SidecarMetrics;
  /** Null: no access log. */
  readonly accessLog: AccessLog | null;
  /** Null: no tracing. */
  readonly tracer: RequestTracer | null;
  readonly logger: Logger;
}

const timeOrigin = performance.timeOrigin;

/** Telemetry failures after the first are logged at most once per this interval, ms. */
export const TELEMETRY_ERROR_LOG_INTERVAL_MS = 60_000;

const addListener = EventEmitter.prototype.on;

/** Counts a request body chunk ('data' listener; `this` is the request): no closure per request. */
function countIn(this: DownstreamRequest, chunk: Buffer | string): void {
  const f = factsOf(this);
  if (f !== undefined) f.bytesReceived += chunk.length;
}

/**
 * A response's declared Content-Length: set with setHeader (and every HTTP/2 header), or given
 * to writeHead on HTTP/1, which Node does not keep as a header but records in `_contentLength`.
 */
function declaredResponseLength(res: DownstreamResponse): number {
  const r = res as unknown as { getHeader(n: string): string | number | string[] | undefined; _contentLength?: number | null };
  const v = r.getHeader('content-length');
  if (v !== undefined) return declaredLength(v);
  const n = r._contentLength;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : 0;
}

/** Whether the request carries a body (its bytes are then counted). */
function hasBody(req: DownstreamRequest, h2: boolean): boolean {
  if (h2) return (req as Http2ServerRequest).stream?.endAfterHeaders === false;
  return req.headers['transfer-encoding'] !== undefined || declaredLength(req.headers['content-length']) > 0;
}

function headerOf(req: DownstreamRequest, name: string): string | null {
  const v = req.headers[name];
  return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
}

function declaredLength(v: string | number | string[] | undefined): number {
  if (v === undefined || Array.isArray(v)) return 0;
  const n = Number(v);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

export class RequestTelemetry {
  readonly metrics: SidecarMetrics;
  readonly accessLog: AccessLog | null;
  readonly tracer: RequestTracer | null;
  readonly #log: Logger;
  #sinks: readonly RequestSink[] = [];
  readonly #failedSinks = new WeakSet<RequestSink>();
  #errors = 0;
  #lastErrorLog = -Infinity;

  constructor(options: RequestTelemetryOptions) {
    this.metrics = options.metrics;
    this.accessLog = options.accessLog;
    this.tracer = options.tracer;
    this.#log = options.logger;
  }

  /** Adds a consumer of every finished request; returns its removal. */
  addSink(sink: RequestSink): () => void {
    this.#sinks = [...this.#sinks, sink];
    return () => {
      this.#sinks = this.#sinks.filter((s) => s !== sink);
    };
  }

  /** The handler with telemetry around it, for the listener named `listener`. */
  wrap(listener: string, handler: RequestHandler): RequestHandler {
    return (req, res) => {
      const start = performance.now();
      const facts = attachFacts(req);
      const method = req.method ?? 'GET';
      const path = req.url ?? '/';
      const h2 = req.httpVersionMajor === 2;
      const authority = (h2 ? (req.headers[':authority'] as string | undefined) : undefined) ?? req.headers.host ?? '';
      // EventEmitter's on, not Readable's: adding the listener must not start the body flowing.
      if (hasBody(req, h2)) addListener.call(req, 'data', countIn);
      const tracer = this.tracer;
      const span = tracer === null ? null : tracer.start(req, listener, method, path, authority);
      res.once('close', () => this.#done(listener, req, res, facts, span, start, method, path, authority));
      handler(req, res);
    };
  }

  /**
   * The upgrade handler with telemetry around it: facts attached to the request and its socket,
   * a span, and one record when the socket closes (the refusal's status, or 101 for a relayed
   * connection, with its duration and the bytes relayed each way).
   */
  wrapUpgrade(listener: string, handler: UpgradeHandler): UpgradeHandler {
    return (req, socket, head, respond) => {
      const start = performance.now();
      const facts = attachFacts(req);
      attachFactsToSocket(socket, facts);
      const method = req.method ?? 'GET';
      const path = req.url ?? '/';
      const authority = req.headers.host ?? '';
      const tracer = this.tracer;
      const span = tracer === null ? null : tracer.start(req, listener, method, path, authority);
      let status = 0;
      socket.once('close', () => this.#doneUpgrade(listener, req, facts, span, start, method, path, authority, status));
      handler(req, socket, head, (st) => {
        if (status === 0) status = st;
        respond(st);
      });
    };
  }

  #done(
    listener: string, req: DownstreamRequest, res: DownstreamResponse, facts: RequestFacts, span: Span | null,
    start: number, method: string, path: string, authority: string,
  ): void {
    const end = performance.now();
    const finished = res.writableFinished;
    // Unfinished with no flag of the sidecar's own (UC, UT… cut it): the downstream went away first.
    if (!finished && facts.flags.length === 0) facts.flags.push('DC');
    const status = res.headersSent ? res.statusCode : 0;
    let bytesOut = facts.bytesSent;
    if (bytesOut < 0) {
      bytesOut = !finished || method === 'HEAD' || status === 204 || status === 304 ? 0 : declaredResponseLength(res);
    }
    this.#record(listener, req, req.httpVersionMajor === 2 ? 'HTTP/2' : 'HTTP/1.1', facts, span, start, end, method, path, authority, status, bytesOut);
  }

  #doneUpgrade(
    listener: string, req: IncomingMessage, facts: RequestFacts, span: Span | null,
    start: number, method: string, path: string, authority: string, status: number,
  ): void {
    const end = performance.now();
    if (status === 0 && facts.flags.length === 0) facts.flags.push('DC');
    this.#record(listener, req, 'HTTP/1.1', facts, span, start, end, method, path, authority, status, Math.max(0, facts.bytesSent));
  }

  #record(
    listener: string, req: DownstreamRequest, protocol: 'HTTP/1.1' | 'HTTP/2', facts: RequestFacts, span: Span | null,
    start: number, end: number, method: string, path: string, authority: string, status: number, bytesOut: number,
  ): void {
    const tracer = this.tracer;
    let record: RequestRecord;
    try {
      record = {
        listener,
        method,
        path,
        authority,
        protocol,
        status,
        startTime: timeOrigin + start,
        durationMs: end - start,
        bytesIn: facts.bytesReceived,
        bytesOut,
        requestId: headerOf(req, 'x-request-id'),
        userAgent: headerOf(req, 'user-agent'),
        remoteAddress: req.socket?.remoteAddress ?? null,
        forwardedFor: headerOf(req, 'x-forwarded-for'),
        facts,
        traceId: span === null || tracer === null ? null : tracer.traceIdOf(span),
      };
      this.metrics.observe(record);
      this.accessLog?.log(record);
      if (span !== null) tracer!.end(span, record);
    } catch (err) {
      // A bug in telemetry must not become an uncaught exception in a 'close' listener.
      this.#failed(err);
      return;
    }
    const sinks = this.#sinks;
    for (let i = 0; i < sinks.length; i++) {
      const sink = sinks[i]!;
      try {
        sink(record);
      } catch (err) {
        if (!this.#failedSinks.has(sink)) {
          this.#failedSinks.add(sink);
          this.#log.error({ err }, 'a request telemetry sink threw; its later failures are not logged');
        }
      }
    }
  }

  /** Counts a telemetry failure; logs the first, then at most one per TELEMETRY_ERROR_LOG_INTERVAL_MS. */
  #failed(err: unknown): void {
    this.#errors++;
    const now = performance.now();
    if (now - this.#lastErrorLog < TELEMETRY_ERROR_LOG_INTERVAL_MS) return;
    this.#lastErrorLog = now;
    this.#log.error({ err, failures: this.#errors }, 'recording a request failed (metrics, access log or span); later failures are logged at most once a minute');
  }

  /** Requests whose metrics, access log line or span failed (a bug: each is logged, rate-limited). */
  get errors(): number {
    return this.#errors;
  }

  /** Flushes and closes the access log and the tracer. */
  async close(): Promise<void> {
    await Promise.all([this.accessLog?.close(), this.tracer?.close().catch((err: unknown) => this.#log.warn({ err }, 'exporting the last spans failed'))]);
  }
}
