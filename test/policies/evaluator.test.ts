import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBundle, type Bundle } from '../../policies/bundle.ts';
import { toDecision } from '../../policies/decision.ts';
import { PolicyEngine } from '../../policies/evaluator.ts';
import { buildInput, type RequestDescription } from '../../policies/input.ts';
import { cleanup, opaBuild, opaEval } from './support.ts';

const RBAC = {
  'rbac.rego': `package envoy.authz
default allow := false
allow if {
  some grant in data.grants[input.attributes.source.principal]
  grant.method == input.attributes.request.http.method
  startswith(input.attributes.request.http.path, grant.prefix)
}
`,
  'data.json': JSON.stringify({
    grants: {
      'spiffe://example.org/ns/shop/sa/web': [{ method: 'GET', prefix: '/api/' }],
      'spiffe://example.org/ns/shop/sa/admin': [{ method: 'GET', prefix: '/' }, { method: 'DELETE', prefix: '/api/' }],
    },
  }),
};

const ABAC = {
  'abac.rego': `package abac
jwt := input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].issuer
ok if jwt.role == "admin"
ok if {
  jwt.role == "reader"
  input.attributes.request.http.method == "GET"
  input.parsed_path[0] == "reports"
}
default decision := {"allowed": false, "http_status": 401, "body": "missing token", "headers": {"www-authenticate": "Bearer"}}
decision := {
  "allowed": true,
  "headers": {"x-user": jwt.sub},
  "request_headers_to_remove": ["authorization"],
  "response_headers_to_add": {"x-policy": ["abac", "v1"]},
} if ok
decision := {"allowed": false, "http_status": 403, "body": "forbidden", "reason": "role does not allow this"} if {
  jwt
  not ok
}
`,
};

const FAULTY = {
  'err.rego': `package err
conflict := 1 if input.a
conflict := 2 if input.b
undef if input.never
number := 5
`,
};

function request(overrides: Partial<RequestDescription> = {}): RequestDescription {
  return {
    method: 'GET',
    path: '/api/items?x=1',
    headers: { 'user-agent': 'test' },
    host: 'shop.example.org',
    scheme: 'https',
    protocol: 'HTTP/1.1',
    sourceAddress: '10.0.0.1',
    sourcePort: 40000,
    destinationAddress: '10.0.0.2',
    destinationPort: 8080,
    sourcePrincipal: 'spiffe://example.org/ns/shop/sa/web',
    destinationPrincipal: 'spiffe://example.org/ns/shop/sa/api',
    requestId: 'req-1',
    ...overrides,
  };
}

const WEB = 'spiffe://example.org/ns/shop/sa/web';
const ADMIN = 'spiffe://example.org/ns/shop/sa/admin';
const claims = (c: Record<string, unknown> | null): Partial<RequestDescription> => ({ jwtPayloads: c === null ? null : { issuer: c } });

let rbacBundle: Bundle;
let abacBundle: Bundle;
let faultyBundle: Bundle;
let rbac: PolicyEngine;
let abac: PolicyEngine;

beforeAll(async () => {
  const [r, a, f] = await Promise.all([
    opaBuild(RBAC, { entrypoints: ['envoy/authz/allow'], revision: 'rbac-1' }),
    opaBuild(ABAC, { entrypoints: ['abac/decision'], revision: 'abac-1' }),
    opaBuild(FAULTY, { entrypoints: ['err/conflict', 'err/undef', 'err/number'] }),
  ]);
  rbacBundle = readBundle(r);
  abacBundle = readBundle(a);
  faultyBundle = readBundle(f);
  rbac = await PolicyEngine.create(rbacBundle, { entrypoint: 'envoy/authz/allow' });
  abac = await PolicyEngine.create(abacBundle, { entrypoint: 'abac/decision' });
}, 60_000);

afterAll(async () => {
  rbac.close();
  abac.close();
  await cleanup();
});

describe('PolicyEngine (RBAC, boolean result)', () => {
  it.each<[string | null, string, string, boolean]>([
    [WEB, 'GET', '/api/items', true],
    [WEB, 'GET', '/admin', false],
    [WEB, 'DELETE', '/api/items', false],
    [ADMIN, 'GET', '/admin', true],
    [ADMIN, 'DELETE', '/api/items/3', true],
    [ADMIN, 'POST', '/api/items', false],
    ['spiffe://example.org/ns/other/sa/x', 'GET', '/api/items', false],
    [null, 'GET', '/api/items', false],
  ])('%s %s %s → allowed %s', (principal, method, path, allowed) => {
    const d = rbac.evaluate(buildInput(request({ sourcePrincipal: principal, method, path })));
    expect(d).toEqual({ allowed, error: false, httpStatus: null, body: null, headers: null, responseHeadersToAdd: null, requestHeadersToRemove: null, reason: null });
  });

  it('keeps the revision and entrypoint', () => {
    expect(rbac.revision).toBe('rbac-1');
    expect(rbac.entrypoint).toBe('envoy/authz/allow');
  });
});

describe('PolicyEngine (ABAC on JWT claims, object result)', () => {
  it('allows an admin with the headers to add and remove', () => {
    expect(abac.evaluate(buildInput(request({ method: 'DELETE', ...claims({ sub: 'ann', role: 'admin' }) })))).toEqual({
      allowed: true,
      error: false,
      httpStatus: null,
      body: null,
      headers: [['x-user', 'ann']],
      responseHeadersToAdd: [
        ['x-policy', 'abac'],
        ['x-policy', 'v1'],
      ],
      requestHeadersToRemove: ['authorization'],
      reason: null,
    });
  });

  it.each<[string, string, Record<string, unknown> | null, boolean, number | null]>([
    ['GET', '/reports/q3', { sub: 'rob', role: 'reader' }, true, null],
    ['POST', '/reports/q3', { sub: 'rob', role: 'reader' }, false, 403],
    ['GET', '/api/items', { sub: 'rob', role: 'reader' }, false, 403],
    ['GET', '/reports/q3', { sub: 'eve', role: 'guest' }, false, 403],
    ['GET', '/reports/q3', null, false, 401],
  ])('%s %s with claims %j → allowed %s, status %s', (method, path, c, allowed, status) => {
    const d = abac.evaluate(buildInput(request({ method, path, ...claims(c) })));
    expect(d.error).toBe(false);
    expect(d.allowed).toBe(allowed);
    expect(d.httpStatus).toBe(status);
  });

  it('denies without a token with the policy status, body and headers', () => {
    expect(abac.evaluate(buildInput(request()))).toMatchObject({ allowed: false, httpStatus: 401, body: 'missing token', headers: [['www-authenticate', 'Bearer']], reason: null });
  });

  it('carries a denial reason', () => {
    expect(abac.evaluate(buildInput(request({ ...claims({ role: 'guest' }) })))).toMatchObject({ allowed: false, httpStatus: 403, body: 'forbidden', reason: 'role does not allow this' });
  });
});

describe('PolicyEngine errors (fail closed)', () => {
  it('answers an error decision for a runtime conflict', async () => {
    const engine = await PolicyEngine.create(faultyBundle, { entrypoint: 'err/conflict' });
    const d = engine.evaluate({ a: true, b: true });
    expect(d).toMatchObject({ allowed: false, error: true });
    expect(d.reason).toMatch(/^policy evaluation failed: /);
    expect(engine.evaluate({ a: true })).toMatchObject({ error: true, reason: 'policy result must be a boolean or an object, got 1' });
    engine.close();
  });

  it('answers an error decision for an undefined result', async () => {
    const engine = await PolicyEngine.create(faultyBundle, { entrypoint: 'err/undef' });
    expect(engine.evaluate({})).toMatchObject({ allowed: false, error: true, reason: 'policy result is undefined (err/undef)' });
  });

  it('answers an error decision once closed', async () => {
    const engine = await PolicyEngine.create(faultyBundle, { entrypoint: 'err/number' });
    engine.close();
    expect(engine.evaluate({})).toMatchObject({ allowed: false, error: true, reason: 'policy engine is closed' });
  });

  it('refuses an entrypoint the bundle does not have', async () => {
    await expect(PolicyEngine.create(rbacBundle, { entrypoint: 'envoy/authz/nope' })).rejects.toMatchObject({
      code: 'PAL_ERR_POLICY_LOAD',
      message: expect.stringMatching(/no entrypoint "envoy\/authz\/nope" \(has envoy\/authz\/allow\)/),
    });
  });

  it.each([
    [{ entrypoint: '' }, /entrypoint must be a non-empty string/],
    [{ entrypoint: 'a/b', instances: 0 }, /instances must be an integer in 1\.\.64, got 0/],
    [{ entrypoint: 'a/b', maxMemoryPages: 1 }, /maxMemoryPages must be an integer in initialMemoryPages\.\.65536, got 1/],
  ])('refuses options %j', async (options, reason) => {
    await expect(PolicyEngine.create(rbacBundle, options)).rejects.toMatchObject({ code: 'PAL_ERR_POLICY_INVALID_OPTION', message: expect.stringMatching(reason) });
  });

  it('serves from a pool of several instances', async () => {
    const engine = await PolicyEngine.create(rbacBundle, { entrypoint: 'envoy/authz/allow', instances: 3 });
    for (let i = 0; i < 5; i++) expect(engine.evaluate(buildInput(request())).allowed).toBe(true);
    engine.close();
  });

  it('fails closed when an input outgrows the memory bound', async () => {
    const engine = await PolicyEngine.create(rbacBundle, { entrypoint: 'envoy/authz/allow', maxMemoryPages: 8 });
    const d = engine.evaluate(buildInput(request({ headers: { big: 'x'.repeat(1 << 20) } })));
    expect(d).toMatchObject({ allowed: false, error: true });
    expect(engine.evaluate(buildInput(request())).allowed).toBe(true);
    engine.close();
  });
});

describe('wasm and opa eval (Go) agree', () => {
  const cases: Array<[string, Partial<RequestDescription>]> = [
    ['admin', { method: 'DELETE', ...claims({ sub: 'ann', role: 'admin' }) }],
    ['reader on reports', { path: '/reports/q3?year=2026', ...claims({ sub: 'rob', role: 'reader' }) }],
    ['reader elsewhere', { ...claims({ sub: 'rob', role: 'reader' }) }],
    ['no token', {}],
  ];
  it.each(cases)('ABAC: %s', async (_name, overrides) => {
    const input = buildInput(request(overrides));
    const goValue = await opaEval(ABAC, 'data.abac.decision', input);
    expect(goValue).toBeDefined();
    expect(abac.evaluate(input)).toEqual(toDecision(goValue));
  });

  it('RBAC over a matrix', async () => {
    for (const [principal, method, path] of [[WEB, 'GET', '/api/x'], [WEB, 'PUT', '/api/x'], [ADMIN, 'DELETE', '/api/x'], [ADMIN, 'DELETE', '/x']] as const) {
      const input = buildInput(request({ sourcePrincipal: principal, method, path }));
      expect(rbac.evaluate(input)).toEqual(toDecision(await opaEval(RBAC, 'data.envoy.authz.allow', input)));
    }
  });
});
