/**
 * Auto-mTLS translation (issue #5): endpoints with a SPIFFE identity make their cluster
 * carry Istio's transport_socket_matches for Envoy and sidecar clients (never for proxyless
 * gRPC), Envoy groups of one identity get its certificate as SDS `default`, and every
 * resource still passes Envoy's validation rules.
 */
import { describe, expect, it } from 'vitest';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { toBinary, type Message } from '@bufbuild/protobuf';
import { stateFrom } from '../../helpers/desired-state.ts';
import { translate, type ResourcesByType } from '../../../control/translate/translator.ts';
import { groupKey, parseGroupKey, type ClientKind } from '../../../control/translate/node-kind.ts';
import {
  DEFAULT_CERTIFICATE_SECRET, MTLS_MATCH_NAME, PLAINTEXT_MATCH_NAME, ROOT_CA_SECRET, TRANSPORT_SOCKET_MATCH_FILTER,
} from '../../../control/translate/mtls.ts';
import { DEFAULT_CERTIFICATE_SECRET as SIDECAR_DEFAULT, ROOT_CA_SECRET as SIDECAR_ROOTCA } from '../../../sidecar/tls/secrets.ts';
import { getResourceType, TYPE_REGISTRY } from '../../../xds/resources/registry.ts';
import { validateMessage } from '../../../xds/validate/pgv.ts';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, SECRET_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import type { Cluster } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { Cluster_DiscoveryType } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { ClusterLoadAssignment } from '../../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { Secret } from '../../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import { UpstreamTlsContextSchema } from '../../../xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { SubjectAltNameMatcher_SanType } from '../../../xds/gen/envoy/extensions/transport_sockets/tls/v3/common_pb.js';
import { RawBufferSchema } from '../../../xds/gen/envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer_pb.js';

const WEB_X = 'spiffe://td.local/ns/shop/sa/web-x';
const WEB_Y = 'spiffe://td.local/ns/shop/sa/web-y';

function state(protocol: 'http' | 'grpc' = 'http') {
  return stateFrom({
    'mesh.yaml': `apiVersion: palisade.dev/v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  protocol: ${protocol}
  port: 8080
  endpoints:
    - { address: 10.0.0.2, port: 80, identity: "${WEB_Y}" }
    - { address: 10.0.0.1, port: 80, identity: "${WEB_X}" }
    - { address: 10.0.0.3, port: 80 }
    - { address: 10.0.0.4, port: 80, identity: "${WEB_X}" }
---
apiVersion: palisade.dev/v1
kind: Service
metadata: { name: legacy, namespace: shop }
spec:
  port: 80
  endpoints:
    - { address: 10.0.1.1, port: 80 }
---
apiVersion: palisade.dev/v1
kind: Service
metadata: { name: ext, namespace: shop }
spec:
  port: 443
  endpoints:
    - { address: ext.example.com, port: 443, identity: "spiffe://td.local/ns/shop/sa/ext" }
`,
  });
}

function clusterOf(resources: ResourcesByType, name: string): Cluster {
  const c = (resources[CLUSTER_TYPE_URL] as Cluster[]).find((x) => x.name === name);
  if (!c) throw new Error(`no cluster ${name}`);
  return c;
}

function validateAll(resources: ResourcesByType): string[] {
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

function bytes(resources: ResourcesByType): string[] {
  return Object.entries(resources).flatMap(([typeUrl, list]) => list.map((r: Message) => Buffer.from(toBinary(getResourceType(typeUrl).schema, r)).toString('hex')));
}

describe('auto-mTLS clusters', () => {
  it.each<ClientKind>(['envoy', 'sidecar'])('gives a %s client transport socket matches for a cluster with identities', (kind) => {
    const out = translate(state(), { kind, namespace: 'shop' });
    const cluster = clusterOf(out, 'outbound|8080||web.shop');
    expect(cluster.transportSocketMatches.map((m) => [m.name, m.match, m.transportSocket?.name])).toEqual([
      [MTLS_MATCH_NAME, { tlsMode: 'mtls' }, 'envoy.transport_sockets.tls'],
      [PLAINTEXT_MATCH_NAME, {}, 'envoy.transport_sockets.raw_buffer'],
    ]);
    const mtls = cluster.transportSocketMatches[0]!.transportSocket!;
    expect(mtls.configType.case).toBe('typedConfig');
    const tls = anyUnpack(mtls.configType.value as never, UpstreamTlsContextSchema)!;
    expect(tls.sni).toBe('');
    const common = tls.commonTlsContext!;
    expect(common.tlsCertificateSdsSecretConfigs.map((s) => [s.name, s.sdsConfig?.configSourceSpecifier.case])).toEqual([[DEFAULT_CERTIFICATE_SECRET, 'ads']]);
    expect(common.alpnProtocols).toEqual(['http/1.1']);
    expect(common.validationContextType.case).toBe('combinedValidationContext');
    const combined = common.validationContextType.value as { defaultValidationContext: { matchTypedSubjectAltNames: Array<{ sanType: number; matcher: { matchPattern: { case: string; value: string } } }> }; validationContextSdsSecretConfig: { name: string; sdsConfig: { configSourceSpecifier: { case: string } } } };
    // Distinct and sorted, whatever the endpoint order.
    expect(combined.defaultValidationContext.matchTypedSubjectAltNames.map((m) => [m.sanType, m.matcher.matchPattern.case, m.matcher.matchPattern.value])).toEqual([
      [SubjectAltNameMatcher_SanType.URI, 'exact', WEB_X],
      [SubjectAltNameMatcher_SanType.URI, 'exact', WEB_Y],
    ]);
    expect(combined.validationContextSdsSecretConfig.name).toBe(ROOT_CA_SECRET);
    expect(combined.validationContextSdsSecretConfig.sdsConfig.configSourceSpecifier.case).toBe('ads');
    const raw = cluster.transportSocketMatches[1]!.transportSocket!.configType;
    expect(raw.case === 'typedConfig' && anyUnpack(raw.value, RawBufferSchema)).toBeTruthy();
    expect(validateAll(out)).toEqual([]);
  });

  it('tags exactly the endpoints with an identity for the mtls match', () => {
    const out = translate(state(), { kind: 'envoy', namespace: 'shop' });
    const cla = (out[ENDPOINT_TYPE_URL] as ClusterLoadAssignment[]).find((c) => c.clusterName === 'outbound|8080||web.shop')!;
    const tagged = cla.endpoints.flatMap((l) => l.lbEndpoints).map((e) => {
      const addr = e.hostIdentifier.case === 'endpoint' ? e.hostIdentifier.value.address?.address : undefined;
      return [addr?.case === 'socketAddress' ? addr.value.address : '', e.metadata?.filterMetadata[TRANSPORT_SOCKET_MATCH_FILTER] ?? null];
    });
    expect(tagged).toEqual([
      ['10.0.0.2', { tlsMode: 'mtls' }],
      ['10.0.0.1', { tlsMode: 'mtls' }],
      ['10.0.0.3', null],
      ['10.0.0.4', { tlsMode: 'mtls' }],
    ]);
  });

  it('offers h2 to a gRPC Service', () => {
    const cluster = clusterOf(translate(state('grpc'), { kind: 'envoy', namespace: 'shop' }), 'outbound|8080||web.shop');
    const ts = cluster.transportSocketMatches[0]!.transportSocket!.configType;
    expect(ts.case === 'typedConfig' && anyUnpack(ts.value, UpstreamTlsContextSchema)!.commonTlsContext!.alpnProtocols).toEqual(['h2']);
  });

  it('does the same for a STRICT_DNS cluster, on its inline load assignment', () => {
    const cluster = clusterOf(translate(state(), { kind: 'envoy', namespace: 'shop' }), 'outbound|443||ext.shop');
    expect(cluster.clusterDiscoveryType).toEqual({ case: 'type', value: Cluster_DiscoveryType.STRICT_DNS });
    expect(cluster.transportSocketMatches.map((m) => m.name)).toEqual([MTLS_MATCH_NAME, PLAINTEXT_MATCH_NAME]);
    expect(cluster.loadAssignment!.endpoints[0]!.lbEndpoints[0]!.metadata?.filterMetadata[TRANSPORT_SOCKET_MATCH_FILTER]).toEqual({ tlsMode: 'mtls' });
  });

  it('leaves a cluster without identities plaintext', () => {
    const cluster = clusterOf(translate(state(), { kind: 'envoy', namespace: 'shop' }), 'outbound|80||legacy.shop');
    expect(cluster.transportSocketMatches).toEqual([]);
  });

  it('leaves proxyless gRPC clients plaintext', () => {
    const out = translate(state(), { kind: 'grpc', namespace: 'shop' });
    for (const c of out[CLUSTER_TYPE_URL] as Cluster[]) expect(c.transportSocketMatches).toEqual([]);
    for (const cla of out[ENDPOINT_TYPE_URL] as ClusterLoadAssignment[]) {
      for (const e of cla.endpoints.flatMap((l) => l.lbEndpoints)) expect(e.metadata).toBeUndefined();
    }
  });

  it('translates the same input to the same bytes', () => {
    const a = translate(state(), { kind: 'envoy', namespace: 'shop' }, { trustBundle: 'B', workloadCertificate: { chainPem: 'C', keyPem: 'K' } });
    const b = translate(state(), { kind: 'envoy', namespace: 'shop' }, { trustBundle: 'B', workloadCertificate: { chainPem: 'C', keyPem: 'K' } });
    expect(bytes(a)).toEqual(bytes(b));
  });

  it('uses the SDS names the sidecar reads', () => {
    expect([DEFAULT_CERTIFICATE_SECRET, ROOT_CA_SECRET]).toEqual([SIDECAR_DEFAULT, SIDECAR_ROOTCA]);
  });
});

describe('the SDS Secret default', () => {
  const cert = { chainPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', keyPem: '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n' };

  it('goes to an Envoy group with its certificate and key inline, after ROOTCA', () => {
    const out = translate(state(), { kind: 'envoy', namespace: 'shop', identity: WEB_X }, { trustBundle: 'ROOTS', workloadCertificate: cert });
    const secrets = out[SECRET_TYPE_URL] as Secret[];
    expect(secrets.map((s) => s.name)).toEqual([ROOT_CA_SECRET, DEFAULT_CERTIFICATE_SECRET]);
    expect(secrets[1]!.type).toMatchObject({
      case: 'tlsCertificate',
      value: { certificateChain: { specifier: { case: 'inlineString', value: cert.chainPem } }, privateKey: { specifier: { case: 'inlineString', value: cert.keyPem } } },
    });
    expect(validateAll(out)).toEqual([]);
  });

  it.each<ClientKind>(['sidecar', 'grpc'])('never goes to a %s group', (kind) => {
    const out = translate(state(), { kind, namespace: 'shop' }, { trustBundle: 'ROOTS', workloadCertificate: cert });
    expect(((out[SECRET_TYPE_URL] ?? []) as Secret[]).map((s) => s.name)).not.toContain(DEFAULT_CERTIFICATE_SECRET);
  });
});

describe('group keys of one identity', () => {
  it('round-trip', () => {
    const t = { kind: 'envoy' as const, namespace: 'shop', identity: WEB_X };
    expect(groupKey(t)).toBe('envoy@td.local:shop:web-x/shop');
    expect(parseGroupKey(groupKey(t))).toEqual(t);
  });

  it('cannot be forged through the namespace a client states', () => {
    const forged = parseGroupKey(groupKey({ kind: 'envoy', namespace: 'x@td.local:shop:web-x/shop' }));
    expect(forged.identity).toBeUndefined();
    expect(forged.namespace).toBe('x@td.local:shop:web-x/shop');
  });

  it('refuses an identity that is not a workload ID', () => {
    expect(() => groupKey({ kind: 'envoy', namespace: 'a', identity: 'spiffe://td.local/other' })).toThrow(TypeError);
  });
});

describe('static endpoint identity', () => {
  it.each([
    ['spiffe://td.local/ns/a', 'is not /ns/<namespace>/sa/<service-account>'],
    ['https://td.local/ns/a/sa/b', 'scheme must be'],
    ['spiffe://TD/ns/a/sa/b', 'lowercase'],
  ])('refuses %s', (identity, problem) => {
    expect(() => stateFrom({ 's.yaml': `apiVersion: palisade.dev/v1\nkind: Service\nmetadata: { name: s }\nspec:\n  port: 80\n  endpoints:\n    - { address: 10.0.0.1, port: 80, identity: "${identity}" }\n` }))
      .toThrow(problem);
  });

  it('accepts a workload ID', () => {
    const s = stateFrom({ 's.yaml': `apiVersion: palisade.dev/v1\nkind: Service\nmetadata: { name: s }\nspec:\n  port: 80\n  endpoints:\n    - { address: 10.0.0.1, port: 80, identity: "${WEB_X}" }\n` });
    expect(s.services.get('default/s')!.spec.endpoints[0]!.identity).toBe(WEB_X);
  });
});
