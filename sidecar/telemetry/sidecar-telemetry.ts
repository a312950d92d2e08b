/**
 * Builds a sidecar's request telemetry from its bootstrap: the metrics registry (always; it
 * costs a few Map lookups per request), the access log and the tracer only when their
 * `telemetry` sections ask for them.
 */
import type { Logger } from 'pino';
import type { SidecarBootstrap } from '../bootstrap/bootstrap.ts';
import { AccessLog } from './access-log.ts';
import { SidecarMetrics, type MetricsSource } from './metrics.ts';
import { RequestTelemetry } from './request-telemetry.ts';
import { RequestTracer } from './tracing.ts';

export function createRequestTelemetry(b: SidecarBootstrap, log: Logger, source: MetricsSource): RequestTelemetry {
  const t = b.telemetry;
  const logger = log.child({ component: 'telemetry' });
  const accessLog = t.accessLog === null ? null : new AccessLog(t.accessLog, { logger });
  return new RequestTelemetry({
    metrics: new SidecarMetrics({ maxSeriesPerMetric: t.metrics.maxSeriesPerMetric, source, ...(accessLog !== null ? { accessLogDropped: () => accessLog.dropped } : {}) }),
    accessLog,
    tracer: t.tracing === null ? null : new RequestTracer({ config: t.tracing, service: b.node.service, namespace: b.node.namespace, instance: b.node.id }),
    logger,
  });
}
