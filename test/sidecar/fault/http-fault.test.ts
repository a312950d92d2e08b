import { describe, expect, it } from 'vitest';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { anyPack, DurationSchema } from '@bufbuild/protobuf/wkt';
import { HTTPFaultSchema } from '../../../xds/gen/envoy/extensions/filters/http/fault/v3/fault_pb.js';
import { RouterSchema } from '../../../xds/gen/envoy/extensions/filters/http/router/v3/router_pb.js';
import { FractionalPercent_DenominatorType as D } from '../../../xds/gen/envoy/type/v3/percent_pb.js';
import { compileHttpFault, FAULT_FILTER_NAME } from '../../../sidecar/fault/http-fault.ts';
import { compileRouteTable } from '../../../sidecar/routing/route-table.ts';
import { compile, headers, NO_HEADERS, prefix, routeConfig, toCluster } from '../routing/fixtures.ts';

type FaultInit = MessageInitShape<typeof HTTPFaultSchema>;

const fixed = (ms: number) => ({ case: 'fixedDelay' as const, value: create(DurationSchema, { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 }) });
const pct = (numerator: number, denominator: D = D.HUNDRED) => ({ numerator, denominator });
const packed = (f: FaultInit) => anyPack(HTTPFaultSchema, create(HTTPFaultSchema, f));
const AT = "virtual_hosts[0].routes[0].typed_per_filter_config['envoy.filters.http.fault']";

/** A one-route table whose route carries `f`; the compile result. */
function tableWith(f: FaultInit) {
  return compileRouteTable(routeConfig([{ name: 'vh', domains: ['*'], routes: [toCluster('api', prefix('/'), { typedPerFilterConfig: { [FAULT_FILTER_NAME]: packed(f) } })] }]));
}

describe('compileHttpFault', () => {
  it.each<[string, FaultInit, Record<string, unknown>]>([
    ['a fixed delay with a percentage', { delay: { faultDelaySecifier: fixed(1500), percentage: pct(25) } }, { delayMs: 1500, delayNumerator: 25, delayDenominator: 100, hasAbort: false }],
    ['an HTTP abort out of ten thousand', { abort: { errorType: { case: 'httpStatus', value: 503 }, percentage: pct(5, D.TEN_THOUSAND) } }, { abortHttpStatus: 503, abortGrpcStatus: -1, abortNumerator: 5, abortDenominator: 10_000, hasDelay: false }],
    ['a gRPC abort out of a million', { abort: { errorType: { case: 'grpcStatus', value: 14 }, percentage: pct(1, D.MILLION) } }, { abortHttpStatus: 0, abortGrpcStatus: 14, abortNumerator: 1, abortDenominator: 1_000_000 }],
    ['a gRPC abort with status 0 (OK)', { abort: { errorType: { case: 'grpcStatus', value: 0 }, percentage: pct(100) } }, { abortGrpcStatus: 0, hasAbort: true }],
    ['a numerator above its denominator (100%)', { abort: { errorType: { case: 'httpStatus', value: 500 }, percentage: pct(250) } }, { abortNumerator: 100, abortDenominator: 100 }],
    ['no percentage (Envoy reads 0%)', { delay: { faultDelaySecifier: fixed(10) } }, { delayMs: 10, delayNumerator: 0 }],
    ['max_active_faults', { abort: { errorType: { case: 'httpStatus', value: 500 }, percentage: pct(100) }, maxActiveFaults: 3 }, { maxActiveFaults: 3 }],
    ['no max_active_faults (unlimited)', { abort: { errorType: { case: 'httpStatus', value: 500 }, percentage: pct(100) } }, { maxActiveFaults: Infinity, headers: null }],
    ['runtime keys (accepted, no effect)', { abort: { errorType: { case: 'httpStatus', value: 500 }, percentage: pct(100) }, abortPercentRuntime: 'x', delayDurationRuntime: 'y' }, { abortHttpStatus: 500 }],
  ])('compiles %s', (_name, f, want) => {
    const errors: string[] = [];
    const c = compileHttpFault(packed(f), 'f', errors);
    expect(errors).toEqual([]);
    expect(c).not.toBeNull();
    expect(c).toMatchObject(want);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('compiles a config with neither delay nor abort to no fault (the HCM filter config)', () => {
    const errors: string[] = [];
    expect(compileHttpFault(packed({}), 'f', errors)).toBeNull();
    expect(errors).toEqual([]);
  });

  it.each<[string, FaultInit, string[]]>([
    ['a zero delay', { delay: { faultDelaySecifier: fixed(0), percentage: pct(100) } }, ['f.delay.fixed_delay: must be greater than 0, got 0s 0ns']],
    ['a delay over a day', { delay: { faultDelaySecifier: fixed(86_400_001), percentage: pct(100) } }, ['f.delay.fixed_delay: must be at most 86400000 ms, got 86400001 ms']],
    ['a delay without fixed_delay', { delay: { percentage: pct(100) } }, ['f.delay: fixed_delay is required']],
    ['a header-controlled delay', { delay: { faultDelaySecifier: { case: 'headerDelay', value: {} }, percentage: pct(100) } },
      ['f.delay.header_delay: header-controlled delays (x-envoy-fault-delay-request) are not supported by the sidecar; use fixed_delay']],
    ['a header-controlled abort', { abort: { errorType: { case: 'headerAbort', value: {} }, percentage: pct(100) } },
      ['f.abort.header_abort: header-controlled aborts (x-envoy-fault-abort-request) are not supported by the sidecar; use http_status or grpc_status']],
    ['an abort without a status', { abort: { percentage: pct(100) } }, ['f.abort: one of http_status, grpc_status is required']],
    ['an HTTP status below 200', { abort: { errorType: { case: 'httpStatus', value: 199 }, percentage: pct(100) } }, ['f.abort.http_status: must be 200..599, got 199']],
    ['an HTTP status of 600', { abort: { errorType: { case: 'httpStatus', value: 600 }, percentage: pct(100) } }, ['f.abort.http_status: must be 200..599, got 600']],
    ['a gRPC status of 17', { abort: { errorType: { case: 'grpcStatus', value: 17 }, percentage: pct(100) } }, ['f.abort.grpc_status: must be a gRPC status code 0..16, got 17']],
    ['an unknown denominator', { abort: { errorType: { case: 'httpStatus', value: 500 }, percentage: pct(1, 7 as D) } }, ['f.abort.percentage.denominator: must be HUNDRED, TEN_THOUSAND or MILLION, got 7']],
    ['upstream_cluster', { abort: { errorType: { case: 'httpStatus', value: 500 }, percentage: pct(1) }, upstreamCluster: 'api' }, ['f.upstream_cluster: not supported by the sidecar (put the fault on the routes to that cluster)']],
    ['downstream_nodes', { abort: { errorType: { case: 'httpStatus', value: 500 }, percentage: pct(1) }, downstreamNodes: ['web'] }, ['f.downstream_nodes: not supported by the sidecar']],
    ['response_rate_limit', { abort: { errorType: { case: 'httpStatus', value: 500 }, percentage: pct(1) }, responseRateLimit: { limitType: { case: 'fixedLimit', value: { limitKbps: 1n } } } }, ['f.response_rate_limit: not supported by the sidecar']],
    ['an invalid header regex', { abort: { errorType: { case: 'httpStatus', value: 500 }, percentage: pct(1) }, headers: [{ name: 'x-a', headerMatchSpecifier: { case: 'safeRegexMatch', value: { regex: 'a(b' } } }] }, []],
    ['several problems at once', { delay: { faultDelaySecifier: fixed(0), percentage: pct(1) }, abort: { errorType: { case: 'httpStatus', value: 99 }, percentage: pct(1) }, upstreamCluster: 'x' },
      ['f.upstream_cluster: not supported by the sidecar (put the fault on the routes to that cluster)', 'f.delay.fixed_delay: must be greater than 0, got 0s 0ns', 'f.abort.http_status: must be 200..599, got 99']],
  ])('refuses %s, naming the field', (_name, f, want) => {
    const errors: string[] = [];
    expect(compileHttpFault(packed(f), 'f', errors)).toBeNull();
    if (want.length === 0) {
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(/^f\.headers\[0\]\.safe_regex_match\.regex: /);
    } else expect(errors).toEqual(want);
  });

  it('refuses another message under the fault filter name', () => {
    const errors: string[] = [];
    expect(compileHttpFault(anyPack(RouterSchema, create(RouterSchema)), 'f', errors)).toBeNull();
    expect(errors).toEqual(['f: expected type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault, got "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"']);
  });
});

describe('route table with faults', () => {
  it('NACKs the RDS update with the field path of every fault problem', () => {
    const r = tableWith({ delay: { faultDelaySecifier: { case: 'headerDelay', value: {} } }, abort: { errorType: { case: 'httpStatus', value: 700 }, percentage: pct(1) } });
    expect(r.valid).toBe(false);
    expect(!r.valid && r.errors).toEqual([
      `${AT}.delay.header_delay: header-controlled delays (x-envoy-fault-delay-request) are not supported by the sidecar; use fixed_delay`,
      `${AT}.abort.http_status: must be 200..599, got 700`,
    ]);
  });

  it('names a virtual host fault and a route configuration fault by their own paths', () => {
    const bad = packed({ abort: { errorType: { case: 'httpStatus', value: 100 }, percentage: pct(1) } });
    const r = compileRouteTable(routeConfig(
      [{ name: 'vh', domains: ['*'], routes: [toCluster('api')], typedPerFilterConfig: { [FAULT_FILTER_NAME]: bad } }],
      { typedPerFilterConfig: { [FAULT_FILTER_NAME]: bad } },
    ));
    expect(!r.valid && r.errors).toEqual([
      "typed_per_filter_config['envoy.filters.http.fault'].abort.http_status: must be 200..599, got 100",
      "virtual_hosts[0].typed_per_filter_config['envoy.filters.http.fault'].abort.http_status: must be 200..599, got 100",
    ]);
  });

  it('gives each route its own fault, else its virtual host\'s, else the route configuration\'s', () => {
    const rcFault = packed({ abort: { errorType: { case: 'httpStatus', value: 500 }, percentage: pct(100) } });
    const vhFault = packed({ abort: { errorType: { case: 'httpStatus', value: 502 }, percentage: pct(100) } });
    const routeFault = packed({ abort: { errorType: { case: 'httpStatus', value: 503 }, percentage: pct(100) } });
    const t = compile(routeConfig([
      { name: 'a', domains: ['a'], routes: [toCluster('a1', prefix('/own'), { typedPerFilterConfig: { [FAULT_FILTER_NAME]: routeFault } }), toCluster('a2')], typedPerFilterConfig: { [FAULT_FILTER_NAME]: vhFault } },
      { name: 'b', domains: ['b'], routes: [toCluster('b1')] },
    ], { typedPerFilterConfig: { [FAULT_FILTER_NAME]: rcFault } }));
    expect(t.match('a', '/own', 'GET', NO_HEADERS)?.fault?.abortHttpStatus).toBe(503);
    expect(t.match('a', '/other', 'GET', NO_HEADERS)?.fault?.abortHttpStatus).toBe(502);
    expect(t.match('b', '/', 'GET', NO_HEADERS)?.fault?.abortHttpStatus).toBe(500);
  });

  it('leaves routes without a fault config with no fault', () => {
    const t = compile(routeConfig([{ name: 'vh', domains: ['*'], routes: [toCluster('api')] }]));
    expect(t.match('x', '/', 'GET', headers({}))?.fault).toBeNull();
  });

  it('lets a route turn an inherited fault off with an empty HTTPFault', () => {
    const t = compile(routeConfig([{
      name: 'vh', domains: ['*'],
      routes: [toCluster('api', prefix('/'), { typedPerFilterConfig: { [FAULT_FILTER_NAME]: packed({}) } })],
      typedPerFilterConfig: { [FAULT_FILTER_NAME]: packed({ abort: { errorType: { case: 'httpStatus', value: 500 }, percentage: pct(100) } }) },
    }]));
    expect(t.match('x', '/', 'GET', NO_HEADERS)?.fault).toBeNull();
  });

  it('compiles the header matchers of a valid fault', () => {
    const r = tableWith({ abort: { errorType: { case: 'httpStatus', value: 500 }, percentage: pct(100) }, headers: [{ name: 'X-Fault', headerMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'exact', value: 'yes' } } } }] });
    expect(r.valid).toBe(true);
    const fault = r.valid ? r.result.match('x', '/', 'GET', NO_HEADERS)?.fault : null;
    expect(fault?.headers?.map((h) => h.name)).toEqual(['x-fault']);
  });
});
