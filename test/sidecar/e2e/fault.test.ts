/**
 * Fault injection end to end: a real control plane translates Route `fault` (delay, abort,
 * percentages, header matchers) into the RDS fault config; a real sidecar executes it on
 * outbound requests in front of a real workload on loopback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, credentials, type ServiceError } from '@grpc/grpc-js';
import type { Sidecar } from '../../../sidecar/sidecar.ts';
import { startControlPlane, type TestControlPlane } from '../../helpers/control-plane.ts';
import { startTestSidecar } from '../../helpers/sidecar.ts';
import { httpGet, httpRequest } from '../../helpers/http.ts';
import { servicesYaml } from '../../helpers/services-yaml.ts';

function route(name: string, fault: string): string {
  return `apiVersion: palisade.dev/v1
kind: Route
metadata: { name: ${name} }
spec:
  hosts: [${name}]
  http:
    - backends: [{ service: api }]
      fault:
${fault.split('\n').map((l) => `        ${l}`).join('\n')}
`;
}

const ROUTES = [
  route('delayed', 'delay: { fixed: 200ms, percent: 100 }'),
  route('aborted', 'abort: { httpStatus: 503, percent: 100 }'),
  route('never', 'delay: { fixed: 5s, percent: 0 }\nabort: { httpStatus: 500, percent: 0 }'),
  route('chaos', 'abort: { httpStatus: 418 }\nheaders:\n  - { name: x-chaos, exact: "on" }\n  - { name: x-tenant }'),
  route('grpcabort', 'abort: { grpcStatus: 14 }'),
].join('---\n');

describe('palisade sidecar, fault injection', () => {
  let cp: TestControlPlane;
  let api: Server;
  let web: Server;
  let sidecar: Sidecar;
  let outbound: string;
  let admin: string;
  /** When the workload saw each request (performance.now()), by its x-seq header. */
  const seen = new Map<string, number>();

  const listen = (s: Server) => new Promise<number>((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));

  beforeAll(async () => {
    api = createServer((req, res) => {
      seen.set(String(req.headers['x-seq'] ?? ''), performance.now());
      req.resume();
      res.end('api');
    });
    web = createServer((_req, res) => res.end('web'));
    const apiPort = await listen(api);
    const webPort = await listen(web);
    cp = await startControlPlane({
      'services.yaml': servicesYaml({ name: 'web', port: 8080 }, { name: 'api', port: 9090, endpointPorts: [apiPort] }),
      'routes.yaml': ROUTES,
    });
    ({ sidecar, addresses: { outbound, admin } } = await startTestSidecar(cp.address, webPort));
  }, 30_000);

  afterAll(async () => {
    await sidecar?.close();
    await cp?.close();
    for (const s of [api, web]) if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  });

  const faultStats = async () => (JSON.parse((await httpGet(admin, '/stats')).body) as { fault: { delaysInjected: number; abortsInjected: number } }).fault;

  it('holds every request of a 100% delay at least the fixed delay before the workload sees it', async () => {
    const before = (await faultStats()).delaysInjected;
    for (let i = 0; i < 3; i++) {
      const seq = `delay-${i}`;
      const sent = performance.now();
      const r = await httpGet(outbound, '/', { host: 'delayed', 'x-seq': seq });
      const done = performance.now();
      expect(r).toEqual({ status: 200, body: 'api' });
      expect(seen.get(seq)! - sent).toBeGreaterThanOrEqual(200);
      expect(done - sent).toBeGreaterThanOrEqual(200);
    }
    expect((await faultStats()).delaysInjected - before).toBe(3);
  });

  it('aborts every request of a 100% abort with the status and "fault filter abort"; the workload never sees them', async () => {
    const before = (await faultStats()).abortsInjected;
    for (let i = 0; i < 5; i++) {
      const seq = `abort-${i}`;
      expect(await httpGet(outbound, '/', { host: 'aborted', 'x-seq': seq })).toEqual({ status: 503, body: 'fault filter abort' });
      expect(seen.has(seq)).toBe(false);
    }
    expect((await faultStats()).abortsInjected - before).toBe(5);
  });

  it('neither delays nor aborts at 0%', async () => {
    const before = await faultStats();
    for (let i = 0; i < 10; i++) {
      expect(await httpGet(outbound, '/', { host: 'never', 'x-seq': `never-${i}` })).toEqual({ status: 200, body: 'api' });
      expect(seen.has(`never-${i}`)).toBe(true);
    }
    expect(await faultStats()).toMatchObject({ delaysInjected: before.delaysInjected, abortsInjected: before.abortsInjected });
  });

  it('faults only requests every fault header matcher matches', async () => {
    expect(await httpGet(outbound, '/', { host: 'chaos', 'x-chaos': 'on', 'x-tenant': 'a' })).toEqual({ status: 418, body: 'fault filter abort' });
    expect(await httpGet(outbound, '/', { host: 'chaos', 'x-chaos': 'on' })).toEqual({ status: 200, body: 'api' });
    expect(await httpGet(outbound, '/', { host: 'chaos', 'x-chaos': 'off', 'x-tenant': 'a' })).toEqual({ status: 200, body: 'api' });
    expect(await httpGet(outbound, '/', { host: 'chaos' })).toEqual({ status: 200, body: 'api' });
  });

  it('answers a gRPC status abort with trailers-only grpc-status to gRPC requests, and its HTTP mapping to others', async () => {
    const grpc = await httpRequest(outbound, { method: 'POST', path: '/pkg.Svc/Call', headers: { host: 'grpcabort', 'content-type': 'application/grpc' }, body: '' });
    expect(grpc.status).toBe(200);
    expect(grpc.headers).toMatchObject({ 'grpc-status': '14', 'grpc-message': 'fault filter abort' });
    expect(await httpGet(outbound, '/', { host: 'grpcabort' })).toEqual({ status: 503, body: 'fault filter abort' });
  });

  it('fails a real gRPC call with the fault\'s gRPC status and message', async () => {
    const client = new Client(outbound, credentials.createInsecure(), { 'grpc.default_authority': 'grpcabort' });
    try {
      const err = await new Promise<ServiceError>((resolve, reject) => {
        client.makeUnaryRequest('/pkg.Svc/Call', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (e) => (e ? resolve(e) : reject(new Error('the call succeeded'))));
      });
      expect([err.code, err.details]).toEqual([14, 'fault filter abort']);
    } finally {
      client.close();
    }
  });

  it('sends the route fault in RDS as Envoy HTTPFault with the header matchers', () => {
    const table = sidecar.store.current!.routeTables.values().next().value!;
    const m = table.match('chaos', '/', 'GET', () => undefined);
    expect(m?.fault).toMatchObject({ abortHttpStatus: 418, abortNumerator: 1_000_000, abortDenominator: 1_000_000 });
    expect(m?.fault?.headers?.map((h) => h.name)).toEqual(['x-chaos', 'x-tenant']);
  });
});
