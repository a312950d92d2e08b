/**
 * The inbound listener of an Envoy with an identity of its own (issue #6): an identity group
 * whose service account names a Service of its namespace gets `inbound_15006` terminating mTLS
 * (SDS `default` + `ROOTCA`, client certificate required), the Policies selecting that Service
 * as RBAC filters before the router, and the local workload's STATIC cluster; PERMISSIVE adds
 * a plaintext chain and tls_inspector. Every resource passes Envoy's PGV rules as the control
 * plane checks them, and the snapshot is consistent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import type { Message } from '@bufbuild/protobuf';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDirectory } from '../../../control/config/load-directory.ts';
import type { DesiredState } from '../../../control/config/state.ts';
import { translate } from '../../../control/translate/translator.ts';
import type { NodeTarget } from '../../../control/translate/node-kind.ts';
import { TLS_INSPECTOR_FILTER_NAME } from '../../../control/translate/inbound.ts';
import { ROUTER_FILTER_NAME } from '../../../control/translate/listeners.ts';
import { Cluster_DiscoveryType, type Cluster } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { Listener } from '../../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import {
  HttpConnectionManagerSchema, HttpConnectionManager_ForwardClientCertDetails, type HttpConnectionManager,
} from '../../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { RBACSchema } from '../../../xds/gen/envoy/extensions/filters/http/rbac/v3/rbac_pb.js';
import { DownstreamTlsContextSchema, type DownstreamTlsContext } from '../../../xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { Snapshot } from '../../../xds/cache/snapshot.ts';
import { inconsistencies } from '../../../xds/cache/consistency.ts';
import { getResourceType, TYPE_REGISTRY } from '../../../xds/resources/registry.ts';
import { CLUSTER_TYPE_URL, LISTENER_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { validateMessage } from '../../../xds/validate/pgv.ts';
import { buildPolicy } from '../../helpers/policy-build.ts';

const TD = 'mesh.local';
const BACKEND = `spiffe://${TD}/ns/shop/sa/backend`;
const RBAC_REGO = `package envoy.authz

default allow := false

allow if {
  input.attributes.source.principal == "spiffe://mesh.local/ns/shop/sa/web"
  input.attributes.request.http.method == "GET"
}
`;
const BUNDLE = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

let dir: string;
let src: string;

function policy(name: string, selector: string, file = 'rbac.tar.gz'): string {
  return `---\napiVersion: palisade.dev/v1\nkind: Policy\nmetadata: { name: ${name}, namespace: shop }\nspec:\n  entrypoint: envoy/authz/allow\n  bundle: { file: ${file} }\n  selector: ${selector}\n`;
}

async function stateWith(mode: 'STRICT' | 'PERMISSIVE', extra = ''): Promise<DesiredState> {
  await writeFile(join(dir, 'config.yaml'), [
    `apiVersion: palisade.dev/v1\nkind: Mesh\nmetadata: { name: mesh }\nspec: { trustDomain: ${TD}, mtls: { mode: ${mode} } }\n`,
    '---\napiVersion: palisade.dev/v1\nkind: Service\nmetadata: { name: backend, namespace: shop }\nspec: { port: 8080 }\n',
    '---\napiVersion: palisade.dev/v1\nkind: Service\nmetadata: { name: other, namespace: shop }\nspec: { port: 9090 }\n',
    policy('a-backend', '{ services: [backend], pathPrefixes: [/api/] }'),
    policy('b-other', '{ services: [other] }'),
    policy('c-all', '{}'),
    extra,
  ].join(''));
  const r = await loadDirectory(dir);
  if (!r.valid) throw new Error(JSON.stringify(r.errors));
  return r.result;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-inbound-'));
  src = await mkdtemp(join(tmpdir(), 'palisade-inbound-src-'));
  await buildPolicy(join(src, 'rbac'), { 'authz.rego': RBAC_REGO }, join(dir, 'rbac.tar.gz'));
  await writeFile(join(dir, 'garbage.tar.gz'), 'not a bundle');
}, 120_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await rm(src, { recursive: true, force: true });
});

const identityTarget = (identity: string): NodeTarget => ({ kind: 'envoy', namespace: 'shop', identity });

function inboundOf(listeners: Message[]): Listener | undefined {
  return (listeners as Listener[]).find((l) => l.name === 'inbound_15006');
}

function hcmOf(chain: Listener['filterChains'][number]): HttpConnectionManager {
  const f = chain.filters[0]!;
  if (f.configType.case !== 'typedConfig') throw new Error('no typed_config');
  return anyUnpack(f.configType.value, HttpConnectionManagerSchema)!;
}

function tlsOf(chain: Listener['filterChains'][number]): DownstreamTlsContext {
  const ts = chain.transportSocket?.configType;
  if (ts?.case !== 'typedConfig') throw new Error('no transport socket');
  return anyUnpack(ts.value, DownstreamTlsContextSchema)!;
}

/** What the control plane's #build checks: every resource against PGV, Any payloads included. */
function pgvProblems(resources: Record<string, Message[]>): string[] {
  const out: string[] = [];
  for (const [typeUrl, list] of Object.entries(resources)) {
    const type = getResourceType(typeUrl);
    for (const r of list) {
      const v = validateMessage(type.schema, r, { registry: TYPE_REGISTRY });
      if (!v.valid) out.push(...v.errors);
    }
  }
  return out;
}

describe('inbound listener for an Envoy identity group', () => {
  it('terminates mTLS with SDS default and ROOTCA, requires a client certificate, and enforces the Service\'s Policies', async () => {
    const state = await stateWith('STRICT');
    const resources = translate(state, identityTarget(BACKEND), { trustBundle: BUNDLE });
    expect(pgvProblems(resources)).toEqual([]);
    expect(inconsistencies(Snapshot.fromResources(resources))).toEqual([]);
    const listeners = resources[LISTENER_TYPE_URL]!;
    expect((listeners as Listener[]).map((l) => l.name)).toEqual(['127.0.0.1_15001', 'inbound_15006']);
    const inbound = inboundOf(listeners)!;
    expect(inbound.address?.address).toMatchObject({ case: 'socketAddress', value: { address: '0.0.0.0', portSpecifier: { value: 15006 } } });
    expect(inbound.listenerFilters).toEqual([]);
    expect(inbound.filterChains).toHaveLength(1);
    const chain = inbound.filterChains[0]!;
    expect(chain.filterChainMatch).toBeUndefined();
    expect(chain.transportSocket?.name).toBe('envoy.transport_sockets.tls');
    const tls = tlsOf(chain);
    expect(tls.requireClientCertificate).toBe(true);
    expect(tls.commonTlsContext!.tlsCertificateSdsSecretConfigs.map((s) => [s.name, s.sdsConfig?.configSourceSpecifier.case])).toEqual([['default', 'ads']]);
    const v = tls.commonTlsContext!.validationContextType;
    if (v.case !== 'combinedValidationContext') throw new Error(v.case);
    expect(v.value.validationContextSdsSecretConfig?.name).toBe('ROOTCA');
    expect(v.value.validationContextSdsSecretConfig?.sdsConfig?.configSourceSpecifier.case).toBe('ads');
    expect(v.value.defaultValidationContext?.matchTypedSubjectAltNames.map((m) => m.matcher?.matchPattern)).toEqual([{ case: 'prefix', value: `spiffe://${TD}/` }]);

    const hcm = hcmOf(chain);
    // Only the Policies selecting backend (a-backend, c-all), RBAC, before the router.
    expect(hcm.httpFilters.map((f) => f.name)).toEqual(['envoy.filters.http.rbac.shop.a-backend', 'envoy.filters.http.rbac.shop.c-all', ROUTER_FILTER_NAME]);
    const rbacFilter = hcm.httpFilters[0]!;
    if (rbacFilter.configType.case !== 'typedConfig') throw new Error('no typed_config');
    const rbac = anyUnpack(rbacFilter.configType.value, RBACSchema)!;
    expect(rbac.rules!.policies['allow[0]']!.principals[0]!.identifier).toMatchObject({
      case: 'authenticated', value: { principalName: { matchPattern: { case: 'exact', value: 'spiffe://mesh.local/ns/shop/sa/web' } } },
    });
    // The Service is known: the bypass matches pathPrefixes only, not :authority.
    const bypass = rbac.rules!.policies['palisade.unselected']!.permissions[0]!.rule;
    expect(bypass.case === 'notRule' && bypass.value.rule.case).toBe('orRules');
    expect(hcm.forwardClientCertDetails).toBe(HttpConnectionManager_ForwardClientCertDetails.SANITIZE_SET);
    expect(hcm.setCurrentClientCertDetails?.uri).toBe(true);
    expect(hcm.routeSpecifier.case).toBe('routeConfig');
    const rc = hcm.routeSpecifier.case === 'routeConfig' ? hcm.routeSpecifier.value : undefined;
    expect(rc!.virtualHosts.map((vh) => vh.domains)).toEqual([['*']]);
    expect(rc!.virtualHosts[0]!.routes[0]!.action).toMatchObject({ case: 'route', value: { clusterSpecifier: { case: 'cluster', value: 'inbound|8080||backend' } } });

    const local = (resources[CLUSTER_TYPE_URL] as Cluster[]).find((c) => c.name === 'inbound|8080||backend')!;
    expect(local.clusterDiscoveryType).toEqual({ case: 'type', value: Cluster_DiscoveryType.STATIC });
    expect(local.loadAssignment!.endpoints[0]!.lbEndpoints[0]!.hostIdentifier).toMatchObject({
      case: 'endpoint', value: { address: { address: { case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { value: 8080 } } } } },
    });
  });

  it('adds a plaintext chain and tls_inspector under PERMISSIVE', async () => {
    const state = await stateWith('PERMISSIVE');
    const resources = translate(state, identityTarget(BACKEND), { trustBundle: BUNDLE });
    expect(pgvProblems(resources)).toEqual([]);
    const inbound = inboundOf(resources[LISTENER_TYPE_URL]!)!;
    expect(inbound.listenerFilters.map((f) => [f.name, f.configType.case === 'typedConfig' ? f.configType.value.typeUrl : null])).toEqual([
      [TLS_INSPECTOR_FILTER_NAME, 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector'],
    ]);
    expect(inbound.filterChains.map((c) => [c.filterChainMatch?.transportProtocol, c.transportSocket?.name ?? null])).toEqual([
      ['tls', 'envoy.transport_sockets.tls'],
      ['raw_buffer', null],
    ]);
    expect(inbound.filterChains.map((c) => hcmOf(c).httpFilters.map((f) => f.name).at(-1))).toEqual([ROUTER_FILTER_NAME, ROUTER_FILTER_NAME]);
  });

  it('adds the authz cluster once when a Policy of the Service falls back to ext_authz', async () => {
    const state = await stateWith('STRICT', policy('d-garbage', '{ services: [backend] }', 'garbage.tar.gz'));
    const resources = translate(state, identityTarget(BACKEND), { trustBundle: BUNDLE });
    expect(pgvProblems(resources)).toEqual([]);
    expect(inconsistencies(Snapshot.fromResources(resources))).toEqual([]);
    const hcm = hcmOf(inboundOf(resources[LISTENER_TYPE_URL]!)!.filterChains[0]!);
    expect(hcm.httpFilters.map((f) => f.name)).toEqual([
      'envoy.filters.http.rbac.shop.a-backend', 'envoy.filters.http.rbac.shop.c-all', 'envoy.filters.http.ext_authz.shop.d-garbage', ROUTER_FILTER_NAME,
    ]);
    const names = (resources[CLUSTER_TYPE_URL] as Cluster[]).map((c) => c.name);
    expect(names.filter((n) => n.startsWith('inbound|') || n.includes('palisade-authz'))).toEqual(['inbound|8080||backend', 'outbound|9191||palisade-authz.shop']);
  });

  it('gives no inbound listener without a Service named like the service account, to plain Envoy groups, sidecars and gRPC', async () => {
    const state = await stateWith('STRICT');
    const names = (target: NodeTarget, trustBundle: string | null = BUNDLE) => (translate(state, target, { trustBundle })[LISTENER_TYPE_URL] as Listener[]).map((l) => l.name);
    expect(names(identityTarget(`spiffe://${TD}/ns/shop/sa/nobody`))).toEqual(['127.0.0.1_15001']);
    // A Service of that name in another namespace does not count.
    expect(names({ kind: 'envoy', namespace: 'shop', identity: `spiffe://${TD}/ns/elsewhere/sa/backend` })).toEqual(['127.0.0.1_15001']);
    expect(names({ kind: 'envoy', namespace: 'shop' })).toEqual(['127.0.0.1_15001']);
    expect(names({ kind: 'sidecar', namespace: 'shop' })).toEqual(['127.0.0.1_15001']);
    expect(names({ kind: 'grpc', namespace: 'shop' })).not.toContain('inbound_15006');
    // No trust bundle: the listener's ROOTCA would never come, so no listener.
    expect(names(identityTarget(BACKEND), null)).toEqual(['127.0.0.1_15001']);
    const clusters = (translate(state, { kind: 'envoy', namespace: 'shop' }, { trustBundle: BUNDLE })[CLUSTER_TYPE_URL] as Cluster[]).map((c) => c.name);
    expect(clusters.some((c) => c.startsWith('inbound|'))).toBe(false);
  });
});
