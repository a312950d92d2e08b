import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadDirectory } from '../../../control/config/load-directory.ts';
import { formatConfigError, parseConfig } from '../../../control/config/parse.ts';
import type { Resource, RouteResource } from '../../../control/config/schema.ts';
import { buildState, canonicalState, emptyState, resolveBackend, serviceKey } from '../../../control/config/state.ts';
import type { DesiredState } from '../../../control/config/state.ts';

const FIXTURES = fileURLToPath(new URL('../../fixtures/config', import.meta.url));
const V = 'palisade.dev/v1';

type Doc = Record<string, unknown>;
const mesh = (name = 'mesh'): Doc => ({ apiVersion: V, kind: 'Mesh', metadata: { name }, spec: { trustDomain: 'palisade.local' } });
const service = (name: string, port = 80, namespace?: string): Doc => ({
  apiVersion: V,
  kind: 'Service',
  metadata: namespace === undefined ? { name } : { name, namespace },
  spec: { port, endpoints: [{ address: '127.0.0.1', port }] },
});
const route = (name: string, hosts: string[], backends: Doc[], namespace?: string): Doc => ({
  apiVersion: V,
  kind: 'Route',
  metadata: namespace === undefined ? { name } : { name, namespace },
  spec: { hosts, http: [{ backends }] },
});

/** Resources from files given as { file: documents }, in the order given. */
function resources(files: Record<string, Doc[]>): Resource[] {
  return Object.entries(files).flatMap(([file, docs]) => {
    const result = parseConfig(docs.map((d) => stringify(d)).join('---\n'), file);
    if (!result.valid) throw new Error(result.errors.map(formatConfigError).join('; '));
    return result.result;
  });
}

function build(files: Record<string, Doc[]>): DesiredState {
  const result = buildState(resources(files));
  if (!result.valid) throw new Error(result.errors.map(formatConfigError).join('; '));
  return result.result;
}

describe('buildState: consistent states', () => {
  it('indexes the fixture configuration', async () => {
    const result = await loadDirectory(FIXTURES);
    expect(result.valid).toBe(true);
    if (!result.valid) return;
    const state = result.result;
    expect(state.mesh?.spec).toEqual({ trustDomain: 'palisade.local', mtls: { mode: 'STRICT' } });
    expect([...state.services.keys()]).toEqual(['default/echo', 'default/web']);
    expect([...state.routes.keys()]).toEqual(['default/demo']);
    const echo = state.services.get('default/echo');
    expect(echo?.spec.protocol).toBe('grpc');
    expect(echo?.spec.port).toBe(50051);
    expect(echo?.spec.endpoints.map((e) => [e.address, e.port, e.weight])).toEqual([
      ['127.0.0.1', 50051, 3],
      ['127.0.0.1', 50052, 1],
    ]);
    expect(state.services.get('default/web')?.spec.protocol).toBe('http');
  });

  it('builds an empty state from no resources', () => {
    expect(buildState([])).toEqual({ valid: true, result: emptyState() });
  });

  it('keys maps by namespace/name and iterates them in key order', () => {
    // Resources arrive in file order; the maps come out sorted by key.
    const state = build({
      'b.yaml': [service('web'), service('api', 80, 'zeta'), service('api')],
      'a.yaml': [route('web', ['web.local'], [{ service: 'web' }]), route('api', ['api.local'], [{ service: 'api.zeta' }], 'alpha')],
    });
    expect([...state.services.keys()]).toEqual(['default/api', 'default/web', 'zeta/api']);
    expect([...state.routes.keys()]).toEqual(['alpha/api', 'default/web']);
    expect(state.mesh).toBeNull();
  });

  it.each([
    ['the same name in two namespaces', { 'a.yaml': [service('echo'), service('echo', 80, 'prod')] }],
    ['the same name for a Service and a Route', { 'a.yaml': [service('echo'), route('echo', ['echo.local'], [{ service: 'echo' }])] }],
    ['a backend in another namespace (name.namespace)', { 'a.yaml': [service('echo', 80, 'prod'), route('echo', ['echo.local'], [{ service: 'echo.prod' }])] }],
    ['a backend port equal to the Service port', { 'a.yaml': [service('echo', 50051), route('echo', ['echo.local'], [{ service: 'echo', port: 50051 }])] }],
    ['a host with and without a port in two Routes', { 'a.yaml': [service('echo'), route('a', ['echo.local'], [{ service: 'echo' }]), route('b', ['echo.local:8080'], [{ service: 'echo' }])] }],
    ['a wildcard and a concrete host in two Routes', { 'a.yaml': [service('echo'), route('a', ['*.local'], [{ service: 'echo' }]), route('b', ['echo.local'], [{ service: 'echo' }])] }],
    ['a Mesh outside the default namespace', { 'a.yaml': [{ ...mesh(), metadata: { name: 'mesh', namespace: 'palisade-system' } }] }],
  ] as Array<[string, Record<string, Doc[]>]>)('accepts %s', (_title, files) => {
    expect(buildState(resources(files)).valid).toBe(true);
  });
});

describe('buildState: inconsistent states', () => {
  it.each([
    [
      'a Service defined twice, naming both places',
      { 'a.yaml': [service('echo')], 'b.yaml': [mesh(), service('echo', 81)] },
      [['b.yaml', 1, '/metadata/name', 'duplicate Service "default/echo": also defined at a.yaml#0']],
    ],
    [
      'a Route defined twice in one file',
      { 'a.yaml': [service('echo'), route('echo', ['a.local'], [{ service: 'echo' }]), route('echo', ['b.local'], [{ service: 'echo' }])] },
      [['a.yaml', 2, '/metadata/name', 'duplicate Route "default/echo": also defined at a.yaml#1']],
    ],
    [
      'a second Mesh',
      { 'a.yaml': [mesh('mesh')], 'b.yaml': [mesh('other')] },
      [['b.yaml', 0, '', 'only one Mesh is allowed: Mesh "default/mesh" is already defined at a.yaml#0']],
    ],
    [
      'a Mesh defined twice',
      { 'a.yaml': [mesh()], 'b.yaml': [mesh()] },
      [['b.yaml', 0, '/metadata/name', 'duplicate Mesh "default/mesh": also defined at a.yaml#0']],
    ],
    [
      'a backend naming a missing Service',
      { 'a.yaml': [service('echo'), route('echo', ['echo.local'], [{ service: 'echo', weight: 1 }, { service: 'reviews', weight: 1 }])] },
      [['a.yaml', 1, '/spec/http/0/backends/1/service', 'Service "reviews" not found in namespace "default"']],
    ],
    [
      "a backend naming a Service of another namespace without saying so",
      { 'a.yaml': [service('echo', 80, 'prod'), route('echo', ['echo.local'], [{ service: 'echo' }])] },
      [['a.yaml', 1, '/spec/http/0/backends/0/service', 'Service "echo" not found in namespace "default"']],
    ],
    [
      'a backend naming a missing namespace',
      { 'a.yaml': [service('echo'), route('echo', ['echo.local'], [{ service: 'echo.prod' }])] },
      [['a.yaml', 1, '/spec/http/0/backends/0/service', 'Service "echo" not found in namespace "prod"']],
    ],
    [
      'a backend port other than the Service port',
      { 'a.yaml': [service('echo', 50051), route('echo', ['echo.local'], [{ service: 'echo', port: 8080 }])] },
      [['a.yaml', 1, '/spec/http/0/backends/0/port', 'port 8080 does not match Service "default/echo" port 50051']],
    ],
    [
      'two Routes claiming a host, naming both',
      {
        'a.yaml': [service('echo'), route('a', ['a.local', 'echo.local'], [{ service: 'echo' }])],
        'b.yaml': [route('b', ['b.local', 'echo.local'], [{ service: 'echo.default' }], 'prod')],
      },
      [['b.yaml', 0, '/spec/hosts/1', 'host "echo.local" is already claimed by Route "default/a" at a.yaml#1']],
    ],
    [
      'every problem at once, ordered by file and document',
      {
        'a.yaml': [service('echo', 8080), route('a', ['x.local'], [{ service: 'echo', port: 80 }]), mesh(), mesh('two')],
        'b.yaml': [route('b', ['x.local'], [{ service: 'nope' }]), service('echo')],
      },
      [
        ['a.yaml', 1, '/spec/http/0/backends/0/port', 'port 80 does not match Service "default/echo" port 8080'],
        ['a.yaml', 3, '', 'only one Mesh is allowed: Mesh "default/mesh" is already defined at a.yaml#2'],
        ['b.yaml', 0, '/spec/hosts/0', 'host "x.local" is already claimed by Route "default/a" at a.yaml#1'],
        ['b.yaml', 0, '/spec/http/0/backends/0/service', 'Service "nope" not found in namespace "default"'],
        ['b.yaml', 1, '/metadata/name', 'duplicate Service "default/echo": also defined at a.yaml#0'],
      ],
    ],
  ] as Array<[string, Record<string, Doc[]>, Array<[string, number, string, string]>]>)('rejects %s', (_title, files, expected) => {
    expect(buildState(resources(files))).toEqual({
      valid: false,
      errors: expected.map(([file, index, path, message]) => ({ file, index, path, message })),
    });
  });
});

describe('serviceKey and resolveBackend', () => {
  it('joins namespace and name', () => {
    expect(serviceKey('default', 'echo')).toBe('default/echo');
  });

  const [echoRoute] = resources({ 'r.yaml': [route('r', ['r.local'], [{ service: 'echo' }], 'shop')] }) as [RouteResource];
  it.each([
    ['echo', 'shop/echo'],
    ['echo.prod', 'prod/echo'],
    ['echo.shop', 'shop/echo'],
  ])('resolves %j in namespace shop to %j', (name, key) => {
    expect(resolveBackend(echoRoute, { service: name, weight: 1 })).toBe(key);
  });
});

describe('canonicalState', () => {
  const files = {
    'a.yaml': [mesh(), service('echo'), service('web')],
    'b.yaml': [route('r', ['r.local'], [{ service: 'echo' }])],
  };

  it('ignores where resources came from and in what order', () => {
    const moved = build({ 'z.yaml': [route('r', ['r.local'], [{ service: 'echo' }]), service('web')], 'y.yaml': [service('echo'), mesh()] });
    expect(canonicalState(moved)).toBe(canonicalState(build(files)));
  });

  it('ignores key order in documents and spelled-out defaults', () => {
    const explicit = {
      ...files,
      'a.yaml': [
        { spec: { mtls: { mode: 'STRICT' }, trustDomain: 'palisade.local' }, metadata: { namespace: 'default', name: 'mesh' }, kind: 'Mesh', apiVersion: V },
        { ...service('echo'), spec: { protocol: 'http', endpoints: [{ weight: 1, port: 80, address: '127.0.0.1' }], port: 80 } },
        service('web'),
      ],
    };
    expect(canonicalState(build(explicit))).toBe(canonicalState(build(files)));
  });

  it('changes with any field', () => {
    const changed = { ...files, 'a.yaml': [mesh(), service('echo'), { ...service('web'), metadata: { name: 'web', labels: { v: '2' } } }] };
    expect(canonicalState(build(changed))).not.toBe(canonicalState(build(files)));
  });

  it('is JSON without source', () => {
    const text = canonicalState(build(files));
    expect(text).not.toContain('"source"');
    expect(Object.keys(JSON.parse(text) as object)).toEqual(['jwksFiles', 'mesh', 'policies', 'policyBundles', 'quotas', 'requestAuthentications', 'routes', 'services']);
  });
});
