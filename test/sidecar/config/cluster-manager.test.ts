/**
 * ClusterManager over snapshots compiled from the translated fixture: create, update in
 * place, drain removed clusters for a grace period, then close them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClusterManager } from '../../../sidecar/config/cluster-manager.ts';
import { compileSnapshot, type SidecarSnapshot, type SnapshotInput } from '../../../sidecar/config/sidecar-snapshot.ts';
import { ECHO, fixtureInput, WEB, withExtraEndpoint, without } from './fixtures.ts';

function compile(input: SnapshotInput, previous?: SidecarSnapshot): SidecarSnapshot {
  const r = compileSnapshot(input, previous);
  if (!r.valid) throw new Error(r.errors.join('\n'));
  return r.result;
}

const managers: ClusterManager[] = [];
function manager(): ClusterManager {
  const m = new ClusterManager();
  managers.push(m);
  return m;
}

afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()));
});

describe('ClusterManager', () => {
  it('creates a cluster per ClusterConfig of the snapshot', () => {
    const m = manager();
    const s = compile(fixtureInput());
    m.apply(s);
    expect(m.names()).toEqual([ECHO, WEB]);
    expect(m.get(ECHO)!.config).toBe(s.clusterConfigs.get(ECHO));
    expect(m.get(WEB)!.hosts.map((h) => h.port)).toEqual([8080]);
    expect(m.get('nope')).toBeUndefined();
    expect(m.stats().map((c) => [c.name, c.draining, c.hosts.length])).toEqual([[ECHO, false, 2], [WEB, false, 1]]);
  });

  it('keeps a removed cluster gettable for drainMs, then forgets and closes it', async () => {
    const m = manager();
    const input = fixtureInput();
    m.apply(compile(input));
    const web = m.get(WEB)!;
    m.apply(compile(without(input, 'endpoints', WEB)), { drainMs: 100 });
    expect(m.names()).toEqual([ECHO]);
    expect(m.get(WEB)).toBe(web);
    expect(web.pick()).not.toBeNull();
    expect(m.stats().map((c) => [c.name, c.draining])).toEqual([[ECHO, false], [WEB, true]]);
    await sleep(150);
    expect(m.get(WEB)).toBeUndefined();
    expect(web.pick()).toBeNull();
    expect(() => web.update(web.config)).toThrow(/is closed/);
    expect(m.stats().map((c) => c.name)).toEqual([ECHO]);
  });

  it('takes a draining cluster back, open, when a later snapshot has it again', async () => {
    const m = manager();
    const input = fixtureInput();
    const first = compile(input);
    m.apply(first);
    const web = m.get(WEB)!;
    m.apply(compile(without(input, 'endpoints', WEB), first), { drainMs: 50 });
    m.apply(compile(input), { drainMs: 50 });
    await sleep(100);
    expect(m.get(WEB)).toBe(web);
    expect(web.pick()).not.toBeNull();
    expect(m.stats().map((c) => [c.name, c.draining])).toEqual([[ECHO, false], [WEB, false]]);
  });

  it('updates a changed cluster in place: same UpstreamCluster, kept hosts, new endpoint added', () => {
    const m = manager();
    const input = fixtureInput();
    const first = compile(input);
    m.apply(first);
    const echo = m.get(ECHO)!;
    const web = m.get(WEB)!;
    const host50051 = echo.hosts.find((h) => h.port === 50051)!;
    const second = compile(withExtraEndpoint(input, ECHO, 50053), first);
    m.apply(second);
    expect(m.get(ECHO)).toBe(echo);
    expect(echo.config).toBe(second.clusterConfigs.get(ECHO));
    expect(echo.hosts.map((h) => h.port)).toEqual([50051, 50052, 50053]);
    expect(echo.hosts.find((h) => h.port === 50051)).toBe(host50051);
    expect(m.get(WEB)).toBe(web);
    expect(web.config).toBe(first.clusterConfigs.get(WEB));
  });

  it('closes every cluster, draining ones included, and refuses snapshots afterwards', async () => {
    const m = manager();
    const input = fixtureInput();
    const s = compile(input);
    m.apply(s);
    const echo = m.get(ECHO)!;
    const web = m.get(WEB)!;
    m.apply(compile(without(input, 'endpoints', WEB)), { drainMs: 60_000 });
    await m.close();
    expect(m.get(ECHO)).toBeUndefined();
    expect(m.get(WEB)).toBeUndefined();
    expect([echo.pick(), web.pick()]).toEqual([null, null]);
    expect(() => m.apply(s)).toThrow('the cluster manager is closed');
    await m.close();
  });

  it.each([-1, 1.5, Number.NaN])('refuses drainMs %s', (drainMs) => {
    const m = manager();
    expect(() => m.apply(compile(fixtureInput()), { drainMs })).toThrow(new RangeError(`drainMs must be a non-negative integer, got ${drainMs}`));
    expect(m.names()).toEqual([]);
  });
});
