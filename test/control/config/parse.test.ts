import { readFile, readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { formatConfigError, parseConfig } from '../../../control/config/parse.ts';
import type { Resource } from '../../../control/config/schema.ts';
import { serializeConfig } from '../../../control/config/serialize.ts';

const FIXTURES = fileURLToPath(new URL('../../fixtures/config/', import.meta.url));
const V = 'palisade.dev/v1';

type Doc = Record<string, unknown>;
const mesh = (): Doc => ({ apiVersion: V, kind: 'Mesh', metadata: { name: 'mesh' }, spec: { trustDomain: 'palisade.local' } });
const service = (): Doc => ({
  apiVersion: V,
  kind: 'Service',
  metadata: { name: 'echo' },
  spec: { protocol: 'grpc', port: 50051, endpoints: [{ address: '127.0.0.1', port: 50051 }] },
});
const route = (): Doc => ({
  apiVersion: V,
  kind: 'Route',
  metadata: { name: 'echo' },
  spec: { hosts: ['echo.local'], http: [{ backends: [{ service: 'echo' }] }] },
});
const BASES = { mesh, service, route };

/** Applies [JSON pointer, value] pairs to a document; `undefined` deletes. */
function patch(doc: Doc, patches: ReadonlyArray<readonly [string, unknown]>): Doc {
  for (const [ptr, value] of patches) {
    const keys = ptr.split('/').slice(1).map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
    let node = doc;
    for (const k of keys.slice(0, -1)) node = (node[k] ??= {}) as Doc;
    const last = keys.at(-1) as string;
    if (value === undefined) delete node[last];
    else node[last] = value;
  }
  return doc;
}

const withoutSource = (resources: readonly Resource[]) => resources.map(({ source: _source, ...rest }) => rest);

function parseOk(text: string, file = 'f.yaml'): Resource[] {
  const result = parseConfig(text, file);
  if (!result.valid) throw new Error(`expected valid, got ${result.errors.map(formatConfigError).join('; ')}`);
  return result.result;
}

describe('parseConfig: valid documents', () => {
  it.each([
    [
      'a Mesh, mtls defaulted to STRICT',
      mesh(),
      { metadata: { name: 'mesh', namespace: 'default' }, spec: { trustDomain: 'palisade.local', mtls: { mode: 'STRICT' } } },
    ],
    [
      'a Mesh with an empty mtls block',
      patch(mesh(), [['/spec/mtls', {}]]),
      { metadata: { name: 'mesh', namespace: 'default' }, spec: { trustDomain: 'palisade.local', mtls: { mode: 'STRICT' } } },
    ],
    [
      'a PERMISSIVE Mesh in a namespace with labels',
      patch(mesh(), [['/spec/mtls', { mode: 'PERMISSIVE' }], ['/metadata/namespace', 'prod'], ['/metadata/labels', { 'app.kubernetes.io/part-of': 'palisade', tier: '' }]]),
      {
        metadata: { name: 'mesh', namespace: 'prod', labels: { 'app.kubernetes.io/part-of': 'palisade', tier: '' } },
        spec: { trustDomain: 'palisade.local', mtls: { mode: 'PERMISSIVE' } },
      },
    ],
    [
      'a minimal Service: protocol http, no endpoints',
      patch(service(), [['/spec', { port: 80 }]]),
      { metadata: { name: 'echo', namespace: 'default' }, spec: { protocol: 'http', port: 80, endpoints: [] } },
    ],
    [
      'a Service with every endpoint field, weight defaulted to 1',
      patch(service(), [
        [
          '/spec/endpoints',
          [
            { address: '10.0.0.1', port: 8080, labels: { version: 'v1' }, locality: { region: 'eu-west-1', zone: 'eu-west-1a', subZone: 'rack-1' } },
            { address: 'fe80::1', port: 8080, weight: 128 },
            { address: 'Echo-1.Internal.example', port: 8080, weight: 1 },
          ],
        ],
      ]),
      {
        metadata: { name: 'echo', namespace: 'default' },
        spec: {
          protocol: 'grpc',
          port: 50051,
          endpoints: [
            { address: '10.0.0.1', port: 8080, weight: 1, labels: { version: 'v1' }, locality: { region: 'eu-west-1', zone: 'eu-west-1a', subZone: 'rack-1' } },
            { address: 'fe80::1', port: 8080, weight: 128 },
            { address: 'Echo-1.Internal.example', port: 8080, weight: 1 },
          ],
        },
      },
    ],
    [
      'a minimal Route: match everything, weight 1',
      route(),
      {
        metadata: { name: 'echo', namespace: 'default' },
        spec: { hosts: ['echo.local'], http: [{ match: [{ prefix: '/' }], backends: [{ service: 'echo', weight: 1 }] }] },
      },
    ],
    [
      'a Route with an empty match list and a header-only match',
      patch(route(), [
        ['/spec/http', [{ match: [], backends: [{ service: 'echo' }] }, { match: [{ headers: [{ name: 'x-canary' }, { name: 'x-debug', present: false }] }], backends: [{ service: 'echo' }] }]],
      ]),
      {
        metadata: { name: 'echo', namespace: 'default' },
        spec: {
          hosts: ['echo.local'],
          http: [
            { match: [{ prefix: '/' }], backends: [{ service: 'echo', weight: 1 }] },
            { match: [{ prefix: '/', headers: [{ name: 'x-canary', present: true }, { name: 'x-debug', present: false }] }], backends: [{ service: 'echo', weight: 1 }] },
          ],
        },
      },
    ],
    [
      'a Route with every field',
      patch(route(), [
        ['/spec/hosts', ['echo.local', '*.echo.example.com', 'echo.local:8080']],
        [
          '/spec/http',
          [
            {
              name: 'canary split',
              match: [
                { exact: '/healthz', method: 'GET' },
                { regex: '^/api/v[0-9]+/.*$', headers: [{ name: ':authority', regex: '.*\\.example\\.com', invert: true }, { name: 'x-user', exact: '' }] },
              ],
              backends: [
                { service: 'echo', port: 50051, subset: { version: 'v1' }, weight: 90 },
                { service: 'echo.staging', weight: 10 },
                { service: 'echo', subset: { version: 'v3' }, weight: 0 },
              ],
              timeout: '1.5s',
              retries: { attempts: 3, perTryTimeout: '250ms', on: ['5xx', 'reset', 'unavailable'] },
              fault: { delay: { fixed: '2m' }, abort: { grpcStatus: 14, percent: 0.5 } },
            },
          ],
        ],
      ]),
      {
        metadata: { name: 'echo', namespace: 'default' },
        spec: {
          hosts: ['echo.local', '*.echo.example.com', 'echo.local:8080'],
          http: [
            {
              name: 'canary split',
              match: [
                { exact: '/healthz', method: 'GET' },
                { regex: '^/api/v[0-9]+/.*$', headers: [{ name: ':authority', regex: '.*\\.example\\.com', invert: true }, { name: 'x-user', exact: '' }] },
              ],
              backends: [
                { service: 'echo', port: 50051, subset: { version: 'v1' }, weight: 90 },
                { service: 'echo.staging', weight: 10 },
                { service: 'echo', subset: { version: 'v3' }, weight: 0 },
              ],
              timeout: '1.5s',
              retries: { attempts: 3, perTryTimeout: '250ms', on: ['5xx', 'reset', 'unavailable'] },
              fault: { delay: { fixed: '2m', percent: 100 }, abort: { grpcStatus: 14, percent: 0.5 } },
            },
          ],
        },
      },
    ],
  ])('%s', (_title, doc, expected) => {
    const [resource, ...rest] = parseOk(stringify(doc));
    expect(rest).toEqual([]);
    expect(resource).toEqual({ apiVersion: V, kind: doc.kind, ...expected, source: { file: 'f.yaml', index: 0 } });
  });

  it('puts defaulted fields in schema order', () => {
    const [resource] = parseOk(stringify(patch(mesh(), [['/metadata', { labels: { a: 'b' }, name: 'mesh' }]])));
    expect(Object.keys(resource?.metadata ?? {})).toEqual(['name', 'namespace', 'labels']);
  });

  it('returns deep-frozen resources', () => {
    const [resource] = parseOk(stringify(service()));
    expect(Object.isFrozen(resource)).toBe(true);
    expect(Object.isFrozen((resource as Extract<Resource, { kind: 'Service' }>).spec.endpoints[0])).toBe(true);
  });

  it('reads every document of a stream with its index, skipping empty ones', () => {
    // A comment before the first '---' belongs to document 0; '---\n---' holds an empty document.
    const text = `# leading comment\n---\n${stringify(mesh())}---\n---\n# nothing here\n---\n${stringify(service())}---\nnull\n---\n${stringify(route())}`;
    const resources = parseOk(text, 'all.yaml');
    expect(resources.map((r) => [r.kind, r.source])).toEqual([
      ['Mesh', { file: 'all.yaml', index: 0 }],
      ['Service', { file: 'all.yaml', index: 3 }],
      ['Route', { file: 'all.yaml', index: 5 }],
    ]);
  });

  it('reads JSON', () => {
    const resources = parseOk(JSON.stringify(service(), null, 2), 'svc.json');
    expect(resources).toHaveLength(1);
    expect(resources[0]?.source).toEqual({ file: 'svc.json', index: 0 });
    expect(withoutSource(resources)).toEqual(withoutSource(parseOk(stringify(service()))));
  });

  it.each(['', '\n', '# just a comment\n', '---\n', '---\n---\n'])('reads %j as no resources', (text) => {
    expect(parseConfig(text, 'f.yaml')).toEqual({ valid: true, result: [] });
  });
});

describe('parseConfig: invalid documents', () => {
  it.each([
    // envelope
    ['no apiVersion', 'mesh', [['/apiVersion', undefined]], [['/apiVersion', 'missing required field "apiVersion" (use "palisade.dev/v1")']]],
    ['another apiVersion', 'mesh', [['/apiVersion', 'palisade.dev/v2']], [['/apiVersion', 'must be "palisade.dev/v1", got "palisade.dev/v2"']]],
    ['no kind', 'mesh', [['/kind', undefined]], [['/kind', 'missing required field "kind"; known kinds: Mesh, Service, Route, Policy, RequestAuthentication, Quota']]],
    ['an unknown kind', 'mesh', [['/kind', 'Gateway']], [['/kind', 'unknown kind "Gateway"; known kinds: Mesh, Service, Route, Policy, RequestAuthentication, Quota']]],
    ['a lowercase kind', 'mesh', [['/kind', 'mesh']], [['/kind', 'unknown kind "mesh"; known kinds: Mesh, Service, Route, Policy, RequestAuthentication, Quota']]],
    ['a top-level unknown field', 'route', [['/status', {}]], [['/status', 'unknown field "status"; known fields: apiVersion, kind, metadata, spec']]],
    ['no spec', 'mesh', [['/spec', undefined]], [['/spec', 'missing required field "spec"']]],
    ['a null spec', 'route', [['/spec', null]], [['/spec', 'must be a mapping, got null']]],
    // metadata
    ['no name', 'mesh', [['/metadata/name', undefined]], [['/metadata/name', 'missing required field "name"']]],
    [
      'an upper-case name',
      'service',
      [['/metadata/name', 'Echo']],
      [['/metadata/name', "must be a DNS-1123 label (1-63 lowercase letters, digits or '-', starting and ending with a letter or digit), got \"Echo\""]],
    ],
    ['a 64-character name', 'service', [['/metadata/name', 'a'.repeat(64)]], [['/metadata/name', 'must be at most 63 characters long, got 64']]],
    ['an empty name', 'service', [['/metadata/name', '']], [['/metadata/name', "must be a DNS-1123 label (1-63 lowercase letters, digits or '-', starting and ending with a letter or digit), got \"\""]]],
    [
      'a dotted namespace',
      'service',
      [['/metadata/namespace', 'prod.eu']],
      [['/metadata/namespace', "must be a DNS-1123 label (1-63 lowercase letters, digits or '-', starting and ending with a letter or digit), got \"prod.eu\""]],
    ],
    ['annotations', 'mesh', [['/metadata/annotations', {}]], [['/metadata/annotations', 'unknown field "annotations"; known fields: name, namespace, labels']]],
    ['a label list', 'mesh', [['/metadata/labels', ['a']]], [['/metadata/labels', 'must be a mapping, got a list']]],
    ['a numeric label value', 'mesh', [['/metadata/labels', { a: 1 }]], [['/metadata/labels/a', 'must be a string, got 1']]],
    [
      'a bad label key',
      'mesh',
      [['/metadata/labels', { 'Example.com/app': 'x' }]],
      [
        [
          '/metadata/labels/Example.com~1app',
          "invalid label key \"Example.com/app\": must be a label key ([prefix/]name: name is 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit; prefix is a lowercase DNS name)",
        ],
      ],
    ],
    [
      'a bad label value',
      'mesh',
      [['/metadata/labels', { 'app.kubernetes.io/name': '-x' }]],
      [['/metadata/labels/app.kubernetes.io~1name', "must be a label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit), got \"-x\""]],
    ],
    // Mesh
    ['no trustDomain', 'mesh', [['/spec/trustDomain', undefined]], [['/spec/trustDomain', 'missing required field "trustDomain"']]],
    ['an upper-case trustDomain', 'mesh', [['/spec/trustDomain', 'Palisade.Local']], [['/spec/trustDomain', 'must be a lowercase DNS name (dot-separated DNS-1123 labels), got "Palisade.Local"']]],
    ['a spiffe:// trustDomain', 'mesh', [['/spec/trustDomain', 'spiffe://palisade.local']], [['/spec/trustDomain', 'must be a lowercase DNS name (dot-separated DNS-1123 labels), got "spiffe://palisade.local"']]],
    ['a lowercase mtls mode', 'mesh', [['/spec/mtls', { mode: 'strict' }]], [['/spec/mtls/mode', 'must be one of "STRICT", "PERMISSIVE"; got "strict"']]],
    ['mtls.enabled', 'mesh', [['/spec/mtls', { mode: 'STRICT', enabled: true }]], [['/spec/mtls/enabled', 'unknown field "enabled"; known fields: mode']]],
    // Service
    ['no port', 'service', [['/spec/port', undefined]], [['/spec/port', 'missing required field "port"']]],
    ['a string port', 'service', [['/spec/port', '80']], [['/spec/port', 'must be an integer, got "80"']]],
    ['a fractional port', 'service', [['/spec/port', 80.5]], [['/spec/port', 'must be an integer, got 80.5']]],
    ['port 70000', 'service', [['/spec/port', 70000]], [['/spec/port', 'must be <= 65535, got 70000']]],
    ['port 0', 'service', [['/spec/port', 0]], [['/spec/port', 'must be >= 1, got 0']]],
    ['protocol tcp', 'service', [['/spec/protocol', 'tcp']], [['/spec/protocol', 'must be one of "http", "grpc"; got "tcp"']]],
    ['a typo: prot', 'service', [['/spec/prot', 'http']], [['/spec/prot', 'unknown field "prot" (did you mean "protocol"?)']]],
    ['a typo: Port', 'service', [['/spec/Port', 80]], [['/spec/Port', 'unknown field "Port" (did you mean "port"?)']]],
    ['an unrelated field', 'service', [['/spec/xyz', 1]], [['/spec/xyz', 'unknown field "xyz"; known fields: protocol, port, endpoints']]],
    ['endpoints as a mapping', 'service', [['/spec/endpoints', { address: 'a' }]], [['/spec/endpoints', 'must be a list, got a mapping']]],
    ['an endpoint without port', 'service', [['/spec/endpoints/0/port', undefined]], [['/spec/endpoints/0/port', 'missing required field "port"']]],
    ['endpoint weight 0', 'service', [['/spec/endpoints/0/weight', 0]], [['/spec/endpoints/0/weight', 'must be >= 1, got 0']]],
    ['endpoint weight 129', 'service', [['/spec/endpoints/0/weight', 129]], [['/spec/endpoints/0/weight', 'must be <= 128, got 129']]],
    ['an empty address', 'service', [['/spec/endpoints/0/address', '']], [['/spec/endpoints/0/address', 'must not be empty']]],
    [
      'an address with a space',
      'service',
      [['/spec/endpoints/0/address', 'echo host']],
      [['/spec/endpoints/0/address', 'must be an IPv4 address, an IPv6 address or a DNS hostname, got "echo host"']],
    ],
    ['an address with a port', 'service', [['/spec/endpoints/0/address', '10.0.0.1:80']], [['/spec/endpoints/0/address', 'must be a valid IPv6 address, got "10.0.0.1:80"']]],
    ['an IPv4 out of range', 'service', [['/spec/endpoints/0/address', '10.0.0.256']], [['/spec/endpoints/0/address', 'must be a valid IPv4 address, got "10.0.0.256"']]],
    ['a broken IPv6', 'service', [['/spec/endpoints/0/address', '::1::2']], [['/spec/endpoints/0/address', 'must be a valid IPv6 address, got "::1::2"']]],
    ['a locality typo', 'service', [['/spec/endpoints/0/locality', { region: 'eu', zon: 'a' }]], [['/spec/endpoints/0/locality/zon', 'unknown field "zon" (did you mean "zone"?)']]],
    [
      'the same endpoint twice',
      'service',
      [['/spec/endpoints', [{ address: 'Echo.local', port: 80 }, { address: '::1', port: 80 }, { address: 'echo.local', port: 80, weight: 2 }, { address: '::1', port: 80 }]]],
      [
        ['/spec/endpoints/2', 'duplicate endpoint echo.local:80 (also at /spec/endpoints/0)'],
        ['/spec/endpoints/3', 'duplicate endpoint [::1]:80 (also at /spec/endpoints/1)'],
      ],
    ],
    [
      'several problems at once',
      'service',
      [['/spec', { prot: 'http', port: 70000, endpoints: [{ address: '127.0.0.1', port: 0, weight: 1.5 }] }]],
      [
        ['/spec/prot', 'unknown field "prot" (did you mean "protocol"?)'],
        ['/spec/port', 'must be <= 65535, got 70000'],
        ['/spec/endpoints/0/port', 'must be >= 1, got 0'],
        ['/spec/endpoints/0/weight', 'must be an integer, got 1.5'],
      ],
    ],
    // Route: structure
    ['no hosts', 'route', [['/spec/hosts', []]], [['/spec/hosts', 'must not be empty']]],
    ['a repeated host', 'route', [['/spec/hosts', ['a.local', 'b.local', 'a.local']]], [['/spec/hosts', 'must not repeat an item, got "a.local" more than once']]],
    [
      'an upper-case host',
      'route',
      [['/spec/hosts', ['Echo.local']]],
      [['/spec/hosts/0', "must be a lowercase hostname with an optional :port and an optional leading '*.' wildcard, got \"Echo.local\""]],
    ],
    [
      'a bare * host',
      'route',
      [['/spec/hosts', ['*']]],
      [['/spec/hosts/0', "must be a lowercase hostname with an optional :port and an optional leading '*.' wildcard, got \"*\""]],
    ],
    [
      'a host with port 99999',
      'route',
      [['/spec/hosts', ['echo.local:99999']]],
      [['/spec/hosts/0', "must be a lowercase hostname with an optional :port and an optional leading '*.' wildcard, got \"echo.local:99999\""]],
    ],
    ['no rules', 'route', [['/spec/http', []]], [['/spec/http', 'must not be empty']]],
    ['no backends', 'route', [['/spec/http/0/backends', []]], [['/spec/http/0/backends', 'must not be empty']]],
    ['backend weight 1000001', 'route', [['/spec/http/0/backends/0/weight', 1000001]], [['/spec/http/0/backends/0/weight', 'must be <= 1000000, got 1000001']]],
    ['backend weight -1', 'route', [['/spec/http/0/backends/0/weight', -1]], [['/spec/http/0/backends/0/weight', 'must be >= 0, got -1']]],
    ['backend port 65536', 'route', [['/spec/http/0/backends/0/port', 65536]], [['/spec/http/0/backends/0/port', 'must be <= 65535, got 65536']]],
    ['an upper-case backend', 'route', [['/spec/http/0/backends/0/service', 'Echo']], [['/spec/http/0/backends/0/service', 'must be a Service name, or name.namespace, got "Echo"']]],
    ['a three-part backend', 'route', [['/spec/http/0/backends/0/service', 'echo.prod.svc']], [['/spec/http/0/backends/0/service', 'must be a Service name, or name.namespace, got "echo.prod.svc"']]],
    [
      'a bad subset key',
      'route',
      [['/spec/http/0/backends/0/subset', { '-v': '1' }]],
      [
        [
          '/spec/http/0/backends/0/subset/-v',
          "invalid label key \"-v\": must be a label key ([prefix/]name: name is 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit; prefix is a lowercase DNS name)",
        ],
      ],
    ],
    ['a prefix without /', 'route', [['/spec/http/0/match', [{ prefix: 'api' }]]], [['/spec/http/0/match/0/prefix', "must be a path starting with '/', got \"api\""]]],
    ['an exact path without /', 'route', [['/spec/http/0/match', [{ exact: 'healthz' }]]], [['/spec/http/0/match/0/exact', "must be a path starting with '/', got \"healthz\""]]],
    ['a lowercase method', 'route', [['/spec/http/0/match', [{ method: 'get' }]]], [['/spec/http/0/match/0/method', 'must be an upper-case HTTP method such as GET or POST, got "get"']]],
    ['a match typo', 'route', [['/spec/http/0/match', [{ path: '/' }]]], [['/spec/http/0/match/0/path', 'unknown field "path"; known fields: prefix, exact, regex, headers, method']]],
    ['a header without name', 'route', [['/spec/http/0/match', [{ headers: [{ exact: 'x' }] }]]], [['/spec/http/0/match/0/headers/0/name', 'missing required field "name"']]],
    ['a header name with a space', 'route', [['/spec/http/0/match', [{ headers: [{ name: 'x y' }] }]]], [['/spec/http/0/match/0/headers/0/name', 'must be an HTTP header name, got "x y"']]],
    ['present: "yes"', 'route', [['/spec/http/0/match', [{ headers: [{ name: 'x', present: 'yes' }] }]]], [['/spec/http/0/match/0/headers/0/present', 'must be true or false, got "yes"']]],
    ['an empty regex', 'route', [['/spec/http/0/match', [{ regex: '' }]]], [['/spec/http/0/match/0/regex', 'must not be empty']]],
    ['retries without attempts', 'route', [['/spec/http/0/retries', {}]], [['/spec/http/0/retries/attempts', 'missing required field "attempts"']]],
    ['11 attempts', 'route', [['/spec/http/0/retries', { attempts: 11 }]], [['/spec/http/0/retries/attempts', 'must be <= 10, got 11']]],
    [
      'an unknown retry condition',
      'route',
      [['/spec/http/0/retries', { attempts: 1, on: ['5xx', 'timeout'] }]],
      [
        [
          '/spec/http/0/retries/on/1',
          'must be one of "5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers", "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"; got "timeout"',
        ],
      ],
    ],
    ['a repeated retry condition', 'route', [['/spec/http/0/retries', { attempts: 1, on: ['5xx', '5xx'] }]], [['/spec/http/0/retries/on', 'must not repeat an item, got "5xx" more than once']]],
    ['a numeric timeout', 'route', [['/spec/http/0/timeout', 10]], [['/spec/http/0/timeout', 'must be a string, got 10']]],
    ['a worded timeout', 'route', [['/spec/http/0/timeout', '5 seconds']], [['/spec/http/0/timeout', 'must be a duration like 250ms, 1.5s, 2m or 1h, got "5 seconds"']]],
    ['a day-long timeout', 'route', [['/spec/http/0/timeout', '1d']], [['/spec/http/0/timeout', 'must be a duration like 250ms, 1.5s, 2m or 1h, got "1d"']]],
    ['an empty fault', 'route', [['/spec/http/0/fault', {}]], [['/spec/http/0/fault', 'must set at least one of: delay, abort']]],
    ['a delay without fixed', 'route', [['/spec/http/0/fault', { delay: {} }]], [['/spec/http/0/fault/delay/fixed', 'missing required field "fixed"']]],
    ['a delay percent of 101', 'route', [['/spec/http/0/fault', { delay: { fixed: '1s', percent: 101 } }]], [['/spec/http/0/fault/delay/percent', 'must be <= 100, got 101']]],
    ['httpStatus 600', 'route', [['/spec/http/0/fault', { abort: { httpStatus: 600 } }]], [['/spec/http/0/fault/abort/httpStatus', 'must be <= 599, got 600']]],
    ['httpStatus 199', 'route', [['/spec/http/0/fault', { abort: { httpStatus: 199 } }]], [['/spec/http/0/fault/abort/httpStatus', 'must be >= 200, got 199']]],
    ['grpcStatus 17', 'route', [['/spec/http/0/fault', { abort: { grpcStatus: 17 } }]], [['/spec/http/0/fault/abort/grpcStatus', 'must be <= 16, got 17']]],
    // Route: rules beyond the schema
    [
      'prefix and exact together',
      'route',
      [['/spec/http/0/match', [{ prefix: '/', exact: '/x' }]]],
      [['/spec/http/0/match/0', 'at most one of prefix, exact, regex may be set, got prefix and exact']],
    ],
    [
      'all three path matchers',
      'route',
      [['/spec/http/0/match', [{ prefix: '/', exact: '/x', regex: 'x' }]]],
      [['/spec/http/0/match/0', 'at most one of prefix, exact, regex may be set, got prefix, exact and regex']],
    ],
    [
      'exact and present on a header',
      'route',
      [['/spec/http/0/match', [{ headers: [{ name: 'x', exact: 'a', present: true }] }]]],
      [['/spec/http/0/match/0/headers/0', 'at most one of exact, prefix, regex, present may be set, got exact and present']],
    ],
    ['a lookahead path regex', 'route', [['/spec/http/0/match', [{ regex: '^/(?!admin)' }]]], [['/spec/http/0/match/0/regex', 'invalid regex "^/(?!admin)": lookahead (?!...) is not supported (RE2)']]],
    ['a backreference', 'route', [['/spec/http/0/match', [{ regex: '^/(a)\\1' }]]], [['/spec/http/0/match/0/regex', 'invalid regex "^/(a)\\\\1": backreference \\1 is not supported (RE2)']]],
    [
      'a header regex that does not compile',
      'route',
      [['/spec/http/0/match', [{ headers: [{ name: 'x', regex: '(' }] }]]],
      [['/spec/http/0/match/0/headers/0/regex', 'invalid regex "(": Unterminated group']],
    ],
    ['a zero timeout', 'route', [['/spec/http/0/timeout', '0s']], [['/spec/http/0/timeout', 'must be a positive duration, got "0s"']]],
    ['a zero per-try timeout', 'route', [['/spec/http/0/retries', { attempts: 2, perTryTimeout: '0.0ms' }]], [['/spec/http/0/retries/perTryTimeout', 'must be a positive duration, got "0.0ms"']]],
    ['a zero delay', 'route', [['/spec/http/0/fault', { delay: { fixed: '0m' } }]], [['/spec/http/0/fault/delay/fixed', 'must be a positive duration, got "0m"']]],
    ['an abort without status', 'route', [['/spec/http/0/fault', { abort: { percent: 5 } }]], [['/spec/http/0/fault/abort', 'exactly one of httpStatus, grpcStatus must be set, got neither']]],
    [
      'an abort with both statuses',
      'route',
      [['/spec/http/0/fault', { abort: { httpStatus: 503, grpcStatus: 14 } }]],
      [['/spec/http/0/fault/abort', 'exactly one of httpStatus, grpcStatus must be set, got both']],
    ],
    [
      'weights on some backends only',
      'route',
      [['/spec/http/0/backends', [{ service: 'a', weight: 90 }, { service: 'b' }, { service: 'c', weight: 10 }, { service: 'd' }]]],
      [
        ['/spec/http/0/backends/1/weight', 'must be set: weight is set on other backends of this rule, so set it on every backend or on none'],
        ['/spec/http/0/backends/3/weight', 'must be set: weight is set on other backends of this rule, so set it on every backend or on none'],
      ],
    ],
    ['all weights zero', 'route', [['/spec/http/0/backends', [{ service: 'a', weight: 0 }, { service: 'b', weight: 0 }]]], [['/spec/http/0/backends', 'at least one backend must have a weight above 0']]],
  ] as Array<[string, keyof typeof BASES, Array<[string, unknown]>, Array<[string, string]>]>)('rejects %s', (_title, base, patches, expected) => {
    const result = parseConfig(stringify(patch(BASES[base](), patches)), 'f.yaml');
    expect(result).toEqual({ valid: false, errors: expected.map(([path, message]) => ({ file: 'f.yaml', index: 0, path, message })) });
  });

  it.each([
    ['a nested mapping in a compact one', 'a: b: c\n', 0, 'malformed YAML: Nested mappings are not allowed in compact mappings at line 1, column 4'],
    ['an unclosed flow sequence', `${stringify(mesh())}---\nspec: [1,\n`, 1, 'malformed YAML: Flow sequence in block collection must be sufficiently indented and end with a ] at line 9, column 1'],
    ['a duplicate key', 'kind: Mesh\nkind: Service\n', 0, 'malformed YAML: Map keys must be unique at line 2, column 1'],
    ['an unknown tag', 'kind: !Mesh x\n', 0, 'malformed YAML: Unresolved tag: !Mesh at line 1, column 7'],
    ['an undefined alias', 'kind: *k\n', 0, 'malformed YAML: Unresolved alias (the anchor must be set before the alias): k'],
    ['a tab indentation', 'spec:\n\tport: 80\n', 0, 'malformed YAML: Tabs are not allowed as indentation at line 2, column 1'],
    ['JSON with a missing brace', '{"apiVersion": "palisade.dev/v1",\n "kind": "Mesh"\n', 0, 'malformed YAML: Flow map must end with a } at line 3, column 1'],
  ])('reports %s with its line and column', (_title, text, index, message) => {
    const result = parseConfig(text, 'bad.yaml');
    expect(result.valid).toBe(false);
    if (result.valid) return;
    expect(result.errors[0]).toEqual({ file: 'bad.yaml', index, path: '', message });
  });

  it.each([
    ['a list', '- kind: Mesh\n', 'a document must be a mapping with apiVersion, kind, metadata and spec, got a list'],
    ['a string', 'Mesh\n', 'a document must be a mapping with apiVersion, kind, metadata and spec, got "Mesh"'],
    ['a number', '42\n', 'a document must be a mapping with apiVersion, kind, metadata and spec, got 42'],
  ])('rejects a document that is %s', (_title, text, message) => {
    expect(parseConfig(text, 'f.yaml')).toEqual({ valid: false, errors: [{ file: 'f.yaml', index: 0, path: '', message }] });
  });

  it('reports every invalid document of a file, each at its index, and no resources', () => {
    const text = [stringify(mesh()), stringify(patch(service(), [['/spec/port', 0]])), 'a: 1\na: 2\n', stringify(patch(route(), [['/kind', 'Gateway']]))].join('---\n');
    expect(parseConfig(text, 'many.yaml')).toEqual({
      valid: false,
      errors: [
        { file: 'many.yaml', index: 1, path: '/spec/port', message: 'must be >= 1, got 0' },
        { file: 'many.yaml', index: 2, path: '', message: 'malformed YAML: Map keys must be unique at line 20, column 1' },
        { file: 'many.yaml', index: 3, path: '/kind', message: 'unknown kind "Gateway"; known kinds: Mesh, Service, Route, Policy, RequestAuthentication, Quota' },
      ],
    });
  });

  it('refuses an alias bomb', () => {
    const text = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`)].join('\n');
    const result = parseConfig(text, 'bomb.yaml');
    expect(result.valid).toBe(false);
    if (!result.valid) expect(result.errors[0]?.message).toMatch(/^malformed YAML: Excessive alias count/);
  });
});

describe('formatConfigError', () => {
  it.each([
    [{ file: 'routes.yaml', index: 2, path: '/spec/http/0/backends/0/weight', message: 'must be <= 1000000, got 1000001' }, 'routes.yaml#2 /spec/http/0/backends/0/weight: must be <= 1000000, got 1000001'],
    [{ file: 'conf/a.yaml', index: 0, path: '', message: 'malformed YAML: Map keys must be unique at line 2, column 1' }, 'conf/a.yaml#0: malformed YAML: Map keys must be unique at line 2, column 1'],
    [{ file: 'a.yaml', index: 1, path: '/spec', message: 'two\nlines' }, 'a.yaml#1 /spec: two lines'],
  ])('formats %j on one line', (error, line) => {
    expect(formatConfigError(error)).toBe(line);
  });
});

describe('serializeConfig', () => {
  it('round-trips every fixture file: parse → serialize → parse gives the same resources', async () => {
    const files = (await readdir(FIXTURES)).filter((f) => f.endsWith('.yaml')).sort();
    expect(files).toEqual(['mesh.yaml', 'routes.yaml', 'services.yaml']);
    for (const name of files) {
      const first = parseOk(await readFile(join(FIXTURES, name), 'utf8'), name);
      const text = serializeConfig(first);
      const second = parseOk(text, name);
      expect(second).toEqual(first);
      expect(serializeConfig(second)).toBe(text);
    }
  });

  it('round-trips a multi-document stream with every Route field, keeping indices', () => {
    const docs = [mesh(), service(), patch(route(), [['/spec/http/0/fault', { abort: { httpStatus: 503, percent: 1.5 } }], ['/spec/http/0/match', [{ headers: [{ name: 'x' }] }]]])];
    const first = parseOk(docs.map((d) => stringify(d)).join('---\n'), 'all.yaml');
    const second = parseOk(serializeConfig(first), 'all.yaml');
    expect(second).toEqual(first);
    expect(second.map((r) => r.source.index)).toEqual([0, 1, 2]);
  });

  it('writes documents without source, with defaults spelled out', () => {
    const text = serializeConfig(parseOk(stringify(patch(service(), [['/spec', { port: 80 }]]))));
    expect(text).toBe('apiVersion: palisade.dev/v1\nkind: Service\nmetadata:\n  name: echo\n  namespace: default\nspec:\n  protocol: http\n  port: 80\n  endpoints: []\n');
  });
});
