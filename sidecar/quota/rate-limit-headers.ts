/**
 * Rate-limit response headers, set on every response to a request a limit counted (allowed or
 * refused):
 *
 *   RateLimit-Policy: "<quota>.<limit>";q=<tokens+burst>;w=<interval s>  draft-ietf-httpapi-ratelimit-headers
 *   RateLimit: "<quota>.<limit>";r=<remaining>;t=<reset s>          (structured fields, -09/-10), one list
 *                                                                   item per limit that counted the request
 *   x-ratelimit-limit: <tokens+burst>                               the de-facto headers (GitHub, Envoy's
 *   x-ratelimit-remaining: <remaining>                              x-ratelimit-*): the most restrictive
 *   x-ratelimit-reset: <reset s>                                    limit (fewest remaining) only; on a 429
 *                                                                   the refused limit that resets last
 *
 * Items are named `<quota short name>.<limit>` (CompiledLimit.label: the Quota's metadata name,
 * without the namespace every Quota of a sidecar shares), so two Quotas' same-named limits stay
 * apart and a name never changes when another Quota is added. The policy item of a limit is
 * constant: built once when the quota is compiled.
 */

/** A structured-field string (RFC 9651 sf-string): quotes and backslashes escaped. */
export function sfString(s: string): string {
  // Quota and limit names never hold either (validated names): skip the replace per response.
  if (s.indexOf('"') === -1 && s.indexOf('\\') === -1) return `"${s}"`;
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
  /** policyItem(limit, tokens + burst, interval), precompiled. */
  readonly policy: string;
  /** What one window admits: tokens + burst (the policy's q; x-ratelimit-limit). */
  readonly tokens: number;
  readonly remaining: number;
  readonly resetSeconds: number;
}

/**
 * The headers for the limits that counted a request (at least one), as [name, value] pairs.
 * x-ratelimit-* describe `describe` when given (on a 429: the refused limit that resets last,
 * the one Retry-After names), else the most restrictive limit (fewest remaining).
 */
export function rateLimitHeaders(facts: readonly HeaderFacts[], describe: HeaderFacts | null = null): [string, string][] {
  let tightest = facts[0]!;
  let policy = tightest.policy;
  let state = rateLimitItem(tightest.limit, tightest.remaining, tightest.resetSeconds);
  for (let i = 1; i < facts.length; i++) {
    const f = facts[i]!;
    policy += `, ${f.policy}`;
    state += `, ${rateLimitItem(f.limit, f.remaining, f.resetSeconds)}`;
    if (f.remaining < tightest.remaining) tightest = f;
  }
  if (describe !== null) tightest = describe;
  return [
    ['ratelimit-policy', policy],
    ['ratelimit', state],
    ['x-ratelimit-limit', String(tightest.tokens)],
    ['x-ratelimit-remaining', String(tightest.remaining)],
    ['x-ratelimit-reset', String(tightest.resetSeconds)],
  ];
}
