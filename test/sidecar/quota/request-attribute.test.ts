import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { RequestAttributeSchema, type RequestAttribute } from '../../../xds/gen/palisade/v1/quota_pb.js';
import { bucketKey, compileAttribute, escapeKeyPart, MAX_KEY_VALUE_BYTES, overflowKey } from '../../../sidecar/quota/request-attribute.ts';
import type { DownstreamRequest } from '../../../sidecar/listeners/http-listener.ts';

const attr = (source: RequestAttribute['source']) => create(RequestAttributeSchema, { source });

/** A request-shaped object with what the readers look at (a plaintext socket: no peer principal). */
function req(o: { method?: string; headers?: Record<string, string | string[]>; remoteAddress?: string }): DownstreamRequest {
  return { method: o.method ?? 'GET', url: '/', headers: o.headers ?? {}, socket: { remoteAddress: o.remoteAddress ?? '127.0.0.1', encrypted: false } } as unknown as DownstreamRequest;
}

const jwt = { idp: { sub: 'alice', org: { id: 'acme', size: 12, admin: true, tags: ['a'] } } };

describe('descriptor extraction', () => {
  it.each([
    ['a header', attr({ case: 'header', value: 'x-tenant' }), req({ headers: { 'x-tenant': 'acme' } }), 'acme'],
    ['the first value of a repeated header', attr({ case: 'header', value: 'x-tenant' }), req({ headers: { 'x-tenant': ['a', 'b'] } }), 'a'],
    ['an absent header as empty', attr({ case: 'header', value: 'x-tenant' }), req({}), ''],
    ['a top-level jwt claim', attr({ case: 'jwtClaim', value: 'idp.sub' }), req({}), 'alice'],
    ['a nested jwt claim', attr({ case: 'jwtClaim', value: 'idp.org.id' }), req({}), 'acme'],
    ['a numeric claim as text', attr({ case: 'jwtClaim', value: 'idp.org.size' }), req({}), '12'],
    ['a boolean claim as text', attr({ case: 'jwtClaim', value: 'idp.org.admin' }), req({}), 'true'],
    ['an array claim as empty', attr({ case: 'jwtClaim', value: 'idp.org.tags' }), req({}), ''],
    ['a claim of another provider as empty', attr({ case: 'jwtClaim', value: 'other.sub' }), req({}), ''],
    ['the method', attr({ case: 'method', value: true }), req({ method: 'DELETE' }), 'DELETE'],
    ['the route', attr({ case: 'route', value: true }), req({}), 'api'],
    ['the remote address', attr({ case: 'remoteAddress', value: true }), req({ remoteAddress: '10.0.0.7' }), '10.0.0.7'],
    ['an IPv4-mapped remote address as IPv4', attr({ case: 'remoteAddress', value: true }), req({ remoteAddress: '::ffff:10.0.0.7' }), '10.0.0.7'],
    ['no principal on a plaintext connection', attr({ case: 'principal', value: true }), req({}), ''],
  ])('reads %s', (_what, a, r, value) => {
    expect(compileAttribute(a)(r, { route: 'api', jwt })).toBe(value);
  });

  it('reads jwt claims as empty when the request has no verified token', () => {
    expect(compileAttribute(attr({ case: 'jwtClaim', value: 'idp.sub' }))(req({}), { route: 'default', jwt: null })).toBe('');
  });

  it('escapes the separator and the escape character in bucket keys, so distinct descriptors never share a bucket', () => {
    expect(escapeKeyPart('a|b%c')).toBe('a%7Cb%25c');
    expect(bucketKey('default/api', 'per-tenant', ['tenant', 'route'], ['acme', 'api'])).toBe('default/api|per-tenant|tenant=acme|route=api');
    const a = bucketKey('q', 'l', ['a', 'b'], ['x|b=y', 'z']);
    const b = bucketKey('q', 'l', ['a', 'b'], ['x', 'y|b=z']);
    expect(a).not.toBe(b);
  });

  it('puts a descriptor value over 64 bytes into the bucket key as a fixed-length sha256 digest no literal value can equal', () => {
    const short = 'a'.repeat(MAX_KEY_VALUE_BYTES);
    expect(bucketKey('q', 'l', ['tenant'], [short])).toBe(`q|l|tenant=${short}`);
    const long = 'a'.repeat(8192);
    const digest = createHash('sha256').update(long).digest('base64url');
    expect(bucketKey('q', 'l', ['tenant'], [long])).toBe(`q|l|tenant=%sha256:${digest}`);
    expect(bucketKey('q', 'l', ['tenant'], ['b'.repeat(100_000)])).toHaveLength(`q|l|tenant=%sha256:`.length + 43);
    // Counted in UTF-8 bytes: 22 three-byte characters are 66 bytes.
    expect(bucketKey('q', 'l', ['tenant'], ['€'.repeat(22)])).toMatch(/^q\|l\|tenant=%sha256:/);
    expect(bucketKey('q', 'l', ['tenant'], ['€'.repeat(21)])).toBe(`q|l|tenant=${'€'.repeat(21)}`);
    // A literal value spelling a digest (or the overflow marker) is escaped, so it keeps its own bucket.
    expect(bucketKey('q', 'l', ['tenant'], [`%sha256:${digest}`])).toBe(`q|l|tenant=%25sha256:${digest}`);
    expect(bucketKey('q', 'l', ['tenant'], ['%overflow'])).not.toBe(overflowKey('q', 'l', ['tenant']));
    expect(overflowKey('default/api', 'per-tenant', ['tenant', 'route'])).toBe('default/api|per-tenant|tenant=%overflow|route=%overflow');
  });
});
