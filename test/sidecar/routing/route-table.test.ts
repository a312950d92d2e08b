/**
 * Route table: virtual host selection and route matching follow Envoy's RouteMatcher, the
 * compiled MatchedRoute carries the route's action and policies, and a RouteConfiguration from
 * our own translator routes requests where its Routes say.
 */
import { describe, expect, it } from 'vitest';
import { anyPack, DurationSchema } from '@bufbuild/protobuf/wkt';
import { create } from '@bufbuild/protobuf';
import type { DesiredState } from '../../../control/config/state.ts';
import { stateFrom } from '../../helpers/desired-state.ts';
import { translate } from '../../../control/translate/translator.ts';
import type { ClientKind } from '../../../control/translate/node-kind.ts';
import { ROUTE_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import type { RouteConfiguration } from '../../../xds/gen/envoy/config/route/v3/route_pb.js';
import { compileRouteTable, DEFAULT_PER_REQUEST_BUFFER_LIMIT_BYTES, DEFAULT_ROUTE_TIMEOUT_MS, type MatchedRoute } from '../../../sidecar/routing/route-table.ts';
import {
  compile, exact, headers, ms, NO_HEADERS, prefix, regex, routeConfig, separated, target, toCluster, type RouteInit,
} from './fixtures.ts';

describe('virtual host selection', () => {
  const table = compile(routeConfig([
    { name: 'exact', domains: ['api.foo.com'], routes: [toCluster('exact')] },
    { name: 'suffix-long', domains: ['*-bar.foo.com'], routes: [toCluster('suffix-long')] },
    { name: 'suffix', domains: ['*.foo.com'], routes: [toCluster('suffix')] },
    { name: 'prefix-long', domains: ['api.foo.*'], routes: [toCluster('prefix-long')] },
    { name: 'prefix', domains: ['api.*'], routes: [toCluster('prefix')] },
    { name: 'default', domains: ['*'], routes: [toCluster('default')] },
  ]));

  it.each([
    ['api.foo.com', 'exact'],
    ['API.Foo.COM', 'exact'],
    ['www.foo.com', 'suffix'],
    ['baz-bar.foo.com', 'suffix-long'],
    ['x.baz-bar.foo.com', 'suffix-long'],
    ['api.x.foo.com', 'suffix'],
    ['api.foo.org', 'prefix-long'],
    ['api.bar.org', 'prefix'],
    ['.foo.com', 'default'],
    ['-bar.foo.com', 'suffix'],
    ['api.', 'default'],
    ['other.net', 'default'],
    ['', 'default'],
  ])('sends %j to the %s virtual host (exact > suffix > prefix > *, longest wildcard first)', (authority, vh) => {
    expect(table.virtualHostFor(authority)).toBe(vh);
    expect(table.match(authority, '/', 'GET', NO_HEADERS)?.virtualHost).toBe(vh);
  });

  it('returns null when no virtual host matches and there is no *', () => {
    const t = compile(routeConfig([{ name: 'a', domains: ['a.com'], routes: [toCluster('a')] }]));
    expect(t.virtualHostFor('b.com')).toBeNull();
    expect(t.match('b.com', '/', 'GET', NO_HEADERS)).toBeNull();
  });

  it('sends everything to a lone * virtual host', () => {
    const t = compile(routeConfig([{ name: 'all', domains: ['*'], routes: [toCluster('c')] }]));
    expect(target(t.match('anything:1234', '/x', 'GET', NO_HEADERS))).toBe('c');
  });
});

describe('route matching', () => {
  const table = compile(routeConfig([{
    name: 'vh', domains: ['*'],
    routes: [
      toCluster('api', prefix('/api/')),
      toCluster('exact', exact('/exact')),
      toCluster('users', regex('/users/[0-9]+')),
      toCluster('docs', separated('/docs')),
      toCluster('nocase', prefix('/CI/', false)),
      toCluster('exact-nocase', exact('/Upper', false)),
      toCluster('query-in-prefix', prefix('/q?x')),
      toCluster('root', prefix('/')),
    ],
  }]));

  it.each([
    ['/api/v1', 'api'],
    ['/api/', 'api'],
    ['/API/v1', 'root'],
    ['/api', 'root'],
    ['/exact', 'exact'],
    ['/exact?x=1', 'exact'],
    ['/exact#frag', 'exact'],
    ['/exact/more', 'root'],
    ['/exactly', 'root'],
    ['/users/42', 'users'],
    ['/users/42?page=2', 'users'],
    ['/users/42/friends', 'root'],
    ['/users/abc', 'root'],
    ['/a/users/42', 'root'],
    ['/docs', 'docs'],
    ['/docs/', 'docs'],
    ['/docs/guide', 'docs'],
    ['/docs?q=1', 'docs'],
    ['/docsify', 'root'],
    ['/ci/a', 'nocase'],
    ['/Ci/A', 'nocase'],
    ['/UPPER', 'exact-nocase'],
    ['/upper?x', 'exact-nocase'],
    ['/q?x', 'root'],
  ])('routes %s to %s', (path, cluster) => {
    expect(target(table.match('h', path, 'GET', NO_HEADERS))).toBe(cluster);
  });

  it('takes the first matching route, not the most specific', () => {
    const t = compile(routeConfig([{ name: 'vh', domains: ['*'], routes: [toCluster('short', prefix('/a')), toCluster('long', prefix('/a/b'))] }]));
    expect(target(t.match('h', '/a/b/c', 'GET', NO_HEADERS))).toBe('short');
  });

  it('skips a route whose headers do not match and takes the next', () => {
    const t = compile(routeConfig([{
      name: 'vh', domains: ['*'],
      routes: [
        toCluster('post', { pathSpecifier: { case: 'prefix', value: '/' }, headers: [{ name: ':method', headerMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'exact', value: 'POST' } } } }] }),
        toCluster('other'),
      ],
    }]));
    expect(target(t.match('h', '/x', 'POST', NO_HEADERS))).toBe('post');
    expect(target(t.match('h', '/x', 'GET', NO_HEADERS))).toBe('other');
  });

  it('returns null when the virtual host has no matching route', () => {
    const t = compile(routeConfig([{ name: 'vh', domains: ['*'], routes: [toCluster('a', prefix('/a'))] }]));
    expect(t.match('h', '/b', 'GET', NO_HEADERS)).toBeNull();
  });

  it.each([
    ['exact', { exact: 'prod' }, false, [['prod', true], ['staging', false], [undefined, false]]],
    ['exact, inverted', { exact: 'prod' }, true, [['prod', false], ['staging', true], [undefined, false]]],
    ['prefix', { prefix: 'pr' }, false, [['prod', true], ['xprod', false]]],
    ['suffix', { suffix: 'od' }, false, [['prod', true], ['prodx', false]]],
    ['contains', { contains: 'ro' }, false, [['prod', true], ['pod', false]]],
  ] as const)('matches a %s header matcher', (_name, pattern, invert, cases) => {
    const [kind, value] = Object.entries(pattern)[0]!;
    const t = compile(routeConfig([{
      name: 'vh', domains: ['*'],
      routes: [
        toCluster('hit', { pathSpecifier: { case: 'prefix', value: '/' }, headers: [{ name: 'X-Env', invertMatch: invert, headerMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: kind as 'exact', value } } } }] }),
        toCluster('miss'),
      ],
    }]));
    for (const [v, hit] of cases) {
      expect(target(t.match('h', '/', 'GET', (n) => (n === 'x-env' ? v : undefined))), `x-env: ${v}`).toBe(hit ? 'hit' : 'miss');
    }
  });

  it('matches :authority and :path pseudo-headers against the request as received', () => {
    const t = compile(routeConfig([{
      name: 'vh', domains: ['*'],
      routes: [
        toCluster('debug', { pathSpecifier: { case: 'prefix', value: '/' }, headers: [
          { name: ':authority', headerMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'prefix', value: 'Admin.' } } } },
          { name: ':path', headerMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'contains', value: 'debug=1' } } } },
        ] }),
        toCluster('other'),
      ],
    }]));
    expect(target(t.match('Admin.example.com', '/x?debug=1', 'GET', NO_HEADERS))).toBe('debug');
    expect(target(t.match('admin.example.com', '/x?debug=1', 'GET', NO_HEADERS))).toBe('other');
    expect(target(t.match('Admin.example.com', '/x', 'GET', NO_HEADERS))).toBe('other');
  });

  it('matches query parameters: exact value, presence, first value wins, absent fails', () => {
    const t = compile(routeConfig([{
      name: 'vh', domains: ['*'],
      routes: [
        toCluster('v2', { pathSpecifier: { case: 'prefix', value: '/' }, queryParameters: [
          { name: 'version', queryParameterMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'exact', value: '2' } } } },
          { name: 'debug', queryParameterMatchSpecifier: { case: 'presentMatch', value: true } },
        ] }),
        toCluster('other'),
      ],
    }]));
    expect(target(t.match('h', '/x?version=2&debug', 'GET', NO_HEADERS))).toBe('v2');
    expect(target(t.match('h', '/x?debug=&version=2', 'GET', NO_HEADERS))).toBe('v2');
    expect(target(t.match('h', '/x?version=3&version=2&debug', 'GET', NO_HEADERS))).toBe('other');
    expect(target(t.match('h', '/x?version=2', 'GET', NO_HEADERS))).toBe('other');
    expect(target(t.match('h', '/x?versions=2&debug', 'GET', NO_HEADERS))).toBe('other');
    expect(target(t.match('h', '/x', 'GET', NO_HEADERS))).toBe('other');
    expect(target(t.match('h', '/x?debug#version=2', 'GET', NO_HEADERS))).toBe('other');
  });

  it('matches grpc: {} only for application/grpc content types', () => {
    const t = compile(routeConfig([{ name: 'vh', domains: ['*'], routes: [toCluster('grpc', { pathSpecifier: { case: 'prefix', value: '/' }, grpc: {} }), toCluster('http')] }]));
    expect(target(t.match('h', '/pkg.Svc/M', 'POST', headers({ 'content-type': 'application/grpc' })))).toBe('grpc');
    expect(target(t.match('h', '/pkg.Svc/M', 'POST', headers({ 'content-type': 'application/grpc+proto' })))).toBe('grpc');
    expect(target(t.match('h', '/pkg.Svc/M', 'POST', headers({ 'content-type': 'application/grpc-web' })))).toBe('http');
    expect(target(t.match('h', '/pkg.Svc/M', 'POST', NO_HEADERS))).toBe('http');
  });

  it('hands back the same frozen MatchedRoute for every request to a route', () => {
    const a = table.match('h', '/api/a', 'GET', NO_HEADERS);
    const b = table.match('other', '/api/b?x', 'PUT', NO_HEADERS);
    expect(a).toBe(b);
    expect(Object.isFrozen(a)).toBe(true);
  });
});

describe('weighted clusters', () => {
  const weighted = (clusters: Array<[string, number]>, totalWeight?: number): RouteInit => ({
    name: 'w', match: { pathSpecifier: { case: 'prefix', value: '/' } },
    action: { case: 'route', value: { clusterSpecifier: { case: 'weightedClusters', value: { clusters: clusters.map(([name, weight]) => ({ name, weight })), totalWeight } } } },
  });
  const pick = (route: RouteInit, random: number) => {
    const m = compile(routeConfig([{ name: 'vh', domains: ['*'], routes: [route] }])).match('h', '/', 'GET', NO_HEADERS)!;
    if (m.action.kind !== 'weighted') throw new Error(m.action.kind);
    return m.action.pick(random);
  };

  it.each([
    [0, 'a'],
    [0.5, 'a'],
    [0.899, 'a'],
    [0.9, 'b'],
    [0.95, 'b'],
    [0.999, 'b'],
    [1, 'b'],
    [-0.1, 'a'],
    [Number.NaN, 'a'],
  ])('with weights 90/10 picks for random %d the cluster %s', (random, want) => {
    expect(pick(weighted([['a', 90], ['b', 10]]), random)).toBe(want);
  });

  it('never picks a zero-weight cluster and ignores the deprecated total_weight', () => {
    const route = weighted([['a', 1], ['zero', 0], ['b', 1]], 1000);
    expect([0, 0.49, 0.5, 0.99].map((r) => pick(route, r))).toEqual(['a', 'a', 'b', 'b']);
  });

  it('exposes the clusters and the total', () => {
    const m = compile(routeConfig([{ name: 'vh', domains: ['*'], routes: [weighted([['a', 3], ['b', 7]])] }])).match('h', '/', 'GET', NO_HEADERS)!;
    expect(m.action).toMatchObject({ kind: 'weighted', totalWeight: 10, clusters: [{ name: 'a', weight: 3 }, { name: 'b', weight: 7 }] });
  });
});

describe('route policies', () => {
  const vhRetry = { retryOn: '5xx, reset ,connect-failure', numRetries: 3, perTryTimeout: ms(250), retriableStatusCodes: [503] };
  const table = compile(routeConfig([
    {
      name: 'with-retry', domains: ['a'], retryPolicy: vhRetry,
      routes: [
        toCluster('inherits', prefix('/inherit')),
        { name: 'own', match: prefix('/own'), action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: 'own' }, retryPolicy: { retryOn: 'gateway-error' } } } },
      ],
    },
    { name: 'no-retry', domains: ['b'], routes: [toCluster('none')] },
  ]));

  it('inherits the virtual host retry policy when the route has none', () => {
    const m = table.match('a', '/inherit', 'GET', NO_HEADERS)!;
    expect(m.retry).toEqual({ on: new Set(['5xx', 'reset', 'connect-failure']), numRetries: 3, perTryTimeoutMs: 250, retriableStatusCodes: new Set([503]) });
  });

  it('uses the route retry policy instead of the virtual host one, without merging (num_retries defaults to 1)', () => {
    const m = table.match('a', '/own', 'GET', NO_HEADERS)!;
    expect(m.retry).toEqual({ on: new Set(['gateway-error']), numRetries: 1, perTryTimeoutMs: null, retriableStatusCodes: new Set() });
  });

  it('has no retry policy when neither the route nor the virtual host has one', () => {
    expect(table.match('b', '/', 'GET', NO_HEADERS)!.retry).toBeNull();
  });

  it.each([
    ['unset', undefined, undefined, DEFAULT_ROUTE_TIMEOUT_MS, null],
    ['2.5s', ms(2500), undefined, 2500, null],
    ['0 (disabled)', ms(0), undefined, 0, null],
    ['sub-millisecond nanos, truncated', create(DurationSchema, { seconds: 1n, nanos: 999_999 }), undefined, 1000, null],
    ['max_stream_duration 30s', undefined, ms(30_000), DEFAULT_ROUTE_TIMEOUT_MS, 30_000],
    ['max_stream_duration 0', undefined, ms(0), DEFAULT_ROUTE_TIMEOUT_MS, 0],
  ])('reads the timeout when it is %s', (_name, timeout, maxStreamDuration, timeoutMs, maxStreamDurationMs) => {
    const t = compile(routeConfig([{
      name: 'vh', domains: ['*'],
      routes: [{ match: prefix('/'), action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: 'c' }, timeout, maxStreamDuration: maxStreamDuration ? { maxStreamDuration } : undefined } } }],
    }]));
    const m = t.match('h', '/', 'GET', NO_HEADERS)!;
    expect([m.timeoutMs, m.maxStreamDurationMs]).toEqual([timeoutMs, maxStreamDurationMs]);
  });

  it.each([
    ['neither sets it: 1 MiB', undefined, undefined, DEFAULT_PER_REQUEST_BUFFER_LIMIT_BYTES],
    ['the virtual host sets it', 4096, undefined, 4096],
    ['the route sets it, over the virtual host', 4096, 100, 100],
    ['the route sets 0 (no body is retried)', undefined, 0, 0],
  ])('compiles per_request_buffer_limit_bytes when %s', (_name, vhLimit, routeLimit, want) => {
    const t = compile(routeConfig([{
      name: 'vh', domains: ['*'], perRequestBufferLimitBytes: vhLimit,
      routes: [toCluster('c', prefix('/'), { perRequestBufferLimitBytes: routeLimit })],
    }]));
    expect(t.match('h', '/', 'GET', NO_HEADERS)!.perRequestBufferLimitBytes).toBe(want);
    expect(DEFAULT_PER_REQUEST_BUFFER_LIMIT_BYTES).toBe(1024 * 1024);
  });

  it('merges typed_per_filter_config: route over virtual host over route configuration', () => {
    const any = (n: number) => anyPack(DurationSchema, create(DurationSchema, { seconds: BigInt(n) }));
    const [rc1, rc2, vh2, vh3, r3] = [any(1), any(2), any(3), any(4), any(5)];
    const t = compile(routeConfig(
      [{
        name: 'vh', domains: ['*'], typedPerFilterConfig: { f2: vh2, f3: vh3 },
        routes: [toCluster('own', prefix('/own'), { typedPerFilterConfig: { f3: r3 } }), toCluster('plain')],
      }],
      { typedPerFilterConfig: { f1: rc1, f2: rc2 } },
    ));
    const own = t.match('h', '/own', 'GET', NO_HEADERS)!;
    expect(own.typedPerFilterConfig).toEqual({ f1: rc1, f2: vh2, f3: r3 });
    expect(own.typedPerFilterConfig.f3).toBe(r3);
    expect(Object.isFrozen(own.typedPerFilterConfig)).toBe(true);
    expect(t.match('h', '/plain', 'GET', NO_HEADERS)!.typedPerFilterConfig).toEqual({ f1: rc1, f2: vh2, f3: vh3 });
  });

  it('rewrites the path by prefix (the matched part) or regex (the path before the query), and keeps the host rewrite', () => {
    const t = compile(routeConfig([{
      name: 'vh', domains: ['*'],
      routes: [
        { match: prefix('/api/'), action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: 'c' }, prefixRewrite: '/v2/', hostRewriteSpecifier: { case: 'hostRewriteLiteral', value: 'backend.internal' } } } },
        { match: prefix('/SHOUT/', false), action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: 'c' }, prefixRewrite: '/quiet/' } } },
        { match: regex('/old/.*'), action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: 'c' }, prefixRewrite: '/new' } } },
        { match: prefix('/service/'), action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: 'c' }, regexRewrite: { pattern: { regex: '^/service/([^/]+)(/.*)$' }, substitution: '\\2/instance/\\1' } } } },
        toCluster('plain'),
      ],
    }]));
    const rewrite = (path: string) => t.match('h', path, 'GET', NO_HEADERS)!.rewritePath(path);
    expect(rewrite('/api/users?x=1')).toBe('/v2/users?x=1');
    expect(t.match('h', '/api/', 'GET', NO_HEADERS)).toMatchObject({ prefixRewrite: '/v2/', regexRewrite: null, hostRewriteLiteral: 'backend.internal' });
    expect(rewrite('/shout/LOUD')).toBe('/quiet/LOUD');
    expect(rewrite('/old/a/b?q')).toBe('/new?q');
    expect(rewrite('/service/foo/v1/api?x=$1')).toBe('/v1/api/instance/foo?x=$1');
    const plain = '/plain/path';
    expect(rewrite(plain)).toBe(plain);
    expect(t.match('h', plain, 'GET', NO_HEADERS)).toMatchObject({ prefixRewrite: null, regexRewrite: null, hostRewriteLiteral: null });
  });
});

describe('compile errors', () => {
  const errorsOf = (rc: RouteConfiguration): string[] => {
    const r = compileRouteTable(rc);
    if (r.valid) throw new Error('expected errors');
    return r.errors;
  };

  it('names every regex JS cannot run with its field path', () => {
    const errors = errorsOf(routeConfig([
      { name: 'a', domains: ['a'], routes: [toCluster('x'), toCluster('y', prefix('/y')), toCluster('z', regex('(?U)a+'))] },
      {
        name: 'b', domains: ['b'],
        routes: [toCluster('h', { pathSpecifier: { case: 'prefix', value: '/' }, headers: [
          { name: 'ok', headerMatchSpecifier: { case: 'presentMatch', value: true } },
          { name: 'bad', headerMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'safeRegex', value: { regex: 'a(' } } } } },
          { name: 'legacy', headerMatchSpecifier: { case: 'safeRegexMatch', value: { regex: '[z-a]' } } },
        ], queryParameters: [{ name: 'q', queryParameterMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'safeRegex', value: { regex: '(' } } } } }] })],
      },
    ]));
    expect(errors).toEqual([
      'virtual_hosts[0].routes[2].match.safe_regex.regex: RE2 flag U (ungreedy) has no JS equivalent',
      expect.stringMatching(/^virtual_hosts\[1\]\.routes\[0\]\.match\.headers\[1\]\.string_match\.safe_regex\.regex: Invalid regular expression/),
      expect.stringMatching(/^virtual_hosts\[1\]\.routes\[0\]\.match\.headers\[2\]\.safe_regex_match\.regex: Invalid regular expression/),
      expect.stringMatching(/^virtual_hosts\[1\]\.routes\[0\]\.match\.query_parameters\[0\]\.string_match\.safe_regex\.regex: Invalid regular expression/),
    ]);
  });

  const route = (value: RouteInit['action']): RouteInit => ({ match: prefix('/'), action: value });
  it.each<[string, RouteInit, string]>([
    ['cluster_header', route({ case: 'route', value: { clusterSpecifier: { case: 'clusterHeader', value: 'x-cluster' } } }),
      'virtual_hosts[0].routes[0].route.cluster_header: cluster_header is not supported by the sidecar'],
    ['cluster_specifier_plugin', route({ case: 'route', value: { clusterSpecifier: { case: 'clusterSpecifierPlugin', value: 'p' } } }),
      'virtual_hosts[0].routes[0].route.cluster_specifier_plugin: cluster specifier plugins are not supported by the sidecar'],
    ['a weighted cluster_header', route({ case: 'route', value: { clusterSpecifier: { case: 'weightedClusters', value: { clusters: [{ clusterHeader: 'x', weight: 1 }] } } } }),
      'virtual_hosts[0].routes[0].route.weighted_clusters.clusters[0].cluster_header: cluster_header is not supported by the sidecar'],
    ['weights that sum to 0', route({ case: 'route', value: { clusterSpecifier: { case: 'weightedClusters', value: { clusters: [{ name: 'a', weight: 0 }, { name: 'b' }] } } } }),
      'virtual_hosts[0].routes[0].route.weighted_clusters.clusters: the sum of the weights must be greater than 0'],
    ['non_forwarding_action', route({ case: 'nonForwardingAction', value: {} }),
      'virtual_hosts[0].routes[0].non_forwarding_action: non_forwarding_action routes are not supported by the sidecar'],
    ['no action', route({ case: undefined }), 'virtual_hosts[0].routes[0]: the route has no action (route, redirect or direct_response)'],
    ['both rewrites', route({ case: 'route', value: { clusterSpecifier: { case: 'cluster', value: 'c' }, prefixRewrite: '/p', regexRewrite: { pattern: { regex: 'a' }, substitution: 'b' } } }),
      'virtual_hosts[0].routes[0].route: specify only one of prefix_rewrite and regex_rewrite'],
    ['a substitution group the regex lacks', route({ case: 'route', value: { clusterSpecifier: { case: 'cluster', value: 'c' }, regexRewrite: { pattern: { regex: '(a)' }, substitution: '\\2' } } }),
      'virtual_hosts[0].routes[0].route.regex_rewrite: substitution refers to group 2 but the pattern has 1'],
    ['runtime_fraction', { match: { pathSpecifier: { case: 'prefix', value: '/' }, runtimeFraction: { defaultValue: { numerator: 50 } } }, action: toCluster('c').action },
      'virtual_hosts[0].routes[0].match.runtime_fraction: not supported by the sidecar'],
    ['ignore_case with safe_regex', toCluster('c', { pathSpecifier: { case: 'prefix', value: '/' }, headers: [{ name: 'x', headerMatchSpecifier: { case: 'stringMatch', value: { ignoreCase: true, matchPattern: { case: 'safeRegex', value: { regex: 'a' } } } } }] }),
      'virtual_hosts[0].routes[0].match.headers[0].string_match.ignore_case: has no effect with safe_regex (Envoy refuses it); use (?i) in the pattern'],
    ['a file body', route({ case: 'directResponse', value: { status: 200, body: { specifier: { case: 'filename', value: '/etc/passwd' } } } }),
      'virtual_hosts[0].routes[0].direct_response.body.filename: only inline bodies are supported by the sidecar'],
  ])('refuses %s', (_name, r, error) => {
    expect(errorsOf(routeConfig([{ name: 'vh', domains: ['*'], routes: [r] }]))).toEqual([error]);
  });

  it('refuses duplicate domains (case-insensitively) and a second *', () => {
    expect(errorsOf(routeConfig([
      { name: 'a', domains: ['x.com', '*'], routes: [toCluster('a')] },
      { name: 'b', domains: ['X.com', '*'], routes: [toCluster('b')] },
    ]))).toEqual([
      'virtual_hosts[1].domains[0]: duplicate domain "x.com", already at virtual_hosts[0].domains[0]',
      'virtual_hosts[1].domains[1]: duplicate domain "*", already at virtual_hosts[0].domains[1]',
    ]);
  });

  it('collects the problems of every virtual host and route', () => {
    const errors = errorsOf(routeConfig([
      { name: 'a', domains: ['a'], routes: [toCluster('x', regex('('))] },
      { name: 'b', domains: ['b'], routes: [toCluster('y'), toCluster('z', regex(')'))] },
    ], { ignorePathParametersInPathMatching: true }));
    expect(errors.map((e) => e.slice(0, e.indexOf(':')))).toEqual([
      'ignore_path_parameters_in_path_matching', 'virtual_hosts[0].routes[0].match.safe_regex.regex', 'virtual_hosts[1].routes[1].match.safe_regex.regex',
    ]);
  });
});

describe('a route configuration from the translator', () => {
  const CONFIG = `apiVersion: palisade.dev/v1
kind: Mesh
metadata: { name: mesh }
spec: { trustDomain: example.org, mtls: { mode: PERMISSIVE } }
---
apiVersion: palisade.dev/v1
kind: Service
metadata: { name: reviews, namespace: shop }
spec:
  protocol: http
  port: 9080
  endpoints:
    - { address: 10.0.0.1, port: 9080, labels: { version: v1 } }
    - { address: 10.0.0.2, port: 9080, labels: { version: v2 } }
---
apiVersion: palisade.dev/v1
kind: Service
metadata: { name: ratings, namespace: shop }
spec:
  port: 8080
  endpoints: [{ address: 10.0.1.1, port: 8080 }]
---
apiVersion: palisade.dev/v1
kind: Service
metadata: { name: legacy, namespace: shop }
spec:
  port: 80
  endpoints: [{ address: 10.0.2.1, port: 80 }]
---
apiVersion: palisade.dev/v1
kind: Route
metadata: { name: reviews, namespace: shop }
spec:
  hosts: [reviews.example.org, "*.reviews.example.org"]
  http:
    - name: canary
      match:
        - prefix: /api/
          method: GET
          headers:
            - { name: x-canary, exact: "yes" }
            - { name: x-debug, present: false }
        - regex: "/v[0-9]+/reviews/.*"
      backends:
        - { service: reviews, subset: { version: v1 }, weight: 90 }
        - { service: reviews, subset: { version: v2 }, weight: 10 }
      timeout: 1500ms
      retries: { attempts: 3, perTryTimeout: 250ms, on: [5xx, reset] }
    - name: ratings
      match:
        - exact: /ratings
      backends: [{ service: ratings }]
    - backends: [{ service: legacy }]
`;
  const V1 = 'outbound|9080|version=v1|reviews.shop';
  const V2 = 'outbound|9080|version=v2|reviews.shop';

  const state = (): DesiredState => stateFrom({ 'routing.yaml': CONFIG });
  const rds = (kind: ClientKind) => translate(state(), { kind, namespace: 'shop' })[ROUTE_TYPE_URL]![0] as RouteConfiguration;
  const table = compile(rds('sidecar'));
  const canary = headers({ 'x-canary': 'yes' });

  it.each<[string, string, string, Record<string, string>, string, string | null]>([
    ['GET canary', 'reviews.example.org', '/api/items', { 'x-canary': 'yes' }, 'reviews.canary.0', V1],
    ['a wildcard host', 'eu.reviews.example.org', '/api/items', { 'x-canary': 'yes' }, 'reviews.canary.0', V1],
    ['a regex path', 'reviews.example.org', '/v2/reviews/7?full=1', {}, 'reviews.canary.1', V1],
    ['not a canary', 'reviews.example.org', '/api/items', { 'x-canary': 'no' }, 'reviews.2', 'outbound|80||legacy.shop'],
    ['x-debug set', 'reviews.example.org', '/api/items', { 'x-canary': 'yes', 'x-debug': '1' }, 'reviews.2', 'outbound|80||legacy.shop'],
    ['an exact path', 'reviews.example.org', '/ratings?stars=5', {}, 'reviews.ratings', 'outbound|8080||ratings.shop'],
    ['below the exact path', 'reviews.example.org', '/ratings/5', {}, 'reviews.2', 'outbound|80||legacy.shop'],
    ['the short service name', 'reviews', '/anything', {}, 'default', 'outbound|9080||reviews.shop'],
    ['name.ns:port', 'reviews.shop:9080', '/', {}, 'default', 'outbound|9080||reviews.shop'],
    ['NAME.NS.SVC', 'REVIEWS.SHOP.SVC', '/', {}, 'default', 'outbound|9080||reviews.shop'],
    ['another port (port stripped)', 'ratings.shop.svc:1234', '/', {}, 'default', 'outbound|8080||ratings.shop'],
  ])('routes %s where the Route says', (_name, authority, path, h, route, cluster) => {
    const m = table.match(authority, path, 'GET', headers(h));
    expect(m?.name).toBe(route);
    expect(target(m)).toBe(cluster);
  });

  it('sends a POST to the canary prefix past the GET-only match', () => {
    expect(table.match('reviews.example.org', '/api/items', 'POST', canary)?.name).toBe('reviews.2');
  });

  it('returns null for a host no Route or Service claims', () => {
    expect(table.match('unknown.example', '/', 'GET', NO_HEADERS)).toBeNull();
  });

  it('carries the rule\'s weights, timeout and retries', () => {
    const m = table.match('reviews.example.org', '/api/x', 'GET', canary) as MatchedRoute;
    expect(m.virtualHost).toBe('shop/reviews');
    if (m.action.kind !== 'weighted') throw new Error(m.action.kind);
    expect([0, 0.899, 0.9, 0.999].map((r) => (m.action as { pick(r: number): string }).pick(r))).toEqual([V1, V1, V2, V2]);
    expect(m.timeoutMs).toBe(1500);
    expect(m.maxStreamDurationMs).toBeNull();
    expect(m.retry).toEqual({ on: new Set(['5xx', 'reset']), numRetries: 3, perTryTimeoutMs: 250, retriableStatusCodes: new Set() });
    const svc = table.match('reviews', '/', 'GET', NO_HEADERS)!;
    expect([svc.virtualHost, svc.timeoutMs, svc.retry]).toEqual(['service/shop/reviews', DEFAULT_ROUTE_TIMEOUT_MS, null]);
  });

  it('reads gRPC clients\' timeouts as max_stream_duration', () => {
    const m = compile(rds('grpc')).match('reviews.example.org', '/api/x', 'GET', canary)!;
    expect([m.timeoutMs, m.maxStreamDurationMs]).toEqual([DEFAULT_ROUTE_TIMEOUT_MS, 1500]);
  });
});
