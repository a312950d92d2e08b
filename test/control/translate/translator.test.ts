/**
 * Translation: every resource produced for every kind of client passes the protos'
 * protoc-gen-validate rules (Envoy would accept it), and carries what the desired state says.
 */
import { describe, expect, it } from 'vitest';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import type { Message } from '@bufbuild/protobuf';
import type { DesiredState } from '../../../control/config/state.ts';
import { fixtureFiles, stateFrom } from '../../helpers/desired-state.ts';
import { translate } from '../../../control/translate/translator.ts';
import type { ClientKind } from '../../../control/translate/node-kind.ts';
import { getResourceType, TYPE_REGISTRY } from '../../../xds/resources/registry.ts';
import { validateMessage } from '../../../xds/validate/pgv.ts';
import {
  CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, MESH_CONFIG_TYPE_URL, ROUTE_TYPE_URL,
} from '../../../xds/resources/type-urls.ts';
import type { Cluster } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { Cluster_DiscoveryType } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { ClusterLoadAssignment } from '../../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { Listener } from '../../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { RouteConfiguration } from '../../../xds/gen/envoy/config/route/v3/route_pb.js';
import { HTTPFaultSchema } from '../../../xds/gen/envoy/extensions/filters/http/fault/v3/fault_pb.js';
import { HttpConnectionManagerSchema } from '../../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { Snapshot } from '../../../xds/cache/snapshot.ts';
import { inconsistencies } from '../../../xds/cache/consistency.ts';
import { SECRET_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import type { Secret } from '../../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';

const fixtureState = () => stateFrom(fixtureFiles());

/** Exercises every translation branch: subsets, weights, regex, headers, method, faults, retries, DNS. */
const RICH = {
  'rich.yaml': `apiVersion: palisade.dev/v1
kind: Mesh
metadata: { name: mesh }
spec: { trustDomain: example.org, mtls: { mode: PERMISSIVE } }
---
apiVersion: palisade.dev/v1
kind: Service
metadata: { name: reviews, namespace: shop }
spec:
  protocol: http
  port: 9080
  endpoints:
    - { address: 10.0.0.1, port: 9080, weight: 2, labels: { version: v1 }, locality: { region: eu, zone: eu-1 } }
    - { address: 10.0.0.2, port: 9080, weight: 5, labels: { version: v2 }, locality: { region: eu, zone: eu-1 } }
    - { address: "::1", port: 9080, labels: { version: v2 }, locality: { region: us } }
---
apiVersion: palisade.dev/v1
kind: Service
metadata: { name: legacy, namespace: shop }
spec:
  port: 80
  endpoints:
    - { address: legacy.internal.example, port: 80 }
---
apiVersion: palisade.dev/v1
kind: Route
metadata: { name: reviews, namespace: shop }
spec:
  hosts: [reviews.example.org, "*.reviews.example.org"]
  http:
    - name: canary
      match:
        - prefix: /api/
          method: GET
          headers:
            - { name: x-canary, exact: "yes" }
            - { name: x-debug, present: false }
        - regex: "/v[0-9]+/reviews/.*"
      backends:
        - { service: reviews, subset: { version: v1 }, weight: 90 }
        - { service: reviews, subset: { version: v2 }, weight: 10 }
      timeout: 1500ms
      retries: { attempts: 3, perTryTimeout: 250ms, on: [5xx, reset, unavailable] }
      fault:
        delay: { fixed: 100ms, percent: 5 }
        abort: { httpStatus: 503, percent: 0.5 }
    - backends: [{ service: legacy.shop }]
`,
};

const KINDS: ClientKind[] = ['envoy', 'grpc', 'sidecar'];

function allResources(state: DesiredState, kind: ClientKind, namespace = 'default'): Array<[string, Message]> {
  return Object.entries(translate(state, { kind, namespace })).flatMap(([t, list]) => list.map((r) => [t, r] as [string, Message]));
}

describe('translate', () => {
  it.each(KINDS.flatMap((k) => [[k, 'fixture'], [k, 'rich']] as const))(
    'produces only resources that pass Envoy\'s validation rules (%s, %s config)',
    (kind, which) => {
      const state = which === 'fixture' ? fixtureState() : stateFrom(RICH);
      const resources = allResources(state, kind, which === 'rich' ? 'shop' : 'default');
      expect(resources.length).toBeGreaterThan(3);
      const problems = resources.flatMap(([typeUrl, r]) => {
        const v = validateMessage(getResourceType(typeUrl).schema, r, { registry: TYPE_REGISTRY });
        return v.valid ? [] : v.errors;
      });
      expect(problems).toEqual([]);
      const snap = Snapshot.fromResources(translate(state, { kind, namespace: 'shop' }));
      expect(inconsistencies(snap)).toEqual([]);
    },
  );

  it.each(KINDS)('publishes the mesh trust bundle as the SDS Secret ROOTCA to %s groups when there is a CA', (kind) => {
    const bundle = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const out = translate(fixtureState(), { kind, namespace: 'default' }, { trustBundle: bundle });
    const secrets = (out[SECRET_TYPE_URL] ?? []) as Secret[];
    if (kind === 'grpc') {
      expect(secrets).toEqual([]);
      return;
    }
    expect(secrets.map((x) => x.name)).toEqual(['ROOTCA']);
    const vc = secrets[0]!.type;
    expect(vc.case).toBe('validationContext');
    expect((vc.value as { trustedCa?: { specifier: { case: string; value: string } } }).trustedCa?.specifier).toEqual({ case: 'inlineString', value: bundle });
    const v = validateMessage(getResourceType(SECRET_TYPE_URL).schema, secrets[0]!, { registry: TYPE_REGISTRY });
    expect(v.valid ? [] : v.errors).toEqual([]);
    expect(translate(fixtureState(), { kind, namespace: 'default' })[SECRET_TYPE_URL]).toBeUndefined();
  });

  it('is deterministic: the same state gives byte-identical resources', () => {
    const a = Snapshot.fromResources(translate(stateFrom(RICH), { kind: 'envoy', namespace: 'shop' }));
    const b = Snapshot.fromResources(translate(stateFrom(RICH), { kind: 'envoy', namespace: 'shop' }));
    for (const t of [CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL]) expect(a.version(t)).toBe(b.version(t));
  });

  it('turns subsets into their own clusters with only matching endpoints, and weights into weighted_clusters', () => {
    const out = translate(stateFrom(RICH), { kind: 'envoy', namespace: 'shop' });
    const names = (out[CLUSTER_TYPE_URL] as Cluster[]).map((c) => c.name).sort();
    expect(names).toEqual(['outbound|80||legacy.shop', 'outbound|9080|version=v1|reviews.shop', 'outbound|9080|version=v2|reviews.shop', 'outbound|9080||reviews.shop']);
    const v2 = (out[ENDPOINT_TYPE_URL] as ClusterLoadAssignment[]).find((c) => c.clusterName === 'outbound|9080|version=v2|reviews.shop')!;
    const addrs = v2.endpoints.flatMap((l) => l.lbEndpoints.map((e) => (e.hostIdentifier.value as { address: { address: { value: { address: string } } } }).address.address.value.address));
    expect(addrs.sort()).toEqual(['10.0.0.2', '::1']);
    const rc = (out[ROUTE_TYPE_URL] as RouteConfiguration[])[0]!;
    const vh = rc.virtualHosts.find((v) => v.name === 'shop/reviews')!;
    expect(vh.domains).toEqual(['reviews.example.org', '*.reviews.example.org']);
    expect(vh.routes).toHaveLength(3);
    const action = vh.routes[0]!.action;
    expect(action.case).toBe('route');
    if (action.case !== 'route') return;
    expect(action.value.clusterSpecifier).toMatchObject({
      case: 'weightedClusters',
      value: { clusters: [{ name: 'outbound|9080|version=v1|reviews.shop', weight: 90 }, { name: 'outbound|9080|version=v2|reviews.shop', weight: 10 }] },
    });
    expect(action.value.timeout).toMatchObject({ seconds: 1n, nanos: 500_000_000 });
    expect(action.value.retryPolicy).toMatchObject({ retryOn: '5xx,reset,unavailable', numRetries: 3, perTryTimeout: { nanos: 250_000_000 } });
    const fault = anyUnpack(vh.routes[0]!.typedPerFilterConfig['envoy.filters.http.fault']!, HTTPFaultSchema)!;
    expect(fault.abort?.errorType).toEqual({ case: 'httpStatus', value: 503 });
    expect(fault.abort?.percentage?.numerator).toBe(5000);
    expect(vh.routes[0]!.match!.headers.map((h) => h.name)).toEqual(['x-canary', 'x-debug', ':method']);
    expect(vh.routes[0]!.match!.headers[1]!.invertMatch).toBe(true);
  });

  it('makes hostname endpoints a STRICT_DNS cluster for Envoy and LOGICAL_DNS for gRPC, with inline endpoints', () => {
    const state = stateFrom(RICH);
    for (const [kind, type] of [['envoy', Cluster_DiscoveryType.STRICT_DNS], ['grpc', Cluster_DiscoveryType.LOGICAL_DNS]] as const) {
      const c = (translate(state, { kind, namespace: 'shop' })[CLUSTER_TYPE_URL] as Cluster[]).find((x) => x.name === 'outbound|80||legacy.shop')!;
      expect(c.clusterDiscoveryType).toEqual({ case: 'type', value: type });
      expect(c.loadAssignment?.endpoints).toHaveLength(1);
    }
  });

  it('gives gRPC clients an api_listener per hostname and timeouts as max_stream_duration', () => {
    const out = translate(stateFrom(RICH), { kind: 'grpc', namespace: 'shop' });
    const listeners = (out[LISTENER_TYPE_URL] as Listener[]).map((l) => l.name);
    expect(listeners).toContain('reviews');
    expect(listeners).toContain('reviews.shop:9080');
    expect(listeners).toContain('reviews.example.org');
    const l = (out[LISTENER_TYPE_URL] as Listener[])[0]!;
    const hcm = anyUnpack(l.apiListener!.apiListener!, HttpConnectionManagerSchema)!;
    expect(hcm.httpFilters.map((f) => f.name)).toEqual(['envoy.filters.http.fault', 'envoy.filters.http.router']);
    const rc = (out[ROUTE_TYPE_URL] as RouteConfiguration[])[0]!;
    const action = rc.virtualHosts.find((v) => v.name === 'shop/reviews')!.routes[0]!.action;
    if (action.case !== 'route') throw new Error('expected a route action');
    expect(action.value.timeout).toBeUndefined();
    expect(action.value.maxStreamDuration?.maxStreamDuration).toMatchObject({ seconds: 1n });
    // gRPC honours only gRPC status conditions.
    expect(action.value.retryPolicy?.retryOn).toBe('unavailable');
  });

  it('splits endpoints of different weights into weighted sub-localities for gRPC only', () => {
    const state = stateFrom(RICH);
    const cla = (kind: ClientKind) => (translate(state, { kind, namespace: 'shop' })[ENDPOINT_TYPE_URL] as ClusterLoadAssignment[])
      .find((c) => c.clusterName === 'outbound|9080||reviews.shop')!;
    const grpc = cla('grpc').endpoints.map((l) => [l.locality?.zone, l.locality?.subZone, l.loadBalancingWeight]);
    expect(grpc).toEqual([['eu-1', '/w2', 2], ['eu-1', '/w5', 5], ['', '', 1]]);
    const envoy = cla('envoy').endpoints.map((l) => [l.locality?.zone, l.locality?.subZone, l.loadBalancingWeight]);
    expect(envoy).toEqual([['eu-1', '', 7], ['', '', 1]]);
  });

  it('resolves short service names only in the client\'s own namespace', () => {
    const state = stateFrom(RICH);
    const domains = (ns: string) => (translate(state, { kind: 'envoy', namespace: ns })[ROUTE_TYPE_URL] as RouteConfiguration[])[0]!
      .virtualHosts.find((v) => v.name === 'service/shop/reviews')!.domains;
    expect(domains('shop')).toContain('reviews');
    expect(domains('other')).not.toContain('reviews');
    expect(domains('other')).toContain('reviews.shop');
  });

  it('sends the Mesh to sidecars only', () => {
    const state = stateFrom(RICH);
    expect(translate(state, { kind: 'sidecar', namespace: 'shop' })[MESH_CONFIG_TYPE_URL]).toHaveLength(1);
    expect(translate(state, { kind: 'envoy', namespace: 'shop' })[MESH_CONFIG_TYPE_URL]).toBeUndefined();
  });
});
