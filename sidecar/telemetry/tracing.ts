/**
 * Traces: one span per request per sidecar, SERVER on the inbound listener and CLIENT on the
 * outbound one, continuing the W3C trace context (`traceparent`, `tracestate`) the request
 * came with, and passing it on with this span as the parent: the upstream request carries
 * the span's own traceparent (trace-headers.ts, read by upstream-headers.ts).
 *
 *   workload A ─► sidecar A outbound (CLIENT span, parent = A's traceparent if any)
 *              ─► sidecar B inbound  (SERVER span, parent = sidecar A's span) ─► workload B
 *
 * Spans are exported over OTLP/HTTP (JSON) to the configured endpoint in batches (the SDK's
 * BatchSpanProcessor: a queue, one export every few seconds or per 512 spans), never on the
 * request path. Sampling is parent-based: a sampled (or unsampled) parent decides; a new
 * trace is sampled with probability sampleRate/100 (TraceIdRatioBased).
 *
 * The provider is this sidecar's own, not registered globally (several sidecars may share a
 * process). Without the bootstrap's `tracing` section no Tracer exists at all: no span
 * objects, and traceparent/tracestate pass through as the client sent them.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, defaultTextMapSetter, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider } from '@opentelemetry/sdk-trace';
import { ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_NETWORK_PROTOCOL_VERSION, ATTR_SERVER_ADDRESS, ATTR_SERVICE_INSTANCE_ID, ATTR_SERVICE_NAME, ATTR_SERVICE_NAMESPACE, ATTR_URL_PATH } from '@opentelemetry/semantic-conventions';
import type { DownstreamRequest } from '../listeners/http-listener.ts';
import type { TracingConfig } from './telemetry-config.ts';
import type { RequestRecord } from './request-record.ts';
import { parentContextOf, setTraceHeaders } from './trace-headers.ts';

/** How long one OTLP export may take, ms. */
export const EXPORT_TIMEOUT_MS = 5000;

export interface RequestTracerOptions {
  readonly config: TracingConfig;
  /** The resource: service.name = the node's Service, service.namespace, service.instance.id = the node id. */
  readonly service: string;
  readonly namespace: string;
  readonly instance: string;
  /** Batch export delay, ms. Default the SDK's (5000). */
  readonly exportDelayMs?: number;
}

export class RequestTracer {
  readonly #provider: TracerProvider;
  readonly #tracer: Tracer;
  readonly #propagator = new W3CTraceContextPropagator();

  constructor(options: RequestTracerOptions) {
    // Bounded, so that closing a sidecar whose collector is unreachable does not hang on the last export.
    const exporter = new OTLPTraceExporter({ url: options.config.otlpEndpoint, timeoutMillis: EXPORT_TIMEOUT_MS });
    this.#provider = new TracerProvider({
      resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: options.service, [ATTR_SERVICE_NAMESPACE]: options.namespace, [ATTR_SERVICE_INSTANCE_ID]: options.instance }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(options.config.sampleRate / 100) }),
      spanProcessors: [new BatchSpanProcessor({ exporter, exportTimeoutMillis: EXPORT_TIMEOUT_MS, ...(options.exportDelayMs !== undefined ? { scheduledDelayMillis: options.exportDelayMs } : {}) })],
    });
    this.#tracer = this.#provider.getTracer('palisade-sidecar');
  }

  /**
   * Starts the request's span (child of the incoming traceparent, if valid) and sets the
   * trace headers the upstream request will carry.
   */
  start(req: DownstreamRequest, listener: string, method: string, path: string, authority: string): Span {
    // W3C rules, stricter than the propagator's extract (trace-headers.ts).
    const parent = parentContextOf(req.headers);
    const span = this.#tracer.startSpan(`${listener} ${method}`, {
      kind: listener === 'inbound' ? SpanKind.SERVER : SpanKind.CLIENT,
      attributes: {
        [ATTR_HTTP_REQUEST_METHOD]: method,
        [ATTR_URL_PATH]: path,
        [ATTR_SERVER_ADDRESS]: authority,
        [ATTR_NETWORK_PROTOCOL_VERSION]: req.httpVersionMajor === 2 ? '2' : '1.1',
        'palisade.listener': listener,
      },
    }, parent);
    const carrier: Record<string, string> = {};
    this.#propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, defaultTextMapSetter);
    setTraceHeaders(req, carrier);
    return span;
  }

  /** Ends the span with what the request came to. */
  end(span: Span, r: RequestRecord): void {
    const f = r.facts;
    if (span.isRecording()) {
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, r.status);
      if (f.route !== null) span.setAttribute('palisade.route', f.route);
      if (f.cluster !== null) span.setAttribute('palisade.cluster', f.cluster);
      if (f.upstreamHost !== null) span.setAttribute('palisade.upstream_host', f.upstreamHost);
      if (f.flags.length > 0) span.setAttribute('palisade.response_flags', f.flags.join(','));
      if (f.principal !== null) span.setAttribute('palisade.peer_principal', f.principal);
      if (f.policy !== null) span.setAttribute('palisade.policy_decision', `${f.policy.name}:${f.policy.decision}`);
      if (r.status >= 500 || r.status === 0) span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
  }

  /** The trace id of a span (sampled or not), for logs and sinks. */
  traceIdOf(span: Span): string {
    return span.spanContext().traceId;
  }

  /** Exports what is queued. */
  flush(): Promise<void> {
    return this.#provider.forceFlush();
  }

  /** Exports what is queued and stops. */
  close(): Promise<void> {
    return this.#provider.shutdown();
  }
}
