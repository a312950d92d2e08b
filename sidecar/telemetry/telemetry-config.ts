/**
 * The bootstrap's `telemetry` section: metrics label budget, access log, tracing. Validated with
 * the rest of the bootstrap (every problem named with its field path and value), defaults
 * applied, frozen with it. Absent sections mean: metrics on (served at the admin /metrics),
 * access log off, tracing off; off costs nothing per request.
 *
 *   telemetry:
 *     metrics:   { maxSeriesPerMetric: 1000 }
 *     accessLog: { enabled: true, path: stdout, sampleRate: 100, alwaysLogErrors: true, flushIntervalMs: 1000 }
 *     tracing:   { otlpEndpoint: http://127.0.0.1:4318/v1/traces, sampleRate: 100 }
 */

export interface TelemetryConfig {
  readonly metrics: { readonly maxSeriesPerMetric: number };
  /** Null: no access log (the default). */
  readonly accessLog: AccessLogConfig | null;
  /** Null: no tracing, no span objects; traceparent/tracestate are forwarded untouched (the default). */
  readonly tracing: TracingConfig | null;
}

export interface AccessLogConfig {
  /** `stdout`, or a file path (appended to; reopened on SIGHUP for log rotation). */
  readonly path: string;
  /** Percent of requests logged, 0..100. */
  readonly sampleRate: number;
  /** Log every 4xx/5xx, denial and request with a response flag whatever the sample rate. */
  readonly alwaysLogErrors: boolean;
  /**
   * Lines are written once 256 KiB are buffered or this many ms after the first unwritten one
   * (Envoy's file_flush_interval, default 1 s); 0 writes every event-loop turn's lines at once.
   */
  readonly flushIntervalMs?: number;
}

export interface TracingConfig {
  /** OTLP/HTTP (JSON) traces endpoint, e.g. http://127.0.0.1:4318/v1/traces. */
  readonly otlpEndpoint: string;
  /** Percent of new traces sampled, 0..100; a sampled or unsampled parent decides for its children. */
  readonly sampleRate: number;
}

export const TELEMETRY_DEFAULTS = Object.freeze({
  maxSeriesPerMetric: 1000,
  accessLogPath: 'stdout',
  sampleRate: 100,
  alwaysLogErrors: true,
  accessLogFlushIntervalMs: 1000,
});

export const DEFAULT_TELEMETRY: TelemetryConfig = Object.freeze({
  metrics: Object.freeze({ maxSeriesPerMetric: TELEMETRY_DEFAULTS.maxSeriesPerMetric }),
  accessLog: null,
  tracing: null,
});

type Obj = Record<string, unknown>;
type Report = (path: string, msg: string) => void;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown) => JSON.stringify(v) ?? String(v);

/** Validates the `telemetry` section (undefined: defaults), reporting problems as `telemetry.<field>: <message>`. */
export function parseTelemetryConfig(value: unknown, report: Report): TelemetryConfig {
  if (value === undefined || value === null) return DEFAULT_TELEMETRY;
  if (!isObj(value)) {
    report('telemetry', `must be a mapping, got ${show(value)}`);
    return DEFAULT_TELEMETRY;
  }
  only(value, 'telemetry', ['metrics', 'accessLog', 'tracing'], report);

  const m = section(value, 'metrics', report);
  only(m, 'telemetry.metrics', ['maxSeriesPerMetric'], report);
  const maxSeriesPerMetric = int(m, 'maxSeriesPerMetric', 'telemetry.metrics.maxSeriesPerMetric', 1, 1_000_000, report) ?? TELEMETRY_DEFAULTS.maxSeriesPerMetric;

  let accessLog: AccessLogConfig | null = null;
  if (value.accessLog !== undefined) {
    const a = section(value, 'accessLog', report);
    only(a, 'telemetry.accessLog', ['enabled', 'path', 'sampleRate', 'alwaysLogErrors', 'flushIntervalMs'], report);
    const enabled = bool(a, 'enabled', 'telemetry.accessLog.enabled', report) ?? true;
    let path: string = TELEMETRY_DEFAULTS.accessLogPath;
    if (a.path !== undefined) {
      if (typeof a.path !== 'string' || a.path === '') report('telemetry.accessLog.path', `must be "stdout" or a file path, got ${show(a.path)}`);
      else path = a.path;
    }
    const sampleRate = percent(a, 'sampleRate', 'telemetry.accessLog.sampleRate', report) ?? TELEMETRY_DEFAULTS.sampleRate;
    const alwaysLogErrors = bool(a, 'alwaysLogErrors', 'telemetry.accessLog.alwaysLogErrors', report) ?? TELEMETRY_DEFAULTS.alwaysLogErrors;
    const flushIntervalMs = int(a, 'flushIntervalMs', 'telemetry.accessLog.flushIntervalMs', 0, 60_000, report) ?? TELEMETRY_DEFAULTS.accessLogFlushIntervalMs;
    if (enabled) accessLog = Object.freeze({ path, sampleRate, alwaysLogErrors, flushIntervalMs });
  }

  let tracing: TracingConfig | null = null;
  if (value.tracing !== undefined) {
    const t = section(value, 'tracing', report);
    only(t, 'telemetry.tracing', ['otlpEndpoint', 'sampleRate'], report);
    let otlpEndpoint: string | null = null;
    if (t.otlpEndpoint === undefined) report('telemetry.tracing.otlpEndpoint', 'missing required field (an http:// or https:// URL)');
    else if (typeof t.otlpEndpoint !== 'string' || !isHttpUrl(t.otlpEndpoint)) report('telemetry.tracing.otlpEndpoint', `must be an http:// or https:// URL, got ${show(t.otlpEndpoint)}`);
    else otlpEndpoint = t.otlpEndpoint;
    const sampleRate = percent(t, 'sampleRate', 'telemetry.tracing.sampleRate', report) ?? TELEMETRY_DEFAULTS.sampleRate;
    if (otlpEndpoint !== null) tracing = Object.freeze({ otlpEndpoint, sampleRate });
  }

  return Object.freeze({ metrics: Object.freeze({ maxSeriesPerMetric }), accessLog, tracing });
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

function only(obj: Obj, path: string, known: string[], report: Report): void {
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) report(`${path}.${k}`, `unknown field; known fields: ${known.join(', ')}`);
  }
}

function section(obj: Obj, key: string, report: Report): Obj {
  const v = obj[key];
  if (v === undefined || v === null) return {};
  if (!isObj(v)) {
    report(`telemetry.${key}`, `must be a mapping, got ${show(v)}`);
    return {};
  }
  return v;
}

function int(obj: Obj, key: string, path: string, min: number, max: number, report: Report): number | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    report(path, `must be an integer ${min}..${max}, got ${show(v)}`);
    return undefined;
  }
  return v;
}

function percent(obj: Obj, key: string, path: string, report: Report): number | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 100) {
    report(path, `must be a percentage 0..100, got ${show(v)}`);
    return undefined;
  }
  return v;
}

function bool(obj: Obj, key: string, path: string, report: Report): boolean | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') {
    report(path, `must be true or false, got ${show(v)}`);
    return undefined;
  }
  return v;
}
