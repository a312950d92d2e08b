/**
 * ConfigStore: one reference swapped per valid snapshot; and end to end, a real control plane
 * serving the fixture config to a real AdsClient, compiled and applied to a ClusterManager.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigStore } from '../../../sidecar/config/config-store.ts';
import { ClusterManager } from '../../../sidecar/config/cluster-manager.ts';
import type { SidecarSnapshot } from '../../../sidecar/config/sidecar-snapshot.ts';
import { AdsClient } from '../../../xds/client/ads-client.ts';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { startControlPlane, type TestControlPlane } from '../../helpers/control-plane.ts';
import { ECHO, fixtureFiles, fixtureInput, WEB, withExtraEndpoint, without } from './fixtures.ts';

type Swap = [next: SidecarSnapshot, prev: SidecarSnapshot | null];

function recorded(store: ConfigStore): Swap[] {
  const swaps: Swap[] = [];
  store.on('swap', (next, prev) => swaps.push([next, prev]));
  return swaps;
}

describe('ConfigStore', () => {
  it('starts empty and swaps in each valid snapshot, passing the previous one', () => {
    const store = new ConfigStore();
    const swaps = recorded(store);
    expect(store.current).toBeNull();
    const input = fixtureInput();
    const a = store.apply(input);
    expect(a.valid).toBe(true);
    if (!a.valid) return;
    expect(store.current).toBe(a.result);
    const b = store.apply(withExtraEndpoint(input, WEB, 8081));
    if (!b.valid) throw new Error(b.errors.join('\n'));
    expect(store.current).toBe(b.result);
    expect(swaps).toEqual([[a.result, null], [b.result, a.result]]);
    // Compiled against the current snapshot: the unchanged route table is the same object.
    expect(b.result.routeTables.get('outbound')).toBe(a.result.routeTables.get('outbound'));
  });

  it('does not swap a snapshot of the same version', () => {
    const store = new ConfigStore();
    const swaps = recorded(store);
    store.apply(fixtureInput());
    const again = store.apply(fixtureInput());
    expect(again.valid).toBe(true);
    expect(swaps).toHaveLength(1);
  });

  it('keeps the current snapshot and returns the errors of an inconsistent one', () => {
    const store = new ConfigStore();
    const swaps = recorded(store);
    const input = fixtureInput();
    store.apply(input);
    const before = store.current;
    const r = store.apply(without(input, 'clusters', ECHO));
    expect(r.valid).toBe(false);
    if (r.valid) return;
    expect(r.errors[0]).toMatch(/→ CDS cluster "outbound\|50051\|\|echo\.default" missing$/);
    expect(store.current).toBe(before);
    expect(swaps).toHaveLength(1);
  });

  it('resolves whenComplete with the first complete snapshot, not an earlier incomplete one', async () => {
    const store = new ConfigStore();
    const input = fixtureInput();
    let done: SidecarSnapshot | null = null;
    void store.whenComplete().then((s) => void (done = s));
    store.apply(without(input, 'routes', 'outbound'));
    await Promise.resolve();
    expect(done).toBeNull();
    expect(store.current?.complete).toBe(false);
    store.apply(input);
    const complete = await store.whenComplete();
    expect(complete).toBe(store.current);
    expect(complete.complete).toBe(true);
  });
});

describe('ConfigStore.applyFrom over a real control plane', () => {
  let cp: TestControlPlane | undefined;
  let client: AdsClient | undefined;
  let manager: ClusterManager | undefined;

  afterEach(async () => {
    client?.close();
    await manager?.close();
    await cp?.close();
    cp = client = manager = undefined;
  });

  it('compiles what the AdsClient holds, becomes complete, and follows an endpoint change', async () => {
    cp = await startControlPlane(fixtureFiles());
    client = new AdsClient({ address: cp.address, node: { id: 'sidecar-1', cluster: 'test', userAgentName: 'palisade-sidecar' }, backoff: { initialMs: 20, maxMs: 200 } });
    const store = new ConfigStore();
    const m = manager = new ClusterManager();
    store.on('swap', (next) => m.apply(next, { drainMs: 100 }));
    // Before CDS arrives, routes name unknown clusters: errors then are expected; after, none.
    const errors: string[][] = [];
    client.on('update', () => {
      const r = store.applyFrom(client!);
      if (!r.valid && store.current?.complete) errors.push(r.errors);
    });
    // Envoy's order: clusters before the listeners and routes that use them.
    for (const t of [CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL]) client.subscribe(t, '*');
    client.start();

    const first = await store.whenComplete();
    expect(first.listeners.map((l) => [l.name, l.port, l.routeConfigName])).toEqual([['127.0.0.1_15001', 15001, 'outbound']]);
    expect(first.versions.routes.version).toBe(client.state(ROUTE_TYPE_URL).version);
    const rt = first.routeTables.get('outbound')!;
    const action = rt.match('demo.palisade.local', '/shop', 'GET', () => undefined)!.action;
    expect(action).toMatchObject({ kind: 'cluster', cluster: WEB });
    const web = m.get(WEB)!;
    expect(web.hosts.map((h) => h.port)).toEqual([8080]);

    const next = new Promise<SidecarSnapshot>((resolve) => {
      store.on('swap', (s) => {
        if (s.clusterConfigs.get(WEB)?.localities.some((l) => l.endpoints.length === 2)) resolve(s);
      });
    });
    const services = fixtureFiles()['services.yaml']!.replace('      port: 8080\n', '      port: 8080\n    - address: 127.0.0.1\n      port: 8081\n');
    expect(services).toContain('port: 8081');
    await cp.write('services.yaml', services);
    const second = await next;
    expect(second.routeTables.get('outbound')).toBe(rt);
    expect(m.get(WEB)).toBe(web);
    expect(web.hosts.map((h) => h.port)).toEqual([8080, 8081]);
    expect(errors).toEqual([]);
  });
});
