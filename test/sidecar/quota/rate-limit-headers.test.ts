import { describe, expect, it } from 'vitest';
import { policyItem, rateLimitHeaders, rateLimitItem, sfString } from '../../../sidecar/quota/rate-limit-headers.ts';

describe('rate-limit headers', () => {
  it('formats the IETF draft structured fields', () => {
    expect(policyItem('per-tenant', 100, 1)).toBe('"per-tenant";q=100;w=1');
    expect(rateLimitItem('per-tenant', 42, 1)).toBe('"per-tenant";r=42;t=1');
    expect(sfString('a"b\\c')).toBe('"a\\"b\\\\c"');
  });

  it('sets one list item per limit and the x-ratelimit-* of the limit with the fewest remaining', () => {
    const headers = rateLimitHeaders([
      { limit: 'per-tenant', policy: policyItem('per-tenant', 100, 60), tokens: 100, remaining: 42, resetSeconds: 30 },
      { limit: 'per-route', policy: policyItem('per-route', 10, 1), tokens: 10, remaining: 3, resetSeconds: 1 },
    ]);
    expect(Object.fromEntries(headers)).toEqual({
      'ratelimit-policy': '"per-tenant";q=100;w=60, "per-route";q=10;w=1',
      ratelimit: '"per-tenant";r=42;t=30, "per-route";r=3;t=1',
      'x-ratelimit-limit': '10',
      'x-ratelimit-remaining': '3',
      'x-ratelimit-reset': '1',
    });
  });
});
