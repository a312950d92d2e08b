/**
 * The sidecar's Envoy ext_authz server (envoy.service.auth.v3.Authorization/Check) over real
 * gRPC on 127.0.0.1, judging by real opa-built wasm bundles loaded by an InboundAuthz that keeps
 * every Policy of the namespace; the same requests also go through the inbound gate (a real
 * HTTP server in front of an echoing workload) to check both paths decide alike.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import pino from 'pino';
import { InboundAuthz } from '../../../sidecar/authz/inbound-authz.ts';
import { AUTHORIZATION_SERVICE, CHECK_OK, CHECK_PERMISSION_DENIED, ExtAuthzServer, POLICY_METADATA_KEY } from '../../../sidecar/authz/ext-authz-server.ts';
import { POLICY_METADATA_KEY as CONTROL_POLICY_METADATA_KEY } from '../../../control/translate/envoy-authz.ts';
import { PolicySchema, Policy_Mode, type Policy } from '../../../xds/gen/palisade/v1/policy_pb.js';
import { CheckRequestSchema, type CheckRequest, type CheckResponse } from '../../../xds/gen/envoy/service/auth/v3/external_auth_pb.js';
import { httpRequest } from '../../helpers/http.ts';
import { cleanup, opaBuild } from '../../policies/support.ts';

const ENTRYPOINT = 'envoy/authz/allow';

/** Allows GET /api/… without x-deny, echoing what it saw; else a 403 with a header. */
const MAIN_REGO = `package envoy.authz
import rego.v1

default allow := {"allowed": false, "body": "forbidden", "headers": {"x-why": "no-rule"}}

allow := {
  "allowed": true,
  "headers": {"x-checked": json.marshal([input.attributes.request.http.method, input.parsed_path, input.parsed_query, object.get(input.attributes.request.http.headers, "x-user", "")])},
  "request_headers_to_remove": ["x-secret"],
} if {
  input.attributes.request.http.method == "GET"
  input.parsed_path[0] == "api"
  not input.attributes.request.http.headers["x-deny"]
}
`;

/** Reads a field only Envoy sends (context_extensions), under OPA-Envoy's protojson name. */
const CONTEXT_REGO = `package envoy.authz
import rego.v1

default allow := false

allow if input.attributes.contextExtensions.tenant == "blue"
`;

const DENY_ALL_REGO = 'package envoy.authz\n\ndefault allow := false\n';
const BROKEN_REGO = 'package envoy.authz\n\nallow := 7\n';

let bundles: Record<string, Uint8Array>;

beforeAll(async () => {
  const build = (rego: string) => opaBuild({ 'authz.rego': rego }, { entrypoints: [ENTRYPOINT] });
  const [main, context, denyAll, broken] = await Promise.all([build(MAIN_REGO), build(CONTEXT_REGO), build(DENY_ALL_REGO), build(BROKEN_REGO)]);
  bundles = { main, context, denyAll, broken };
});

afterAll(cleanup);

function policy(name: string, bundle: Uint8Array, o: { services?: string[]; pathPrefixes?: string[]; mode?: Policy_Mode } = {}): Policy {
  return create(PolicySchema, {
    name, entrypoint: ENTRYPOINT, bundle, mode: o.mode ?? Policy_Mode.ENFORCE,
    services: o.services ?? [], pathPrefixes: o.pathPrefixes ?? [],
  });
}

let authz: InboundAuthz;
let server: ExtAuthzServer;
let client: Client;
let gate: Server;
let gateAddress: string;

beforeEach(async () => {
  authz = new InboundAuthz({ service: 'backend', logger: pino({ level: 'silent' }), ownPrincipal: () => null, namespacePolicies: true });
  await authz.apply([
    // Selects this sidecar's Service: judged inbound and by Check.
    policy('default/main', bundles.main!, { services: ['backend'] }),
    // Select other Services: only the ext_authz server has them.
    policy('default/context', bundles.context!, { services: ['frontend'] }),
    policy('default/orders-only', bundles.denyAll!, { services: ['orders'] }),
    policy('default/shadow', bundles.denyAll!, { services: ['shadowed'], mode: Policy_Mode.DRY_RUN }),
    policy('default/broken', bundles.broken!, { services: ['broken'] }),
    policy('default/admin-paths', bundles.denyAll!, { services: ['frontend'], pathPrefixes: ['/admin'] }),
  ]);
  server = new ExtAuthzServer({ config: () => authz.namespaceConfig!, logger: pino({ level: 'silent' }) });
  const port = await server.listen('127.0.0.1', 0);
  client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  // The inbound gate in front of a workload that echoes the headers it got.
  gate = createServer((req, res) => authz.gate(req, res, () => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ checked: req.headers['x-checked'] ?? null, secret: req.headers['x-secret'] ?? null }));
  }));
  await new Promise<void>((resolve) => gate.listen(0, '127.0.0.1', resolve));
  gateAddress = `127.0.0.1:${(gate.address() as AddressInfo).port}`;
});

afterEach(async () => {
  client.close();
  await server.close();
  authz.close();
  await new Promise<void>((resolve) => gate.close(() => resolve()));
});

function check(req: CheckRequest, policyName: string | null): Promise<CheckResponse> {
  const md = new Metadata();
  if (policyName !== null) md.set(POLICY_METADATA_KEY, policyName);
  const d = AUTHORIZATION_SERVICE.check;
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(d.path, d.requestSerialize, d.responseDeserialize, req, md, (err: ServiceError | null, res?: CheckResponse) => (err ? reject(err) : resolve(res!)));
  });
}

/** A CheckRequest as Envoy's HTTP ext_authz filter builds it (pseudo-headers in the header map). */
function checkRequest(o: { method?: string; path: string; host?: string; headers?: Record<string, string>; principal?: string; contextExtensions?: Record<string, string> }): CheckRequest {
  const method = o.method ?? 'GET';
  const host = o.host ?? 'backend';
  const peer = (port: number, principal = '') => ({
    address: { address: { case: 'socketAddress' as const, value: { address: '127.0.0.1', portSpecifier: { case: 'portValue' as const, value: port } } } },
    principal,
  });
  return create(CheckRequestSchema, {
    attributes: {
      source: peer(40000, o.principal),
      destination: peer(8080),
      contextExtensions: o.contextExtensions ?? {},
      request: {
        http: {
          id: 'req-1', method, path: o.path, host, scheme: 'http', protocol: 'HTTP/1.1', size: -1n,
          headers: { ':authority': host, ':method': method, ':path': o.path, ':scheme': 'http', ...o.headers },
        },
      },
    },
  });
}

/** The outcome of a CheckResponse in the terms of an HTTP answer. */
function outcomeOf(r: CheckResponse): { allowed: boolean; status: number; body: string; headers: Record<string, string>; removed: string[] } {
  const hr = r.httpResponse;
  if (hr.case === 'okResponse') {
    expect(r.status?.code ?? 0).toBe(CHECK_OK);
    for (const h of hr.value.headers) expect(h.append).toBe(false);
    return { allowed: true, status: 200, body: '', headers: Object.fromEntries(hr.value.headers.map((h) => [h.header!.key, h.header!.value])), removed: hr.value.headersToRemove };
  }
  expect(hr.case).toBe('deniedResponse');
  expect(r.status?.code).toBe(CHECK_PERMISSION_DENIED);
  const d = hr.value!;
  return { allowed: false, status: d.status!.code, body: d.body, headers: Object.fromEntries(d.headers.map((h) => [h.header!.key, h.header!.value])), removed: [] };
}

describe('ext_authz Check', () => {
  it('uses the metadata key the control plane sets on the ext_authz filter', () => {
    expect(POLICY_METADATA_KEY).toBe(CONTROL_POLICY_METADATA_KEY);
  });

  it('answers OK with the policy headers (append false) and headers to remove for an allowed request', async () => {
    const r = await check(checkRequest({ path: '/api/items?id=7', headers: { 'x-user': 'ann', 'x-secret': 's' } }), 'default/main');
    expect(outcomeOf(r)).toEqual({
      allowed: true, status: 200, body: '',
      headers: { 'x-checked': JSON.stringify(['GET', ['api', 'items'], { id: ['7'] }, 'ann']) },
      removed: ['x-secret'],
    });
  });

  it('answers PERMISSION_DENIED with the 403, headers and body of a denial', async () => {
    const r = await check(checkRequest({ path: '/api/items', headers: { 'x-deny': '1' } }), 'default/main');
    expect(outcomeOf(r)).toEqual({ allowed: false, status: 403, body: 'forbidden', headers: { 'x-why': 'no-rule' }, removed: [] });
    expect(r.status?.message).toBe('forbidden');
  });

  it.each([
    ['default/missing', 'policy default/missing is not loaded on this authz server'],
    ['shop/main', 'policy shop/main is not loaded on this authz server'],
    [null, 'no x-palisade-policy metadata: no policy to judge by'],
  ])('denies (403) a request naming %j: fail closed', async (name, body) => {
    const r = await check(checkRequest({ path: '/api/items' }), name);
    expect(outcomeOf(r)).toEqual({ allowed: false, status: 403, body, headers: {}, removed: [] });
  });

  it('judges by Policies that do not select the sidecar\'s own Service', async () => {
    expect(authz.config.policies.map((p) => p.name)).toEqual(['default/main']);
    const denied = await check(checkRequest({ host: 'orders.default.svc:8080', path: '/x' }), 'default/orders-only');
    expect(outcomeOf(denied)).toMatchObject({ allowed: false, status: 403, body: 'denied by policy default/orders-only' });
  });

  it('lets through, unjudged, a request outside the Policy\'s services or path prefixes', async () => {
    expect(outcomeOf(await check(checkRequest({ host: 'backend:8080', path: '/x' }), 'default/orders-only')).allowed).toBe(true);
    expect(outcomeOf(await check(checkRequest({ host: 'frontend', path: '/public' }), 'default/admin-paths')).allowed).toBe(true);
    expect(outcomeOf(await check(checkRequest({ host: 'frontend', path: '/admin/users' }), 'default/admin-paths')).allowed).toBe(false);
    expect(server.stats()).toMatchObject({ checks: 3, ok: 2, denied: 1, unselected: 1 });
  });

  it('shows OPA-Envoy the CheckRequest attributes only Envoy knows, in protojson names', async () => {
    const blue = await check(checkRequest({ host: 'frontend', path: '/', contextExtensions: { tenant: 'blue' } }), 'default/context');
    const red = await check(checkRequest({ host: 'frontend', path: '/', contextExtensions: { tenant: 'red' } }), 'default/context');
    expect([outcomeOf(blue).allowed, outcomeOf(red).allowed]).toEqual([true, false]);
  });

  it('answers OK for a dry-run Policy\'s denial', async () => {
    const r = await check(checkRequest({ host: 'shadowed', path: '/' }), 'default/shadow');
    expect(outcomeOf(r)).toEqual({ allowed: true, status: 200, body: '', headers: {}, removed: [] });
  });

  it('denies with 500 when the policy cannot decide', async () => {
    const r = await check(checkRequest({ host: 'broken', path: '/' }), 'default/broken');
    expect(outcomeOf(r)).toEqual({ allowed: false, status: 500, body: 'policy default/broken could not decide', headers: {}, removed: [] });
  });

  it('follows a new Policy push', async () => {
    await authz.apply([policy('default/main', bundles.denyAll!, { services: ['backend'] })]);
    expect(outcomeOf(await check(checkRequest({ path: '/api/items' }), 'default/main'))).toMatchObject({ allowed: false, status: 403 });
    expect(outcomeOf(await check(checkRequest({ host: 'orders', path: '/' }), 'default/orders-only')).body).toBe('policy default/orders-only is not loaded on this authz server');
  });

  it.each([
    ['GET', '/api/items?id=7&id=8', { 'x-user': 'ann' }],
    ['GET', '/api/items', { 'x-user': 'bob', 'x-secret': 'hush' }],
    ['GET', '/%61pi/x%20y?q=a+b', {}],
    ['GET', '/api', { 'x-deny': 'yes' }],
    ['POST', '/api/items', { 'x-user': 'ann' }],
    ['GET', '/other', {}],
  ])('decides %s %s %j as the inbound path does', async (method, path, headers: Record<string, string>) => {
    const inbound = await httpRequest(gateAddress, { method, path, headers });
    // Host `backend`: the Service the Policy selects (the gate's inbound path has already selected).
    const viaCheck = outcomeOf(await check(checkRequest({ method, path, host: 'backend', headers }), 'default/main'));
    expect(viaCheck.status).toBe(inbound.status);
    expect(viaCheck.allowed).toBe(inbound.status === 200);
    if (viaCheck.allowed) {
      const seen = JSON.parse(inbound.body) as { checked: string | null; secret: string | null };
      expect(viaCheck.headers['x-checked']).toBe(seen.checked);
      expect(seen.secret).toBeNull();
      expect(viaCheck.removed).toEqual(['x-secret']);
    } else {
      expect(viaCheck.body).toBe(inbound.body);
      expect(viaCheck.headers['x-why']).toBe(inbound.headers['x-why']);
    }
  });
});
