/**
 * The bootstrap's `overload` section (sidecar/bootstrap/bootstrap.ts): the overload manager's
 * resource limits and thresholds. As Envoy's overload manager, nothing is monitored and nothing
 * is shed unless configured: without the section the manager does not exist (null).
 *
 *   overload:
 *     refreshIntervalMs: 1000       # how often the monitors are sampled; default 1000 (Envoy's 1 s)
 *     maxHeapBytes: 1073741824      # V8 heap used / this
 *     maxConnections: 10000         # downstream connections (inbound + outbound) / this
 *     maxActiveRequests: 1000       # inbound requests in flight to the workload / this
 *     maxEventLoopDelayMs: 500      # event-loop delay (the longest in the last interval) / this
 *     shedAt: 95                    # % pressure from which new requests get 503 (default 95)
 *     stopAcceptingAt: 100          # % of maxConnections from which new connections are refused (default 100)
 *
 * At least one of the four limits must be set.
 */

export interface OverloadConfig {
  /** Sampling interval of the monitors, ms (10..60000). */
  readonly refreshIntervalMs: number;
  /** V8 heap used that is 100% pressure, bytes; null: not monitored. */
  readonly maxHeapBytes: number | null;
  /** Downstream connections (inbound and outbound listeners) that are 100%; null: not monitored. */
  readonly maxConnections: number | null;
  /** Inbound requests in flight (to the workload) that are 100%; null: not monitored. */
  readonly maxActiveRequests: number | null;
  /** Event-loop delay (the longest in the last interval) that is 100%, ms; null: not monitored. */
  readonly maxEventLoopDelayMs: number | null;
  /** Pressure (percent, 0 < x <= 100) from which new requests are shed. */
  readonly shedAt: number;
  /** Percent of maxConnections (0 < x <= 100) from which the listeners refuse new connections. */
  readonly stopAcceptingAt: number;
}

export const OVERLOAD_DEFAULTS = Object.freeze({ refreshIntervalMs: 1000, shedAt: 95, stopAcceptingAt: 100 });

const LIMITS = ['maxHeapBytes', 'maxConnections', 'maxActiveRequests', 'maxEventLoopDelayMs'] as const;
const KNOWN = ['refreshIntervalMs', ...LIMITS, 'shedAt', 'stopAcceptingAt'];

type Obj = Record<string, unknown>;
type Report = (path: string, msg: string) => void;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown) => JSON.stringify(v) ?? String(v);

/** Validates `overload` (undefined or null: no overload manager), reporting problems as `overload.<field>: <message>`. */
export function parseOverloadConfig(value: unknown, report: Report): OverloadConfig | null {
  if (value === undefined || value === null) return null;
  if (!isObj(value)) {
    report('overload', `must be a mapping, got ${show(value)}`);
    return null;
  }
  let ok = true;
  const fail = (field: string, msg: string) => {
    ok = false;
    report(`overload.${field}`, msg);
  };
  for (const k of Object.keys(value)) if (!KNOWN.includes(k)) fail(k, `unknown field; known fields: ${KNOWN.join(', ')}`);
  const int = (field: string, min: number, max: number): number | null => {
    const v = value[field];
    if (v === undefined) return null;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      fail(field, `must be an integer ${min}..${max}, got ${show(v)}`);
      return null;
    }
    return v;
  };
  const percent = (field: string, fallback: number): number => {
    const v = value[field];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > 100) {
      fail(field, `must be a percentage above 0 and at most 100, got ${show(v)}`);
      return fallback;
    }
    return v;
  };
  const refreshIntervalMs = int('refreshIntervalMs', 10, 60_000) ?? OVERLOAD_DEFAULTS.refreshIntervalMs;
  const maxHeapBytes = int('maxHeapBytes', 1, Number.MAX_SAFE_INTEGER);
  const maxConnections = int('maxConnections', 1, 10_000_000);
  const maxActiveRequests = int('maxActiveRequests', 1, 10_000_000);
  const maxEventLoopDelayMs = int('maxEventLoopDelayMs', 1, 3_600_000);
  const shedAt = percent('shedAt', OVERLOAD_DEFAULTS.shedAt);
  const stopAcceptingAt = percent('stopAcceptingAt', OVERLOAD_DEFAULTS.stopAcceptingAt);
  if (LIMITS.every((k) => value[k] === undefined)) {
    ok = false;
    report('overload', `must set at least one of ${LIMITS.join(', ')} (without limits nothing is monitored; remove the section to turn the overload manager off)`);
  }
  if (value.stopAcceptingAt !== undefined && value.maxConnections === undefined) {
    fail('stopAcceptingAt', 'has no effect without maxConnections: set maxConnections too, or remove stopAcceptingAt');
  }
  if (!ok) return null;
  return Object.freeze({ refreshIntervalMs, maxHeapBytes, maxConnections, maxActiveRequests, maxEventLoopDelayMs, shedAt, stopAcceptingAt });
}
