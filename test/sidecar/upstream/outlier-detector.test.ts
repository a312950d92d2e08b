/** Outlier ejection driven by real upstream responses (short durations: interval 50 ms, base ejection 100 ms). */
import { afterEach, describe, expect, it, vi } from 'vitest';
import diagnostics from 'node:diagnostics_channel';
import { UpstreamCluster } from '../../../sidecar/upstream/upstream-cluster.ts';
import type { ClusterConfig } from '../../../sidecar/upstream/cluster-config.ts';
import { ms, send, startServer, staticConfig, type ClusterInit, type Exchange, type TestServer } from './fixtures.ts';

const servers: TestServer[] = [];
const clusters: UpstreamCluster[] = [];
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.destroy()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(statuses: number[]): Promise<TestServer[]> {
  const out = await Promise.all(statuses.map((status, i) => startServer(`s${i}`, { status })));
  servers.push(...out);
  return out;
}

function make(config: ClusterConfig): UpstreamCluster {
  const c = new UpstreamCluster(config);
  clusters.push(c);
  return c;
}

const od = (o: NonNullable<ClusterInit['outlierDetection']>): ClusterInit => ({
  outlierDetection: { consecutive5xx: 3, interval: ms(50), baseEjectionTime: ms(100), ...o },
});

async function sendMany(c: UpstreamCluster, n: number): Promise<Exchange[]> {
  const out: Exchange[] = [];
  for (let i = 0; i < n; i++) out.push(await send(c));
  return out;
}

describe('outlier detection', () => {
  it('ejects a host after consecutive_5xx, moves its traffic to the others, re-admits it after base_ejection_time', async () => {
    const [bad, ...good] = await start([500, 200, 200]);
    const c = make(staticConfig([bad!.port, ...good.map((s) => s.port)], od({ maxEjectionPercent: 34 })));
    const badHost = c.hosts[0]!;
    const events: unknown[] = [];
    const onEject = (m: unknown): void => void events.push(m);
    diagnostics.subscribe('palisade:upstream:eject', onEject);
    try {
      await sendMany(c, 9);
    } finally {
      diagnostics.unsubscribe('palisade:upstream:eject', onEject);
    }
    const ejectedAt = Date.now();
    expect(bad!.hits).toBe(3);
    const s = c.stats().hosts[0]!;
    expect(s).toMatchObject({ health: 'ejected', timesEjected: 1, consecutive5xx: 0, totalRequests: 3, totalErrors: 3 });
    expect(s.ejectedUntil! - ejectedAt).toBeGreaterThan(60);
    expect(s.ejectedUntil! - ejectedAt).toBeLessThanOrEqual(105);
    expect(events).toEqual([{ cluster: 'svc', host: badHost.key, type: 'consecutive_5xx', timesEjected: 1, ejectedUntil: s.ejectedUntil }]);
    expect(c.stats().outlierDetection).toMatchObject({ ejectionsActive: 1, ejectionsEnforcedTotal: 1, ejectionsOverflow: 0 });

    const during = await sendMany(c, 20);
    expect(during.filter((r) => r.host === badHost)).toHaveLength(0);
    expect(during.every((r) => r.status === 200)).toBe(true);

    await vi.waitFor(() => expect(badHost.ejected).toBe(false), { timeout: 2000, interval: 5 });
    expect(Date.now() - ejectedAt).toBeGreaterThanOrEqual(95);
    expect(c.stats().hosts[0]).toMatchObject({ health: 'healthy', ejectedUntil: null });
    const after = await sendMany(c, 3);
    expect(after.filter((r) => r.host === badHost)).toHaveLength(1);
  });

  it('ejects a host that fails again right away for twice as long', async () => {
    const [bad] = await start([500, 200, 200]);
    const c = make(staticConfig(servers.map((s) => s.port), od({ maxEjectionPercent: 34 })));
    const badHost = c.hosts[0]!;
    const failUntilEjected = async (): Promise<void> => {
      while (!badHost.ejected) {
        const h = c.pick()!;
        c.startRequest(h);
        c.reportResult(h, h === badHost ? 500 : 200);
        c.endRequest(h);
      }
    };
    await failUntilEjected();
    await vi.waitFor(() => expect(badHost.ejected).toBe(false), { timeout: 2000, interval: 2 });
    await failUntilEjected();
    const until = c.stats().hosts[0]!.ejectedUntil! - Date.now();
    expect(badHost.timesEjected).toBe(2);
    expect(until).toBeGreaterThan(150);
    expect(until).toBeLessThanOrEqual(205);
    expect(bad!.hits).toBe(0);
  });

  it('never ejects more than max_ejection_percent of the hosts', async () => {
    await start([500, 500]);
    const c = make(staticConfig(servers.map((s) => s.port), od({ maxEjectionPercent: 50 })));
    const res = await sendMany(c, 12);
    expect(c.hosts.map((h) => h.ejected).sort()).toEqual([false, true]);
    expect(res.at(-1)!.status).toBe(500);
    expect(c.stats().outlierDetection).toMatchObject({ ejectionsActive: 1, ejectionsOverflow: 3, ejectionsDetected: { consecutive_5xx: 4 } });
    expect(c.pick()).not.toBeNull();
  });

  it('with Envoy\'s default 10% ejects nothing from a small cluster, unless always_eject_one_host', async () => {
    await start([500, 200, 200]);
    const ports = servers.map((s) => s.port);
    const strict = make(staticConfig(ports, od({})));
    await sendMany(strict, 9);
    expect(strict.hosts.some((h) => h.ejected)).toBe(false);
    expect(strict.stats().outlierDetection).toMatchObject({ ejectionsActive: 0, ejectionsOverflow: 1 });
    const one = make(staticConfig(ports, od({ alwaysEjectOneHost: true })));
    await sendMany(one, 9);
    expect(one.hosts.map((h) => h.ejected)).toEqual([true, false, false]);
  });

  it('counts connect failures as 5xx, or apart from them with split_external_local_origin_errors', async () => {
    const [up, down] = await start([500, 200]);
    const downPort = down!.port;
    await down!.close();
    servers.splice(servers.indexOf(down!), 1);
    const merged = make(staticConfig([up!.port, downPort], od({ consecutive5xx: 2, maxEjectionPercent: 50 })));
    const res = await sendMany(merged, 4);
    expect(res.map((r) => r.status).sort()).toEqual([500, 500, 'connect-failure', 'connect-failure']);
    expect(merged.hosts.filter((h) => h.ejected)).toHaveLength(1);

    up!.status = 200;
    const split = make(staticConfig([up!.port, downPort], od({ consecutive5xx: 2, maxEjectionPercent: 50, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailure: 2 })));
    await sendMany(split, 4);
    const downHost = split.hosts[1]!;
    expect(split.hosts.map((h) => h.ejected)).toEqual([false, true]);
    expect(split.stats().outlierDetection!.ejectionsDetected).toEqual({ consecutive_5xx: 0, consecutive_gateway_failure: 0, consecutive_local_origin_failure: 1 });
    expect(downHost.consecutive5xx).toBe(0);
  });

  it('update() keeps the outlier state of hosts that stay', async () => {
    const [bad, ok] = await start([500, 200, 200]);
    const ports = servers.map((s) => s.port);
    const c = make(staticConfig([bad!.port, ok!.port], od({ maxEjectionPercent: 50 })));
    await sendMany(c, 6);
    const badHost = c.hosts[0]!;
    expect(badHost.ejected).toBe(true);
    const until = c.stats().hosts[0]!.ejectedUntil;
    c.update(staticConfig(ports, od({ maxEjectionPercent: 50 }), [1, 2, 3]));
    expect(c.hosts[0]).toBe(badHost);
    expect(c.stats().hosts[0]).toMatchObject({ health: 'ejected', timesEjected: 1, ejectedUntil: until });
    expect(c.stats().outlierDetection!.ejectionsActive).toBe(1);
    const res = await sendMany(c, 10);
    expect(res.filter((r) => r.host === badHost)).toHaveLength(0);
    await vi.waitFor(() => expect(badHost.ejected).toBe(false), { timeout: 2000, interval: 5 });
  });

  it('re-admits every host when outlier detection is removed', async () => {
    await start([500, 200]);
    const ports = servers.map((s) => s.port);
    const c = make(staticConfig(ports, od({ maxEjectionPercent: 50, baseEjectionTime: ms(60_000) })));
    await sendMany(c, 6);
    expect(c.hosts[0]!.ejected).toBe(true);
    c.update(staticConfig(ports));
    expect(c.hosts.map((h) => h.ejected)).toEqual([false, false]);
    expect(c.stats().outlierDetection).toBeNull();
    expect(new Set([c.pick(), c.pick()]).size).toBe(2);
  });
});
