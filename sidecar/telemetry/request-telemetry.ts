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
 * Sizes: the request's declared content-length; without one (chunked), on HTTP/1 the bytes
 * read on the connection after the request head arrived (what came with the head is missed).
 * The response: on HTTP/1 the bytes written on the connection while the request was in flight
 * (head and body, exact on a keep-alive connection without pipelining); HTTP/2 streams share
 * their socket, so there the declared content-length (0 when absent).
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Span } from '@opentelemetry/api';
import type { DownstreamRequest, DownstreamResponse, RequestHandler } from '../listeners/http-listener.ts';
import type { AccessLog } from './access-log.ts';
import type { SidecarMetrics } from './metrics.ts';
import { attachFacts, type RequestFacts } from './request-facts.ts';
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
      const socket = h2 ? null : (req.socket as Socket | null);
      const read0 = socket?.bytesRead ?? 0;
      const written0 = socket?.bytesWritten ?? 0;
      const tracer = this.tracer;
      const span = tracer === null ? null : tracer.start(req, listener, method, path, authority);
      res.once('close', () => this.#done(listener, req, res, facts, span, start, method, path, authority, socket, read0, written0));
      handler(req, res);
    };
  }

  #done(
    listener: string, req: DownstreamRequest, res: DownstreamResponse, facts: RequestFacts, span: Span | null,
    start: number, method: string, path: string, authority: string, socket: Socket | null, read0: number, written0: number,
  ): void {
    const end = performance.now();
    const finished = res.writableFinished;
    // Unfinished with no flag of the sidecar's own (UC, UT… cut it): the downstream went away first.
    if (!finished && facts.flags.length === 0) facts.flags.push('DC');
    const status = res.headersSent ? res.statusCode : 0;
    let bytesIn: number;
    let bytesOut: number;
    if (socket !== null) {
      // The body often arrives with the head (already in bytesRead at the start): a declared length is exact.
      const declared = declaredLength(req.headers['content-length']);
      bytesIn = declared > 0 ? declared : Math.max(0, (socket.bytesRead ?? read0) - read0);
      bytesOut = Math.max(0, (socket.bytesWritten ?? written0) - written0);
    } else {
      bytesIn = declaredLength(req.headers['content-length']);
      bytesOut = declaredLength((res as unknown as { getHeader(n: string): string | number | string[] | undefined }).getHeader('content-length'));
    }
    const tracer = this.tracer;
    const record: RequestRecord = {
      listener,
      method,
      path,
      authority,
      protocol: req.httpVersionMajor === 2 ? 'HTTP/2' : 'HTTP/1.1',
      status,
      startTime: timeOrigin + start,
      durationMs: end - start,
      bytesIn,
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

  /** Flushes and closes the access log and the tracer. */
  async close(): Promise<void> {
    await Promise.all([this.accessLog?.close(), this.tracer?.close().catch((err: unknown) => this.#log.warn({ err }, 'exporting the last spans failed'))]);
  }
}
