/**
 * The sidecar when the control plane misbehaves, everything real on loopback:
 * (a) an invalid resource lands in the control plane's cache for the sidecar's group: the
 *     sidecar NACKs it, the control plane's inventory shows the NACK and its reason, and
 *     traffic keeps flowing on the last good configuration;
 * (b) the control plane goes away: traffic keeps flowing on the last configuration, and a
 *     new control plane on the same xDS port is found again without help, its changes applied.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clone, type Message } from '@bufbuild/protobuf';
import { DirectorySource } from '../../../control/config/source.ts';
import { ControlPlane } from '../../../control/control-plane.ts';
import { syncStatus } from '../../../control/inventory/inventory.ts';
import { createLogger } from '../../../control/log.ts';
import type { Sidecar } from '../../../sidecar/sidecar.ts';
import { startTestSidecar } from '../../helpers/sidecar.ts';
import { Snapshot } from '../../../xds/cache/snapshot.ts';
import { ClusterLoadAssignmentSchema, type ClusterLoadAssignment } from '../../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ENDPOINT_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { until } from '../../helpers/until.ts';
import { httpGet } from '../../helpers/http.ts';
import { webAndApiYaml } from '../../helpers/services-yaml.ts';

function httpServer(body: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    req.resume();
    res.end(body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port })));
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

const get = httpGet;

/** A loopback port that was free a moment ago. */
function freePort(): Promise<number> {
  const server = createTcpServer();
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const CONFIG = webAndApiYaml;

const WEIGHT_ERROR = 'endpoints[0].lb_endpoints[0].load_balancing_weight: value must be greater than or equal to 1, got 0';

describe('palisade sidecar, resilience to control plane failures', () => {
  let dir: string;
  let xdsAddress: string;
  let cp: ControlPlane | null = null;
  let api: { server: Server; port: number };
  let api2: { server: Server; port: number };
  let web: { server: Server; port: number };
  let sidecar: Sidecar;
  let addresses: { inbound: string; outbound: string; admin: string };

  const write = async (text: string) => {
    const tmp = join(dir, '.services.yaml.tmp');
    await writeFile(tmp, text);
    await rename(tmp, join(dir, 'services.yaml'));
  };
  const startCp = async () => {
    const c = new ControlPlane({ source: new DirectorySource({ dir, debounceMs: 20 }), xdsAddress, logger: createLogger('silent'), endpointGraceMs: 10_000 });
    await c.start();
    return c;
  };
  const stats = async () => JSON.parse((await get(addresses.admin, '/stats')).body);

  beforeAll(async () => {
    api = await httpServer('api');
    api2 = await httpServer('api2');
    web = await httpServer('web');
    dir = await mkdtemp(join(tmpdir(), 'palisade-cp-'));
    await write(CONFIG(api.port));
    xdsAddress = `127.0.0.1:${await freePort()}`;
    cp = await startCp();
    ({ sidecar, addresses } = await startTestSidecar(xdsAddress, web.port));
  }, 30_000);

  afterAll(async () => {
    await sidecar?.close();
    await cp?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    for (const s of [api, api2, web]) if (s) await closeServer(s.server);
  });

  it('NACKs an invalid resource pushed into the cache, the control plane shows why, and traffic flows on the last good configuration', async () => {
    const control = cp!;
    expect(await get(addresses.outbound, '/', { host: 'api:9090' })).toEqual({ status: 200, body: 'api' });
    // Settled: registered as an endpoint of web, and every type sent to it ACKed.
    await until('registration', () => control.registry.list().find((e) => e.nodeId === 'web-1' && e.serving));
    await until('the sidecar in sync', () => {
      const proxy = control.inventory.list().find((p) => p.nodeId === 'web-1');
      const types = proxy?.types ?? {};
      // CDS, LDS, EDS, RDS; and MeshConfig, which the sidecar subscribes too.
      const all = ['CDS', 'LDS', 'EDS', 'RDS'].every((t) => t in types);
      return all && Object.values(types).every((t) => syncStatus(t) === 'SYNCED') ? true : undefined;
    });
    const good = control.cache.getSnapshot('sidecar/default')!;
    const versionBefore = sidecar.store.current!.version;

    const resources: Record<string, Message[]> = {};
    for (const typeUrl of good.typeUrls()) resources[typeUrl] = [...good.resources(typeUrl).values()].map((r) => r.message);
    const apiCla = (resources[ENDPOINT_TYPE_URL] as ClusterLoadAssignment[]).find((c) => c.clusterName.includes('api'));
    expect(apiCla).toBeDefined();
    const bad = clone(ClusterLoadAssignmentSchema, apiCla!);
    bad.endpoints[0]!.lbEndpoints[0]!.loadBalancingWeight = 0;
    resources[ENDPOINT_TYPE_URL] = (resources[ENDPOINT_TYPE_URL] as ClusterLoadAssignment[]).map((c) => (c === apiCla ? bad : c));
    control.cache.setSnapshot('sidecar/default', Snapshot.fromResources(resources, good));

    const nack = await until('the NACK in the inventory', () => {
      const proxy = control.inventory.list().find((p) => p.nodeId === 'web-1');
      return proxy?.types['EDS']?.lastNack ?? undefined;
    });
    expect(nack.error).toContain(`ClusterLoadAssignment "${bad.clusterName}"`);
    expect(nack.error).toContain(WEIGHT_ERROR);
    await until('the sidecar to count the NACK', async () => ((await stats()).xds.nacks[ENDPOINT_TYPE_URL] >= 1 ? true : undefined));

    // The last good configuration stays in force and keeps serving.
    expect(sidecar.store.current!.version).toBe(versionBefore);
    for (let i = 0; i < 20; i++) {
      expect(await get(addresses.outbound, `/after-nack/${i}`, { host: 'api:9090' })).toEqual({ status: 200, body: 'api' });
    }

    // A good configuration from the control plane heals it.
    await write(CONFIG(api2.port));
    await until('the fixed configuration', async () => {
      const r = await get(addresses.outbound, '/', { host: 'api:9090' });
      return r.status === 200 && r.body === 'api2' ? true : undefined;
    });
  });

  it('keeps serving while the control plane is down, then reconnects to a new one on the same port and applies its changes', async () => {
    expect(await get(addresses.outbound, '/', { host: 'api:9090' })).toEqual({ status: 200, body: 'api2' });
    const connectsBefore = (await stats()).xds.connects as number;
    const versionBefore = sidecar.store.current!.version;

    await cp!.close();
    cp = null;
    await until('the sidecar to notice', async () => ((await stats()).xds.connected === false ? true : undefined));

    // Down: the last configuration keeps serving, and the sidecar stays ready.
    const downUntil = Date.now() + 1000;
    let served = 0;
    while (Date.now() < downUntil) {
      expect(await get(addresses.outbound, `/down/${served++}`, { host: 'api:9090' })).toEqual({ status: 200, body: 'api2' });
    }
    expect(served).toBeGreaterThan(5);
    expect((await get(addresses.admin, '/ready')).status).toBe(200);
    expect(sidecar.store.current!.version).toBe(versionBefore);

    // A new control plane on the same port, with a change made after it started.
    cp = await startCp();
    expect(cp.xdsAddress).toBe(xdsAddress);
    await until('the sidecar to reconnect', async () => {
      const s = await stats();
      return s.xds.connected === true && s.xds.connects > connectsBefore ? true : undefined;
    }, 20_000);
    await until('the sidecar in the new inventory', () => cp!.inventory.list().find((p) => p.nodeId === 'web-1'));
    await write(CONFIG(api.port));
    await until('the change made after the restart', async () => {
      const r = await get(addresses.outbound, '/', { host: 'api:9090' });
      return r.status === 200 && r.body === 'api' ? true : undefined;
    });
    expect((await stats()).xds.nacks[ENDPOINT_TYPE_URL]).toBe(1);
  }, 30_000);
});
