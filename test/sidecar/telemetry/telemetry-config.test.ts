import { describe, expect, it } from 'vitest';
import { parseBootstrap } from '../../../sidecar/bootstrap/bootstrap.ts';
import { DEFAULT_TELEMETRY, parseTelemetryConfig } from '../../../sidecar/telemetry/telemetry-config.ts';

const MINIMAL = { node: { service: 'web' }, workload: { address: '127.0.0.1:8080' } };

function parse(value: unknown) {
  const errors: string[] = [];
  const result = parseTelemetryConfig(value, (path, msg) => errors.push(`${path}: ${msg}`));
  return { result, errors };
}

describe('telemetry bootstrap section', () => {
  it('defaults to metrics only: no access log, no tracing', () => {
    expect(parse(undefined)).toEqual({ result: DEFAULT_TELEMETRY, errors: [] });
    expect(DEFAULT_TELEMETRY).toEqual({ metrics: { maxSeriesPerMetric: 1000 }, accessLog: null, tracing: null });
  });

  it.each([
    [{ metrics: { maxSeriesPerMetric: 50 } }, { metrics: { maxSeriesPerMetric: 50 }, accessLog: null, tracing: null }],
    [{ accessLog: {} }, { metrics: { maxSeriesPerMetric: 1000 }, accessLog: { path: 'stdout', sampleRate: 100, alwaysLogErrors: true, flushIntervalMs: 1000 }, tracing: null }],
    [{ accessLog: { enabled: false, path: '/tmp/x.log' } }, { metrics: { maxSeriesPerMetric: 1000 }, accessLog: null, tracing: null }],
    [{ accessLog: { path: '/var/log/palisade/access.log', sampleRate: 12.5, alwaysLogErrors: false } }, { metrics: { maxSeriesPerMetric: 1000 }, accessLog: { path: '/var/log/palisade/access.log', sampleRate: 12.5, alwaysLogErrors: false, flushIntervalMs: 1000 }, tracing: null }],
    [{ accessLog: { flushIntervalMs: 0 } }, { metrics: { maxSeriesPerMetric: 1000 }, accessLog: { path: 'stdout', sampleRate: 100, alwaysLogErrors: true, flushIntervalMs: 0 }, tracing: null }],
    [{ tracing: { otlpEndpoint: 'http://127.0.0.1:4318/v1/traces' } }, { metrics: { maxSeriesPerMetric: 1000 }, accessLog: null, tracing: { otlpEndpoint: 'http://127.0.0.1:4318/v1/traces', sampleRate: 100 } }],
    [{ tracing: { otlpEndpoint: 'https://otel.example:4318/v1/traces', sampleRate: 1 } }, { metrics: { maxSeriesPerMetric: 1000 }, accessLog: null, tracing: { otlpEndpoint: 'https://otel.example:4318/v1/traces', sampleRate: 1 } }],
  ])('accepts %j', (value, expected) => {
    const { result, errors } = parse(value);
    expect(errors).toEqual([]);
    expect(result).toEqual(expected);
    expect(Object.isFrozen(result)).toBe(true);
  });

  it.each([
    [7, 'telemetry: must be a mapping, got 7'],
    [{ metric: {} }, 'telemetry.metric: unknown field; known fields: metrics, accessLog, tracing'],
    [{ metrics: { maxSeriesPerMetric: 0 } }, 'telemetry.metrics.maxSeriesPerMetric: must be an integer 1..1000000, got 0'],
    [{ metrics: { maxSeriesPerMetric: 1.5 } }, 'telemetry.metrics.maxSeriesPerMetric: must be an integer 1..1000000, got 1.5'],
    [{ accessLog: { sampleRate: 101 } }, 'telemetry.accessLog.sampleRate: must be a percentage 0..100, got 101'],
    [{ accessLog: { path: '' } }, 'telemetry.accessLog.path: must be "stdout" or a file path, got ""'],
    [{ accessLog: { enabled: 'yes' } }, 'telemetry.accessLog.enabled: must be true or false, got "yes"'],
    [{ accessLog: { format: 'json' } }, 'telemetry.accessLog.format: unknown field; known fields: enabled, path, sampleRate, alwaysLogErrors, flushIntervalMs'],
    [{ accessLog: { flushIntervalMs: 60_001 } }, 'telemetry.accessLog.flushIntervalMs: must be an integer 0..60000, got 60001'],
    [{ accessLog: { flushIntervalMs: '1s' } }, 'telemetry.accessLog.flushIntervalMs: must be an integer 0..60000, got "1s"'],
    [{ accessLog: 'stdout' }, 'telemetry.accessLog: must be a mapping, got "stdout"'],
    [{ tracing: {} }, 'telemetry.tracing.otlpEndpoint: missing required field (an http:// or https:// URL)'],
    [{ tracing: { otlpEndpoint: 'grpc://127.0.0.1:4317' } }, 'telemetry.tracing.otlpEndpoint: must be an http:// or https:// URL, got "grpc://127.0.0.1:4317"'],
    [{ tracing: { otlpEndpoint: 'http://x:4318/v1/traces', sampleRate: -1 } }, 'telemetry.tracing.sampleRate: must be a percentage 0..100, got -1'],
  ])('refuses %j naming the field and the value', (value, error) => {
    expect(parse(value).errors).toContain(error);
  });

  it('travels in the bootstrap: validated with it, defaults applied, frozen', () => {
    const r = parseBootstrap({ ...MINIMAL, telemetry: { accessLog: { path: 'stdout', sampleRate: 5 }, tracing: { otlpEndpoint: 'http://127.0.0.1:4318/v1/traces' } } });
    expect(r.valid).toBe(true);
    if (!r.valid) return;
    expect(r.result.telemetry).toEqual({
      metrics: { maxSeriesPerMetric: 1000 },
      accessLog: { path: 'stdout', sampleRate: 5, alwaysLogErrors: true, flushIntervalMs: 1000 },
      tracing: { otlpEndpoint: 'http://127.0.0.1:4318/v1/traces', sampleRate: 100 },
    });
    expect(Object.isFrozen(r.result.telemetry.accessLog)).toBe(true);
    const min = parseBootstrap(MINIMAL);
    expect(min.valid && min.result.telemetry).toEqual(DEFAULT_TELEMETRY);
    const bad = parseBootstrap({ ...MINIMAL, telemetry: { tracing: { otlpEndpoint: 'nope' } } });
    expect(bad.valid).toBe(false);
    if (!bad.valid) expect(bad.errors).toEqual(['telemetry.tracing.otlpEndpoint: must be an http:// or https:// URL, got "nope"']);
  });
});
