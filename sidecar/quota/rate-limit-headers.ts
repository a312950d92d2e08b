/**
 * Rate-limit response headers, set on every response to a request a limit counted (allowed or
 * refused):
 *
 *   RateLimit-Policy: "<limit>";q=<tokens>;w=<interval s>      IETF draft-ietf-httpapi-ratelimit-headers
 *   RateLimit: "<limit>";r=<remaining>;t=<reset s>             (structured fields, -09/-10), one list
 *                                                              item per limit that counted the request
 *   x-ratelimit-limit: <tokens>                                the de-facto headers (GitHub, Envoy's
 *   x-ratelimit-remaining: <remaining>                         x-ratelimit-*): the most restrictive
 *   x-ratelimit-reset: <reset s>                               limit (fewest remaining) only
 *
 * The policy item of a limit is constant: built once when the quota is compiled.
 */

/** A structured-field string (RFC 9651 sf-string): quotes and backslashes escaped. */
export function sfString(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** One RateLimit-Policy list item. */
export function policyItem(limit: string, tokens: number, intervalSeconds: number): string {
  return `${sfString(limit)};q=${tokens};w=${intervalSeconds}`;
}

/** One RateLimit list item. */
export function rateLimitItem(limit: string, remaining: number, resetSeconds: number): string {
  return `${sfString(limit)};r=${remaining};t=${resetSeconds}`;
}

/** What one limit said about a request, for the headers. */
export interface HeaderFacts {
  readonly limit: string;
  /** policyItem(limit, tokens, interval), precompiled. */
  readonly policy: string;
  readonly tokens: number;
  readonly remaining: number;
  readonly resetSeconds: number;
}

/** The headers for the limits that counted a request (at least one), as [name, value] pairs. */
export function rateLimitHeaders(facts: readonly HeaderFacts[]): [string, string][] {
  let tightest = facts[0]!;
  let policy = tightest.policy;
  let state = rateLimitItem(tightest.limit, tightest.remaining, tightest.resetSeconds);
  for (let i = 1; i < facts.length; i++) {
    const f = facts[i]!;
    policy += `, ${f.policy}`;
    state += `, ${rateLimitItem(f.limit, f.remaining, f.resetSeconds)}`;
    if (f.remaining < tightest.remaining) tightest = f;
  }
  return [
    ['ratelimit-policy', policy],
    ['ratelimit', state],
    ['x-ratelimit-limit', String(tightest.tokens)],
    ['x-ratelimit-remaining', String(tightest.remaining)],
    ['x-ratelimit-reset', String(tightest.resetSeconds)],
  ];
}
