/**
 * A tenant from a verified token's claim (Mesh metering.tenant.jwtClaim): a RequestAuthentication
 * with an inline JWKS verifies the bearer tokens on the sidecar's inbound listener, and the
 * usage reports count each request for the token's `org.id` claim ("unknown" without a token),
 * whatever the x-tenant-id header says.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import type { Sidecar, SidecarAddresses } from '../../sidecar/sidecar.ts';
import { usageMetricName } from '../../sidecar/telemetry/load-reporter.ts';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.ts';
import { httpRequest } from '../helpers/http.ts';
import { startTestSidecar } from '../helpers/sidecar.ts';
import { until } from '../helpers/until.ts';

const ISSUER = 'https://idp.test';

let cp: TestControlPlane;
let workload: Server;
let sc: { sidecar: Sidecar; addresses: SidecarAddresses };
let privateKey: CryptoKey;
/** metric name → total value over every report. */
const totals = new Map<string, number>();

function config(jwks: string): string {
  return `apiVersion: palisade.dev/v1
kind: Mesh
metadata: { name: mesh }
spec:
  trustDomain: cluster.local
  metering: { tenant: { jwtClaim: idp.org.id }, reportInterval: 200ms }
---
apiVersion: palisade.dev/v1
kind: Service
metadata: { name: web }
spec: { port: 8080 }
---
apiVersion: palisade.dev/v1
kind: RequestAuthentication
metadata: { name: web-jwt }
spec:
  selector: { services: [web] }
  providers:
    idp:
      issuer: ${ISSUER}
      jwks: { inline: '${jwks}' }
`;
}

beforeAll(async () => {
  const keys = await generateKeyPair('ES256', { extractable: true });
  privateKey = keys.privateKey;
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'ES256' }] });
  workload = createServer((_q, r) => r.end('web'));
  const port = await new Promise<number>((resolve) => workload.listen(0, '127.0.0.1', () => resolve((workload.address() as AddressInfo).port)));
  cp = await startControlPlane({ 'mesh.yaml': config(jwks) });
  cp.cp.loadReports.on('report', (_node, stats) => {
    for (const c of stats) for (const l of c.upstreamLocalityStats) for (const m of l.loadMetricStats) totals.set(m.metricName, (totals.get(m.metricName) ?? 0) + m.totalMetricValue);
  });
  sc = await startTestSidecar(cp.address, port);
}, 30_000);

afterAll(async () => {
  await sc?.sidecar.close();
  await cp?.close();
  if (workload?.listening) await new Promise<void>((r) => workload.close(() => r()));
});

function token(org: string): Promise<string> {
  return new SignJWT({ sub: 'alice', org: { id: org } }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(ISSUER).setIssuedAt().setExpirationTime('5m').sign(privateKey);
}

describe('usage metering with a claim tenant', () => {
  it('counts requests for the verified claim, and for "unknown" without a token', async () => {
    await until('the claim tenant in force', () => (sc.sidecar.stats() as { usage: { tenantSource: string } }).usage.tenantSource === 'jwt:idp.org.id', 15_000);
    await until('authentication in force', () => (sc.sidecar.stats() as { authz: { authn: { enforced: boolean } } }).authz.authn.enforced, 15_000);
    const bearer = `Bearer ${await token('acme')}`;
    for (let i = 0; i < 2; i++) {
      const r = await httpRequest(sc.addresses.inbound, { method: 'GET', path: '/x', headers: { authorization: bearer, 'x-tenant-id': 'spoofed' } });
      expect(r.status).toBe(200);
    }
    expect((await httpRequest(sc.addresses.inbound, { method: 'GET', path: '/x', headers: { 'x-tenant-id': 'spoofed' } })).status).toBe(200);
    await until('both tenants reported', () => totals.get(usageMetricName('acme', '-', 'requests')) === 2 && totals.get(usageMetricName('unknown', '-', 'requests')) === 1);
    expect([...totals.keys()].some((k) => k.includes('spoofed'))).toBe(false);
  });
});
