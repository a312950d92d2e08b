/**
 * JWT authentication end to end: a RequestAuthentication and an ABAC Policy (Rego built and
 * signed by the real opa) in the control plane's config directory, pushed over xDS to the
 * backend's sidecar; the JWKS served by a real HTTP server on 127.0.0.1; requests from the
 * frontend's sidecar over mTLS carrying tokens signed with jose. The policy sees both the
 * peer's SPIFFE ID and the verified claims.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rename, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { startMesh, TRUST_DOMAIN, type TestMesh } from '../../helpers/mesh.ts';
import type { Sidecar, SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { httpRequest } from '../../helpers/http.ts';
import { servicesYaml } from '../../helpers/services-yaml.ts';
import { until } from '../../helpers/until.ts';
import { cleanup, keyPair, opaBuild, type KeyMaterial } from '../../policies/support.ts';

const FRONTEND = `spiffe://${TRUST_DOMAIN}/ns/default/sa/frontend`;
const ISSUER = 'https://idp.test';

/** GET for any caller; DELETE only from frontend with a verified token whose role is admin. */
const REGO = `package envoy.authz

default allow := false

claims := input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].idp

allow if input.attributes.request.http.method == "GET"

allow if {
	input.attributes.request.http.method == "DELETE"
	input.attributes.source.principal == "${FRONTEND}"
	claims.role == "admin"
}
`;

const SERVICES = servicesYaml({ name: 'frontend', port: 8080 }, { name: 'backend', port: 8080 });

interface Key {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
}

let mesh: TestMesh;
let policyKey: KeyMaterial;
let workload: Server;
let jwksServer: Server;
let jwksUri: string;
let served: Key[];
let jwksRequests = 0;
let k1: Key;
let k2: Key;
let frontend: { sidecar: Sidecar; addresses: SidecarAddresses };
let backend: { sidecar: Sidecar; addresses: SidecarAddresses };

function listen(s: Server): Promise<number> {
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
}

async function newKey(kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256' } };
}

function sign(key: Key, claims: Record<string, unknown>, exp: number | string = '5m'): Promise<string> {
  return new SignJWT({ sub: 'alice', ...claims }).setProtectedHeader({ alg: 'ES256', kid: key.kid })
    .setIssuer(ISSUER).setAudience('backend').setIssuedAt().setExpirationTime(exp).sign(key.privateKey);
}

function authnYaml(required: boolean): string {
  return `apiVersion: palisade.dev/v1
kind: RequestAuthentication
metadata: { name: backend-jwt }
spec:
  selector: { services: [backend] }
  required: ${required}
  providers:
    idp:
      issuer: ${ISSUER}
      audiences: [backend]
      jwks: { uri: "${jwksUri}", cacheDuration: 5m }
      claimToHeaders: [{ claim: sub, header: x-user }]
`;
}

const POLICY = 'apiVersion: palisade.dev/v1\nkind: Policy\nmetadata: { name: backend-authz }\nspec:\n  entrypoint: envoy/authz/allow\n  bundle: { file: authz.tar.gz }\n  selector: { services: [backend] }\n';

function authnStats(): { enforced: boolean; required?: boolean; providers?: Record<string, { fetches: number; kidRefreshes: number; kidRefreshesSuppressed: number }> } {
  return (backend.sidecar.stats() as { authz: { authn: ReturnType<typeof authnStats> } }).authz.authn;
}

async function publish(required: boolean): Promise<void> {
  await mesh.writeConfig(`${SERVICES}---\n${POLICY}---\n${authnYaml(required)}`);
  await until(`authentication in force (required: ${required})`, () => authnStats().enforced && authnStats().required === required, 15_000, 20);
}

function call(method: string, token: string | null, path = '/api/items') {
  return httpRequest(frontend.addresses.outbound, { method, path, headers: { host: 'backend:8080', ...(token !== null ? { authorization: `Bearer ${token}` } : {}) } });
}

beforeAll(async () => {
  policyKey = keyPair('ec');
  [k1, k2] = await Promise.all([newKey('k1'), newKey('k2')]);
  served = [k1];
  jwksServer = createServer((_req, res) => {
    jwksRequests++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: served.map((k) => k.jwk) }));
  });
  jwksUri = `http://127.0.0.1:${await listen(jwksServer)}/jwks.json`;
  const bundle = await opaBuild({ 'authz.rego': REGO }, { entrypoints: ['envoy/authz/allow'], signingAlg: 'ES256', signingKey: policyKey, revision: 'abac' });
  workload = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ method: req.method, user: req.headers['x-user'] ?? null, authorization: req.headers.authorization ?? null }));
  });
  const port = await listen(workload);
  mesh = await startMesh(SERVICES);
  await writeFile(join(mesh.configDir, '.authz.tar.gz.tmp'), bundle);
  await rename(join(mesh.configDir, '.authz.tar.gz.tmp'), join(mesh.configDir, 'authz.tar.gz'));
  const keyFile = join(mesh.dir, 'policy.pub.pem');
  await writeFile(keyFile, policyKey.publicPem);
  backend = await mesh.startSidecar('backend', port, { policyKeys: [keyFile] });
  frontend = await mesh.startSidecar('frontend', 1);
  await publish(false);
  await until('policy in force', () => {
    const p = (backend.sidecar.stats() as { authz: { policies: Record<string, { revision: string }> } }).authz.policies['default/backend-authz'];
    return p?.revision === 'abac';
  }, 15_000, 20);
  await until('backend reachable', async () => (await call('GET', null, '/health')).status !== 503, 15_000, 50);
}, 90_000);

afterAll(async () => {
  await mesh?.close();
  for (const s of [workload, jwksServer]) if (s?.listening) await new Promise<void>((r) => s.close(() => r()));
  await cleanup();
});

describe('RequestAuthentication on the inbound listener', () => {
  it('the policy sees the verified claims: only an admin token may DELETE', async () => {
    const admin = await sign(k1, { role: 'admin' });
    const user = await sign(k1, { role: 'viewer' });
    const ok = await call('DELETE', admin);
    expect(ok.status).toBe(200);
    // claim_to_headers reaches the workload; the token is forwarded.
    expect(JSON.parse(ok.body)).toEqual({ method: 'DELETE', user: 'alice', authorization: `Bearer ${admin}` });
    expect((await call('DELETE', user)).status).toBe(403);
    expect((await call('DELETE', null)).status).toBe(403);
    // Not required: no token passes authentication, the policy decides.
    expect((await call('GET', null)).status).toBe(200);
  });

  it('refuses invalid tokens with 401 before the policy runs', async () => {
    for (const token of [await sign(k1, { role: 'admin' }, Math.floor(Date.now() / 1000) - 600), 'garbage.token.here']) {
      const r = await call('GET', token);
      expect([r.status, r.body]).toEqual([401, 'Jwt verification fails']);
      expect(r.headers['www-authenticate']).toMatch(/^Bearer realm="https:\/\/backend:8080\/api\/items", error="invalid_token"$/);
    }
  });

  it('picks up a rotated key with one JWKS refetch', async () => {
    const before = authnStats().providers!['default/backend-jwt/idp']!;
    served = [k2];
    const r = await call('DELETE', await sign(k2, { role: 'admin' }));
    expect(r.status).toBe(200);
    const after = authnStats().providers!['default/backend-jwt/idp']!;
    expect(after.kidRefreshes - before.kidRefreshes).toBe(1);
    expect(after.fetches - before.fetches).toBe(1);
    expect(jwksRequests).toBe(after.fetches);
  });

  it('required: a request without a token gets 401 "Jwt is missing"', async () => {
    await publish(true);
    const r = await call('GET', null);
    expect([r.status, r.body, r.headers['www-authenticate']]).toEqual([401, 'Jwt is missing', 'Bearer realm="https://backend:8080/api/items"']);
    expect((await call('GET', await sign(k2, {}))).status).toBe(200);
  });

  it('the claims matrix holds in dry-run (served, counted) and audit (enforced, counted) modes', async () => {
    type St = { mode: string; allowed: number; denied: number; dryRunDenied: number };
    const stats = () => (backend.sidecar.stats() as { authz: { policies: Record<string, St> } }).authz.policies['default/backend-authz']!;
    // The key the JWKS serves now (an earlier test rotated it).
    const key = served[served.length - 1]!;
    const admin = await sign(key, { role: 'admin' });
    const viewer = await sign(key, { role: 'viewer' });
    for (const mode of ['dry-run', 'audit'] as const) {
      await mesh.writeConfig(`${SERVICES}---\n${POLICY}  mode: ${mode}\n---\n${authnYaml(false)}`);
      await until(`policy in ${mode}`, () => stats().mode === mode, 15_000, 20);
      const before = stats();
      const results = [await call('DELETE', admin), await call('DELETE', viewer), await call('DELETE', null), await call('GET', viewer)].map((r) => r.status);
      const after = stats();
      if (mode === 'dry-run') {
        // Everything is served; the two would-be denials are counted.
        expect(results).toEqual([200, 200, 200, 200]);
        expect(after.dryRunDenied - before.dryRunDenied).toBe(2);
      } else {
        expect(results).toEqual([200, 403, 403, 200]);
        expect([after.allowed - before.allowed, after.denied - before.denied]).toEqual([2, 2]);
      }
    }
    await publish(false);
  });
});

