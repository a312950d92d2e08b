/**
 * Policies for Envoy node groups (issue #6, "Envoy parity"). Envoy cannot run Palisade's wasm
 * bundles, so each Policy of the group's namespace becomes one HTTP filter on the HCM, placed
 * before the router:
 *
 *   bundle data says expressible  →  envoy.filters.http.rbac (rules from the bundle's
 *                                     data.palisade.envoy_rbac[entrypoint], written and signed
 *                                     by `palisade policy build`, policies/rbac-analysis.ts)
 *   otherwise                     →  envoy.filters.http.ext_authz, gRPC, to the Palisade
 *                                     authz cluster (ENVOY_AUTHZ_PORT on the Envoy's host),
 *                                     failure_mode_allow false.
 *
 * The ext_authz server is a Palisade sidecar with a bootstrap `extAuthz` section
 * (sidecar/authz/ext-authz-server.ts) on the Envoy's host; without one the Envoy denies (403)
 * every request such a Policy judges: fail closed rather than serve unauthorized. The
 * translator puts these filters on the inbound listener of an Envoy with an identity of its
 * own (inbound.ts), where mTLS is terminated and principal rules see the peer's SPIFFE ID.
 *
 * Selection: with `options.service` (the inbound listener: the Envoy fronts that Service) only
 * the Policies selecting it get a filter, and `pathPrefixes` is matched in the rules. Without
 * it the Service is not known, so a Policy's selector is expressed in the rules themselves:
 * `services` matches `:authority` against the hosts of those Services, `pathPrefixes` matches
 * url_path prefixes. Either way requests outside the selection pass via a policy named
 * UNSELECTED_POLICY. ext_authz sends every request and leaves selection to the server (it
 * gets the policy key as gRPC metadata).
 *
 * Modes: enforce → `rules`; dry-run → `shadow_rules` only (stats and dynamic metadata, no
 * 403); audit → `rules` and the same `shadow_rules`, so every decision is recorded as
 * dynamic metadata (`shadow_engine_result`) for access logs.
 */
import { staticCluster } from './static-cluster.ts';
import { create, fromJson, type JsonValue } from '@bufbuild/protobuf';
import { anyPack, DurationSchema } from '@bufbuild/protobuf/wkt';
import { RBACSchema as RbacConfigSchema, type RBAC as RbacConfig } from '../../xds/gen/envoy/config/rbac/v3/rbac_pb.js';
import { RBACSchema } from '../../xds/gen/envoy/extensions/filters/http/rbac/v3/rbac_pb.js';
import { ExtAuthzSchema } from '../../xds/gen/envoy/extensions/filters/http/ext_authz/v3/ext_authz_pb.js';
import { ApiVersion } from '../../xds/gen/envoy/config/core/v3/config_source_pb.js';
import { HttpFilterSchema, type HttpFilter } from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import type { Cluster } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { readBundle } from '../../policies/bundle.ts';
import { envoyRbacFromData, type EnvoyRbacJson, type RbacAnalysis } from '../../policies/rbac-analysis.ts';
import type { DesiredState } from '../config/state.ts';
import type { PolicyResource } from '../config/schema.ts';
import { serviceHosts } from './names.ts';

export const RBAC_FILTER_NAME = 'envoy.filters.http.rbac';
export const EXT_AUTHZ_FILTER_NAME = 'envoy.filters.http.ext_authz';
/** The port the Palisade authz server (ext_authz, gRPC) will listen on, next to the Envoy. */
export const ENVOY_AUTHZ_PORT = 9191;
export const ENVOY_AUTHZ_ADDRESS = '127.0.0.1';
/** The RBAC policy that lets through requests a Policy's selector does not select. */
export const UNSELECTED_POLICY = 'palisade.unselected';
/** gRPC metadata naming the Policy (namespace/name) on each ext_authz Check. */
export const POLICY_METADATA_KEY = 'x-palisade-policy';

/** The authz cluster name of a namespace, Istio-style like the Service clusters. */
export function envoyAuthzClusterName(namespace: string): string {
  return `outbound|${ENVOY_AUTHZ_PORT}||palisade-authz.${namespace}`;
}

/** How one Policy is enforced on an Envoy. */
export interface EnvoyPolicyTranslation {
  readonly policy: string;
  readonly kind: 'rbac' | 'ext_authz';
  /** RBAC: the number of policies (selection bypass excluded); ext_authz: 0. */
  readonly rbacPolicies: number;
  /** Why ext_authz (the analysis's refusal, or a missing analysis); '' for RBAC. */
  readonly reason: string;
}

export interface EnvoyAuthzOutput {
  /** HTTP filters to insert, in Policy key order, before the router. */
  readonly filters: HttpFilter[];
  /** The authz cluster when any filter is ext_authz (its CDS entry), else empty. */
  readonly clusters: Cluster[];
  readonly translations: EnvoyPolicyTranslation[];
  /** Bundles that could not be read; those Policies fall back to ext_authz (fail closed). */
  readonly problems: string[];
}

/** Bundle data by bundle bytes: translate() runs per snapshot, a gunzip per Policy is not free. */
const DATA_CACHE = new WeakMap<Uint8Array, Readonly<Record<string, unknown>>>();

function bundleData(bytes: Uint8Array): Readonly<Record<string, unknown>> {
  let data = DATA_CACHE.get(bytes);
  if (data === undefined) {
    data = readBundle(bytes).data;
    DATA_CACHE.set(bytes, data);
  }
  return data;
}

/**
 * The Envoy analysis recorded in a Policy's bundle: its verdict, or null when the bundle
 * carries none; throws PAL_ERR_POLICY_BUNDLE_INVALID for an unreadable bundle.
 */
export function policyEnvoyAnalysis(state: DesiredState, key: string, policy: PolicyResource): RbacAnalysis | null {
  const bytes = state.policyBundles.get(key);
  if (bytes === undefined) return null;
  return envoyRbacFromData(bundleData(bytes), policy.spec.entrypoint);
}

/**
 * The permission that matches requests the selector selects, or null for "every request".
 * `serviceKnown`: the listener fronts a Service the selector selects (the inbound listener),
 * so only `pathPrefixes` is left to match.
 */
function selection(state: DesiredState, policy: PolicyResource, serviceKnown: boolean): Record<string, unknown> | null {
  const ns = policy.metadata.namespace;
  const parts: Array<Record<string, unknown>> = [];
  const hosts = (policy.spec.selector.services ?? []).flatMap((name) => {
    const svc = state.services.get(`${ns}/${name}`);
    return svc === undefined ? [] : serviceHosts(svc, ns);
  });
  if (!serviceKnown && (policy.spec.selector.services ?? []).length > 0) {
    // A selector naming only unknown Services selects nothing; config validation refuses that anyway.
    parts.push({ or_rules: { rules: hosts.length === 0 ? [{ not_rule: { any: true } }] : hosts.map((h) => ({ header: { name: ':authority', string_match: { exact: h } } })) } });
  }
  const prefixes = policy.spec.selector.pathPrefixes ?? [];
  if (prefixes.length > 0) parts.push({ or_rules: { rules: prefixes.map((p) => ({ url_path: { path: { prefix: p } } })) } });
  if (parts.length === 0) return null;
  return parts.length === 1 ? parts[0]! : { and_rules: { rules: parts } };
}

function rbacConfig(rbac: EnvoyRbacJson, selected: Record<string, unknown> | null): RbacConfig {
  const policies: Record<string, unknown> = { ...rbac.policies };
  if (selected !== null) policies[UNSELECTED_POLICY] = { permissions: [{ not_rule: selected }], principals: [{ any: true }] };
  return fromJson(RbacConfigSchema, { action: 'ALLOW', policies } as JsonValue);
}

function statPrefix(policy: PolicyResource): string {
  return `palisade.${policy.metadata.namespace}.${policy.metadata.name}.`;
}

function rbacFilter(policy: PolicyResource, config: RbacConfig): HttpFilter {
  const mode = policy.spec.mode;
  const rbac = create(RBACSchema, {
    ...(mode !== 'dry-run' ? { rules: config, rulesStatPrefix: statPrefix(policy) } : {}),
    ...(mode !== 'enforce' ? { shadowRules: config, shadowRulesStatPrefix: statPrefix(policy) } : {}),
  });
  return create(HttpFilterSchema, {
    name: `${RBAC_FILTER_NAME}.${policy.metadata.namespace}.${policy.metadata.name}`,
    configType: { case: 'typedConfig', value: anyPack(RBACSchema, rbac) },
  });
}

function extAuthzFilter(key: string, policy: PolicyResource): HttpFilter {
  const authz = create(ExtAuthzSchema, {
    services: {
      case: 'grpcService',
      value: {
        targetSpecifier: { case: 'envoyGrpc', value: { clusterName: envoyAuthzClusterName(policy.metadata.namespace) } },
        timeout: create(DurationSchema, { nanos: 500_000_000 }),
        initialMetadata: [{ key: POLICY_METADATA_KEY, value: key }],
      },
    },
    transportApiVersion: ApiVersion.V3,
    failureModeAllow: false,
    includePeerCertificate: true,
    statPrefix: `palisade.${policy.metadata.namespace}.${policy.metadata.name}`,
  });
  return create(HttpFilterSchema, {
    name: `${EXT_AUTHZ_FILTER_NAME}.${policy.metadata.namespace}.${policy.metadata.name}`,
    configType: { case: 'typedConfig', value: anyPack(ExtAuthzSchema, authz) },
  });
}

/** The authz cluster: STATIC, HTTP/2 (gRPC), ENVOY_AUTHZ_ADDRESS:ENVOY_AUTHZ_PORT. */
export function envoyAuthzCluster(namespace: string): Cluster {
  return staticCluster({ name: envoyAuthzClusterName(namespace), address: ENVOY_AUTHZ_ADDRESS, port: ENVOY_AUTHZ_PORT, connectTimeoutSeconds: 1, http2: true });
}

export interface EnvoyAuthzOptions {
  /**
   * The Service (name, in `namespace`) the listener fronts: only the Policies selecting it
   * (no `services` selector, or one naming it) get a filter, and their rules match
   * `pathPrefixes` only. Absent: every Policy of the namespace, the selector in the rules.
   */
  readonly service?: string;
}

/** Whether a Policy's selector selects Service `name` of its namespace. */
export function policySelectsService(policy: PolicyResource, name: string): boolean {
  const services = policy.spec.selector.services ?? [];
  return services.length === 0 || services.includes(name);
}

/**
 * The authorization filters of an Envoy group in `namespace`: one per Policy of the
 * namespace (of those selecting `options.service` when given), in key order (every one must
 * allow a request). Pure apart from a cache of decoded bundle data.
 */
export function envoyAuthzFilters(state: DesiredState, namespace: string, options: EnvoyAuthzOptions = {}): EnvoyAuthzOutput {
  const filters: HttpFilter[] = [];
  const translations: EnvoyPolicyTranslation[] = [];
  const problems: string[] = [];
  const service = options.service;
  for (const [key, policy] of state.policies) {
    if (policy.metadata.namespace !== namespace) continue;
    if (service !== undefined && !policySelectsService(policy, service)) continue;
    let analysis: RbacAnalysis | null = null;
    let reason = '';
    try {
      analysis = policyEnvoyAnalysis(state, key, policy);
      if (analysis === null) reason = 'the bundle carries no Envoy analysis (rebuild it with palisade policy build)';
      else if (!analysis.expressible) reason = analysis.reason;
    } catch (err) {
      reason = `bundle unreadable: ${(err as Error).message}`;
      problems.push(`Policy ${key}: ${reason}`);
    }
    if (analysis?.expressible === true) {
      let config: RbacConfig | null = null;
      try {
        config = rbacConfig(analysis.rbac, selection(state, policy, service !== undefined));
      } catch (err) {
        reason = `the bundle's RBAC rules are not valid envoy.config.rbac.v3.RBAC: ${(err as Error).message}`;
        problems.push(`Policy ${key}: ${reason}`);
      }
      if (config !== null) {
        filters.push(rbacFilter(policy, config));
        translations.push({ policy: key, kind: 'rbac', rbacPolicies: Object.keys(analysis.rbac.policies).length, reason: '' });
        continue;
      }
    }
    filters.push(extAuthzFilter(key, policy));
    translations.push({ policy: key, kind: 'ext_authz', rbacPolicies: 0, reason });
  }
  const clusters = translations.some((t) => t.kind === 'ext_authz') ? [envoyAuthzCluster(namespace)] : [];
  return { filters, clusters, translations, problems };
}
