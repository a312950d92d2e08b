/**
 * Hot swap under load, everything real on loopback: a steady client load runs through the
 * sidecar's outbound listener while the control plane's config directory is rewritten 100
 * times (weights flipped between two backends, a path-prefix rule added and removed, an
 * extra endpoint added to and removed from a Service). Zero requests may fail, and every
 * response must come from a backend that a configuration alive during the request routed
 * that path to.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Sidecar } from '../../../sidecar/sidecar.ts';
import { startTestSidecar } from '../../helpers/sidecar.ts';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { startControlPlane, type TestControlPlane } from '../../helpers/control-plane.ts';
import { until } from '../../helpers/until.ts';

/** Answers `<name> <path>`. */
function backend(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    req.resume();
    const body = `${name} ${req.url}`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port })));
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

interface Reply { status: number; body: string }

function get(address: string, path: string, headers: Record<string, string> = {}, agent: Agent | false = false): Promise<Reply> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = request({ host: address.slice(0, i), port: Number(address.slice(i + 1)), path, headers, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** One point of the configuration space the test walks through. */
interface Conf {
  /** Which Service the default rule sends everything to (the other has weight 0). */
  weightTo: 'a' | 'b';
  /** Whether `/pinned` is routed to api-a by its own rule. */
  pinned: boolean;
  /** Whether api-b has its extra endpoint (backend c). */
  extra: boolean;
}

const SERVICE = (name: string, ports: number[]) => `
apiVersion: palisade.dev/v1
kind: Service
metadata: { name: ${name} }
spec:
  protocol: http
  port: 9090
${ports.length === 0 ? '' : `  endpoints:\n${ports.map((p) => `    - { address: 127.0.0.1, port: ${p} }`).join('\n')}`}
`;

function configText(c: Conf, ports: { a: number; b: number; c: number }): string {
  const pinnedRule = c.pinned ? `
    - name: pinned
      match: [{ prefix: /pinned }]
      backends: [{ service: api-a }]` : '';
  return `${SERVICE('web', [])}---
${SERVICE('api-a', [ports.a])}---
${SERVICE('api-b', c.extra ? [ports.b, ports.c] : [ports.b])}---
apiVersion: palisade.dev/v1
kind: Route
metadata: { name: shop }
spec:
  hosts: [shop]
  http:${pinnedRule}
    - name: split
      backends:
        - { service: api-a, weight: ${c.weightTo === 'a' ? 1 : 0} }
        - { service: api-b, weight: ${c.weightTo === 'b' ? 1 : 0} }
`;
}

/** The backends a configuration sends `path` to. */
function allowed(c: Conf, path: string): string[] {
  if (c.pinned && path.startsWith('/pinned')) return ['a'];
  if (c.weightTo === 'a') return ['a'];
  return c.extra ? ['b', 'c'] : ['b'];
}

const EDITS = 100;
const CLIENTS = 8;
const MAX_REQUESTS = 200_000;

describe('palisade sidecar, hot swap under load', () => {
  let cp: TestControlPlane;
  const backends: Record<'a' | 'b' | 'c', { server: Server; port: number }> = {} as never;
  let web: { server: Server; port: number };
  let sidecar: Sidecar;
  let addresses: { inbound: string; outbound: string; admin: string };
  let ports: { a: number; b: number; c: number };

  /** Resolves once the sidecar holds, for every type, what the control plane serves its group. */
  const synced = (what: string, timeoutMs = 10_000) => until(what, async () => {
    const snap = cp.cp.cache.getSnapshot('sidecar/default');
    if (!snap) return undefined;
    const dump = JSON.parse((await get(addresses.admin, '/config_dump')).body) as {
      complete: boolean;
      version: string | null;
      versions: Record<string, { version: string; resources: Array<{ name: string }> }> | null;
    };
    if (!dump.complete || dump.versions === null) return undefined;
    const kinds = [
      ['listeners', LISTENER_TYPE_URL, null],
      ['clusters', CLUSTER_TYPE_URL, null],
      ['routes', ROUTE_TYPE_URL, new Set(dump.versions['routes']!.resources.map((r) => r.name))],
      ['endpoints', ENDPOINT_TYPE_URL, new Set(dump.versions['endpoints']!.resources.map((r) => r.name))],
    ] as const;
    for (const [kind, typeUrl, names] of kinds) {
      if (dump.versions[kind]!.version !== snap.sotw(typeUrl, names).version) return undefined;
    }
    return { snap, version: dump.version! };
  }, timeoutMs);

  beforeAll(async () => {
    backends.a = await backend('a');
    backends.b = await backend('b');
    backends.c = await backend('c');
    web = await backend('web');
    ports = { a: backends.a.port, b: backends.b.port, c: backends.c.port };
    cp = await startControlPlane({ 'mesh.yaml': configText({ weightTo: 'a', pinned: false, extra: false }, ports) });
    ({ sidecar, addresses } = await startTestSidecar(cp.address, web.port));
    // The sidecar registers itself as an endpoint of web: wait for that rebuild to settle.
    await until('registration', () => cp.cp.registry.list().find((e) => e.nodeId === 'web-1' && e.serving));
    await synced('the first configuration');
  }, 30_000);

  afterAll(async () => {
    await sidecar?.close();
    await cp?.close();
    for (const b of Object.values(backends)) await closeServer(b.server);
    if (web) await closeServer(web.server);
  });

  it('serves every request, each from a backend a live configuration routed it to, across 100 pushes', async () => {
    const started = performance.now();
    // configs[k] was written at written[k] and seen fully applied at applied[k].
    const configs: Conf[] = [{ weightTo: 'a', pinned: false, extra: false }];
    const written: number[] = [0];
    const applied: number[] = [performance.now()];
    const replies: Array<{ path: string; s: number; e: number; status: number; body: string }> = [];
    const failures: string[] = [];

    const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
    let stop = false;
    let sent = 0;
    const loop = async (id: number) => {
      let n = 0;
      while (!stop && sent < MAX_REQUESTS) {
        sent++;
        const path = `${n % 2 === 0 ? '/pinned' : '/other'}/${id}-${n++}`;
        const s = performance.now();
        try {
          const r = await get(addresses.outbound, path, { host: 'shop' }, agent);
          replies.push({ path, s, e: performance.now(), ...r });
        } catch (err) {
          failures.push(`${path}: ${(err as Error).message}`);
        }
      }
    };
    const loops = Array.from({ length: CLIENTS }, (_, i) => loop(i));

    try {
      let versionBefore = (await synced('the first configuration')).version;
      for (let k = 1; k <= EDITS; k++) {
        const prev = configs[k - 1]!;
        const next: Conf = { ...prev };
        if (k % 3 === 1) next.weightTo = prev.weightTo === 'a' ? 'b' : 'a';
        else if (k % 3 === 2) next.pinned = !prev.pinned;
        else next.extra = !prev.extra;
        const snapBefore = cp.cp.cache.getSnapshot('sidecar/default');
        written.push(performance.now());
        configs.push(next);
        await cp.write('mesh.yaml', configText(next, ports));
        await until(`the control plane to publish edit ${k}`, () => (cp.cp.cache.getSnapshot('sidecar/default') !== snapBefore ? true : undefined));
        const now = await synced(`the sidecar to apply edit ${k}`);
        expect(now.version).not.toBe(versionBefore);
        versionBefore = now.version;
        applied.push(performance.now());
      }
    } finally {
      stop = true;
      await Promise.all(loops);
      agent.destroy();
    }

    expect(performance.now() - started).toBeLessThan(60_000);
    expect(failures).toEqual([]);
    expect(replies.length).toBeGreaterThan(EDITS);
    const bad: string[] = [];
    const answered = new Set<string>();
    for (const r of replies) {
      if (r.status !== 200) {
        bad.push(`${r.path}: ${r.status} ${r.body}`);
        continue;
      }
      const [who, path] = r.body.split(' ');
      answered.add(who!);
      if (path !== r.path) bad.push(`${r.path}: answered for ${path}`);
      // Config k can have served the request if it was written before the request ended and
      // not yet fully replaced (config k+1 seen applied) when the request started.
      const ok = new Set<string>();
      for (let k = 0; k < configs.length; k++) {
        if (written[k]! > r.e) break;
        if (k + 1 < configs.length && applied[k + 1]! < r.s) continue;
        for (const b of allowed(configs[k]!, r.path)) ok.add(b);
      }
      if (!ok.has(who!)) bad.push(`${r.path}: answered by ${who}, expected one of ${[...ok].join(', ')}`);
    }
    expect(bad.slice(0, 20)).toEqual([]);
    // Every backend took part, and the sidecar counted no failure either.
    expect([...answered].sort()).toEqual(['a', 'b', 'c']);
    const stats = JSON.parse((await get(addresses.admin, '/stats')).body);
    expect(stats.listeners.outbound.responses['5xx'] ?? 0).toBe(0);
    expect(stats.xds.nacks).toEqual({});
    expect(stats.xds.snapshotErrors).toBe(0);
  }, 90_000);
});
