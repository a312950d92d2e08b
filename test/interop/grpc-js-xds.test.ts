/**
 * Interop: a real @grpc/grpc-js-xds channel (target xds:///echo) resolves through our
 * control plane and its calls reach the Service's endpoints in the configured weights;
 * a weight edit in the config directory is followed without a restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import * as grpcJsXds from '@grpc/grpc-js-xds';
import { ECHO_PATH, startEchoServer, type EchoServer } from '../helpers/echo-server.ts';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.ts';

grpcJsXds.register();

const BOOTSTRAP_KEY = 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config';

function serviceYaml(a: EchoServer, b: EchoServer, wa: number, wb: number): string {
  return `apiVersion: palisade.dev/v1
kind: Service
metadata: { name: echo, namespace: default }
spec:
  protocol: grpc
  port: 50051
  endpoints:
    - { address: 127.0.0.1, port: ${a.port}, weight: ${wa} }
    - { address: 127.0.0.1, port: ${b.port}, weight: ${wb} }
`;
}

let a: EchoServer;
let b: EchoServer;
let cp: TestControlPlane;
let client: Client;

beforeAll(async () => {
  a = await startEchoServer('a');
  b = await startEchoServer('b');
  cp = await startControlPlane({ 'echo.yaml': serviceYaml(a, b, 3, 1) });
  const bootstrap = {
    xds_servers: [{ server_uri: cp.address, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: 'grpc-interop', cluster: 'interop', locality: {}, metadata: { 'palisade.io/namespace': 'default' } },
  };
  client = new Client('xds:///echo', credentials.createInsecure(), { [BOOTSTRAP_KEY]: JSON.stringify(bootstrap) });
});

afterAll(async () => {
  client?.close();
  await cp?.close();
  await a?.close();
  await b?.close();
});

function call(): Promise<string> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(ECHO_PATH, (x: Buffer) => x, (x: Buffer) => x, Buffer.from('hi'), new Metadata(),
      { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res!.toString())));
  });
}

async function distribution(n: number): Promise<{ a: number; b: number }> {
  const counts = { a: 0, b: 0 };
  for (let i = 0; i < n; i++) counts[(await call()) as 'a' | 'b']++;
  return counts;
}

describe('grpc-js-xds against palisade control', () => {
  it('resolves xds:///echo and splits calls 3:1 by endpoint weight', async () => {
    const d = await distribution(400);
    expect(d.a + d.b).toBe(400);
    expect(d.a / 400).toBeGreaterThan(0.75 - 0.08);
    expect(d.a / 400).toBeLessThan(0.75 + 0.08);
    const proxies = cp.cp.inventory.list();
    expect(proxies).toHaveLength(1);
    expect(proxies[0]).toMatchObject({ nodeId: 'grpc-interop', kind: 'grpc' });
    for (const t of ['LDS', 'RDS', 'CDS', 'EDS']) {
      expect(proxies[0]!.types[t]!.ackedNonce).toBe(proxies[0]!.types[t]!.sentNonce);
      expect(proxies[0]!.types[t]!.lastNack).toBeNull();
    }
  });

  it('follows a weight edit without a restart', async () => {
    await cp.write('echo.yaml', serviceYaml(a, b, 1, 3));
    // Wait (bounded) until the client sees the new endpoints' weights.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const probe = await distribution(100);
      if (probe.b > probe.a) break;
    }
    const d = await distribution(400);
    expect(d.b / 400).toBeGreaterThan(0.75 - 0.08);
    expect(d.b / 400).toBeLessThan(0.75 + 0.08);
  });
});
