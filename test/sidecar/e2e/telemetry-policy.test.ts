/**
 * Request telemetry of an mTLS mesh with a real policy: frontend's sidecar calls backend's over
 * mTLS, backend judges by a Rego policy (compiled and signed by the real opa). Backend's
 * request sink sees the peer identity and the deciding policy; its /metrics shows the
 * decisions, the decision cache, TLS handshakes and the certificate's expiry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rename, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startMesh, TRUST_DOMAIN, type TestMesh } from '../../helpers/mesh.ts';
import type { Sidecar, SidecarAddresses } from '../../../sidecar/sidecar.ts';
import type { RequestRecord } from '../../../sidecar/telemetry/request-record.ts';
import { httpRequest } from '../../helpers/http.ts';
import { servicesYaml } from '../../helpers/services-yaml.ts';
import { until } from '../../helpers/until.ts';
import { cleanup, keyPair, opaBuild } from '../../policies/support.ts';
import { parseExposition, valueOf } from '../telemetry/prometheus-text.ts';

const FRONTEND = `spiffe://${TRUST_DOMAIN}/ns/default/sa/frontend`;
const POLICY = 'default/backend-authz';

const REGO = `package envoy.authz

default allow := {"allowed": false, "http_status": 403, "body": "not allowed"}

allow := {"allowed": true} if {
	input.attributes.source.principal == "${FRONTEND}"
	input.attributes.request.http.method == "GET"
	input.parsed_path[0] == "api"
}
`;

const SERVICES = servicesYaml({ name: 'frontend', port: 8080 }, { name: 'backend', port: 8080 });
const POLICY_YAML = `apiVersion: palisade.dev/v1\nkind: Policy\nmetadata: { name: backend-authz }\nspec:\n  entrypoint: envoy/authz/allow\n  bundle: { file: authz.tar.gz }\n  mode: enforce\n  selector: { services: [backend] }\n  cacheKeys: [attributes.source.principal, attributes.request.http.method, parsed_path]\n`;

let mesh: TestMesh;
let workload: Server;
let frontend: { sidecar: Sidecar; addresses: SidecarAddresses };
let backend: { sidecar: Sidecar; addresses: SidecarAddresses };

function call(method: string, path: string) {
  return httpRequest(frontend.addresses.outbound, { method, path, headers: { host: 'backend:8080' } });
}

async function metrics(sidecar: { addresses: SidecarAddresses }) {
  const r = await httpRequest(sidecar.addresses.admin, { method: 'GET', path: '/metrics' });
  expect(r.status).toBe(200);
  return parseExposition(r.body);
}

beforeAll(async () => {
  const key = keyPair('ec');
  const bundle = await opaBuild({ 'authz.rego': REGO }, { entrypoints: ['envoy/authz/allow'], signingAlg: 'ES256', signingKey: key, revision: 'v1' });
  workload = createServer((req, res) => {
    req.resume();
    res.end('ok');
  });
  const port = await new Promise<number>((resolve) => workload.listen(0, '127.0.0.1', () => resolve((workload.address() as AddressInfo).port)));
  mesh = await startMesh(SERVICES);
  const keyFile = join(mesh.dir, 'policy.pub.pem');
  await writeFile(keyFile, key.publicPem);
  backend = await mesh.startSidecar('backend', port, { policyKeys: [keyFile] });
  frontend = await mesh.startSidecar('frontend', 1);
  await writeFile(join(mesh.configDir, '.authz.tar.gz.tmp'), bundle);
  await rename(join(mesh.configDir, '.authz.tar.gz.tmp'), join(mesh.configDir, 'authz.tar.gz'));
  await mesh.writeConfig(`${SERVICES}---\n${POLICY_YAML}`);
  await until('policy in force', () => (backend.sidecar.stats() as { authz: { policies: Record<string, unknown> } }).authz.policies[POLICY] !== undefined, 15_000, 20);
  await until('backend reachable', async () => (await call('GET', '/api/health')).status === 200, 15_000, 50);
}, 90_000);

afterAll(async () => {
  await mesh?.close();
  if (workload?.listening) await new Promise<void>((r) => workload.close(() => r()));
  await cleanup();
});

describe('request telemetry with mTLS and policies', () => {
  it('hands every finished request to the sinks with the peer identity and the deciding policy', async () => {
    const records: RequestRecord[] = [];
    const remove = backend.sidecar.telemetry.addSink((r) => records.push(r));
    expect((await call('GET', '/api/orders')).status).toBe(200);
    expect((await call('DELETE', '/api/orders')).status).toBe(403);
    await until('two records', () => records.length >= 2);
    remove();
    expect((await call('GET', '/api/orders')).status).toBe(200);
    expect(records).toHaveLength(2);
    const [allowed, denied] = records;
    expect(allowed).toMatchObject({ listener: 'inbound', method: 'GET', path: '/api/orders', status: 200, protocol: expect.stringMatching(/^HTTP\//) });
    expect(allowed!.facts).toMatchObject({ principal: FRONTEND, policy: { name: POLICY, decision: 'allow' }, cluster: expect.stringMatching(/^inbound\|/), attempts: 1, flags: [] });
    expect(denied).toMatchObject({ listener: 'inbound', method: 'DELETE', status: 403 });
    expect(denied!.facts).toMatchObject({ principal: FRONTEND, policy: { name: POLICY, decision: 'deny' }, cluster: null, attempts: 0 });
    expect(denied!.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('exposes policy decisions, the decision cache, TLS handshakes and the certificate expiry in /metrics', async () => {
    const before = await metrics(backend);
    const allow0 = valueOf(before, 'palisade_policy_decisions_total', { policy: POLICY, decision: 'allow' }) ?? 0;
    const deny0 = valueOf(before, 'palisade_policy_decisions_total', { policy: POLICY, decision: 'deny' }) ?? 0;
    for (let i = 0; i < 3; i++) expect((await call('GET', '/api/items')).status).toBe(200);
    expect((await call('POST', '/api/items')).status).toBe(403);
    const after = await metrics(backend);
    expect(valueOf(after, 'palisade_policy_decisions_total', { policy: POLICY, decision: 'allow' })).toBe(allow0 + 3);
    expect(valueOf(after, 'palisade_policy_decisions_total', { policy: POLICY, decision: 'deny' })).toBe(deny0 + 1);
    // The same principal, method and path: the last two GETs are cache hits.
    expect(valueOf(after, 'palisade_policy_decision_cache_hits_total', { policy: POLICY })! - (valueOf(before, 'palisade_policy_decision_cache_hits_total', { policy: POLICY }) ?? 0)).toBeGreaterThanOrEqual(2);
    expect(valueOf(after, 'palisade_tls_handshakes_total', { listener: 'inbound' })).toBeGreaterThanOrEqual(1);
    const expiry = valueOf(after, 'palisade_certificate_expiry_seconds')!;
    const notAfter = backend.sidecar.identity!.notAfter.getTime();
    expect(Math.abs(expiry - (notAfter - Date.now()) / 1000)).toBeLessThan(60);
    expect(expiry).toBeGreaterThan(0);
    // Frontend's outbound counted the same requests to backend's cluster.
    const fe = await metrics(frontend);
    expect(fe.get('palisade_requests_total')!.metrics.some((s) => s.labels?.cluster === 'outbound|8080||backend.default' && s.labels.code_class === '4xx')).toBe(true);
  });
});
