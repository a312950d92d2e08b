/**
 * compileSnapshot over the real translator's output for the fixture config (sidecar kind):
 * routing, readiness (missing RDS/EDS), consistency errors, freezing and reuse.
 */
import { describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { ListenerSchema } from '../../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import { RouteConfigurationSchema } from '../../../xds/gen/envoy/config/route/v3/route_pb.js';
import { RegexMatcherSchema } from '../../../xds/gen/envoy/type/matcher/v3/regex_pb.js';
import { ClusterLoadAssignmentSchema } from '../../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { compileSnapshot, type SidecarSnapshot, type SnapshotInput } from '../../../sidecar/config/sidecar-snapshot.ts';
import { edsCluster, rdsListener, routeConfig } from '../../helpers/resources.ts';
import { ECHO, fixtureInput, held, WEB, withExtraEndpoint, without } from './fixtures.ts';

function compile(input: SnapshotInput, previous?: SidecarSnapshot): SidecarSnapshot {
  const r = compileSnapshot(input, previous);
  if (!r.valid) throw new Error(r.errors.join('\n'));
  return r.result;
}

function errorsOf(input: SnapshotInput): string[] {
  const r = compileSnapshot(input);
  if (r.valid) throw new Error('expected errors');
  return r.errors;
}

function clusterOf(s: SidecarSnapshot, authority: string, path: string, headers: Record<string, string> = {}): string | null {
  const m = s.routeTables.get('outbound')!.match(authority, path, 'GET', (n) => headers[n]);
  if (m === null) return null;
  return m.action.kind === 'cluster' ? m.action.cluster : m.action.kind;
}

describe('compileSnapshot', () => {
  it('compiles the translated fixture into a complete snapshot with its listener, route table and clusters', () => {
    const s = compile(fixtureInput());
    expect(s.complete).toBe(true);
    expect(s.missing).toEqual({ routes: [], clusters: [], endpoints: [] });
    expect(s.listeners).toEqual([{
      name: '127.0.0.1_15001', address: '127.0.0.1', port: 15001, routeConfigName: 'outbound', httpFilters: ['envoy.filters.http.router'],
      upgradeTypes: ['websocket'],
    }]);
    expect([...s.routeTables.keys()]).toEqual(['outbound']);
    expect([...s.clusterConfigs.keys()]).toEqual([ECHO, WEB]);
    expect(s.clusterConfigs.get(ECHO)!.localities.flatMap((l) => l.endpoints.map((e) => [e.port, e.weight]))).toEqual([[50051, 3], [50052, 1]]);
    expect(s.versions.routes.resources).toEqual([{ name: 'outbound', version: fixtureInput().routes.get('outbound')!.version }]);
    expect(s.versions.clusters.resources.map((r) => r.name)).toEqual([ECHO, WEB]);
    expect(s.version).toMatch(/^[0-9a-f]{16}$/);
  });

  it.each([
    ['demo.palisade.local', '/palisade.echo.v1.Echo/Say', { 'content-type': 'application/grpc' }, ECHO],
    ['demo.palisade.local:8443', '/index.html', {}, WEB],
    ['demo.palisade.local', '/palisade.echo.v1.Echo/Say', { 'content-type': 'text/plain' }, WEB],
    ['web.default:8080', '/anything', {}, WEB],
    ['echo', '/palisade.echo.v1.Echo/Say', {}, ECHO],
    ['nobody.example', '/', {}, null],
  ])('routes %s%s to the expected cluster', (authority, path, headers: Record<string, string>, cluster) => {
    const s = compile(fixtureInput());
    expect(clusterOf(s, authority, path, headers)).toBe(cluster);
  });

  it('is deep-frozen: objects, arrays and maps refuse changes', () => {
    const s = compile(fixtureInput());
    for (const o of [s, s.listeners, s.listeners[0], s.listeners[0]!.httpFilters, s.versions, s.versions.listeners.resources, s.missing, s.clusterConfigs.get(WEB)]) {
      expect(Object.isFrozen(o)).toBe(true);
    }
    expect(() => (s.routeTables as Map<string, unknown>).set('x', null)).toThrow(TypeError);
    expect(() => (s.clusterConfigs as Map<string, unknown>).delete(WEB)).toThrow(TypeError);
    expect(() => (s.clusterConfigs as Map<string, unknown>).clear()).toThrow(TypeError);
    expect(s.clusterConfigs.size).toBe(2);
  });

  it('gives the same version for the same resource versions and a new one when any changes', () => {
    const input = fixtureInput();
    expect(compile(input).version).toBe(compile(fixtureInput()).version);
    expect(compile(withExtraEndpoint(input, WEB, 8081)).version).not.toBe(compile(input).version);
  });

  it('reports the types\' accepted versions when given, for /config_dump', () => {
    const s = compile({ ...fixtureInput(), typeVersions: { listeners: 'l1', routes: 'r1', clusters: '', endpoints: 'e7' } });
    expect([s.versions.listeners.version, s.versions.routes.version, s.versions.endpoints.version]).toEqual(['l1', 'r1', 'e7']);
    expect(s.versions.clusters.version).toMatch(/^[0-9a-f]{16}$/);
  });

  it('is valid but not complete while the RDS a listener names has not arrived', () => {
    const s = compile(without(fixtureInput(), 'routes', 'outbound'));
    expect(s.complete).toBe(false);
    expect(s.missing).toEqual({ routes: ['outbound'], clusters: [], endpoints: [] });
    expect(s.routeTables.size).toBe(0);
    expect(s.listeners.map((l) => l.routeConfigName)).toEqual(['outbound']);
  });

  it('is valid but not complete while an EDS cluster waits for its assignment, which gets no ClusterConfig', () => {
    const s = compile(without(fixtureInput(), 'endpoints', WEB));
    expect(s.complete).toBe(false);
    expect(s.missing).toEqual({ routes: [], clusters: [WEB], endpoints: [WEB] });
    expect([...s.clusterConfigs.keys()]).toEqual([ECHO]);
  });

  it('lists everything missing at once before any RDS or EDS', () => {
    const input = fixtureInput();
    const s = compile({ ...input, routes: new Map(), endpoints: new Map() });
    expect(s.missing).toEqual({ routes: ['outbound'], clusters: [ECHO, WEB], endpoints: [ECHO, WEB] });
  });

  it('is never complete without listeners, as before LDS arrives', () => {
    const s = compile({ ...fixtureInput(), listeners: new Map() });
    expect(s.missing).toEqual({ routes: [], clusters: [], endpoints: [] });
    expect(s.complete).toBe(false);
    expect(s.routeTables.size).toBe(1);
  });

  it('refuses a route to a cluster CDS does not have, naming the route configuration, route and cluster', () => {
    const errors = errorsOf(without(without(fixtureInput(), 'clusters', WEB), 'endpoints', WEB));
    expect(errors).toEqual([
      `RDS "outbound" virtual_hosts[0] ("default/demo").routes[1] ("demo.web") → CDS cluster "${WEB}" missing`,
      `RDS "outbound" virtual_hosts[2] ("service/default/web").routes[0] ("default") → CDS cluster "${WEB}" missing`,
    ]);
  });

  it('refuses a weighted cluster CDS does not have', () => {
    const rc = create(RouteConfigurationSchema, {
      name: 'outbound',
      virtualHosts: [{
        name: 'all', domains: ['*'],
        routes: [{
          match: { pathSpecifier: { case: 'prefix', value: '/' } },
          action: { case: 'route', value: { clusterSpecifier: { case: 'weightedClusters', value: { clusters: [{ name: ECHO, weight: 1 }, { name: 'gone', weight: 1 }] } } } },
        }],
      }],
    });
    const input = fixtureInput();
    const errors = errorsOf({ ...input, routes: new Map([['outbound', held(ROUTE_TYPE_URL, rc)]]) });
    expect(errors).toEqual(['RDS "outbound" virtual_hosts[0] ("all").routes[0].weighted_clusters[1] → CDS cluster "gone" missing']);
  });

  it('refuses a listener without an HttpConnectionManager, naming it', () => {
    const tcp = create(ListenerSchema, {
      name: 'tcp-9000',
      address: { address: { case: 'socketAddress', value: { address: '0.0.0.0', portSpecifier: { case: 'portValue', value: 9000 } } } },
      filterChains: [{ filters: [] }],
    });
    const input = fixtureInput();
    const errors = errorsOf({ ...input, listeners: new Map([...input.listeners, ['tcp-9000', held(LISTENER_TYPE_URL, tcp)]]) });
    expect(errors).toEqual(['LDS "tcp-9000": only HttpConnectionManager listeners are supported by the sidecar']);
  });

  it('carries compileRouteTable and compileCluster errors with the resource name first', () => {
    const bad = routeConfig('bad', ECHO);
    const route = bad.virtualHosts[0]!.routes[0]!;
    route.match!.pathSpecifier = { case: 'safeRegex', value: create(RegexMatcherSchema, { regex: '(?<x' }) };
    const wrongEds = create(ClusterLoadAssignmentSchema, { clusterName: 'someone-else' });
    const input = fixtureInput();
    const errors = errorsOf({
      ...input,
      routes: new Map([...input.routes, ['bad', held(ROUTE_TYPE_URL, bad)]]),
      endpoints: new Map([...input.endpoints, [WEB, held(ENDPOINT_TYPE_URL, wrongEds)]]),
    });
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(/^RDS "bad": virtual_hosts\[0\]\.routes\[0\]\.match\.safe_regex\.regex: /);
    expect(errors[1]).toBe(`CDS "${WEB}": cluster_load_assignment.cluster_name: must be the cluster's EDS service name "${WEB}", got "someone-else"`);
  });

  it('reuses route tables and cluster configs whose resource versions are unchanged when given the previous snapshot', () => {
    const input = fixtureInput();
    const first = compile(input);
    const second = compile(withExtraEndpoint(input, ECHO, 50053), first);
    expect(second.routeTables.get('outbound')).toBe(first.routeTables.get('outbound'));
    expect(second.clusterConfigs.get(WEB)).toBe(first.clusterConfigs.get(WEB));
    expect(second.clusterConfigs.get(ECHO)).not.toBe(first.clusterConfigs.get(ECHO));
    expect(second.clusterConfigs.get(ECHO)!.localities.flatMap((l) => l.endpoints.map((e) => e.port))).toEqual([50051, 50052, 50053]);
    expect(second.version).not.toBe(first.version);
    // Without `previous`, everything is compiled afresh.
    expect(compile(input).routeTables.get('outbound')).not.toBe(first.routeTables.get('outbound'));
  });

  it('recompiles only the route configuration whose version changed', () => {
    const input: SnapshotInput = {
      listeners: new Map([['a', held(LISTENER_TYPE_URL, rdsListener('a', 'ra', 15001))], ['b', held(LISTENER_TYPE_URL, rdsListener('b', 'rb', 15002))]]),
      routes: new Map([['ra', held(ROUTE_TYPE_URL, routeConfig('ra', 'c1'))], ['rb', held(ROUTE_TYPE_URL, routeConfig('rb', 'c1'))]]),
      clusters: new Map([['c1', held(CLUSTER_TYPE_URL, edsCluster('c1'))], ['c2', held(CLUSTER_TYPE_URL, edsCluster('c2'))]]),
      endpoints: new Map(),
    };
    const first = compile(input);
    expect(first.missing).toEqual({ routes: [], clusters: ['c1', 'c2'], endpoints: ['c1', 'c2'] });
    const second = compile({ ...input, routes: new Map([...input.routes, ['rb', held(ROUTE_TYPE_URL, routeConfig('rb', 'c2'))]]) }, first);
    expect(second.routeTables.get('ra')).toBe(first.routeTables.get('ra'));
    expect(second.routeTables.get('rb')).not.toBe(first.routeTables.get('rb'));
    expect(second.routeTables.get('rb')!.match('x', '/', 'GET', () => undefined)!.action).toMatchObject({ kind: 'cluster', cluster: 'c2' });
  });
});
