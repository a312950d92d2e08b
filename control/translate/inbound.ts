/**
 * The inbound side of an Envoy with an identity of its own (issue #6, "Envoy parity"), as
 * Istio's sidecar Envoy has on 15006:
 *
 *   peer ──mTLS──▶ 0.0.0.0:15006 inbound_15006
 *                   filter chain (transport_protocol "tls"): DownstreamTlsContext
 *                     certificate SDS `default`, peers checked against SDS `ROOTCA` and
 *                     URI SAN prefix spiffe://<td>/, client certificate required
 *                     HCM: XFCC SANITIZE_SET (uri) → authz filters (RBAC / ext_authz) → router
 *                   [PERMISSIVE: a second chain, transport_protocol raw_buffer, same HCM;
 *                    listener filter tls_inspector tells the two apart]
 *                 ──▶ STATIC cluster inbound|<port>||<svc> at 127.0.0.1:<port> (the workload)
 *
 * Which Service: an identity group knows a namespace and a service account, not a Service
 * (groups are per identity, and several Services could share an account). By convention an
 * Envoy fronts the Service of its namespace named like its service account; without such a
 * Service it gets no inbound listener.
 */
import { staticCluster } from './static-cluster.ts';
import { create } from '@bufbuild/protobuf';
import { anyPack } from '@bufbuild/protobuf/wkt';
import type { Cluster } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ListenerSchema, type Listener } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import { FilterChainSchema, type FilterChain } from '../../xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import { RouterSchema } from '../../xds/gen/envoy/extensions/filters/http/router/v3/router_pb.js';
import {
  HttpConnectionManagerSchema, HttpConnectionManager_CodecType, HttpConnectionManager_ForwardClientCertDetails,
} from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { SubjectAltNameMatcher_SanType } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/common_pb.js';
import { DownstreamTlsContextSchema } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { parseWorkloadId } from '../../certs/spiffe.ts';
import type { ServiceResource } from '../config/schema.ts';
import type { DesiredState } from '../config/state.ts';
import { ADS_SOURCE } from './ads-source.ts';
import { envoyAuthzFilters, type EnvoyPolicyTranslation } from './envoy-authz.ts';
import { envoyQuotaFilters, type EnvoyQuotaTranslation } from './envoy-ratelimit.ts';
import { HCM_FILTER_NAME, ROUTER_FILTER_NAME, UPGRADE_TYPES } from './listeners.ts';
import { DEFAULT_CERTIFICATE_SECRET, ROOT_CA_SECRET, TLS_TRANSPORT_SOCKET } from './mtls.ts';
import { INBOUND_ADDRESS, INBOUND_LISTENER, INBOUND_PORT, inboundClusterName } from './names.ts';
import type { NodeTarget } from './node-kind.ts';

export const TLS_INSPECTOR_FILTER_NAME = 'envoy.filters.listener.tls_inspector';
/** Not in xds/gen; the message is empty, so its Any is the type URL and no bytes. */
export const TLS_INSPECTOR_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';

export interface InboundOutput {
  readonly listener: Listener;
  /** The local workload's cluster, then the authz cluster when a Policy uses ext_authz. */
  readonly clusters: Cluster[];
  readonly service: ServiceResource;
  readonly translations: EnvoyPolicyTranslation[];
  /** How each Quota selecting the Service is enforced (envoy-ratelimit.ts). */
  readonly quotas: EnvoyQuotaTranslation[];
}

/**
 * The Service an identity group's Envoy fronts: the one of the identity's namespace named like
 * its service account, or null (no identity, not an Envoy, no such Service).
 */
export function inboundService(state: DesiredState, target: NodeTarget): ServiceResource | null {
  if (target.kind !== 'envoy' || target.identity === undefined) return null;
  const id = parseWorkloadId(target.identity);
  if (!id.valid) return null;
  return state.services.get(`${id.result.namespace}/${id.result.serviceAccount}`) ?? null;
}

/**
 * The inbound listener and its clusters for an identity group's Envoy, or null when it fronts
 * no Service (see inboundService). `mode` is the Mesh's mTLS mode: STRICT accepts mTLS only,
 * PERMISSIVE plaintext too (without a peer identity, so principal rules do not match it).
 */
export function inboundFor(state: DesiredState, target: NodeTarget, mode: 'STRICT' | 'PERMISSIVE'): InboundOutput | null {
  const service = inboundService(state, target);
  if (service === null) return null;
  const id = parseWorkloadId(target.identity!);
  if (!id.valid) return null;
  const authz = envoyAuthzFilters(state, service.metadata.namespace, { service: service.metadata.name });
  const quotas = envoyQuotaFilters(state, service.metadata.namespace, service.metadata.name);
  const clusterName = inboundClusterName(service);
  const hcm = create(HttpConnectionManagerSchema, {
    statPrefix: INBOUND_LISTENER,
    codecType: HttpConnectionManager_CodecType.AUTO,
    routeSpecifier: {
      case: 'routeConfig',
      value: {
        name: clusterName,
        virtualHosts: [{
          name: clusterName,
          domains: ['*'],
          routes: [{
            match: { pathSpecifier: { case: 'prefix', value: '/' } },
            action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: clusterName }, rateLimits: quotas.rateLimits } },
          }],
        }],
      },
    },
    // Authorization first (a refused request takes no token), then quotas, the router last: Envoy requires it.
    httpFilters: [
      ...authz.filters,
      ...quotas.filters,
      { name: ROUTER_FILTER_NAME, configType: { case: 'typedConfig', value: anyPack(RouterSchema, create(RouterSchema)) } },
    ],
    upgradeConfigs: UPGRADE_TYPES.map((upgradeType) => ({ upgradeType })),
    // The workload sees the peer's SPIFFE ID in x-forwarded-client-cert, as behind a Palisade sidecar.
    forwardClientCertDetails: HttpConnectionManager_ForwardClientCertDetails.SANITIZE_SET,
    setCurrentClientCertDetails: { uri: true },
  });
  const filters = [{ name: HCM_FILTER_NAME, configType: { case: 'typedConfig' as const, value: anyPack(HttpConnectionManagerSchema, hcm) } }];
  const tls = create(DownstreamTlsContextSchema, {
    commonTlsContext: {
      tlsCertificateSdsSecretConfigs: [{ name: DEFAULT_CERTIFICATE_SECRET, sdsConfig: ADS_SOURCE }],
      validationContextType: {
        case: 'combinedValidationContext',
        value: {
          // Any workload of the trust domain; which ones may call is the Policies' business.
          defaultValidationContext: {
            matchTypedSubjectAltNames: [{
              sanType: SubjectAltNameMatcher_SanType.URI,
              matcher: { matchPattern: { case: 'prefix', value: `spiffe://${id.result.trustDomain}/` } },
            }],
          },
          validationContextSdsSecretConfig: { name: ROOT_CA_SECRET, sdsConfig: ADS_SOURCE },
        },
      },
      alpnProtocols: ['h2', 'http/1.1'],
    },
    requireClientCertificate: true,
  });
  const chains: FilterChain[] = [create(FilterChainSchema, {
    ...(mode === 'PERMISSIVE' ? { filterChainMatch: { transportProtocol: 'tls' } } : {}),
    filters,
    transportSocket: { name: TLS_TRANSPORT_SOCKET, configType: { case: 'typedConfig', value: anyPack(DownstreamTlsContextSchema, tls) } },
  })];
  if (mode === 'PERMISSIVE') chains.push(create(FilterChainSchema, { filterChainMatch: { transportProtocol: 'raw_buffer' }, filters }));
  const listener = create(ListenerSchema, {
    name: INBOUND_LISTENER,
    address: { address: { case: 'socketAddress', value: { address: INBOUND_ADDRESS, portSpecifier: { case: 'portValue', value: INBOUND_PORT } } } },
    ...(mode === 'PERMISSIVE'
      ? { listenerFilters: [{ name: TLS_INSPECTOR_FILTER_NAME, configType: { case: 'typedConfig' as const, value: { typeUrl: TLS_INSPECTOR_TYPE_URL, value: new Uint8Array() } } }] }
      : {}),
    filterChains: chains,
  });
  return { listener, clusters: [localCluster(service), ...authz.clusters, ...quotas.clusters], service, translations: authz.translations, quotas: quotas.translations };
}

/** The local workload: STATIC 127.0.0.1:<service port>, HTTP/2 for gRPC Services. */
function localCluster(service: ServiceResource): Cluster {
  return staticCluster({ name: inboundClusterName(service), address: '127.0.0.1', port: service.spec.port, connectTimeoutSeconds: 5, http2: service.spec.protocol === 'grpc' });
}
