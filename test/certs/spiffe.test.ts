import { describe, expect, it } from 'vitest';
import { formatSpiffeId, parseSpiffeId, parseWorkloadId, trustDomainId, workloadId } from '../../certs/spiffe.ts';

describe('parseSpiffeId', () => {
  it.each([
    ['spiffe://example.org', 'example.org', ''],
    ['spiffe://example.org/ns/default/sa/web', 'example.org', '/ns/default/sa/web'],
    ['spiffe://td_1-2.x/A.b-c_d', 'td_1-2.x', '/A.b-c_d'],
    ['spiffe://a/..a/.b/...', 'a', '/..a/.b/...'],
    [`spiffe://t/${'a'.repeat(2048 - 'spiffe://t/'.length)}`, 't', `/${'a'.repeat(2048 - 'spiffe://t/'.length)}`],
  ])('accepts %s', (input, trustDomain, path) => {
    expect(parseSpiffeId(input)).toEqual({ valid: true, result: { trustDomain, path, uri: input } });
  });

  it.each([
    ['', 'SPIFFE ID is empty'],
    ['example.org/ns/a', 'SPIFFE ID has no scheme (want "spiffe://")'],
    ['https://example.org/a', 'scheme must be "spiffe", got "https"'],
    ['SPIFFE://example.org/a', 'scheme must be "spiffe", got "SPIFFE"'],
    ['spiffe:/example.org/a', 'SPIFFE ID must start with "spiffe://" (authority missing)'],
    ['spiffe:///a', 'trust domain is empty'],
    ['spiffe://', 'trust domain is empty'],
    ['spiffe://Example.org/a', 'trust domain "Example.org" may contain only lowercase letters, digits, ".", "-" and "_"'],
    ['spiffe://exa$mple/a', 'trust domain "exa$mple" may contain only lowercase letters, digits, ".", "-" and "_"'],
    ['spiffe://example.org:8080/a', 'trust domain must not contain a port or ":"'],
    ['spiffe://user@example.org/a', 'trust domain must not contain userinfo (@)'],
    ['spiffe://example.org/a?x=1', 'SPIFFE ID must not have a query'],
    ['spiffe://example.org/a#frag', 'SPIFFE ID must not have a fragment'],
    ['spiffe://example.org/a%20b', 'SPIFFE ID must not contain percent-encoded characters'],
    ['spiffe://example.org/', 'path must not end with "/"'],
    ['spiffe://example.org/a/', 'path must not end with "/"'],
    ['spiffe://example.org//a', 'path has an empty segment'],
    ['spiffe://example.org/a/./b', 'path segment "." is not allowed'],
    ['spiffe://example.org/a/../b', 'path segment ".." is not allowed'],
    ['spiffe://example.org/a b', 'path segment "a b" may contain only letters, digits, ".", "-" and "_"'],
    ['spiffe://example.org/caf\u00e9', 'path segment "caf\u00e9" may contain only letters, digits, ".", "-" and "_"'],
    [`spiffe://t/${'a'.repeat(2049 - 'spiffe://t/'.length)}`, 'SPIFFE ID is longer than 2048 bytes (2049)'],
    [`spiffe://${'a'.repeat(256)}/x`, 'trust domain is longer than 255 bytes (256)'],
  ])('refuses %j: %s', (input, reason) => {
    const got = parseSpiffeId(input);
    expect(got.valid).toBe(false);
    if (!got.valid) expect(got.errors).toContain(reason);
  });

  it('reports every problem at once', () => {
    expect(parseSpiffeId('spiffe://Ex:1/a//b?q')).toEqual({
      valid: false,
      errors: [
        'SPIFFE ID must not have a query',
        'trust domain must not contain a port or ":"',
        'trust domain "Ex:1" may contain only lowercase letters, digits, ".", "-" and "_"',
        'path has an empty segment',
      ],
    });
  });

  it('round-trips format → string → parse', () => {
    const formatted = formatSpiffeId('prod.example.com', '/ns/pay/sa/api');
    expect(formatted).toEqual({ valid: true, result: { trustDomain: 'prod.example.com', path: '/ns/pay/sa/api', uri: 'spiffe://prod.example.com/ns/pay/sa/api' } });
    if (formatted.valid) expect(parseSpiffeId(formatted.result.uri)).toEqual(formatted);
  });

  it('formats the trust domain ID with no path', () => {
    expect(trustDomainId('example.org')).toEqual({ valid: true, result: { trustDomain: 'example.org', path: '', uri: 'spiffe://example.org' } });
  });
});

describe('workloadId', () => {
  it('builds spiffe://<td>/ns/<ns>/sa/<sa>', () => {
    expect(workloadId('example.org', 'payments', 'api-v2')).toEqual({
      valid: true,
      result: { trustDomain: 'example.org', path: '/ns/payments/sa/api-v2', uri: 'spiffe://example.org/ns/payments/sa/api-v2' },
    });
  });

  it.each([
    ['Bad', 'ns', 'sa', 'trust domain "Bad" may contain only lowercase letters, digits, ".", "-" and "_"'],
    ['td', '', 'sa', 'namespace: path has an empty segment'],
    ['td', 'a/b', 'sa', 'namespace: path segment "a/b" may contain only letters, digits, ".", "-" and "_"'],
    ['td', 'ns', '..', 'service account: path segment ".." is not allowed'],
    ['td', 'ns', 'a?b', 'service account: path segment "a?b" may contain only letters, digits, ".", "-" and "_"'],
  ])('refuses td=%j ns=%j sa=%j: %s', (td, ns, sa, reason) => {
    expect(workloadId(td, ns, sa)).toEqual({ valid: false, errors: [reason] });
  });

  it('parses /ns/<ns>/sa/<sa> back into its parts', () => {
    const got = parseWorkloadId('spiffe://example.org/ns/payments/sa/api');
    expect(got).toEqual({
      valid: true,
      result: {
        trustDomain: 'example.org',
        namespace: 'payments',
        serviceAccount: 'api',
        id: { trustDomain: 'example.org', path: '/ns/payments/sa/api', uri: 'spiffe://example.org/ns/payments/sa/api' },
      },
    });
  });

  it.each([
    ['spiffe://example.org', 'path "" is not /ns/<namespace>/sa/<service-account>'],
    ['spiffe://example.org/ns/a/sa', 'path "/ns/a/sa" is not /ns/<namespace>/sa/<service-account>'],
    ['spiffe://example.org/ns/a/svc/b', 'path "/ns/a/svc/b" is not /ns/<namespace>/sa/<service-account>'],
    ['spiffe://example.org/ns/a/sa/b/c', 'path "/ns/a/sa/b/c" is not /ns/<namespace>/sa/<service-account>'],
    ['spiffe://example.org/ns/a/sa/b/', 'path must not end with "/"'],
  ])('parseWorkloadId refuses %s', (input, reason) => {
    expect(parseWorkloadId(input)).toEqual({ valid: false, errors: [reason] });
  });
});
