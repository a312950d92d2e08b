/**
 * Policies on Envoy nodes: bundles built by the real `palisade policy build` carry the RBAC
 * analysis; envoyAuthzFilters turns each Policy of the namespace into an RBAC filter (by
 * mode, with the selector as a bypass policy) or an ext_authz filter, and every filter and
 * the authz cluster pass Envoy's PGV rules as the control plane checks them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { anyPack, anyUnpack } from '@bufbuild/protobuf/wkt';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDirectory } from '../../../control/config/load-directory.ts';
import type { DesiredState } from '../../../control/config/state.ts';
import { envoyAuthzClusterName, envoyAuthzFilters, UNSELECTED_POLICY } from '../../../control/translate/envoy-authz.ts';
import { ROUTER_FILTER_NAME } from '../../../control/translate/listeners.ts';
import { ClusterSchema } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ListenerSchema } from '../../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import { RBACSchema } from '../../../xds/gen/envoy/extensions/filters/http/rbac/v3/rbac_pb.js';
import { ExtAuthzSchema } from '../../../xds/gen/envoy/extensions/filters/http/ext_authz/v3/ext_authz_pb.js';
import { RouterSchema } from '../../../xds/gen/envoy/extensions/filters/http/router/v3/router_pb.js';
import { HttpConnectionManagerSchema, type HttpFilter } from '../../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { TYPE_REGISTRY } from '../../../xds/resources/registry.ts';
import { validateMessage } from '../../../xds/validate/pgv.ts';
import { buildPolicy } from '../../helpers/policy-build.ts';
import { opaBuild } from '../../policies/support.ts';

const RBAC_REGO = `package envoy.authz

default allow := false

allow if {
  input.attributes.source.principal == "spiffe://mesh.local/ns/shop/sa/web"
  input.attributes.request.http.method == "GET"
}
`;
const DATA_REGO = `package envoy.authz

default allow := false

allow if input.attributes.source.principal in data.callers
`;

let dir: string;
let src: string;
let state: DesiredState;

function policy(name: string, file: string, extra = ''): string {
  return `---\napiVersion: palisade.dev/v1\nkind: Policy\nmetadata: { name: ${name}, namespace: shop }\nspec:\n  entrypoint: envoy/authz/allow\n  bundle: { file: ${file} }\n${extra}`;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-envoy-authz-'));
  src = await mkdtemp(join(tmpdir(), 'palisade-envoy-authz-src-'));
  await buildPolicy(join(src, 'rbac'), { 'authz.rego': RBAC_REGO }, join(dir, 'rbac.tar.gz'));
  await buildPolicy(join(src, 'data'), { 'authz.rego': DATA_REGO, 'data.json': '{"callers": []}' }, join(dir, 'data.tar.gz'));
  await writeFile(join(dir, 'plain.tar.gz'), await opaBuild({ 'authz.rego': RBAC_REGO }, { entrypoints: ['envoy/authz/allow'] }));
  await writeFile(join(dir, 'garbage.tar.gz'), 'not a bundle');
  await writeFile(join(dir, 'config.yaml'), [
    'apiVersion: palisade.dev/v1\nkind: Service\nmetadata: { name: backend, namespace: shop }\nspec: { port: 8080 }\n',
    policy('a-enforce', 'rbac.tar.gz'),
    policy('b-dry-run', 'rbac.tar.gz', '  mode: dry-run\n'),
    policy('c-audit', 'rbac.tar.gz', '  mode: audit\n'),
    policy('d-selected', 'rbac.tar.gz', '  selector: { services: [backend], pathPrefixes: [/api/] }\n'),
    policy('e-data', 'data.tar.gz'),
    policy('f-plain', 'plain.tar.gz'),
    policy('g-garbage', 'garbage.tar.gz'),
  ].join(''));
  const r = await loadDirectory(dir);
  if (!r.valid) throw new Error(JSON.stringify(r.errors));
  state = r.result;
}, 120_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await rm(src, { recursive: true, force: true });
});

function rbacOf(f: HttpFilter) {
  if (f.configType.case !== 'typedConfig') throw new Error('no typed_config');
  return anyUnpack(f.configType.value, RBACSchema);
}

describe('envoyAuthzFilters', () => {
  it('translates each Policy of the namespace, in key order, to RBAC or ext_authz with the reason', () => {
    const out = envoyAuthzFilters(state, 'shop');
    expect(out.translations.map((t) => [t.policy, t.kind, t.rbacPolicies])).toEqual([
      ['shop/a-enforce', 'rbac', 1], ['shop/b-dry-run', 'rbac', 1], ['shop/c-audit', 'rbac', 1], ['shop/d-selected', 'rbac', 1],
      ['shop/e-data', 'ext_authz', 0], ['shop/f-plain', 'ext_authz', 0], ['shop/g-garbage', 'ext_authz', 0],
    ]);
    expect(out.translations[4]!.reason).toBe('authz.rego:5: `input.attributes.source.principal in data.callers`: reads data (RBAC cannot see bundle data)');
    expect(out.translations[5]!.reason).toBe('the bundle carries no Envoy analysis (rebuild it with palisade policy build)');
    expect(out.problems).toEqual([expect.stringMatching(/^Policy shop\/g-garbage: bundle unreadable: /)]);
    expect(out.filters.map((f) => f.name)).toEqual([
      'envoy.filters.http.rbac.shop.a-enforce', 'envoy.filters.http.rbac.shop.b-dry-run', 'envoy.filters.http.rbac.shop.c-audit', 'envoy.filters.http.rbac.shop.d-selected',
      'envoy.filters.http.ext_authz.shop.e-data', 'envoy.filters.http.ext_authz.shop.f-plain', 'envoy.filters.http.ext_authz.shop.g-garbage',
    ]);
    expect(out.clusters.map((c) => c.name)).toEqual([envoyAuthzClusterName('shop')]);
    expect(envoyAuthzFilters(state, 'default')).toEqual({ filters: [], clusters: [], translations: [], problems: [] });
  });

  it('puts enforce in rules, dry-run in shadow_rules only, audit in both', () => {
    const [enforce, dry, audit] = envoyAuthzFilters(state, 'shop').filters.map(rbacOf);
    expect([enforce!.rules !== undefined, enforce!.shadowRules !== undefined]).toEqual([true, false]);
    expect([dry!.rules !== undefined, dry!.shadowRules !== undefined]).toEqual([false, true]);
    expect([audit!.rules !== undefined, audit!.shadowRules !== undefined]).toEqual([true, true]);
    const p = enforce!.rules!.policies['allow[0]']!;
    expect(p.principals[0]!.identifier).toMatchObject({ case: 'authenticated', value: { principalName: { matchPattern: { case: 'exact', value: 'spiffe://mesh.local/ns/shop/sa/web' } } } });
    expect(p.permissions[0]!.rule).toMatchObject({ case: 'header', value: { name: ':method' } });
    expect(enforce!.rulesStatPrefix).toBe('palisade.shop.a-enforce.');
  });

  it('lets requests outside the selector through with a bypass policy', () => {
    const selected = rbacOf(envoyAuthzFilters(state, 'shop').filters[3]!)!;
    const bypass = selected.rules!.policies[UNSELECTED_POLICY]!;
    expect(bypass.principals[0]!.identifier.case).toBe('any');
    const not = bypass.permissions[0]!.rule;
    if (not.case !== 'notRule') throw new Error(not.case);
    if (not.value.rule.case !== 'andRules') throw new Error(not.value.rule.case);
    const [hosts, paths] = not.value.rule.value.rules;
    expect(hosts!.rule.case === 'orRules' && hosts!.rule.value.rules.map((r) => (r.rule.case === 'header' && r.rule.value.headerMatchSpecifier.case === 'stringMatch' ? r.rule.value.headerMatchSpecifier.value.matchPattern.value : null))).toEqual([
      'backend', 'backend:8080', 'backend.shop', 'backend.shop:8080', 'backend.shop.svc', 'backend.shop.svc:8080',
    ]);
    expect(paths!.rule.case === 'orRules' && paths!.rule.value.rules[0]!.rule.case).toBe('urlPath');
  });

  it('points ext_authz at the authz cluster, failing closed, naming the policy', () => {
    const f = envoyAuthzFilters(state, 'shop').filters[4]!;
    if (f.configType.case !== 'typedConfig') throw new Error('no typed_config');
    const authz = anyUnpack(f.configType.value, ExtAuthzSchema)!;
    expect(authz.failureModeAllow).toBe(false);
    expect(authz.services.case).toBe('grpcService');
    const grpc = authz.services.value as { targetSpecifier: { case: string; value: { clusterName: string } }; initialMetadata: Array<{ key: string; value: string }> };
    expect(grpc.targetSpecifier.value.clusterName).toBe('outbound|9191||palisade-authz.shop');
    expect(grpc.initialMetadata.map((h) => [h.key, h.value])).toEqual([['x-palisade-policy', 'shop/e-data']]);
  });

  it('emits filters and a cluster that pass Envoy\'s PGV rules inside a listener, router last', () => {
    const out = envoyAuthzFilters(state, 'shop');
    const hcm = create(HttpConnectionManagerSchema, {
      statPrefix: 'outbound',
      routeSpecifier: { case: 'routeConfig', value: { name: 'outbound' } },
      httpFilters: [...out.filters, { name: ROUTER_FILTER_NAME, configType: { case: 'typedConfig', value: anyPack(RouterSchema, create(RouterSchema)) } }],
    });
    const listener = create(ListenerSchema, {
      name: 'l',
      address: { address: { case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { case: 'portValue', value: 15001 } } } },
      filterChains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', configType: { case: 'typedConfig', value: anyPack(HttpConnectionManagerSchema, hcm) } }] }],
    });
    expect(validateMessage(ListenerSchema, listener, { registry: TYPE_REGISTRY })).toEqual({ valid: true });
    for (const c of out.clusters) expect(validateMessage(ClusterSchema, c, { registry: TYPE_REGISTRY })).toEqual({ valid: true });
  });
});
