/**
 * A small mesh for the quota e2e tests, everything real on loopback: an in-process ADS server
 * (SnapshotCache + AdsServer) serving the sidecar's listener, route, cluster and the Quotas
 * under test (the control plane's Quota translation is another module; these tests speak xDS
 * directly), a workload HTTP server, and sidecars in-process or as `palisade sidecar`
 * processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rename, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import pino from 'pino';
import { WebSocketServer } from 'ws';
import type { Message } from '@bufbuild/protobuf';
import type { Quota } from '../../../xds/gen/palisade/v1/quota_pb.js';
import { SnapshotCache } from '../../../xds/cache/snapshot-cache.ts';
import { Snapshot } from '../../../xds/cache/snapshot.ts';
import { AdsServer } from '../../../xds/server/ads-server.ts';
import {
  CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, POLICY_TYPE_URL, QUOTA_TYPE_URL, REQUEST_AUTHENTICATION_TYPE_URL, ROUTE_TYPE_URL,
} from '../../../xds/resources/type-urls.ts';
import { parseBootstrap } from '../../../sidecar/bootstrap/bootstrap.ts';
import { Sidecar, type SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { edsCluster, loadAssignment, rdsListener, routeConfig } from '../../helpers/resources.ts';

const CLI = join(import.meta.dirname, '../../../cli/main.ts');
/** The sidecars' Service (and ADS node group). */
export const SERVICE = 'web';

export class QuotaXds {
  readonly cache = new SnapshotCache();
  readonly server = new AdsServer({ cache: this.cache });
  address = '';
  #snapshot: Snapshot | undefined;

  static async start(): Promise<QuotaXds> {
    const x = new QuotaXds();
    x.address = `127.0.0.1:${await x.server.listen('127.0.0.1:0')}`;
    return x;
  }

  /** Serves the sidecars of SERVICE a complete configuration with these Quotas (and RequestAuthentications). */
  push(quotas: readonly Quota[], requestAuthentications: readonly Message[] = []): void {
    this.#snapshot = Snapshot.fromResources({
      [CLUSTER_TYPE_URL]: [edsCluster('api')],
      [ENDPOINT_TYPE_URL]: [loadAssignment('api', [1])],
      [LISTENER_TYPE_URL]: [rdsListener('outbound', 'outbound-routes')],
      [ROUTE_TYPE_URL]: [routeConfig('outbound-routes', 'api')],
      [POLICY_TYPE_URL]: [],
      [REQUEST_AUTHENTICATION_TYPE_URL]: requestAuthentications,
      [QUOTA_TYPE_URL]: quotas,
    }, this.#snapshot);
    this.cache.setSnapshot(SERVICE, this.#snapshot);
  }

  close(): Promise<void> {
    return this.server.close(100);
  }
}

/** The workload: answers 200 `ok <path>` and accepts WebSocket upgrades (echo), counting the requests that reach it. */
export async function startWorkload(): Promise<{ server: Server; port: number; hits: () => number }> {
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    req.resume();
    const body = `ok ${req.url}`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'x-workload': 'yes' });
    res.end(body);
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    hits++;
    wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (d) => ws.send(d)));
  });
  server.on('close', () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, hits: () => hits };
}

export function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

function bootstrapDoc(id: string, xds: string, workloadPort: number, redis: string | null, extra: Record<string, unknown> = {}) {
  return {
    node: { id, service: SERVICE },
    inbound: { address: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1' },
    workload: { address: `127.0.0.1:${workloadPort}` },
    outbound: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    controlPlane: { address: xds },
    ...(redis !== null ? { quota: { redis: { address: redis, timeout: 200, ...extra } } } : {}),
  };
}

/** `quota.redis.lease` of a test sidecar: absent (undefined) gives the bootstrap's default, leases on. */
const leaseField = (lease: unknown): Record<string, unknown> => (lease !== undefined ? { lease } : {});

/**
 * An in-process sidecar of SERVICE; resolves once ready (its first Quota state in force).
 * `lease`: its `quota.redis.lease` (false: every GLOBAL check one Redis round trip); left out: the default, on.
 */
export async function startSidecar(xds: string, workloadPort: number, o: { id?: string; redis?: string | null; lease?: unknown; pressure?: () => number } = {}): Promise<{ sidecar: Sidecar; addresses: SidecarAddresses }> {
  const parsed = parseBootstrap(bootstrapDoc(o.id ?? 'web-1', xds, workloadPort, o.redis ?? null, leaseField(o.lease)));
  if (!parsed.valid) throw new Error(parsed.errors.join('\n'));
  const sidecar = new Sidecar({
    bootstrap: parsed.result, logger: pino({ level: 'silent' }), version: 'test', drainTimeoutMs: 1000,
    ...(o.pressure !== undefined ? { pressure: o.pressure } : {}),
  });
  const addresses = await sidecar.start();
  await sidecar.whenReady();
  return { sidecar, addresses };
}

/** A `palisade sidecar` process of SERVICE; resolves with its inbound and admin addresses once ready. `lease` as startSidecar's. */
export async function spawnSidecar(dir: string, id: string, xds: string, workloadPort: number, redis: string, children: ChildProcess[], o: { lease?: unknown } = {}): Promise<{ inbound: string; admin: string }> {
  const file = join(dir, `${id}.json`);
  await writeFile(`${file}.tmp`, JSON.stringify(bootstrapDoc(id, xds, workloadPort, redis, leaseField(o.lease))));
  await rename(`${file}.tmp`, file);
  const child = spawn(process.execPath, [CLI, 'sidecar', '--bootstrap', file, '--log-level', 'warn', '--drain-timeout', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`sidecar ${id} did not get ready: ${out}`)), 90_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /inbound (127\.0\.0\.1:\d+), outbound \S+, admin http:\/\/(127\.0\.0\.1:\d+),[\s\S]*palisade sidecar: ready/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ inbound: m[1]!, admin: m[2]! });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sidecar ${id} exited ${code}: ${out}`));
    });
  });
}
