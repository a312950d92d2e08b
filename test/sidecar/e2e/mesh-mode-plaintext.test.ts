/**
 * A sidecar without an identity (no CA in the mesh) serves plaintext whatever the Mesh's
 * mTLS mode says: a MeshConfig switching to PERMISSIVE and back must not disturb it (it
 * once threw from the mode handler and ended the process).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Sidecar, SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { startControlPlane, type TestControlPlane } from '../../helpers/control-plane.ts';
import { httpGet } from '../../helpers/http.ts';
import { meshYaml } from '../../helpers/mesh.ts';
import { webAndApiYaml } from '../../helpers/services-yaml.ts';
import { startTestSidecar } from '../../helpers/sidecar.ts';
import { until } from '../../helpers/until.ts';

let api: Server;
let web: Server;
let cp: TestControlPlane;
let sc: { sidecar: Sidecar; addresses: SidecarAddresses };
let apiPort: number;

function listen(s: Server): Promise<number> {
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
}

beforeAll(async () => {
  api = createServer((_q, r) => r.end('api'));
  web = createServer((_q, r) => r.end('web'));
  apiPort = await listen(api);
  const webPort = await listen(web);
  cp = await startControlPlane({ 'mesh.yaml': `${meshYaml('STRICT')}---\n${webAndApiYaml(apiPort)}` });
  sc = await startTestSidecar(cp.address, webPort);
}, 30_000);

afterAll(async () => {
  await sc?.sidecar.close();
  await cp?.close();
  for (const s of [api, web]) if (s?.listening) await new Promise<void>((r) => s.close(() => r()));
});

describe('a plaintext sidecar and the mesh mTLS mode', () => {
  it('keeps serving inbound and outbound in plaintext across PERMISSIVE and STRICT pushes', async () => {
    expect(sc.sidecar.meshMode).toBeNull();
    for (const mode of ['PERMISSIVE', 'STRICT', 'PERMISSIVE'] as const) {
      const before = (sc.sidecar.stats() as { xds: { updates: Record<string, number> } }).xds.updates['type.googleapis.com/palisade.v1.MeshConfig'] ?? 0;
      await cp.write('mesh.yaml', `${meshYaml(mode)}---\n${webAndApiYaml(apiPort)}`);
      await until(`MeshConfig ${mode} received`, () => ((sc.sidecar.stats() as { xds: { updates: Record<string, number> } }).xds.updates['type.googleapis.com/palisade.v1.MeshConfig'] ?? 0) > before);
      expect(await httpGet(sc.addresses.inbound, '/', { host: 'web' })).toEqual({ status: 200, body: 'web' });
      expect(await httpGet(sc.addresses.outbound, '/', { host: 'api:9090' })).toEqual({ status: 200, body: 'api' });
      expect(sc.sidecar.ready).toBe(true);
    }
  });
});
