/**
 * The normalized authorization decision, and its reading from an OPA-Envoy result. Policies
 * written for the OPA-Envoy plugin answer either a boolean or an object
 * `{allowed, headers, response_headers_to_add, request_headers_to_remove, body, http_status}`;
 * both become a Decision. Anything else (undefined, a non-boolean `allowed`, a malformed
 * field) is an error decision: the sidecar fails closed with 500.
 */

/** One header, name lowercased. */
export type HeaderEntry = readonly [name: string, value: string];

export interface Decision {
  /** Serve the request. Always false when `error`. */
  readonly allowed: boolean;
  /** The policy could not decide (evaluation error, undefined or malformed result): answer 500; `reason` says why. */
  readonly error: boolean;
  /** OPA-Envoy `http_status`: the status of a denial (the sidecar's default is 403); null when unset. */
  readonly httpStatus: number | null;
  /** OPA-Envoy `body`: the body of a denial; null when unset. */
  readonly body: string | null;
  /** OPA-Envoy `headers`: on allow added to the upstream request, on deny set on the denial response. */
  readonly headers: readonly HeaderEntry[] | null;
  /** OPA-Envoy `response_headers_to_add`: added to the upstream's response (allow only). */
  readonly responseHeadersToAdd: readonly HeaderEntry[] | null;
  /** OPA-Envoy `request_headers_to_remove`: removed from the upstream request (allow only). */
  readonly requestHeadersToRemove: readonly string[] | null;
  /** For errors, what went wrong; otherwise a string `reason` field of an object result (a Palisade extension), else null. */
  readonly reason: string | null;
}

const BASE = { error: false, httpStatus: null, body: null, headers: null, responseHeadersToAdd: null, requestHeadersToRemove: null, reason: null } as const;

/** The decisions of boolean results, shared: no allocation on the common path. */
export const ALLOW: Decision = Object.freeze({ ...BASE, allowed: true });
export const DENY: Decision = Object.freeze({ ...BASE, allowed: false });

/** An error decision: deny, answer 500, log `reason`. */
export function errorDecision(reason: string): Decision {
  return Object.freeze({ ...BASE, allowed: false, error: true, reason });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** OPA-Envoy header maps: `{name: value | [values]}`. */
function headerList(v: unknown, field: string): HeaderEntry[] | string | null {
  if (v === undefined || v === null) return null;
  if (!isObject(v)) return `${field} must be an object of header names to strings`;
  const out: HeaderEntry[] = [];
  for (const [name, value] of Object.entries(v)) {
    const values = Array.isArray(value) ? value : [value];
    for (const x of values) {
      if (typeof x !== 'string') return `${field}.${name} must be a string or an array of strings`;
      out.push([name.toLowerCase(), x]);
    }
  }
  return out;
}

/**
 * Reads one entrypoint result (the `result` of opa-wasm's result set, or `opa eval`'s
 * expression value) as a Decision. `undefined` means the rule was undefined.
 */
export function toDecision(result: unknown): Decision {
  if (result === true) return ALLOW;
  if (result === false) return DENY;
  if (result === undefined) return errorDecision('policy result is undefined');
  if (!isObject(result)) return errorDecision(`policy result must be a boolean or an object, got ${JSON.stringify(result)}`);
  if (typeof result.allowed !== 'boolean') return errorDecision('policy result object needs a boolean "allowed"');
  const status = result.http_status ?? null;
  if (status !== null && !(Number.isInteger(status) && (status as number) >= 100 && (status as number) <= 599)) {
    return errorDecision(`policy result http_status must be an integer in 100..599, got ${JSON.stringify(status)}`);
  }
  const body = result.body ?? null;
  if (body !== null && typeof body !== 'string') return errorDecision('policy result body must be a string');
  const headers = headerList(result.headers, 'headers');
  if (typeof headers === 'string') return errorDecision(`policy result ${headers}`);
  const responseHeadersToAdd = headerList(result.response_headers_to_add, 'response_headers_to_add');
  if (typeof responseHeadersToAdd === 'string') return errorDecision(`policy result ${responseHeadersToAdd}`);
  const remove = result.request_headers_to_remove ?? null;
  if (remove !== null && !(Array.isArray(remove) && remove.every((h) => typeof h === 'string'))) {
    return errorDecision('policy result request_headers_to_remove must be an array of strings');
  }
  const reason = typeof result.reason === 'string' ? result.reason : null;
  if (status === null && body === null && headers === null && responseHeadersToAdd === null && remove === null && reason === null) {
    return result.allowed ? ALLOW : DENY;
  }
  return Object.freeze({
    allowed: result.allowed,
    error: false,
    httpStatus: status as number | null,
    body: body as string | null,
    headers,
    responseHeadersToAdd,
    requestHeadersToRemove: remove === null ? null : (remove as string[]).map((h) => h.toLowerCase()),
    reason,
  });
}
