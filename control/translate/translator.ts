/**
 * Desired state → the xDS resources of one node group. Pure: the same state and target
 * always give the same resources (and so the same content-hash versions).
 */
import type { Message } from '@bufbuild/protobuf';
import { create } from '@bufbuild/protobuf';
import { MeshConfigSchema, MeshConfig_MtlsMode } from '../../xds/gen/palisade/v1/mesh_pb.js';
import { meteringConfig } from '../metering/mesh-metering.ts';
import {
  CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, MESH_CONFIG_TYPE_URL, POLICY_TYPE_URL, QUOTA_TYPE_URL, REQUEST_AUTHENTICATION_TYPE_URL, ROUTE_TYPE_URL, SECRET_TYPE_URL,
} from '../../xds/resources/type-urls.ts';
import { SecretSchema } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import type { DesiredState } from '../config/state.ts';
import type { PolicyMode } from '../config/schema.ts';
import { PolicySchema, Policy_Mode } from '../../xds/gen/palisade/v1/policy_pb.js';
import { buildCluster } from './clusters.ts';
import { grpcListeners, outboundListener } from './listeners.ts';
import { inboundFor } from './inbound.ts';
import type { Cluster } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { NodeTarget } from './node-kind.ts';
import { DEFAULT_CERTIFICATE_SECRET, ROOT_CA_SECRET } from './mtls.ts';
import { buildRoutes } from './routes.ts';
import { sidecarRequestAuthentications } from './request-authentication.ts';
import { sidecarQuotas } from './quota.ts';

export type ResourcesByType = Record<string, Message[]>;

export { DEFAULT_CERTIFICATE_SECRET, ROOT_CA_SECRET };

/** A workload's certificate chain and private key, PEM. */
export interface WorkloadCertificate {
  readonly chainPem: string;
  readonly keyPem: string;
}

export interface TranslateOptions {
  /**
   * PEM roots of the mesh CA. When set, Envoy and sidecar groups get the SDS Secret
   * `ROOTCA` (a validation_context with these roots); two roots during a root rotation.
   * Also the condition for an identity group's inbound listener (inbound.ts), which needs it.
   */
  readonly trustBundle?: string | null;
  /**
   * PEM CRL(s) of revoked workload certificates, sent in ROOTCA with
   * `only_verify_leaf_cert_crl` (the intermediate is not covered by a CRL of the root).
   */
  readonly crl?: string | null;
  /**
   * The certificate of the group's own identity (an Envoy group authenticated by its client
   * certificate): sent to Envoy groups as the SDS Secret `default` (tls_certificate, inline).
   * Only ever set for a group whose streams all hold that identity.
   */
  readonly workloadCertificate?: WorkloadCertificate | null;
}

export function translate(state: DesiredState, target: NodeTarget, options: TranslateOptions = {}): ResourcesByType {
  const routes = buildRoutes(state, target);
  const clusters: Message[] = [];
  const endpoints: Message[] = [];
  for (const ref of [...routes.clusters.values()].sort((a, b) => cmp(a.service.metadata.name, b.service.metadata.name))) {
    const out = buildCluster(ref.service, ref.subset, target.kind);
    clusters.push(out.cluster);
    if (out.loadAssignment) endpoints.push(out.loadAssignment);
  }
  const listeners = target.kind === 'grpc' ? grpcListeners(routes.hosts, routes.usesFault) : [outboundListener(routes.usesFault)];
  // An Envoy with an identity of its own fronts the Service named like its service account.
  const inbound = (options.trustBundle ?? null) !== null && target.identity !== undefined
    ? inboundFor(state, target, state.mesh?.spec.mtls.mode ?? 'STRICT')
    : null;
  if (inbound !== null) {
    listeners.push(inbound.listener);
    const taken = new Set(clusters.map((c) => (c as Cluster).name));
    for (const c of inbound.clusters) if (!taken.has(c.name)) clusters.push(c);
  }
  const out: ResourcesByType = {
    [CLUSTER_TYPE_URL]: clusters,
    [ENDPOINT_TYPE_URL]: endpoints,
    [LISTENER_TYPE_URL]: listeners,
    [ROUTE_TYPE_URL]: [routes.routeConfig],
  };
  if (target.kind === 'sidecar') {
    const policies = sidecarPolicies(state, target.namespace);
    if (policies.length > 0) out[POLICY_TYPE_URL] = policies;
    const authn = sidecarRequestAuthentications(state, target.namespace);
    if (authn.length > 0) out[REQUEST_AUTHENTICATION_TYPE_URL] = authn;
    const quotas = sidecarQuotas(state, target.namespace);
    if (quotas.length > 0) out[QUOTA_TYPE_URL] = quotas;
  }
  if (target.kind === 'sidecar' && state.mesh) {
    out[MESH_CONFIG_TYPE_URL] = [create(MeshConfigSchema, {
      name: state.mesh.metadata.name,
      trustDomain: state.mesh.spec.trustDomain,
      mtlsMode: state.mesh.spec.mtls.mode === 'STRICT' ? MeshConfig_MtlsMode.STRICT : MeshConfig_MtlsMode.PERMISSIVE,
      metering: meteringConfig(state.mesh.spec.metering),
    })];
  }
  const bundle = options.trustBundle ?? null;
  const crl = options.crl ?? null;
  const secrets: Message[] = [];
  if (bundle !== null && target.kind !== 'grpc') {
    secrets.push(create(SecretSchema, {
      name: ROOT_CA_SECRET,
      type: {
        case: 'validationContext',
        value: {
          trustedCa: { specifier: { case: 'inlineString', value: bundle } },
          ...(crl !== null ? { crl: { specifier: { case: 'inlineString' as const, value: crl } }, onlyVerifyLeafCertCrl: true } : {}),
        },
      },
    }));
  }
  const own = options.workloadCertificate ?? null;
  if (own !== null && target.kind === 'envoy') {
    // Sidecars enroll with a CSR and keep their key; only Envoys get theirs over xDS.
    secrets.push(create(SecretSchema, {
      name: DEFAULT_CERTIFICATE_SECRET,
      type: {
        case: 'tlsCertificate',
        value: {
          certificateChain: { specifier: { case: 'inlineString', value: own.chainPem } },
          privateKey: { specifier: { case: 'inlineString', value: own.keyPem } },
        },
      },
    }));
  }
  if (secrets.length > 0) out[SECRET_TYPE_URL] = secrets;
  return out;
}

const POLICY_MODE: Record<PolicyMode, Policy_Mode> = { enforce: Policy_Mode.ENFORCE, 'dry-run': Policy_Mode.DRY_RUN, audit: Policy_Mode.AUDIT };

/** The Policies of a sidecar group's namespace (each sidecar keeps those that select its Service), in key order. */
function sidecarPolicies(state: DesiredState, namespace: string): Message[] {
  const out: Message[] = [];
  for (const [key, p] of state.policies) {
    if (p.metadata.namespace !== namespace) continue;
    out.push(create(PolicySchema, {
      name: key,
      mode: POLICY_MODE[p.spec.mode],
      entrypoint: p.spec.entrypoint,
      bundle: state.policyBundles.get(key) ?? new Uint8Array(),
      services: [...(p.spec.selector.services ?? [])],
      pathPrefixes: [...(p.spec.selector.pathPrefixes ?? [])],
      cacheKeys: [...p.spec.cacheKeys],
      decisionLogPercent: p.spec.decisionLogPercent,
    }));
  }
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
