/**
 * The trace context the upstream request carries: set by the tracer (tracing.ts) when it starts
 * a request's span, read by upstream-headers.ts, which then sends these `traceparent` /
 * `tracestate` instead of the downstream's. Without tracing nothing is set and the downstream's
 * headers pass through untouched; the forwarder pays one property read.
 */
import type { DownstreamRequest } from '../listeners/http-listener.ts';

const TRACE_HEADERS = Symbol('palisade.traceHeaders');

/** Header name → value (`traceparent`, and `tracestate` when there is one). */
export type TraceHeaders = Readonly<Record<string, string>>;

type WithTrace = DownstreamRequest & { [TRACE_HEADERS]?: TraceHeaders };

export function setTraceHeaders(req: DownstreamRequest, headers: TraceHeaders): void {
  (req as WithTrace)[TRACE_HEADERS] = headers;
}

/** The trace headers to send upstream instead of the downstream's; undefined when tracing is off. */
export function traceHeadersOf(req: DownstreamRequest): TraceHeaders | undefined {
  return (req as WithTrace)[TRACE_HEADERS];
}
