/**
 * The sidecar's immutable compiled configuration. An xDS update compiles a new snapshot and
 * the ConfigStore swaps one reference; a request reads the reference once when it starts and
 * finishes on that snapshot, so a reload never changes the config under a request.
 *
 *   LDS listeners ── HttpConnectionManager ── rds.route_config_name ──► RDS ──► RouteTable
 *                                                                        │ route / weighted
 *                                                                        ▼ cluster names
 *   CDS clusters ── (EDS: eds_cluster_config.service_name ──► EDS) ──► ClusterConfig
 *
 * Consistency (go-control-plane's `Snapshot.Consistent()`), split in two:
 * - "not ready": a resource that is named but has not arrived yet (an RDS route configuration
 *   a listener names, the EDS assignment of an EDS cluster). The snapshot is valid but not
 *   `complete`, and `missing` lists the names, so the sidecar can gate readiness on the
 *   first complete snapshot (one with listeners and nothing missing). A cluster waiting for
 *   its EDS has no ClusterConfig yet.
 * - invalid: a route naming a cluster that CDS does not have, a listener the sidecar cannot
 *   serve, or a resource compileRouteTable / compileCluster refuses. Errors name the resource.
 *   The AdsClient has already NACKed resources invalid on their own; these are cross-resource
 *   problems, reported to the caller rather than NACKed.
 *
 * Reuse: with `previous`, a RouteTable whose RDS resource version is unchanged, and a
 * ClusterConfig whose CDS (and EDS) versions are unchanged, are taken over as the same
 * objects, so an endpoint change recompiles one cluster only. (With SotW every resource of
 * a type carries the response's version_info, so reuse works per type there.)
 */
import { createHash } from 'node:crypto';
import type { Cluster } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { ClusterLoadAssignment } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { Listener } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { RouteConfiguration } from '../../xds/gen/envoy/config/route/v3/route_pb.js';
import type { ResourceMap } from '../../xds/client/subscriptions.ts';
import { edsServiceName, listenerHcms } from '../../xds/cache/consistency.ts';
import { compileRouteTable, type RouteTable } from '../routing/route-table.ts';
import { compileCluster } from '../upstream/compile-cluster.ts';
import type { ClusterConfig } from '../upstream/cluster-config.ts';
import { FrozenMap } from './frozen-map.ts';

/** The four resource types a sidecar snapshot is compiled from. */
export type SnapshotResourceKind = 'listeners' | 'routes' | 'clusters' | 'endpoints';
const KINDS: readonly SnapshotResourceKind[] = ['listeners', 'routes', 'clusters', 'endpoints'];

/** What the AdsClient holds: per type, resource name → {version, message}. */
export interface SnapshotInput {
  readonly listeners: ResourceMap;
  readonly routes: ResourceMap;
  readonly clusters: ResourceMap;
  readonly endpoints: ResourceMap;
  /** The types' accepted versions (AdsClient `state(t).version`), for /config_dump; optional. */
  readonly typeVersions?: Readonly<Partial<Record<SnapshotResourceKind, string>>>;
}

/** One listener the sidecar serves: an HttpConnectionManager over RDS. */
export interface ListenerConfig {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** The RDS route configuration name. */
  readonly routeConfigName: string;
  /** The HCM's HTTP filter names, in order (the router last). */
  readonly httpFilters: readonly string[];
  /** The upgrade types the HCM enables (`upgrade_configs`, `enabled` not false), lowercase: `websocket`. */
  readonly upgradeTypes: readonly string[];
}

/** One resource's name and version, for /config_dump. */
export interface ResourceVersion {
  readonly name: string;
  readonly version: string;
}

/** One type's state, for /config_dump. */
export interface TypeVersions {
  /** The accepted version of the type when given in the input, else a hash of its resource versions. */
  readonly version: string;
  /** Every resource of the type, sorted by name. */
  readonly resources: readonly ResourceVersion[];
}

/** Names referenced but not (yet) received. Each list sorted, without duplicates. */
export interface MissingResources {
  /** RDS route configurations named by a listener. */
  readonly routes: readonly string[];
  /** EDS clusters waiting for their assignment (they have no ClusterConfig yet). */
  readonly clusters: readonly string[];
  /** The EDS service names those clusters wait for. */
  readonly endpoints: readonly string[];
}

/** A compiled configuration; deep-frozen (its Maps throw on set/delete/clear). */
export interface SidecarSnapshot {
  /** sha256 (hex, first 16 chars) over every resource's type, name and version. */
  readonly version: string;
  readonly listeners: readonly ListenerConfig[];
  readonly routeTables: ReadonlyMap<string, RouteTable>;
  readonly clusterConfigs: ReadonlyMap<string, ClusterConfig>;
  readonly versions: Readonly<Record<SnapshotResourceKind, TypeVersions>>;
  readonly missing: MissingResources;
  /**
   * True when there is a listener and nothing is missing: every listener's routes and every
   * cluster are usable. A snapshot without listeners (LDS not received yet) serves nothing,
   * so it is never complete.
   */
  readonly complete: boolean;
}

export type SnapshotResult = { valid: true; result: SidecarSnapshot } | { valid: false; errors: string[] };

/**
 * Compiles the sidecar's snapshot from the resources the AdsClient holds, or lists every
 * problem, each prefixed with its resource (`RDS "outbound": virtual_hosts[0]...`).
 *
 * @param previous the snapshot in use: unchanged route tables and cluster configs are reused.
 */
export function compileSnapshot(input: SnapshotInput, previous?: SidecarSnapshot): SnapshotResult {
  const errors: string[] = [];
  const prevVersions = previous ? versionIndex(previous) : null;
  const missingRoutes = new Set<string>();
  const missingClusters = new Set<string>();
  const missingEndpoints = new Set<string>();

  // Listeners → which route configurations are needed.
  const listeners: ListenerConfig[] = [];
  const neededRoutes = new Set<string>();
  for (const name of sortedNames(input.listeners)) {
    const l = compileListener(name, input.listeners.get(name)!.message as Listener, errors);
    if (l === null) continue;
    listeners.push(l);
    neededRoutes.add(l.routeConfigName);
  }

  // Route configurations: every one received is compiled (a listener may be about to name it).
  const routeTables = new Map<string, RouteTable>();
  const routeClusters: Array<{ route: string; where: string; cluster: string }> = [];
  for (const name of sortedNames(input.routes)) {
    const r = input.routes.get(name)!;
    const rc = r.message as RouteConfiguration;
    collectClusterRefs(rc, name, routeClusters);
    const reused = previous?.routeTables.get(name);
    if (reused && sameVersion(prevVersions!.routes, name, r.version)) {
      routeTables.set(name, reused);
      continue;
    }
    const compiled = compileRouteTable(rc);
    if (compiled.valid) routeTables.set(name, compiled.result);
    else for (const e of compiled.errors) errors.push(`RDS ${JSON.stringify(name)}: ${e}`);
  }
  for (const name of neededRoutes) if (!input.routes.has(name)) missingRoutes.add(name);

  // Clusters, with their EDS assignments.
  const clusterConfigs = new Map<string, ClusterConfig>();
  for (const name of sortedNames(input.clusters)) {
    const c = input.clusters.get(name)!;
    const cluster = c.message as Cluster;
    const eds = edsServiceName(cluster);
    const assignment = eds === null ? undefined : input.endpoints.get(eds);
    if (eds !== null && assignment === undefined) {
      missingClusters.add(name);
      missingEndpoints.add(eds);
      continue;
    }
    const reused = previous?.clusterConfigs.get(name);
    if (reused && sameVersion(prevVersions!.clusters, name, c.version)
      && (eds === null || sameVersion(prevVersions!.endpoints, eds, assignment!.version))) {
      clusterConfigs.set(name, reused);
      continue;
    }
    const compiled = compileCluster(cluster, assignment?.message as ClusterLoadAssignment | undefined);
    if (compiled.valid) clusterConfigs.set(name, compiled.result);
    else for (const e of compiled.errors) errors.push(`CDS ${JSON.stringify(name)}: ${e}`);
  }

  // Every cluster a route names must be in CDS.
  for (const ref of routeClusters) {
    if (!input.clusters.has(ref.cluster)) {
      errors.push(`RDS ${JSON.stringify(ref.route)} ${ref.where} → CDS cluster ${JSON.stringify(ref.cluster)} missing`);
    }
  }
  if (errors.length > 0) return { valid: false, errors };

  const versions = {} as Record<SnapshotResourceKind, TypeVersions>;
  const hash = createHash('sha256');
  for (const kind of KINDS) {
    const resources = sortedNames(input[kind]).map((name) => ({ name, version: input[kind].get(name)!.version }));
    const typeHash = createHash('sha256');
    for (const r of resources) typeHash.update(`${r.name}\0${r.version}\0`);
    const digest = typeHash.digest('hex').slice(0, 16);
    hash.update(`${kind}\0${digest}\0`);
    versions[kind] = { version: input.typeVersions?.[kind] || digest, resources };
  }
  const missing: MissingResources = {
    routes: [...missingRoutes].sort(), clusters: [...missingClusters].sort(), endpoints: [...missingEndpoints].sort(),
  };
  return {
    valid: true,
    result: deepFreezePlain({
      version: hash.digest('hex').slice(0, 16),
      listeners,
      routeTables: new FrozenMap(routeTables),
      clusterConfigs: new FrozenMap(clusterConfigs),
      versions,
      missing,
      complete: listeners.length > 0 && missing.routes.length === 0 && missing.clusters.length === 0 && missing.endpoints.length === 0,
    }),
  };
}

function compileListener(name: string, listener: Listener, errors: string[]): ListenerConfig | null {
  const where = `LDS ${JSON.stringify(name)}`;
  const before = errors.length;
  const hcms = listenerHcms(listener);
  if (hcms.length !== 1) {
    errors.push(hcms.length === 0
      ? `${where}: only HttpConnectionManager listeners are supported by the sidecar`
      : `${where}: ${hcms.length} HttpConnectionManagers; the sidecar supports one per listener`);
    return null;
  }
  if (listener.apiListener) errors.push(`${where}: api_listener is not supported by the sidecar`);
  const hcm = hcms[0]!;
  const sa = listener.address?.address.case === 'socketAddress' ? listener.address.address.value : null;
  let port = 0;
  if (sa === null) errors.push(`${where}: address: a socket address is required`);
  else if (sa.portSpecifier.case !== 'portValue') errors.push(`${where}: address.socket_address: a port_value is required`);
  else port = sa.portSpecifier.value;
  if (hcm.routeSpecifier.case !== 'rds') {
    errors.push(`${where}: route_specifier: only rds is supported by the sidecar, got ${hcm.routeSpecifier.case ?? 'none'}`);
  }
  if (errors.length > before || sa === null || hcm.routeSpecifier.case !== 'rds') return null;
  return {
    name,
    address: sa.address,
    port,
    routeConfigName: hcm.routeSpecifier.value.routeConfigName,
    httpFilters: hcm.httpFilters.map((f) => f.name),
    upgradeTypes: hcm.upgradeConfigs.filter((u) => u.enabled !== false).map((u) => u.upgradeType.toLowerCase()),
  };
}

/** Every cluster name a route configuration sends traffic to, with where it is named. */
function collectClusterRefs(rc: RouteConfiguration, route: string, out: Array<{ route: string; where: string; cluster: string }>): void {
  rc.virtualHosts.forEach((vh, i) => {
    vh.routes.forEach((r, j) => {
      if (r.action.case !== 'route') return;
      const where = `virtual_hosts[${i}] (${JSON.stringify(vh.name)}).routes[${j}]${r.name ? ` (${JSON.stringify(r.name)})` : ''}`;
      const spec = r.action.value.clusterSpecifier;
      if (spec.case === 'cluster') out.push({ route, where, cluster: spec.value });
      else if (spec.case === 'weightedClusters') {
        spec.value.clusters.forEach((wc, k) => out.push({ route, where: `${where}.weighted_clusters[${k}]`, cluster: wc.name }));
      }
    });
  });
}

function sortedNames(m: ResourceMap): string[] {
  return [...m.keys()].sort();
}

function versionIndex(s: SidecarSnapshot): Record<SnapshotResourceKind, Map<string, string>> {
  const out = {} as Record<SnapshotResourceKind, Map<string, string>>;
  for (const k of KINDS) out[k] = new Map(s.versions[k].resources.map((r) => [r.name, r.version]));
  return out;
}

function sameVersion(index: Map<string, string>, name: string, version: string): boolean {
  return version !== '' && index.get(name) === version;
}

/** Freezes plain objects and arrays reachable from `value`; FrozenMaps and compiled objects are frozen already. */
function deepFreezePlain<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value) && !(value instanceof Map)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreezePlain(v);
  }
  return value;
}

/** The /config_dump body of a sidecar: its node, readiness and what `s` holds (null before any configuration). */
export function configDumpOf(node: { readonly id: string; readonly namespace: string; readonly service: string }, ready: boolean, s: SidecarSnapshot | null): Record<string, unknown> {
  return {
    node: { id: node.id, service: `${node.namespace}/${node.service}` },
    ready,
    version: s?.version ?? null,
    complete: s?.complete ?? false,
    missing: s?.missing ?? null,
    listeners: s?.listeners ?? [],
    routeConfigs: s ? [...s.routeTables.keys()].sort() : [],
    clusters: s ? [...s.clusterConfigs.keys()].sort() : [],
    versions: s?.versions ?? null,
  };
}
