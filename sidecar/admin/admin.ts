/**
 * The sidecar's admin endpoint (bootstrap `admin`, loopback by default). Plain HTTP/1.1:
 *
 *   GET  /ready        200 "ready" once the first complete configuration is applied, 503 "not ready" before
 *                      (and again while draining): the workload's readiness gates on it
 *   GET  /config_dump  JSON: the snapshot version, per type the accepted version and resource
 *                      names/versions, the listeners, complete and missing
 *   GET  /clusters     JSON: every upstream cluster's stats (ClusterManager.stats() and the inbound one)
 *   GET  /stats        JSON: requests and response code classes by listener, xDS updates and NACKs
 *   GET  /metrics      Prometheus text format 0.0.4 (docs/operations.md); also at /stats/prometheus, as Envoy names it
 *   POST /drain        stop accepting on inbound and outbound, let requests in flight finish,
 *                      then answer 200 "drained" (or 504 "drain timed out" after the drain deadline)
 */
import type { DownstreamRequest, DownstreamResponse } from '../listeners/http-listener.ts';

/**
 * What the admin endpoint reads from the sidecar. The JSON sources may answer with a promise:
 * the primary of a `--workers N` sidecar asks its workers over IPC (sidecar/workers/).
 */
export interface AdminSource {
  isReady(): boolean;
  configDump(): unknown;
  clusters(): unknown;
  stats(): unknown;
  /** Resolves true when everything in flight finished before the deadline. */
  drain(): Promise<boolean>;
  /** The Prometheus exposition (text format 0.0.4); absent: /metrics answers 404. */
  metrics?(): Promise<string>;
}

/** Prometheus text exposition format 0.0.4. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export function adminHandler(source: AdminSource): (req: DownstreamRequest, res: DownstreamResponse) => void {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    const readOnly = (body: () => unknown) => {
      if (method !== 'GET' && method !== 'HEAD') return text(res, 405, 'method not allowed', { allow: 'GET, HEAD' });
      const value = body();
      if (!(value instanceof Promise)) return json(res, 200, value);
      value.then(
        (v: unknown) => json(res, 200, v),
        (err: unknown) => text(res, 500, `admin request failed: ${(err as Error).message}`),
      );
    };
    switch (path) {
      case '/ready':
        if (method !== 'GET' && method !== 'HEAD') return text(res, 405, 'method not allowed', { allow: 'GET, HEAD' });
        return source.isReady() ? text(res, 200, 'ready') : text(res, 503, 'not ready');
      case '/config_dump':
        return readOnly(() => source.configDump());
      case '/clusters':
        return readOnly(() => source.clusters());
      case '/stats':
        return readOnly(() => source.stats());
      case '/metrics':
      case '/stats/prometheus': {
        if (method !== 'GET' && method !== 'HEAD') return text(res, 405, 'method not allowed', { allow: 'GET, HEAD' });
        const metrics = source.metrics;
        if (metrics === undefined) return text(res, 404, 'no metrics here');
        metrics.call(source).then(
          (body) => {
            const buf = Buffer.from(body);
            const r = res as unknown as Reply;
            r.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'content-length': buf.byteLength });
            r.end(buf);
          },
          (err: unknown) => text(res, 500, `admin request failed: ${(err as Error).message}`),
        );
        return;
      }
      case '/drain':
        if (method !== 'POST') return text(res, 405, 'method not allowed', { allow: 'POST' });
        source.drain().then(
          (finished) => (finished ? text(res, 200, 'drained') : text(res, 504, 'drain timed out')),
          (err: unknown) => text(res, 500, `drain failed: ${(err as Error).message}`),
        );
        return;
      default:
        return text(res, 404, 'not found: try /ready, /config_dump, /clusters, /stats, /metrics, POST /drain');
    }
  };
}

/** What admin replies use of a response; HTTP/1's ServerResponse and HTTP/2's compat response both have it. */
interface Reply {
  writeHead(status: number, headers: Record<string, string | number>): unknown;
  end(body: Buffer): unknown;
}

function text(res: DownstreamResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  const buf = Buffer.from(`${body}\n`);
  const r = res as unknown as Reply;
  r.writeHead(status, { ...headers, 'content-type': 'text/plain; charset=utf-8', 'content-length': buf.byteLength });
  r.end(buf);
}

function json(res: DownstreamResponse, status: number, body: unknown): void {
  const buf = Buffer.from(`${JSON.stringify(body, null, 2)}\n`);
  const r = res as unknown as Reply;
  r.writeHead(status, { 'content-type': 'application/json', 'content-length': buf.byteLength });
  r.end(buf);
}
