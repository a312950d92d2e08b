/**
 * Header rewriting between the downstream and upstream hops (RFC 9110 §7.6.1, as Envoy's
 * `ConnectionManagerUtility` / `HeaderUtility` do it): hop-by-hop fields are dropped in both
 * directions, and so is every field the `Connection` header names.
 *
 * Always dropped: Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade (no
 * upgrades through this forwarder; upgrade.ts puts it back for WebSocket), HTTP2-Settings, Proxy-Authorization and Proxy-Authenticate (RFC 2616
 * §13.5.1 hop-by-hop; a sidecar must not leak proxy credentials to the application), and,
 * on requests, Expect (Node's server answers `100-continue` itself and undici refuses it).
 * TE is dropped unless it names `trailers`, which is sent on as `te: trailers`, as Envoy.
 */

/** Lowercase names dropped from requests and responses. */
export const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate',
  // HTTP/2 forbids it as connection-specific (RFC 9113 §8.2.2); Node's http2 throws on it.
  'http2-settings',
]);

/** Connection values that list only `close` / `keep-alive` (no header to drop beyond HOP_BY_HOP). */
const COMMON_CONNECTION_VALUES = new Set(['keep-alive', 'Keep-Alive', 'close', 'Close', 'keep-alive, close']);

/**
 * Lowercase field names listed in a Connection header value (`close, X-Foo` → {close, x-foo}),
 * or null when there is no Connection header or it names nothing.
 */
export function connectionTokens(value: string | string[] | undefined): Set<string> | null {
  if (value === undefined) return null;
  // The common values name nothing beyond the hop-by-hop fields already dropped: no Set, no split.
  if (typeof value === 'string' && COMMON_CONNECTION_VALUES.has(value)) return null;
  const joined = typeof value === 'string' ? value : value.join(',');
  let out: Set<string> | null = null;
  for (const t of joined.split(',')) {
    const name = t.trim().toLowerCase();
    if (name === '') continue;
    if (out === null) out = new Set();
    out.add(name);
  }
  return out;
}

/** Whether a TE value lists the `trailers` token (case-insensitive, parameters ignored). */
export function teHasTrailers(value: string): boolean {
  for (const t of value.split(',')) {
    const semi = t.indexOf(';');
    if ((semi < 0 ? t : t.slice(0, semi)).trim().toLowerCase() === 'trailers') return true;
  }
  return false;
}

/**
 * The response headers to send downstream: undici's parsed headers without the hop-by-hop
 * fields and those the upstream's Connection header names.
 */
export function responseHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const named = connectionTokens(headers['connection']);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const v = headers[name];
    if (v === undefined || HOP_BY_HOP.has(name) || name === 'te' || (named !== null && named.has(name))) continue;
    out[name] = v;
  }
  return out;
}
