/**
 * Istio-style auto-mTLS for Envoy and sidecar clusters (issue #5).
 *
 * A cluster whose endpoints carry a SPIFFE identity gets two transport socket matches:
 * endpoints tagged `envoy.transport_socket_match: {tlsMode: mtls}` are dialled over TLS with
 * the client's workload certificate (SDS `default`) and the peer checked against the mesh
 * roots (SDS `ROOTCA`) and the cluster's identities; every other endpoint stays plaintext
 * (raw_buffer). So a Service may mix enrolled and not-yet-enrolled endpoints.
 *
 * The SDS names are the ones Istio uses and the sidecar reads (sidecar/tls/secrets.ts
 * DEFAULT_CERTIFICATE_SECRET and ROOT_CA_SECRET): keep them identical.
 */
import { create } from '@bufbuild/protobuf';
import { anyPack } from '@bufbuild/protobuf/wkt';
import type { JsonObject } from '@bufbuild/protobuf';
import { Cluster_TransportSocketMatchSchema, type Cluster_TransportSocketMatch } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { MetadataSchema, type Metadata } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { RawBufferSchema } from '../../xds/gen/envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer_pb.js';
import { SubjectAltNameMatcher_SanType } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/common_pb.js';
import { UpstreamTlsContextSchema } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { ADS_SOURCE } from './ads-source.ts';

/** The SDS Secret holding a workload's own certificate and key (Istio's name). */
export const DEFAULT_CERTIFICATE_SECRET = 'default';
/** The SDS Secret holding the mesh's trust bundle (Istio's name for the same thing). */
export const ROOT_CA_SECRET = 'ROOTCA';
/** The endpoint metadata filter Envoy's transport_socket_matches look at. */
export const TRANSPORT_SOCKET_MATCH_FILTER = 'envoy.transport_socket_match';
export const TLS_MODE_KEY = 'tlsMode';
export const TLS_MODE_MTLS = 'mtls';
export const MTLS_MATCH_NAME = 'tlsMode-mtls';
export const PLAINTEXT_MATCH_NAME = 'tlsMode-disabled';
export const TLS_TRANSPORT_SOCKET = 'envoy.transport_sockets.tls';
export const RAW_BUFFER_TRANSPORT_SOCKET = 'envoy.transport_sockets.raw_buffer';

const MTLS_MATCH: JsonObject = { [TLS_MODE_KEY]: TLS_MODE_MTLS };

/** Metadata of an endpoint that serves mTLS: its cluster's `tlsMode-mtls` match picks it. */
export function mtlsEndpointMetadata(): Metadata {
  return create(MetadataSchema, { filterMetadata: { [TRANSPORT_SOCKET_MATCH_FILTER]: { ...MTLS_MATCH } } });
}

/**
 * The transport socket matches of a cluster whose endpoints have `identities` (SPIFFE IDs;
 * deduplicated and sorted here so the bytes do not depend on endpoint order). `alpn` is what
 * the upstream speaks: `h2` for gRPC, `http/1.1` otherwise.
 */
export function mtlsTransportSocketMatches(identities: Iterable<string>, alpn: 'h2' | 'http/1.1'): Cluster_TransportSocketMatch[] {
  const sans = [...new Set(identities)].sort().map((id) => ({
    sanType: SubjectAltNameMatcher_SanType.URI,
    matcher: { matchPattern: { case: 'exact' as const, value: id } },
  }));
  const tls = create(UpstreamTlsContextSchema, {
    commonTlsContext: {
      tlsCertificateSdsSecretConfigs: [{ name: DEFAULT_CERTIFICATE_SECRET, sdsConfig: ADS_SOURCE }],
      validationContextType: {
        case: 'combinedValidationContext',
        value: {
          defaultValidationContext: { matchTypedSubjectAltNames: sans },
          validationContextSdsSecretConfig: { name: ROOT_CA_SECRET, sdsConfig: ADS_SOURCE },
        },
      },
      alpnProtocols: [alpn],
    },
  });
  return [
    create(Cluster_TransportSocketMatchSchema, {
      name: MTLS_MATCH_NAME,
      match: { ...MTLS_MATCH },
      transportSocket: { name: TLS_TRANSPORT_SOCKET, configType: { case: 'typedConfig', value: anyPack(UpstreamTlsContextSchema, tls) } },
    }),
    create(Cluster_TransportSocketMatchSchema, {
      name: PLAINTEXT_MATCH_NAME,
      match: {},
      transportSocket: { name: RAW_BUFFER_TRANSPORT_SOCKET, configType: { case: 'typedConfig', value: anyPack(RawBufferSchema, create(RawBufferSchema)) } },
    }),
  ];
}
