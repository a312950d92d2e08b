/**
 * Authorization on the sidecar's inbound listener with real policies: Rego compiled to wasm
 * and signed by the real opa, a Policy in the control plane's config directory, pushed over
 * xDS to the backend's sidecar (which verifies the signature with its bootstrap key), and
 * requests from frontend's sidecar over mTLS, judged by frontend's SPIFFE ID, method and path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rename, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startMesh, TRUST_DOMAIN, type TestMesh } from '../../helpers/mesh.ts';
import type { Sidecar, SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { httpRequest } from '../../helpers/http.ts';
import { servicesYaml } from '../../helpers/services-yaml.ts';
import { until } from '../../helpers/until.ts';
import { cleanup, flipByte, keyPair, opaBuild, type KeyMaterial } from '../../policies/support.ts';
import { POLICY_TYPE_URL } from '../../../xds/resources/type-urls.ts';

const FRONTEND = `spiffe://${TRUST_DOMAIN}/ns/default/sa/frontend`;

/** RBAC-style: frontend may GET /api/*, nobody may DELETE; the object form carries the reason. */
const REGO_V1 = `package envoy.authz

default allow := {"allowed": false, "http_status": 403, "body": "not allowed by backend-authz v1"}

allow := {"allowed": true, "headers": {"x-authz": "v1"}} if {
	input.attributes.source.principal == "${FRONTEND}"
	input.attributes.request.http.method == "GET"
	input.parsed_path[0] == "api"
}
`;
/** v2 also lets frontend POST /api/*. */
const REGO_V2 = REGO_V1.replace('input.attributes.request.http.method == "GET"', 'input.attributes.request.http.method in {"GET", "POST"}').replaceAll('v1', 'v2');

const SERVICES = servicesYaml({ name: 'frontend', port: 8080 }, { name: 'backend', port: 8080 });

let mesh: TestMesh;
let key: KeyMaterial;
let workload: Server;
let frontend: { sidecar: Sidecar; addresses: SidecarAddresses };
let backend: { sidecar: Sidecar; addresses: SidecarAddresses };
let v1: Uint8Array;
let v2: Uint8Array;

function listen(s: Server): Promise<number> {
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
}

function policyYaml(mode: 'enforce' | 'dry-run' | 'audit', bundleFile = 'authz.tar.gz'): string {
  return `apiVersion: palisade.dev/v1\nkind: Policy\nmetadata: { name: backend-authz }\nspec:\n  entrypoint: envoy/authz/allow\n  bundle: { file: ${bundleFile} }\n  mode: ${mode}\n  selector: { services: [backend] }\n  cacheKeys: [attributes.source.principal, attributes.request.http.method, parsed_path]\n`;
}

/** Publishes a bundle and a Policy; resolves once the backend's sidecar has that bundle's revision in force. */
async function publish(bundle: Uint8Array, mode: 'enforce' | 'dry-run' | 'audit', revision: string): Promise<void> {
  await writeFile(join(mesh.configDir, '.authz.tar.gz.tmp'), bundle);
  await rename(join(mesh.configDir, '.authz.tar.gz.tmp'), join(mesh.configDir, 'authz.tar.gz'));
  await mesh.writeConfig(`${SERVICES}---\n${policyYaml(mode)}`);
  await until(`policy ${revision} ${mode} in force`, () => {
    const p = (backend.sidecar.stats() as { authz: { policies: Record<string, { revision: string; mode: string }> } }).authz.policies['default/backend-authz'];
    return p?.revision === revision && p.mode === mode;
  }, 15_000, 20);
}

function call(method: string, path: string): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  return httpRequest(frontend.addresses.outbound, { method, path, headers: { host: 'backend:8080' } });
}

beforeAll(async () => {
  key = keyPair('ec');
  [v1, v2] = await Promise.all([
    opaBuild({ 'authz.rego': REGO_V1 }, { entrypoints: ['envoy/authz/allow'], signingAlg: 'ES256', signingKey: key, revision: 'v1' }),
    opaBuild({ 'authz.rego': REGO_V2 }, { entrypoints: ['envoy/authz/allow'], signingAlg: 'ES256', signingKey: key, revision: 'v2' }),
  ]);
  workload = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ method: req.method, path: req.url, authz: req.headers['x-authz'] ?? null }));
  });
  const port = await listen(workload);
  mesh = await startMesh(SERVICES);
  const keyFile = join(mesh.dir, 'policy.pub.pem');
  await writeFile(keyFile, key.publicPem);
  backend = await mesh.startSidecar('backend', port, { policyKeys: [keyFile] });
  frontend = await mesh.startSidecar('frontend', 1);
  await until('backend reachable', async () => (await call('GET', '/health')).status !== 503, 15_000, 50);
}, 90_000);

afterAll(async () => {
  await mesh?.close();
  if (workload?.listening) await new Promise<void>((r) => workload.close(() => r()));
  await cleanup();
});

describe('Policy enforcement on the inbound listener', () => {
  it('enforce: allows what the policy allows (adding its headers) and denies the rest with its status and body', async () => {
    await publish(v1, 'enforce', 'v1');
    const ok = await call('GET', '/api/items');
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toEqual({ method: 'GET', path: '/api/items', authz: 'v1' });
    for (const [method, path] of [['POST', '/api/items'], ['GET', '/admin'], ['DELETE', '/api/items']] as const) {
      const r = await call(method, path);
      expect([r.status, r.body], `${method} ${path}`).toEqual([403, 'not allowed by backend-authz v1']);
    }
  });

  it('caches decisions per revision and declared input keys', async () => {
    const before = (backend.sidecar.stats() as { authz: { policies: Record<string, { cache: { hits: number } }> } }).authz.policies['default/backend-authz']!.cache.hits;
    for (let i = 0; i < 5; i++) expect((await call('GET', '/api/items')).status).toBe(200);
    const after = (backend.sidecar.stats() as { authz: { policies: Record<string, { cache: { hits: number } }> } }).authz.policies['default/backend-authz']!.cache.hits;
    expect(after - before).toBeGreaterThanOrEqual(5);
  });

  it('dry-run: serves what enforce would deny and counts it', async () => {
    await publish(v1, 'dry-run', 'v1');
    const r = await call('POST', '/api/items');
    expect(r.status).toBe(200);
    const st = (backend.sidecar.stats() as { authz: { policies: Record<string, { dryRunDenied: number }> } }).authz.policies['default/backend-authz']!;
    expect(st.dryRunDenied).toBeGreaterThan(0);
  });

  it('audit: enforces like enforce and counts every decision', async () => {
    await publish(v1, 'audit', 'v1');
    type St = { allowed: number; denied: number };
    const stats = () => (backend.sidecar.stats() as { authz: { policies: Record<string, St> } }).authz.policies['default/backend-authz']!;
    const before = stats();
    expect((await call('GET', '/api/items')).status).toBe(200);
    expect(await call('POST', '/api/items')).toMatchObject({ status: 403, body: 'not allowed by backend-authz v1' });
    const after = stats();
    expect([after.allowed - before.allowed, after.denied - before.denied]).toEqual([1, 1]);
  });

  it('a new revision replaces the old one: v2 allows POST', async () => {
    await publish(v2, 'enforce', 'v2');
    expect((await call('POST', '/api/items')).status).toBe(200);
    expect((await call('DELETE', '/api/items')).status).toBe(403);
  });

  it('a tampered bundle is NACKed and the last good policy stays in force', async () => {
    const nacksBefore = (backend.sidecar.stats() as { xds: { nacks: Record<string, number> } }).xds.nacks[POLICY_TYPE_URL] ?? 0;
    await writeFile(join(mesh.configDir, '.authz.tar.gz.tmp'), flipByte(v1, '/policy.wasm'));
    await rename(join(mesh.configDir, '.authz.tar.gz.tmp'), join(mesh.configDir, 'authz.tar.gz'));
    await mesh.writeConfig(`${SERVICES}---\n${policyYaml('enforce')}`);
    await until('the tampered bundle NACKed', () => ((backend.sidecar.stats() as { xds: { nacks: Record<string, number> } }).xds.nacks[POLICY_TYPE_URL] ?? 0) > nacksBefore, 15_000, 20);
    const p = (backend.sidecar.stats() as { authz: { policies: Record<string, { revision: string }> } }).authz.policies['default/backend-authz']!;
    expect(p.revision).toBe('v2');
    expect((await call('POST', '/api/items')).status).toBe(200);
    const proxy = mesh.cp.inventory.list().find((x) => x.nodeId.startsWith('backend'));
    expect(JSON.stringify(proxy?.types['POLICY']?.lastNack ?? null)).toMatch(/digest mismatch/);
  });
});

describe('Policy hot swap under load', () => {
  it('swaps v1 ⇄ v2 while requests flow: none fails, each is judged whole by one revision', async () => {
    await publish(v1, 'enforce', 'v1');
    let stop = false;
    const seen = new Map<string, number>();
    const failures: string[] = [];
    const loop = async () => {
      while (!stop) {
        const r = await call('GET', '/api/items').catch((e: Error) => ({ status: 0, body: e.message, headers: {} }));
        const authz = r.status === 200 ? (JSON.parse(r.body) as { authz: string | null }).authz : null;
        // v1 and v2 both allow GET /api and tag it; anything else was judged by no (or a broken) policy.
        if (r.status !== 200 || (authz !== 'v1' && authz !== 'v2')) failures.push(`${r.status} ${r.body.slice(0, 80)}`);
        else seen.set(authz, (seen.get(authz) ?? 0) + 1);
      }
    };
    const loops = Array.from({ length: 6 }, loop);
    for (let i = 0; i < 6; i++) await publish(i % 2 === 0 ? v2 : v1, 'enforce', i % 2 === 0 ? 'v2' : 'v1');
    stop = true;
    await Promise.all(loops);
    expect(failures).toEqual([]);
    expect(seen.get('v1')).toBeGreaterThan(0);
    expect(seen.get('v2')).toBeGreaterThan(0);
  });
});
