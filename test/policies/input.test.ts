import { describe, expect, it } from 'vitest';
import { buildInput, parsePath, parseQuery, type RequestDescription } from '../../policies/input.ts';

const SAMPLE: RequestDescription = {
  method: 'GET',
  path: '/api/v1/products?lang=en&tag=a+b&tag=c%2Fd',
  headers: { 'User-Agent': 'curl/8.0', accept: '*/*', 'x-request-id': 'req-42', 'x-forwarded-for': ['1.1.1.1', '2.2.2.2'], skipped: undefined },
  host: '192.168.99.100:31380',
  scheme: 'http',
  protocol: 'HTTP/1.1',
  sourceAddress: '172.17.0.10',
  sourcePort: 36472,
  destinationAddress: '172.17.0.17',
  destinationPort: 9080,
  sourcePrincipal: 'spiffe://cluster.local/ns/default/sa/productpage',
  destinationPrincipal: 'spiffe://cluster.local/ns/default/sa/details',
  requestId: 'req-42',
};

describe('buildInput', () => {
  it('builds the OPA-Envoy document of the plugin docs example', () => {
    // Field names and shapes of the OPA-Envoy "Example Input" (ext_authz v3, protojson).
    expect(JSON.parse(JSON.stringify(buildInput(SAMPLE)))).toEqual({
      attributes: {
        source: { address: { socketAddress: { address: '172.17.0.10', portValue: 36472 } }, principal: 'spiffe://cluster.local/ns/default/sa/productpage' },
        destination: { address: { socketAddress: { address: '172.17.0.17', portValue: 9080 } }, principal: 'spiffe://cluster.local/ns/default/sa/details' },
        request: {
          http: {
            id: 'req-42',
            method: 'GET',
            headers: {
              ':authority': '192.168.99.100:31380',
              ':method': 'GET',
              ':path': '/api/v1/products?lang=en&tag=a+b&tag=c%2Fd',
              ':scheme': 'http',
              'user-agent': 'curl/8.0',
              accept: '*/*',
              'x-request-id': 'req-42',
              'x-forwarded-for': '1.1.1.1,2.2.2.2',
            },
            path: '/api/v1/products?lang=en&tag=a+b&tag=c%2Fd',
            host: '192.168.99.100:31380',
            scheme: 'http',
            protocol: 'HTTP/1.1',
          },
        },
        metadataContext: {},
      },
      parsed_path: ['api', 'v1', 'products'],
      parsed_query: { lang: ['en'], tag: ['a b', 'c/d'] },
      truncated_body: false,
      version: { encoding: 'protojson', ext_authz: 'v3' },
    });
  });

  it('puts verified JWT payloads where Envoy jwt_authn payload_in_metadata does', () => {
    const input = buildInput({ ...SAMPLE, jwtPayloads: { 'my-issuer': { sub: 'ann', roles: ['admin'] } } });
    expect(input.attributes.metadataContext).toEqual({ filterMetadata: { 'envoy.filters.http.jwt_authn': { 'my-issuer': { sub: 'ann', roles: ['admin'] } } } });
  });

  it('omits an absent principal, adds time and size when known', () => {
    const input = buildInput({ ...SAMPLE, sourcePrincipal: null, time: new Date('2026-01-02T03:04:05.678Z'), bodySize: 12, protocol: 'HTTP/2' });
    expect(input.attributes.source).toEqual({ address: { socketAddress: { address: '172.17.0.10', portValue: 36472 } } });
    expect(input.attributes.request.time).toBe('2026-01-02T03:04:05.678Z');
    expect(input.attributes.request.http.size).toBe('12');
    expect(input.attributes.request.http.protocol).toBe('HTTP/2');
  });
});

describe('parsePath / parseQuery (Go url.Parse and ParseQuery, as OPA-Envoy)', () => {
  it.each<[string, string[]]>([
    ['/', ['']],
    ['/a/b/', ['a', 'b', '']],
    ['//a', ['a']],
    ['/caf%C3%A9/x%20y', ['café', 'x y']],
    ['/a%2Fb', ['a', 'b']],
    ['/a+b', ['a+b']],
    ['/bad%zz', ['bad%zz']],
  ])('parsePath(%j) = %j', (path, segments) => {
    expect(parsePath(path)).toEqual(segments);
  });

  it.each<[string, Record<string, string[]>]>([
    ['', {}],
    ['a=1&a=2&b', { a: ['1', '2'], b: [''] }],
    ['q=a+b%21&&x=', { q: ['a b!'], x: [''] }],
    ['a=1;b=2&c=3', { c: ['3'] }],
    ['bad=%zz&ok=1', { ok: ['1'] }],
    ['__proto__=x', { ['__proto__']: ['x'] }],
  ])('parseQuery(%j) = %j', (query, parsed) => {
    expect({ ...parseQuery(query) }).toEqual(parsed);
  });
});
