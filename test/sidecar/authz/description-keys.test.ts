/**
 * Cache keys read from the request description must equal the keys read from the built
 * input, or a cache hit could return another request's decision.
 */
import { describe, expect, it } from 'vitest';
import { DecisionCache } from '../../../policies/decision-cache.ts';
import { buildInput, type RequestDescription } from '../../../policies/input.ts';
import { descriptionKeys } from '../../../sidecar/authz/description-keys.ts';

const BASE: RequestDescription = {
  method: 'GET', path: '/api/v1/items?x=1', headers: { host: 'backend', 'x-tenant': 'acme', accept: ['a', 'b'] }, host: 'backend', scheme: 'https', protocol: 'HTTP/1.1',
  sourceAddress: '10.0.0.1', sourcePort: 5000, destinationAddress: '10.0.0.2', destinationPort: 8080,
  sourcePrincipal: 'spiffe://mesh.local/ns/default/sa/frontend', destinationPrincipal: 'spiffe://mesh.local/ns/default/sa/backend', requestId: 'r-1',
};

const KEYS = [
  'attributes.source.principal', 'attributes.destination.principal', 'attributes.request.http.method', 'attributes.request.http.path',
  'attributes.request.http.host', 'attributes.request.http.scheme', 'attributes.request.http.protocol', 'attributes.request.http.headers.x-tenant',
  'attributes.request.http.headers.accept', 'attributes.request.http.headers.:authority', 'attributes.request.http.headers.:scheme',
  'attributes.request.http.headers.:method', 'attributes.request.http.headers.:path', 'attributes.request.http.headers.missing',
  'attributes.request.http.headers.constructor', 'attributes.request.http.headers.__proto__', 'attributes.request.http.headers.tostring', 'parsed_path', 'parsed_path.1', 'parsed_path.9',
];

const VARIANTS: RequestDescription[] = [
  BASE,
  { ...BASE, sourcePrincipal: null },
  { ...BASE, sourcePrincipal: '' },
  { ...BASE, method: 'POST' },
  { ...BASE, path: '/%61pi//v1/items' },
  { ...BASE, path: '/' },
  { ...BASE, path: '' },
  { ...BASE, path: '///api//v1/' },
  { ...BASE, path: '/a\nb/c' },
  { ...BASE, path: '/a\u0001b/c?x=/y' },
  { ...BASE, path: '/%zz/bad-escape' },
  { ...BASE, path: '/a%0Ab/c%01d/e' },
  { ...BASE, headers: { host: 'backend' } },
  { ...BASE, headers: { ...BASE.headers, 'x-tenant': '' } },
  { ...BASE, host: 'other:8080', protocol: 'HTTP/2', scheme: 'http' },
  // node:http2 keeps the pseudo-headers the client sent: they win over the description's, as in buildInput.
  { ...BASE, protocol: 'HTTP/2', scheme: 'http', headers: { ':scheme': 'https', ':authority': 'claimed', ':method': 'GET', ':path': '/other', 'x-tenant': 'acme' } },
];

describe('cache keys from the request description', () => {
  it('equal the keys from the built input for every supported path and request shape', () => {
    for (const key of KEYS) {
      const readers = descriptionKeys([key]);
      expect(readers, key).not.toBeNull();
      const cache = DecisionCache.create({ cacheKeys: [key] });
      for (const d of VARIANTS) {
        expect(cache.keyFrom('rev', readers!, d), `${key} ${JSON.stringify(d)}`).toBe(cache.keyFor('rev', buildInput(d)));
      }
    }
  });

  it('leave other paths to the built input', () => {
    expect(descriptionKeys(['attributes.request.http.method', 'attributes.metadataContext.filterMetadata'])).toBeNull();
    expect(descriptionKeys(['attributes.request.http.headers.X-Tenant'])).toBeNull();
    expect(descriptionKeys(['parsed_query.x'])).toBeNull();
  });
});
