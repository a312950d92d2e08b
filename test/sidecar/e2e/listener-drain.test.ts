/**
 * A listener LDS removes drains, as Envoy's does: the sidecar's outbound listener stops
 * accepting, the request in flight on it finishes, and when the listener is back in LDS the
 * same port serves again. Real control plane, real sidecar, real sockets on loopback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Message } from '@bufbuild/protobuf';
import type { Sidecar } from '../../../sidecar/sidecar.ts';
import { Snapshot } from '../../../xds/cache/snapshot.ts';
import { LISTENER_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { startControlPlane } from '../../helpers/control-plane.ts';
import { startTestSidecar } from '../../helpers/sidecar.ts';
import { until } from '../../helpers/until.ts';
import { httpGet, type Reply } from '../../helpers/http.ts';
import { webAndApiYaml } from '../../helpers/services-yaml.ts';

function get(address: string, path: string): Promise<Reply> {
  return httpGet(address, path, { host: 'api:9090' });
}

/** What a new connection to `address` gets: a reply, or the socket error code. */
async function probe(address: string): Promise<Reply | string> {
  try {
    return await get(address, '/probe');
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('palisade sidecar, a listener removed from LDS', () => {
  let api: Server;
  let web: Server;
  let cp: Awaited<ReturnType<typeof startControlPlane>>;
  let sidecar: Sidecar;
  let outbound: string;
  /** Resolves the held /slow request. */
  let release: () => void = () => {};
  let slowArrived: Promise<void>;

  beforeAll(async () => {
    let arrived: () => void = () => {};
    slowArrived = new Promise((resolve) => (arrived = resolve));
    api = createServer((req, res) => {
      req.resume();
      if (req.url === '/slow') {
        arrived();
        release = () => res.end('slow');
        return;
      }
      res.end('api');
    });
    web = createServer((_req, res) => res.end('web'));
    const apiPort = await listen(api);
    const webPort = await listen(web);
    cp = await startControlPlane({
      'services.yaml': webAndApiYaml(apiPort),
    });
    ({ sidecar, addresses: { outbound } } = await startTestSidecar(cp.address, webPort));
    // Settled: the sidecar is an endpoint of web, so no rebuild of its group is on the way.
    await until('registration', () => cp.cp.registry.list().find((e) => e.nodeId === 'web-1' && e.serving));
  }, 30_000);

  afterAll(async () => {
    release();
    await sidecar?.close();
    await cp?.close();
    await Promise.all([api, web].filter((s) => s?.listening).map(close));
  });

  it('stops accepting, lets the request in flight finish, and serves the same port again when the listener returns', async () => {
    expect(await get(outbound, '/')).toEqual({ status: 200, body: 'api' });
    const good = cp.cp.cache.getSnapshot('sidecar/default')!;
    const slow = get(outbound, '/slow');
    await slowArrived;

    const withoutListeners: Record<string, Message[]> = {};
    for (const typeUrl of good.typeUrls()) {
      if (typeUrl !== LISTENER_TYPE_URL) withoutListeners[typeUrl] = [...good.resources(typeUrl).values()].map((r) => r.message);
    }
    cp.cp.cache.setSnapshot('sidecar/default', Snapshot.fromResources(withoutListeners, good));

    // New connections are refused: the listening socket is closed...
    expect(await until('the outbound listener to stop accepting', async () => ((await probe(outbound)) === 'ECONNREFUSED' ? true : undefined))).toBe(true);
    // ...while the request that was in flight on it finishes normally.
    release();
    expect(await slow).toEqual({ status: 200, body: 'slow' });
    expect(sidecar.ready).toBe(true);

    cp.cp.cache.setSnapshot('sidecar/default', good);
    const back = await until('the outbound listener to serve again', async () => {
      const r = await probe(outbound);
      return typeof r === 'object' ? r : undefined;
    });
    expect(back).toEqual({ status: 200, body: 'api' });
  });
});
