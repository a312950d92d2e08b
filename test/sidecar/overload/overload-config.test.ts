import { describe, expect, it } from 'vitest';
import { OVERLOAD_DEFAULTS, parseOverloadConfig } from '../../../sidecar/overload/overload-config.ts';
import { parseBootstrap } from '../../../sidecar/bootstrap/bootstrap.ts';

function parse(v: unknown): { config: ReturnType<typeof parseOverloadConfig>; errors: string[] } {
  const errors: string[] = [];
  const config = parseOverloadConfig(v, (path, msg) => errors.push(`${path}: ${msg}`));
  return { config, errors };
}

describe('parseOverloadConfig', () => {
  it('leaves the overload manager off without the section, as Envoy does', () => {
    expect(parse(undefined)).toEqual({ config: null, errors: [] });
    expect(parse(null)).toEqual({ config: null, errors: [] });
  });

  it.each<[string, Record<string, unknown>, Record<string, unknown>]>([
    ['one limit, defaults for the rest', { maxActiveRequests: 100 }, {
      refreshIntervalMs: OVERLOAD_DEFAULTS.refreshIntervalMs, maxActiveRequests: 100, maxHeapBytes: null, maxConnections: null, maxEventLoopDelayMs: null, shedAt: 95, stopAcceptingAt: 100,
    }],
    ['every field', { refreshIntervalMs: 50, maxHeapBytes: 1 << 30, maxConnections: 1000, maxActiveRequests: 10, maxEventLoopDelayMs: 200, shedAt: 80.5, stopAcceptingAt: 90 }, {
      refreshIntervalMs: 50, maxHeapBytes: 1 << 30, maxConnections: 1000, maxActiveRequests: 10, maxEventLoopDelayMs: 200, shedAt: 80.5, stopAcceptingAt: 90,
    }],
    ['a tiny heap limit', { maxHeapBytes: 1 }, { maxHeapBytes: 1 }],
  ])('accepts %s', (_name, v, want) => {
    const { config, errors } = parse(v);
    expect(errors).toEqual([]);
    expect(config).toMatchObject(want);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it.each<[string, unknown, string[]]>([
    ['a non-mapping', 'on', ['overload: must be a mapping, got "on"']],
    ['no limit', { shedAt: 90 }, ['overload: must set at least one of maxHeapBytes, maxConnections, maxActiveRequests, maxEventLoopDelayMs (without limits nothing is monitored; remove the section to turn the overload manager off)']],
    ['an unknown field', { maxConnections: 5, maxConns: 5 }, ['overload.maxConns: unknown field; known fields: refreshIntervalMs, maxHeapBytes, maxConnections, maxActiveRequests, maxEventLoopDelayMs, shedAt, stopAcceptingAt']],
    ['a zero limit', { maxActiveRequests: 0 }, ['overload.maxActiveRequests: must be an integer 1..10000000, got 0']],
    ['a fractional limit', { maxConnections: 1.5 }, ['overload.maxConnections: must be an integer 1..10000000, got 1.5']],
    ['a string heap limit', { maxHeapBytes: '1GiB' }, ['overload.maxHeapBytes: must be an integer 1..9007199254740991, got "1GiB"']],
    ['a too short interval', { maxActiveRequests: 1, refreshIntervalMs: 1 }, ['overload.refreshIntervalMs: must be an integer 10..60000, got 1']],
    ['shedAt 0', { maxActiveRequests: 1, shedAt: 0 }, ['overload.shedAt: must be a percentage above 0 and at most 100, got 0']],
    ['shedAt above 100', { maxActiveRequests: 1, shedAt: 101 }, ['overload.shedAt: must be a percentage above 0 and at most 100, got 101']],
    ['stopAcceptingAt without maxConnections', { maxActiveRequests: 1, stopAcceptingAt: 90 }, ['overload.stopAcceptingAt: has no effect without maxConnections: set maxConnections too, or remove stopAcceptingAt']],
    ['several problems at once', { maxEventLoopDelayMs: -1, shedAt: 'x' }, [
      'overload.maxEventLoopDelayMs: must be an integer 1..3600000, got -1',
      'overload.shedAt: must be a percentage above 0 and at most 100, got "x"',
    ]],
  ])('refuses %s, naming the field and the value', (_name, v, want) => {
    const { config, errors } = parse(v);
    expect(config).toBeNull();
    expect(errors).toEqual(want);
  });

  it('is part of the validated, frozen bootstrap', () => {
    const base = { node: { service: 'web' }, workload: { address: '127.0.0.1:8080' } };
    const off = parseBootstrap(base);
    expect(off.valid && off.result.overload).toBeNull();
    const on = parseBootstrap({ ...base, overload: { maxConnections: 10 } });
    expect(on.valid && on.result.overload).toMatchObject({ maxConnections: 10, stopAcceptingAt: 100 });
    const bad = parseBootstrap({ ...base, overload: { maxConnections: 0 } });
    expect(!bad.valid && bad.errors).toEqual(['overload.maxConnections: must be an integer 1..10000000, got 0']);
  });
});
