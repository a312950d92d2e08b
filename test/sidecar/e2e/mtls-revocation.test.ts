/**
 * Revoking a workload certificate: the control plane pushes the revoked serial (SDS ROOTCA's
 * CRL) and every sidecar refuses it at the next handshake; the revoked workload can no longer
 * renew. Connections already established are left alone (as Envoy), so the checks open new ones.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mtlsGet, startMesh, TRUST_DOMAIN, type TestMesh } from '../../helpers/mesh.ts';
import type { Sidecar, SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { httpGet } from '../../helpers/http.ts';
import { servicesYaml } from '../../helpers/services-yaml.ts';
import { until } from '../../helpers/until.ts';

const SERVICES = servicesYaml({ name: 'frontend', port: 8080 }, { name: 'backend', port: 8080 });
/** How long backend's workload holds a `/slow` request, ms: long enough for a burst to be concurrent. */
const SLOW_MS = 200;

let mesh: TestMesh;
let backendWorkload: Server;
let frontend: { sidecar: Sidecar; addresses: SidecarAddresses };
let backend: { sidecar: Sidecar; addresses: SidecarAddresses };

function listen(s: Server): Promise<number> {
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
}

function inboundTls(s: Sidecar): { handshakes: number; refused: number } {
  return (s.stats() as { listeners: { inbound: { tls: { handshakes: number; refused: number } } } }).listeners.inbound.tls;
}

function callBackend(path = '/who'): Promise<{ status: number; body: string }> {
  return httpGet(frontend.addresses.outbound, path, { host: 'backend:8080' });
}

beforeAll(async () => {
  backendWorkload = createServer((req, res) => {
    const answer = () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ xfcc: req.headers['x-forwarded-client-cert'] ?? null }));
    };
    if (req.url === '/slow') setTimeout(answer, SLOW_MS);
    else answer();
  });
  const backendPort = await listen(backendWorkload);
  mesh = await startMesh(SERVICES, { mode: 'STRICT' });
  backend = await mesh.startSidecar('backend', backendPort);
  frontend = await mesh.startSidecar('frontend', 1);
  await until('backend reachable over the mesh', async () => (await callBackend()).status === 200, 15_000, 50);
}, 60_000);

afterAll(async () => {
  await mesh?.close();
  if (backendWorkload?.listening) await new Promise<void>((r) => backendWorkload.close(() => r()));
});

describe('revoking a workload certificate', () => {
  it('pushes the revoked serial to peers, which refuse it at new handshakes while other identities are served', async () => {
    const revoked = frontend.sidecar.identity!;
    const serial = frontend.sidecar.secrets.certificate()!.serial;
    const bundle = backend.sidecar.secrets.validation()!.bundlePem;
    // A client of another identity, issued by the same CA and never revoked.
    const other = await mesh.certs.issueForProxy('default', 'other');
    // Before: frontend's SVID is served by backend's inbound listener.
    const before = await mtlsGet(backend.addresses.inbound, { ...revoked, ca: bundle }, '/who', 'backend');
    expect(before.status).toBe(200);
    expect(JSON.parse(before.body)).toMatchObject({ xfcc: expect.stringContaining(`URI=spiffe://${TRUST_DOMAIN}/ns/default/sa/frontend`) });
    expect(backend.sidecar.secrets.isRevoked(serial)).toBe(false);
    // A TLS session the revoked SVID could try to resume later; resumption works before revocation.
    const resumedBefore = await mtlsGet(backend.addresses.inbound, { ...revoked, ca: bundle, session: before.session }, '/who', 'backend');
    expect(resumedBefore.status).toBe(200);
    expect(resumedBefore.resumed).toBe(true);

    const r = await mesh.certs.revokeCert(serial, 'key compromise', 'test');
    expect(r.ok).toBe(true);
    // One trust push: the CRL reaches both sidecars.
    await until('backend sidecar knows the serial is revoked', () => backend.sidecar.secrets.isRevoked(serial), 5000);
    expect([...backend.sidecar.secrets.validation()!.revokedSerials]).toEqual([serial]);
    await until('frontend sidecar knows its own serial is revoked', () => frontend.sidecar.secrets.isRevoked(serial), 5000);

    // A new connection with the revoked SVID is closed at the handshake, before any answer.
    const refusedBefore = inboundTls(backend.sidecar).refused;
    await expect(mtlsGet(backend.addresses.inbound, { ...revoked, ca: bundle }, '/who', 'backend')).rejects.toThrow(/socket hang up|ECONNRESET|closed|EPIPE/);
    expect(inboundTls(backend.sidecar).refused).toBe(refusedBefore + 1);
    // Resuming a session from before the revocation does not get around it.
    await expect(mtlsGet(backend.addresses.inbound, { ...revoked, ca: bundle, session: resumedBefore.session }, '/who', 'backend')).rejects.toThrow(/socket hang up|ECONNRESET|closed|EPIPE/);
    expect(inboundTls(backend.sidecar).refused).toBe(refusedBefore + 2);
    // The same client with a valid SVID of another identity is served.
    const ok = await mtlsGet(backend.addresses.inbound, { keyPem: other.keyPem, chainPem: other.chainPem, ca: bundle }, '/who', 'backend');
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ xfcc: expect.stringContaining(`URI=spiffe://${TRUST_DOMAIN}/ns/default/sa/other`) });
    expect(inboundTls(backend.sidecar).refused).toBe(refusedBefore + 2);
  });

  it('frontend\'s new connections to backend fail through its sidecar: the request gets a 5xx', async () => {
    // The revoked serial is in force (previous test). Connections frontend's sidecar already
    // pooled stay up; more concurrent slow requests than it has connections make it open new
    // ones, which backend refuses.
    const serial = frontend.sidecar.secrets.certificate()!.serial;
    expect(backend.sidecar.secrets.isRevoked(serial)).toBe(true);
    const refusedBefore = inboundTls(backend.sidecar).refused;
    const replies = await Promise.all(Array.from({ length: 8 }, () => callBackend('/slow').then((x) => x.status, () => 0)));
    const failed = replies.filter((s) => s >= 500);
    expect(failed.length).toBeGreaterThan(0);
    expect(replies.every((s) => s === 200 || s >= 500)).toBe(true);
    expect(inboundTls(backend.sidecar).refused).toBeGreaterThan(refusedBefore);
  });

  it('the revoked sidecar cannot renew its certificate, while a valid one can', async () => {
    const serial = frontend.sidecar.secrets.certificate()!.serial;
    const identity = frontend.sidecar.identity!;
    await frontend.sidecar.renewIdentity();
    expect(frontend.sidecar.secrets.certificate()!.serial).toBe(serial);
    expect(frontend.sidecar.identity).toBe(identity);
    // The CA refuses it, not the path: backend renews at the same CA endpoint.
    const backendSerial = backend.sidecar.secrets.certificate()!.serial;
    await backend.sidecar.renewIdentity();
    expect(backend.sidecar.secrets.certificate()!.serial).not.toBe(backendSerial);
  });
});
