/**
 * mTLS on the sidecar-to-sidecar hop: frontend's sidecar originates mTLS with its SVID to
 * backend's sidecar, which verifies it against the mesh trust and tells the workload who
 * called (x-forwarded-client-cert). STRICT refuses plaintext on inbound; PERMISSIVE serves
 * both and counts which. Everything real on 127.0.0.1: CA, enrollment, xDS over mTLS.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Sidecar, SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { httpGet } from '../../helpers/http.ts';
import { servicesYaml } from '../../helpers/services-yaml.ts';
import { startMesh, TRUST_DOMAIN, type TestMesh } from '../../helpers/mesh.ts';
import { until } from '../../helpers/until.ts';

let mesh: TestMesh;
let backendWorkload: Server;
let frontend: { sidecar: Sidecar; addresses: SidecarAddresses };
let backend: { sidecar: Sidecar; addresses: SidecarAddresses };

const SERVICES = servicesYaml({ name: 'frontend', port: 8080 }, { name: 'backend', port: 8080 });

function listen(s: Server): Promise<number> {
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
}

beforeAll(async () => {
  // The backend workload answers with what its sidecar told it about the caller.
  backendWorkload = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ xfcc: req.headers['x-forwarded-client-cert'] ?? null }));
  });
  const backendPort = await listen(backendWorkload);
  mesh = await startMesh(SERVICES, { mode: 'STRICT' });
  backend = await mesh.startSidecar('backend', backendPort);
  frontend = await mesh.startSidecar('frontend', 1);
}, 60_000);

afterAll(async () => {
  await mesh?.close();
  if (backendWorkload?.listening) await new Promise<void>((r) => backendWorkload.close(() => r()));
});

/** A request from the frontend workload to backend, through both sidecars. */
async function callBackend(): Promise<{ status: number; body: string }> {
  return httpGet(frontend.addresses.outbound, '/who', { host: 'backend:8080' });
}

describe('sidecar to sidecar over mTLS', () => {
  it('carries the request and tells the backend workload the caller\'s SPIFFE ID', async () => {
    // Registration goes through the control plane: wait until the backend's endpoint (with its identity) reaches frontend.
    await until('backend reachable over the mesh', async () => (await callBackend()).status === 200, 15_000, 50);
    const r = await callBackend();
    expect(r.status).toBe(200);
    const xfcc = (JSON.parse(r.body) as { xfcc: string | null }).xfcc;
    expect(xfcc).toContain(`URI=spiffe://${TRUST_DOMAIN}/ns/default/sa/frontend`);
    expect(xfcc).toContain(`By=spiffe://${TRUST_DOMAIN}/ns/default/sa/backend`);
    const stats = backend.sidecar.stats() as { listeners: { inbound: { tls: { handshakes: number } } } };
    expect(stats.listeners.inbound.tls.handshakes).toBeGreaterThan(0);
  });

  it('STRICT: a plaintext client gets no answer from the inbound listener', async () => {
    await expect(httpGet(backend.addresses.inbound, '/who', { host: 'backend' })).rejects.toThrow();
    const stats = backend.sidecar.stats() as { listeners: { inbound: { tls: { plaintextRefused: number } } } };
    expect(stats.listeners.inbound.tls.plaintextRefused).toBeGreaterThan(0);
  });

  it('PERMISSIVE: plaintext and mTLS are both served, and telemetry says which', async () => {
    await mesh.writeConfig(SERVICES, 'PERMISSIVE');
    await until('PERMISSIVE pushed', () => backend.sidecar.meshMode === 'PERMISSIVE');
    const plain = await httpGet(backend.addresses.inbound, '/who', { host: 'backend' });
    expect(plain.status).toBe(200);
    // No client certificate, so no XFCC for the workload.
    expect((JSON.parse(plain.body) as { xfcc: string | null }).xfcc).toBeNull();
    const viaMesh = await callBackend();
    expect((JSON.parse(viaMesh.body) as { xfcc: string | null }).xfcc).toContain('sa/frontend');
    const stats = backend.sidecar.stats() as { listeners: { inbound: { tls: { plaintext: number; handshakes: number } } } };
    expect(stats.listeners.inbound.tls.plaintext).toBeGreaterThan(0);
    expect(stats.listeners.inbound.tls.handshakes).toBeGreaterThan(0);
    // And back to STRICT: plaintext refused again.
    await mesh.writeConfig(SERVICES, 'STRICT');
    await until('STRICT pushed', () => backend.sidecar.meshMode === 'STRICT');
    await expect(httpGet(backend.addresses.inbound, '/who', { host: 'backend' })).rejects.toThrow();
  });
});
