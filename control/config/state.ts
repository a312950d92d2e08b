/**
 * The desired state: every validated resource, indexed, and consistent as a whole, as
 * go-control-plane checks a snapshot before publishing it. `buildState` is where rules
 * between resources live: unique names, a single Mesh, Route backends that point at
 * existing Services on their port, and each host served by one Route.
 */
import type { ConfigError, Result, SourceRef } from './config-error.ts';
import { pointer } from './config-error.ts';
import { createHash } from 'node:crypto';
import type { Backend, BackendDocument, MeshResource, PolicyResource, QuotaResource, RequestAuthenticationResource, Resource, RouteResource, ServiceResource } from './schema.ts';
import { splitJwtClaim } from './schema.ts';

/**
 * A consistent set of resources. Maps are keyed by `namespace/name` (see `serviceKey`) and
 * iterate in key order; resources are deep-frozen. The translator reads this and nothing else.
 */
export interface DesiredState {
  mesh: MeshResource | null;
  services: Map<string, ServiceResource>;
  routes: Map<string, RouteResource>;
  policies: Map<string, PolicyResource>;
  /** Each Policy's bundle bytes (its spec.bundle.file as read with the config, or its spec.rego compiled and signed), by policy key. */
  policyBundles: ReadonlyMap<string, Uint8Array>;
  requestAuthentications: Map<string, RequestAuthenticationResource>;
  /**
   * The text of each RequestAuthentication provider's `jwks.file` as read with the config, by
   * `jwksFileKey(resource key, provider)`.
   */
  jwksFiles: ReadonlyMap<string, string>;
  quotas: Map<string, QuotaResource>;
}

/** What `buildState` needs besides the documents: the files they name, read with the config. */
export interface ReadFiles {
  /** Policy bundles by policy key. */
  readonly policyBundles?: ReadonlyMap<string, Uint8Array>;
  /** RequestAuthentication `jwks.file` texts by `jwksFileKey`. */
  readonly jwksFiles?: ReadonlyMap<string, string>;
}

/** The `DesiredState.jwksFiles` key of a provider's JWKS file. */
export function jwksFileKey(resourceKey: string, provider: string): string {
  return `${resourceKey}#${provider}`;
}

/** The key of a namespaced resource in `DesiredState` maps: `namespace/name`. */
export function serviceKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** The `DesiredState` key of a resource. */
export function resourceKey(resource: Resource): string {
  return serviceKey(resource.metadata.namespace, resource.metadata.name);
}

/**
 * The key of the Service a backend names: `service` is `name` (in the Route's namespace) or
 * `name.namespace`. Does not check that the Service exists; `buildState` does.
 */
export function resolveBackend(route: RouteResource, backend: Backend | BackendDocument): string {
  const dot = backend.service.indexOf('.');
  return dot === -1
    ? serviceKey(route.metadata.namespace, backend.service)
    : serviceKey(backend.service.slice(dot + 1), backend.service.slice(0, dot));
}

/** A state with nothing in it. */
export function emptyState(): DesiredState {
  return { mesh: null, services: new Map(), routes: new Map(), policies: new Map(), policyBundles: new Map(), requestAuthentications: new Map(), jwksFiles: new Map(), quotas: new Map() };
}

/**
 * Indexes `resources` and checks them against each other. Errors name both places when two
 * resources collide (the error sits at the later one, the message names the earlier one)
 * and sit at the exact field of a dangling reference.
 */
export function buildState(resources: readonly Resource[], files: ReadonlyMap<string, Uint8Array> | ReadFiles = new Map()): Result<DesiredState, ConfigError[]> {
  // A Map alone is the Policy bundles (the original signature).
  const read: ReadFiles = files instanceof Map ? { policyBundles: files } : files as ReadFiles;
  const policyBundles = read.policyBundles ?? new Map<string, Uint8Array>();
  const jwksFiles = read.jwksFiles ?? new Map<string, string>();
  const errors: ConfigError[] = [];
  const report = (source: SourceRef, path: string, message: string) => errors.push({ file: source.file, index: source.index, path, message });

  let mesh: MeshResource | null = null;
  const services = new Map<string, ServiceResource>();
  const routes = new Map<string, RouteResource>();
  const policies = new Map<string, PolicyResource>();
  const requestAuthentications = new Map<string, RequestAuthenticationResource>();
  const quotas = new Map<string, QuotaResource>();

  for (const r of resources) {
    const key = resourceKey(r);
    switch (r.kind) {
      case 'Mesh':
        if (mesh === null) mesh = r;
        else if (resourceKey(mesh) === key) report(r.source, '/metadata/name', `duplicate Mesh ${JSON.stringify(key)}: also defined at ${at(mesh.source)}`);
        else report(r.source, '', `only one Mesh is allowed: Mesh ${JSON.stringify(resourceKey(mesh))} is already defined at ${at(mesh.source)}`);
        break;
      case 'Service':
        addUnique(services, key, r, report);
        break;
      case 'Route':
        addUnique(routes, key, r, report);
        break;
      case 'Policy':
        addUnique(policies, key, r, report);
        break;
      case 'RequestAuthentication':
        addUnique(requestAuthentications, key, r, report);
        break;
      case 'Quota':
        addUnique(quotas, key, r, report);
        break;
    }
  }

  for (const [key, policy] of policies) {
    (policy.spec.selector.services ?? []).forEach((name, i) => {
      if (!services.has(serviceKey(policy.metadata.namespace, name))) {
        report(policy.source, pointer('spec', 'selector', 'services', i), `Service ${JSON.stringify(name)} not found in namespace ${JSON.stringify(policy.metadata.namespace)}`);
      }
    });
    if (!policyBundles.has(key)) {
      if (policy.spec.rego !== undefined) report(policy.source, pointer('spec', 'rego', 'inline'), 'the inline Rego was not compiled');
      else report(policy.source, pointer('spec', 'bundle', 'file'), `the bundle ${JSON.stringify(policy.spec.bundle?.file ?? '')} was not read`);
    }
  }

  for (const [key, ra] of requestAuthentications) {
    (ra.spec.selector.services ?? []).forEach((name, i) => {
      if (!services.has(serviceKey(ra.metadata.namespace, name))) {
        report(ra.source, pointer('spec', 'selector', 'services', i), `Service ${JSON.stringify(name)} not found in namespace ${JSON.stringify(ra.metadata.namespace)}`);
      }
    });
    for (const [provider, p] of Object.entries(ra.spec.providers)) {
      if (p.jwks.file !== undefined && !jwksFiles.has(jwksFileKey(key, provider))) {
        report(ra.source, pointer('spec', 'providers', provider, 'jwks', 'file'), `the JWKS file ${JSON.stringify(p.jwks.file)} was not read`);
      }
    }
  }

  for (const quota of quotas.values()) {
    const ns = quota.metadata.namespace;
    (quota.spec.selector.services ?? []).forEach((name, i) => {
      if (!services.has(serviceKey(ns, name))) report(quota.source, pointer('spec', 'selector', 'services', i), `Service ${JSON.stringify(name)} not found in namespace ${JSON.stringify(ns)}`);
    });
    // A claim of a provider nobody verifies would never have a value: the quota would count nothing.
    const providers = new Set<string>();
    for (const ra of requestAuthentications.values()) if (ra.metadata.namespace === ns) for (const p of Object.keys(ra.spec.providers)) providers.add(p);
    const attributes: Array<[string, { jwtClaim?: string }]> = quota.spec.descriptors.map((d, i) => [pointer('spec', 'descriptors', i, 'from', 'jwtClaim'), d.from]);
    if (quota.spec.priority !== undefined) attributes.push([pointer('spec', 'priority', 'from', 'jwtClaim'), quota.spec.priority.from]);
    for (const [path, from] of attributes) {
      if (from.jwtClaim === undefined) continue;
      const { provider } = splitJwtClaim(from.jwtClaim);
      if (!providers.has(provider)) report(quota.source, path, `no RequestAuthentication in namespace ${JSON.stringify(ns)} has a provider ${JSON.stringify(provider)}, got ${JSON.stringify(from.jwtClaim)}`);
    }
  }

  const hostOwners = new Map<string, RouteResource>();
  for (const route of routes.values()) {
    route.spec.hosts.forEach((host, h) => {
      const owner = hostOwners.get(host);
      if (owner === undefined) hostOwners.set(host, route);
      else report(route.source, pointer('spec', 'hosts', h), `host ${JSON.stringify(host)} is already claimed by Route ${JSON.stringify(resourceKey(owner))} at ${at(owner.source)}`);
    });
    route.spec.http.forEach((rule, r) => {
      rule.backends.forEach((backend, b) => {
        const target = services.get(resolveBackend(route, backend));
        if (target === undefined) {
          const [namespace, name] = resolveBackend(route, backend).split('/');
          report(route.source, pointer('spec', 'http', r, 'backends', b, 'service'), `Service ${JSON.stringify(name)} not found in namespace ${JSON.stringify(namespace)}`);
        } else if (backend.port !== undefined && backend.port !== target.spec.port) {
          report(
            route.source,
            pointer('spec', 'http', r, 'backends', b, 'port'),
            `port ${backend.port} does not match Service ${JSON.stringify(resourceKey(target))} port ${target.spec.port}`,
          );
        }
      });
    });
  }

  if (errors.length > 0) return { valid: false, errors: errors.sort(bySource) };
  return {
    valid: true,
    result: {
      mesh, services: sortByKey(services), routes: sortByKey(routes), policies: sortByKey(policies), policyBundles,
      requestAuthentications: sortByKey(requestAuthentications), jwksFiles, quotas: sortByKey(quotas),
    },
  };
}

/**
 * A canonical JSON text of the state's content: keys sorted at every level, resources in key
 * order, `source` left out (moving a document to another file changes nothing). Two states
 * with equal text translate to the same xDS resources.
 */
export function canonicalState(state: DesiredState): string {
  const strip = (r: Resource) => {
    const { source: _source, ...rest } = r;
    return rest;
  };
  return canonicalJson({
    mesh: state.mesh === null ? null : strip(state.mesh),
    services: sortedValues(state.services).map(strip),
    routes: sortedValues(state.routes).map(strip),
    policies: sortedValues(state.policies).map(strip),
    // The bundle's bytes, not its file name, decide whether a Policy changed.
    policyBundles: [...state.policyBundles.keys()].sort().map((k) => [k, createHash('sha256').update(state.policyBundles.get(k)!).digest('hex')]),
    requestAuthentications: sortedValues(state.requestAuthentications).map(strip),
    // As with bundles: the JWKS file's text, not its name, decides.
    jwksFiles: [...state.jwksFiles.keys()].sort().map((k) => [k, state.jwksFiles.get(k)!]),
    quotas: sortedValues(state.quotas).map(strip),
  });
}

/** JSON with object keys sorted at every level. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

function addUnique<R extends ServiceResource | RouteResource | PolicyResource | RequestAuthenticationResource | QuotaResource>(
  map: Map<string, R>,
  key: string,
  resource: R,
  report: (source: SourceRef, path: string, message: string) => void,
): void {
  const existing = map.get(key);
  if (existing === undefined) map.set(key, resource);
  else report(resource.source, '/metadata/name', `duplicate ${resource.kind} ${JSON.stringify(key)}: also defined at ${at(existing.source)}`);
}

function at(source: SourceRef): string {
  return `${source.file}#${source.index}`;
}

function sortedValues<V>(map: Map<string, V>): V[] {
  return [...map.keys()].sort().map((k) => map.get(k) as V);
}

function sortByKey<V>(map: Map<string, V>): Map<string, V> {
  return new Map([...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function bySource(a: ConfigError, b: ConfigError): number {
  if (a.file !== b.file) return a.file < b.file ? -1 : 1;
  return a.index - b.index;
}
