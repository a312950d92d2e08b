/**
 * Envoy's HTTP fault filter config (`envoy.extensions.filters.http.fault.v3.HTTPFault`, carried in
 * a route's `typed_per_filter_config['envoy.filters.http.fault']`), compiled once when the route
 * table compiles. Problems are collected with their field path, so the RDS update is NACKed,
 * as for the route table's other fields.
 *
 * Supported: `delay.fixed_delay` and `abort.http_status` / `abort.grpc_status`, each with its
 * `percentage` (FractionalPercent: HUNDRED, TEN_THOUSAND, MILLION; unset is 0%, as Envoy reads
 * the proto default; a numerator above its denominator is 100%), `headers` (every matcher must
 * match, route HeaderMatcher semantics) and `max_active_faults`. The `*_runtime` keys,
 * `filter_metadata` and `disable_downstream_cluster_stats` are accepted and have no effect (the
 * sidecar has no runtime layer). Refused: header-controlled faults (`header_delay`,
 * `header_abort`), `upstream_cluster`, `downstream_nodes`, `response_rate_limit`: ignoring
 * them would inject faults where the control plane did not mean them.
 */
import { anyUnpack, type Any } from '@bufbuild/protobuf/wkt';
import { HTTPFaultSchema } from '../../xds/gen/envoy/extensions/filters/http/fault/v3/fault_pb.js';
import { FractionalPercent_DenominatorType, type FractionalPercent } from '../../xds/gen/envoy/type/v3/percent_pb.js';
import { type CompiledHeaderMatcher, compileHeaderMatcher } from '../routing/header-matcher.ts';

/** The filter name routes key their fault config by. */
export const FAULT_FILTER_NAME = 'envoy.filters.http.fault';
export const HTTP_FAULT_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';

const DENOMINATORS: Readonly<Record<number, number>> = Object.freeze({
  [FractionalPercent_DenominatorType.HUNDRED]: 100,
  [FractionalPercent_DenominatorType.TEN_THOUSAND]: 10_000,
  [FractionalPercent_DenominatorType.MILLION]: 1_000_000,
});

/** Largest delay accepted, ms (a day): a longer one is a configuration mistake, not a test. */
export const MAX_FAULT_DELAY_MS = 86_400_000;

/**
 * A route's compiled fault. Shares one shape for every route (monomorphic); absent parts are
 * `-1` / 0 / null so the request path tests numbers.
 */
export class CompiledFault {
  /** The fixed delay, ms (> 0); -1 when the fault has no delay. */
  readonly delayMs: number;
  /** Delay chance: numerator out of denominator (numerator clamped to the denominator). */
  readonly delayNumerator: number;
  readonly delayDenominator: number;
  /** The abort's HTTP status (200..599); 0 when the abort gives a gRPC status or there is no abort. */
  readonly abortHttpStatus: number;
  /** The abort's gRPC status (0..16); -1 when the abort gives an HTTP status or there is no abort. */
  readonly abortGrpcStatus: number;
  readonly abortNumerator: number;
  readonly abortDenominator: number;
  /** Every one must match for the fault to apply; null: every request. */
  readonly headers: readonly CompiledHeaderMatcher[] | null;
  /** At most this many requests in a fault at once (Envoy's `max_active_faults`); Infinity when unset. */
  readonly maxActiveFaults: number;

  constructor(o: {
    delayMs: number; delayNumerator: number; delayDenominator: number; abortHttpStatus: number; abortGrpcStatus: number;
    abortNumerator: number; abortDenominator: number; headers: CompiledHeaderMatcher[]; maxActiveFaults: number;
  }) {
    this.delayMs = o.delayMs;
    this.delayNumerator = o.delayNumerator;
    this.delayDenominator = o.delayDenominator;
    this.abortHttpStatus = o.abortHttpStatus;
    this.abortGrpcStatus = o.abortGrpcStatus;
    this.abortNumerator = o.abortNumerator;
    this.abortDenominator = o.abortDenominator;
    this.headers = o.headers.length > 0 ? Object.freeze(o.headers) : null;
    this.maxActiveFaults = o.maxActiveFaults;
    Object.freeze(this);
  }

  get hasDelay(): boolean {
    return this.delayMs > 0;
  }

  get hasAbort(): boolean {
    return this.abortHttpStatus !== 0 || this.abortGrpcStatus >= 0;
  }
}

function percentOf(p: FractionalPercent | undefined, path: string, errors: string[]): { numerator: number; denominator: number } {
  if (p === undefined) return { numerator: 0, denominator: 100 };
  const denominator = DENOMINATORS[p.denominator];
  if (denominator === undefined) {
    errors.push(`${path}.denominator: must be HUNDRED, TEN_THOUSAND or MILLION, got ${p.denominator}`);
    return { numerator: 0, denominator: 100 };
  }
  return { numerator: Math.min(p.numerator, denominator), denominator };
}

/**
 * Compiles the fault config of a route (or its virtual host or route configuration), or pushes
 * every problem with its field path (`path` names the config: `virtual_hosts[0].routes[1]
 * .typed_per_filter_config['envoy.filters.http.fault']`). A config with neither delay nor
 * abort compiles to null: no fault (the HCM's own empty HTTPFault is such a config).
 */
export function compileHttpFault(any: Any, path: string, errors: string[]): CompiledFault | null {
  if (any.typeUrl !== HTTP_FAULT_TYPE_URL) {
    errors.push(`${path}: expected ${HTTP_FAULT_TYPE_URL}, got ${JSON.stringify(any.typeUrl)}`);
    return null;
  }
  let f;
  try {
    f = anyUnpack(any, HTTPFaultSchema);
  } catch (err) {
    errors.push(`${path}: cannot decode HTTPFault: ${(err as Error).message}`);
    return null;
  }
  if (f === undefined) {
    errors.push(`${path}: cannot decode HTTPFault`);
    return null;
  }
  const before = errors.length;
  if (f.upstreamCluster !== '') errors.push(`${path}.upstream_cluster: not supported by the sidecar (put the fault on the routes to that cluster)`);
  if (f.downstreamNodes.length > 0) errors.push(`${path}.downstream_nodes: not supported by the sidecar`);
  if (f.responseRateLimit !== undefined) errors.push(`${path}.response_rate_limit: not supported by the sidecar`);

  let delayMs = -1;
  let delayPct = { numerator: 0, denominator: 100 };
  if (f.delay !== undefined) {
    const spec = f.delay.faultDelaySecifier;
    switch (spec.case) {
      case 'fixedDelay': {
        const ms = Number(spec.value.seconds) * 1000 + Math.trunc(spec.value.nanos / 1e6);
        if (!(spec.value.seconds > 0n || (spec.value.seconds === 0n && spec.value.nanos > 0)) || spec.value.nanos < 0) {
          errors.push(`${path}.delay.fixed_delay: must be greater than 0, got ${spec.value.seconds}s ${spec.value.nanos}ns`);
        } else if (ms > MAX_FAULT_DELAY_MS) {
          errors.push(`${path}.delay.fixed_delay: must be at most ${MAX_FAULT_DELAY_MS} ms, got ${ms} ms`);
        } else delayMs = Math.max(1, ms);
        break;
      }
      case 'headerDelay':
        errors.push(`${path}.delay.header_delay: header-controlled delays (x-envoy-fault-delay-request) are not supported by the sidecar; use fixed_delay`);
        break;
      default: errors.push(`${path}.delay: fixed_delay is required`);
    }
    delayPct = percentOf(f.delay.percentage, `${path}.delay.percentage`, errors);
  }

  let abortHttpStatus = 0;
  let abortGrpcStatus = -1;
  let abortPct = { numerator: 0, denominator: 100 };
  if (f.abort !== undefined) {
    const e = f.abort.errorType;
    switch (e.case) {
      case 'httpStatus':
        if (e.value < 200 || e.value > 599) errors.push(`${path}.abort.http_status: must be 200..599, got ${e.value}`);
        else abortHttpStatus = e.value;
        break;
      case 'grpcStatus':
        if (e.value > 16) errors.push(`${path}.abort.grpc_status: must be a gRPC status code 0..16, got ${e.value}`);
        else abortGrpcStatus = e.value;
        break;
      case 'headerAbort':
        errors.push(`${path}.abort.header_abort: header-controlled aborts (x-envoy-fault-abort-request) are not supported by the sidecar; use http_status or grpc_status`);
        break;
      default: errors.push(`${path}.abort: one of http_status, grpc_status is required`);
    }
    abortPct = percentOf(f.abort.percentage, `${path}.abort.percentage`, errors);
  }

  const headers: CompiledHeaderMatcher[] = [];
  f.headers.forEach((h, k) => {
    const c = compileHeaderMatcher(h, `${path}.headers[${k}]`, errors);
    if (c) headers.push(c);
  });
  if (errors.length > before) return null;
  if (delayMs < 0 && abortHttpStatus === 0 && abortGrpcStatus < 0) return null;
  return new CompiledFault({
    delayMs, delayNumerator: delayPct.numerator, delayDenominator: delayPct.denominator,
    abortHttpStatus, abortGrpcStatus, abortNumerator: abortPct.numerator, abortDenominator: abortPct.denominator,
    headers, maxActiveFaults: f.maxActiveFaults ?? Infinity,
  });
}
