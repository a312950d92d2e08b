/**
 * The Envoy RBAC analysis over real `opa parse` ASTs (the pinned opa): each recognised
 * OPA-Envoy shape maps to the documented RBAC rule, each other construct is refused with its
 * file:line, and every produced rule set is a valid envoy.config.rbac.v3.RBAC under Envoy's
 * PGV rules.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { create, fromJson, type JsonValue } from '@bufbuild/protobuf';
import { analyzeDirectory, describeEnvoyTranslation, envoyRbacFromData, type RbacAnalysis } from '../../policies/rbac-analysis.ts';
import { RBACSchema as RbacConfigSchema } from '../../xds/gen/envoy/config/rbac/v3/rbac_pb.js';
import { RBACSchema } from '../../xds/gen/envoy/extensions/filters/http/rbac/v3/rbac_pb.js';
import { TYPE_REGISTRY } from '../../xds/resources/registry.ts';
import { validateMessage } from '../../xds/validate/pgv.ts';
import { cleanup, writeSources } from './support.ts';

afterAll(cleanup);

const HEAD = 'package envoy.authz\n\ndefault allow := false\n\n';

async function analyze(body: string, extra: Record<string, string> = {}): Promise<RbacAnalysis> {
  const dir = await writeSources({ 'authz.rego': HEAD + body, ...extra });
  return (await analyzeDirectory(dir, ['envoy/authz/allow']))['envoy/authz/allow']!;
}

const hdr = (name: string, m: Record<string, string>) => ({ header: { name, string_match: m } });
const SPIFFE = 'spiffe://mesh.local/ns/shop/sa/web';

describe('analyzeDirectory: shapes Envoy RBAC expresses', () => {
  it.each<[string, string, { permissions: unknown[]; principals: unknown[] }]>([
    ['principal equality', `allow if input.attributes.source.principal == "${SPIFFE}"`,
      { permissions: [{ any: true }], principals: [{ authenticated: { principal_name: { exact: SPIFFE } } }] }],
    ['constant on the left', `allow if "${SPIFFE}" == input.attributes.source.principal`,
      { permissions: [{ any: true }], principals: [{ authenticated: { principal_name: { exact: SPIFFE } } }] }],
    ['an alias rule of the principal', `caller := input.attributes.source.principal\n\nallow if caller == "${SPIFFE}"`,
      { permissions: [{ any: true }], principals: [{ authenticated: { principal_name: { exact: SPIFFE } } }] }],
    ['method equality', 'allow if input.attributes.request.http.method == "GET"',
      { permissions: [hdr(':method', { exact: 'GET' })], principals: [{ any: true }] }],
    ['method in a set', 'allow if input.attributes.request.http.method in {"GET", "HEAD"}',
      { permissions: [{ or_rules: { rules: [hdr(':method', { exact: 'GET' }), hdr(':method', { exact: 'HEAD' })] } }], principals: [{ any: true }] }],
    ['path prefix', 'allow if startswith(input.attributes.request.http.path, "/api/")',
      { permissions: [hdr(':path', { prefix: '/api/' })], principals: [{ any: true }] }],
    ['path equality (query included, as in Rego)', 'allow if input.attributes.request.http.path == "/healthz"',
      { permissions: [hdr(':path', { exact: '/healthz' })], principals: [{ any: true }] }],
    ['first path segment', 'allow if input.parsed_path[0] == "api"',
      { permissions: [{ or_rules: { rules: [{ url_path: { path: { exact: '/api' } } }, { url_path: { path: { prefix: '/api/' } } }] } }], principals: [{ any: true }] }],
    ['header equality', 'allow if input.attributes.request.http.headers["x-tenant"] == "acme"',
      { permissions: [hdr('x-tenant', { exact: 'acme' })], principals: [{ any: true }] }],
    ['an unconditional allow', 'allow := true',
      { permissions: [{ any: true }], principals: [{ any: true }] }],
  ])('%s', async (_name, rego, policy) => {
    const a = await analyze(`${rego}\n`);
    expect(a).toEqual({ expressible: true, rbac: { action: 'ALLOW', policies: { 'allow[0]': policy } } });
  });

  it('ANDs one body and ORs the bodies, one RBAC policy per body', async () => {
    const a = await analyze(`allow if {
  input.attributes.source.principal == "${SPIFFE}"
  input.attributes.request.http.method == "GET"
  input.parsed_path[0] == "api"
}

allow if {
  input.attributes.source.principal == "spiffe://mesh.local/ns/ops/sa/admin"
}
`);
    expect(a).toEqual({
      expressible: true,
      rbac: {
        action: 'ALLOW',
        policies: {
          'allow[0]': {
            permissions: [{ and_rules: { rules: [hdr(':method', { exact: 'GET' }), { or_rules: { rules: [{ url_path: { path: { exact: '/api' } } }, { url_path: { path: { prefix: '/api/' } } }] } }] } }],
            principals: [{ authenticated: { principal_name: { exact: SPIFFE } } }],
          },
          'allow[1]': { permissions: [{ any: true }], principals: [{ authenticated: { principal_name: { exact: 'spiffe://mesh.local/ns/ops/sa/admin' } } }] },
        },
      },
    });
    expect(describeEnvoyTranslation(a)).toBe('RBAC (2 policies)');
  });

  it('reads rules from several files of the package and ignores _test.rego files', async () => {
    const a = await analyze('allow if input.attributes.request.http.method == "GET"\n', {
      'more.rego': 'package envoy.authz\n\nallow if input.attributes.request.http.method == "PUT"\n',
      'authz_test.rego': 'package envoy.authz_test\n\ntest_x if { not data.x }\n',
    });
    expect(a.expressible).toBe(true);
    expect(Object.keys((a as { rbac: { policies: object } }).rbac.policies)).toEqual(['allow[0]', 'allow[1]']);
  });

  it('writes rules that are valid envoy RBAC configs under Envoy\'s PGV rules (snake_case proto-JSON)', async () => {
    const a = await analyze(`allow if {
  input.attributes.source.principal == "${SPIFFE}"
  input.attributes.request.http.method in {"GET", "POST"}
  startswith(input.attributes.request.http.path, "/api/")
  input.parsed_path[0] == "api"
  input.attributes.request.http.headers["x-foo"] == "bar"
}
`);
    if (!a.expressible) throw new Error(a.reason);
    const rules = fromJson(RbacConfigSchema, a.rbac as unknown as JsonValue);
    expect(validateMessage(RBACSchema, create(RBACSchema, { rules }), { registry: TYPE_REGISTRY })).toEqual({ valid: true });
    expect(rules.policies['allow[0]']!.principals[0]!.identifier.case).toBe('authenticated');
  });
});

describe('analyzeDirectory: refusals name the first offending file:line', () => {
  it.each<[string, string, string]>([
    ['negation', 'allow if {\n  input.attributes.request.http.method == "GET"\n  not input.attributes.request.http.headers["x-deny"]\n}',
      'authz.rego:7: `not input.attributes.request.http.headers["x-deny"]`: negation (`not`) has no RBAC form'],
    ['data references', 'allow if input.attributes.source.principal == data.callers.web',
      'authz.rego:5: `input.attributes.source.principal == data.callers.web`: reads data (RBAC cannot see bundle data)'],
    ['other functions', 'allow if endswith(input.attributes.request.http.path, ".json")',
      'authz.rego:5: `endswith(input.attributes.request.http.path, ".json")`: function `endswith` has no RBAC form'],
    ['inequality', 'allow if input.attributes.request.http.method != "DELETE"',
      'authz.rego:5: `input.attributes.request.http.method != "DELETE"`: function `neq` has no RBAC form'],
    ['comprehensions', 'allow if count([h | some h in input.attributes.request.http.headers]) > 0',
      'authz.rego:5: `count([h | some h in input.attributes.request.http.headers]) > 0`: function `gt` has no RBAC form'],
    ['local variables', 'allow if {\n  m := input.attributes.request.http.method\n  m == "GET"\n}',
      'authz.rego:6: `m := input.attributes.request.http.method`: local variables (`:=`) have no RBAC form'],
    ['helper rules', 'is_get if input.attributes.request.http.method == "GET"\n\nallow if is_get',
      'authz.rego:7: `is_get`: a bare term (truthiness test) has no RBAC form'],
    ['input fields without an RBAC form', 'allow if input.attributes.request.http.host == "shop"',
      'authz.rego:5: `input.attributes.request.http.host == "shop"`: input.attributes.request.http.host has no RBAC form'],
    ['mixed-case header names (never match)', 'allow if input.attributes.request.http.headers["X-Foo"] == "bar"',
      'authz.rego:5: `input.attributes.request.http.headers["X-Foo"] == "bar"`: header names in the input are lowercase, `X-Foo` never matches'],
    ['a path segment holding a slash', 'allow if input.parsed_path[0] == "a/b"',
      'authz.rego:5: `input.parsed_path[0] == "a/b"`: a first path segment that is empty or holds / ? # % has no exact url_path form'],
    ['else chains', 'allow if input.attributes.request.http.method == "GET"\nelse := false',
      'authz.rego:5: `allow if input.attributes.request.http.method == "GET"`: `else` has no RBAC form'],
    ['with', 'allow if {\n  input.attributes.request.http.method == "GET" with input as {}\n}',
      'authz.rego:6: `input.attributes.request.http.method == "GET" with input as {}`: `with` has no RBAC form'],
  ])('%s', async (_name, rego, reason) => {
    expect(await analyze(`${rego}\n`)).toEqual({ expressible: false, reason });
  });

  it('refuses an object result (OPA-Envoy decision objects)', async () => {
    const dir = await writeSources({
      'authz.rego': 'package envoy.authz\n\ndefault allow := {"allowed": false}\n\nallow := {"allowed": true} if input.attributes.request.http.method == "GET"\n',
    });
    expect((await analyzeDirectory(dir, ['envoy/authz/allow']))['envoy/authz/allow']).toEqual({
      expressible: false,
      reason: 'authz.rego:3: `default`: the default must be false (an object or true result has no RBAC form)',
    });
  });

  it('refuses a rule without a default false', async () => {
    const dir = await writeSources({ 'authz.rego': 'package envoy.authz\n\nallow if input.attributes.request.http.method == "GET"\n' });
    expect((await analyzeDirectory(dir, ['envoy/authz/allow']))['envoy/authz/allow']).toEqual({
      expressible: false,
      reason: 'authz.rego:3: no `default allow := false`: RBAC denies what matches no policy, OPA would be undefined',
    });
  });

  it('refuses an entrypoint that names no rule', async () => {
    const dir = await writeSources({ 'authz.rego': HEAD });
    expect((await analyzeDirectory(dir, ['envoy/authz/decision']))['envoy/authz/decision']).toEqual({ expressible: false, reason: 'no rule envoy.authz.decision in the Rego sources' });
  });

  it('reports a file opa cannot parse', async () => {
    const dir = await writeSources({ 'authz.rego': 'package envoy.authz\n\nallow {\n' });
    const a = (await analyzeDirectory(dir, ['envoy/authz/allow']))['envoy/authz/allow']!;
    expect(a.expressible).toBe(false);
    expect((a as { reason: string }).reason).toMatch(/^authz\.rego:\d+: rego_parse_error: .* \(opa parse\)$/);
  });
});

describe('envoyRbacFromData', () => {
  it('reads a verdict back from bundle data and is null without one', () => {
    const rbac = { action: 'ALLOW' as const, policies: {} };
    expect(envoyRbacFromData({ palisade: { envoy_rbac: { 'a/b': { expressible: true, rbac } } } }, 'a/b')).toEqual({ expressible: true, rbac });
    expect(envoyRbacFromData({ palisade: { envoy_rbac: { 'a/b': { expressible: false, reason: 'x' } } } }, 'a/b')).toEqual({ expressible: false, reason: 'x' });
    expect(envoyRbacFromData({}, 'a/b')).toBeNull();
    expect(envoyRbacFromData({ palisade: { envoy_rbac: { 'a/b': { expressible: 'yes' } } } }, 'a/b')).toBeNull();
    expect(describeEnvoyTranslation(null)).toBe('ext_authz (the bundle carries no Envoy analysis: rebuild it with palisade policy build)');
  });
});
