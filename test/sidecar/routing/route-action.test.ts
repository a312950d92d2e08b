/** Redirects and direct responses: the Location Envoy's newUri would build, and inline bodies. */
import { describe, expect, it } from 'vitest';
import { RedirectAction_RedirectResponseCode } from '../../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { compileRouteTable, type RedirectResponse } from '../../../sidecar/routing/route-table.ts';
import { compile, exact, NO_HEADERS, prefix, regex, routeConfig, type RouteInit } from './fixtures.ts';

type RedirectInit = Extract<RouteInit['action'], { case: 'redirect' }>['value'];

/** The redirect of a one-route table, found by requesting `probe`. */
function redirect(init: RedirectInit, match: RouteInit['match'], probe: string): RedirectResponse {
  const m = compile(routeConfig([{ name: 'vh', domains: ['*'], routes: [{ match, action: { case: 'redirect', value: init } }] }])).match('h', probe, 'GET', NO_HEADERS);
  if (m?.action.kind !== 'redirect') throw new Error('expected a redirect');
  expect([m.timeoutMs, m.retry]).toEqual([0, null]);
  return m.action;
}

describe('redirects', () => {
  it.each<[string, RedirectInit, [string, string, string], string]>([
    ['https_redirect drops :80', { schemeRewriteSpecifier: { case: 'httpsRedirect', value: true } }, ['http', 'example.com:80', '/a?b=1'], 'https://example.com/a?b=1'],
    ['https_redirect keeps another port', { schemeRewriteSpecifier: { case: 'httpsRedirect', value: true } }, ['http', 'example.com:8080', '/a'], 'https://example.com:8080/a'],
    ['same scheme keeps :80', { hostRedirect: '' , pathRewriteSpecifier: { case: 'pathRedirect', value: '/b' } }, ['http', 'example.com:80', '/a'], 'http://example.com:80/b'],
    ['host, port and path', { hostRedirect: 'new.example', portRedirect: 8443, pathRewriteSpecifier: { case: 'pathRedirect', value: '/new' } }, ['http', 'old:80', '/a?q=1'], 'http://new.example:8443/new?q=1'],
    ['port only replaces the request port', { portRedirect: 9000 }, ['http', 'h:80', '/a'], 'http://h:9000/a'],
    ['IPv6 authority', { schemeRewriteSpecifier: { case: 'schemeRedirect', value: 'https' } }, ['http', '[::1]:80', '/'], 'https://[::1]/'],
    ['path_redirect with its own query wins', { pathRewriteSpecifier: { case: 'pathRedirect', value: '/p?x=1' }, stripQuery: true }, ['http', 'h', '/a?y=2'], 'http://h/p?x=1'],
    ['strip_query', { stripQuery: true }, ['https', 'h', '/a?y=2'], 'https://h/a'],
    ['prefix_rewrite replaces the matched prefix', { pathRewriteSpecifier: { case: 'prefixRewrite', value: '/new/' } }, ['http', 'h', '/old/x?q'], 'http://h/new/x?q'],
  ])('%s', (_name, init, [scheme, authority, path], location) => {
    expect(redirect(init, prefix(init.pathRewriteSpecifier?.case === 'prefixRewrite' ? '/old/' : '/'), path).location(scheme, authority, path)).toBe(location);
  });

  it('applies a regex rewrite to the path before the query', () => {
    const r = redirect({ pathRewriteSpecifier: { case: 'regexRewrite', value: { pattern: { regex: '^/old/(.*)$' }, substitution: '/new/\\1' } } }, regex('/old/.*'), '/old/a/b?c');
    expect(r.location('http', 'h', '/old/a/b?c')).toBe('http://h/new/a/b?c');
  });

  it.each([
    [RedirectAction_RedirectResponseCode.MOVED_PERMANENTLY, 301],
    [RedirectAction_RedirectResponseCode.FOUND, 302],
    [RedirectAction_RedirectResponseCode.SEE_OTHER, 303],
    [RedirectAction_RedirectResponseCode.TEMPORARY_REDIRECT, 307],
    [RedirectAction_RedirectResponseCode.PERMANENT_REDIRECT, 308],
  ])('maps response_code %d to %d', (responseCode, status) => {
    expect(redirect({ responseCode, pathRewriteSpecifier: { case: 'pathRedirect', value: '/x' } }, exact('/'), '/').status).toBe(status);
  });
});

describe('direct responses', () => {
  it('encodes an inline body once and keeps the status', () => {
    const t = compile(routeConfig([{
      name: 'vh', domains: ['*'],
      routes: [
        { match: prefix('/str'), action: { case: 'directResponse', value: { status: 404, body: { specifier: { case: 'inlineString', value: 'nope ✗' } } } } },
        { match: prefix('/bytes'), action: { case: 'directResponse', value: { status: 200, body: { specifier: { case: 'inlineBytes', value: new Uint8Array([1, 2]) } } } } },
        { match: prefix('/'), action: { case: 'directResponse', value: { status: 204 } } },
      ],
    }]));
    const action = (p: string) => t.match('h', p, 'GET', NO_HEADERS)!.action;
    expect(action('/str')).toEqual({ kind: 'direct', status: 404, body: Buffer.from('nope ✗') });
    expect(action('/str')).toBe(action('/str/again'));
    expect(action('/bytes')).toEqual({ kind: 'direct', status: 200, body: new Uint8Array([1, 2]) });
    expect(action('/')).toEqual({ kind: 'direct', status: 204, body: null });
  });

  it('refuses a body above max_direct_response_body_size_bytes (default 4096)', () => {
    const rc = (size: number, max?: number) => routeConfig(
      [{ name: 'vh', domains: ['*'], routes: [{ match: prefix('/'), action: { case: 'directResponse', value: { status: 200, body: { specifier: { case: 'inlineString', value: 'x'.repeat(size) } } } } }] }],
      { maxDirectResponseBodySizeBytes: max },
    );
    expect(compileRouteTable(rc(4096)).valid).toBe(true);
    expect(compileRouteTable(rc(4097))).toEqual({ valid: false, errors: ['virtual_hosts[0].routes[0].direct_response.body: response body is 4097 bytes; the maximum is 4096 (max_direct_response_body_size_bytes)'] });
    expect(compileRouteTable(rc(5000, 8192)).valid).toBe(true);
  });
});
