/**
 * Maps an error from an undici request to the outcome outlier detection wants, by the
 * error's `code` (undici's `UND_ERR_*`, or the errno of the socket), never by class.
 */
import type { UpstreamResult } from './outlier-detector.ts';

const TIMEOUT = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
// A failed upstream TLS handshake (or one that could not start for want of a secret) is a
// connect failure, as Envoy's UF (tls-connector.ts).
const CONNECT = new Set([
  'UND_ERR_CONNECT_TIMEOUT', 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL',
  'PAL_ERR_SIDECAR_UPSTREAM_TLS', 'PAL_ERR_SIDECAR_UPSTREAM_TLS_SECRET',
]);

/** 'timeout', 'connect-failure' or (anything else that ended the exchange) 'reset'. */
export function classifyUpstreamError(err: unknown): Exclude<UpstreamResult, number> {
  let e: unknown = err;
  // net.connect with autoSelectFamily fails with an AggregateError; undici may wrap the cause.
  for (let depth = 0; depth < 4 && e !== null && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (TIMEOUT.has(code)) return 'timeout';
      if (CONNECT.has(code)) return 'connect-failure';
    }
    const next = e instanceof AggregateError ? e.errors[0] : (e as { cause?: unknown }).cause;
    if (next === undefined) break;
    e = next;
  }
  return 'reset';
}
