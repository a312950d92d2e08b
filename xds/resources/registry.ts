/**
 * The resource-type registry: every type the ADS server serves (and the ADS client
 * accepts) is one entry here, Envoy's and Palisade's alike. The server, the snapshot
 * cache and the client look types up here and never special-case a type URL elsewhere.
 */
import { createRegistry, type DescMessage, type Message, type Registry } from '@bufbuild/protobuf';
import { ClusterSchema, type Cluster } from '../gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema, type ClusterLoadAssignment } from '../gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ListenerSchema, type Listener } from '../gen/envoy/config/listener/v3/listener_pb.js';
import { RouteConfigurationSchema, type RouteConfiguration } from '../gen/envoy/config/route/v3/route_pb.js';
import { SecretSchema, type Secret } from '../gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import { HttpConnectionManagerSchema } from '../gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { RouterSchema } from '../gen/envoy/extensions/filters/http/router/v3/router_pb.js';
import { HTTPFaultSchema } from '../gen/envoy/extensions/filters/http/fault/v3/fault_pb.js';
import { RBACSchema } from '../gen/envoy/extensions/filters/http/rbac/v3/rbac_pb.js';
import { ExtAuthzSchema } from '../gen/envoy/extensions/filters/http/ext_authz/v3/ext_authz_pb.js';
import { LocalRateLimitSchema } from '../gen/envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit_pb.js';
import { RateLimitSchema } from '../gen/envoy/extensions/filters/http/ratelimit/v3/rate_limit_pb.js';
import { JwtAuthenticationSchema } from '../gen/envoy/extensions/filters/http/jwt_authn/v3/config_pb.js';
import { UpstreamTlsContextSchema, DownstreamTlsContextSchema } from '../gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { MeshConfigSchema, type MeshConfig } from '../gen/palisade/v1/mesh_pb.js';
import { PolicySchema, type Policy } from '../gen/palisade/v1/policy_pb.js';
import { RequestAuthenticationSchema, type RequestAuthentication } from '../gen/palisade/v1/request_authentication_pb.js';
import { QuotaSchema, type Quota } from '../gen/palisade/v1/quota_pb.js';
import { UnknownTypeError } from '../errors.ts';
import {
  CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, MESH_CONFIG_TYPE_URL, POLICY_TYPE_URL, QUOTA_TYPE_URL, REQUEST_AUTHENTICATION_TYPE_URL, ROUTE_TYPE_URL, SECRET_TYPE_URL,
} from './type-urls.ts';

export interface ResourceType<M extends Message = Message> {
  readonly typeUrl: string;
  /** Envoy's short name for logs and CLI output: LDS, RDS, CDS, EDS, SDS, or Palisade's. */
  readonly shortName: string;
  readonly schema: DescMessage;
  /** The resource's name, as subscriptions and removals refer to it. */
  nameOf(resource: M): string;
  /**
   * Push order for make-before-break: lower goes first. Envoy's rule is
   * CDS → EDS → LDS → RDS, so a route never points at a cluster the proxy lacks.
   */
  readonly order: number;
  /**
   * In state-of-the-world, a response for this type carries every subscribed resource and
   * an absent one means "deleted" (LDS, CDS). For the others (RDS, EDS, SDS) an absent
   * resource just was not sent.
   */
  readonly fullState: boolean;
}

function entry<M extends Message>(t: ResourceType<M>): ResourceType {
  return t as unknown as ResourceType;
}

export const RESOURCE_TYPES: readonly ResourceType[] = [
  entry<Cluster>({ typeUrl: CLUSTER_TYPE_URL, shortName: 'CDS', schema: ClusterSchema, nameOf: (r) => r.name, order: 10, fullState: true }),
  entry<ClusterLoadAssignment>({
    typeUrl: ENDPOINT_TYPE_URL, shortName: 'EDS', schema: ClusterLoadAssignmentSchema, nameOf: (r) => r.clusterName, order: 20, fullState: false,
  }),
  entry<Secret>({ typeUrl: SECRET_TYPE_URL, shortName: 'SDS', schema: SecretSchema, nameOf: (r) => r.name, order: 25, fullState: false }),
  entry<Listener>({ typeUrl: LISTENER_TYPE_URL, shortName: 'LDS', schema: ListenerSchema, nameOf: (r) => r.name, order: 30, fullState: true }),
  entry<RouteConfiguration>({
    typeUrl: ROUTE_TYPE_URL, shortName: 'RDS', schema: RouteConfigurationSchema, nameOf: (r) => r.name, order: 40, fullState: false,
  }),
  entry<MeshConfig>({
    typeUrl: MESH_CONFIG_TYPE_URL, shortName: 'MESH', schema: MeshConfigSchema, nameOf: (r) => r.name, order: 5, fullState: true,
  }),
  entry<Policy>({ typeUrl: POLICY_TYPE_URL, shortName: 'POLICY', schema: PolicySchema, nameOf: (r) => r.name, order: 45, fullState: true }),
  entry<RequestAuthentication>({
    typeUrl: REQUEST_AUTHENTICATION_TYPE_URL, shortName: 'AUTHN', schema: RequestAuthenticationSchema, nameOf: (r) => r.name, order: 44, fullState: true,
  }),
  entry<Quota>({ typeUrl: QUOTA_TYPE_URL, shortName: 'QUOTA', schema: QuotaSchema, nameOf: (r) => r.name, order: 46, fullState: true }),
];

const BY_URL = new Map(RESOURCE_TYPES.map((t) => [t.typeUrl, t]));

export function findResourceType(typeUrl: string): ResourceType | undefined {
  return BY_URL.get(typeUrl);
}

export function getResourceType(typeUrl: string): ResourceType {
  const t = BY_URL.get(typeUrl);
  if (!t) throw new UnknownTypeError(typeUrl);
  return t;
}

/** Sorts type URLs into make-before-break push order. */
export function pushOrder(a: string, b: string): number {
  return (BY_URL.get(a)?.order ?? 100) - (BY_URL.get(b)?.order ?? 100);
}

/**
 * Every message type that may appear inside an Any in a resource we serve or accept,
 * for packing, unpacking and validation.
 */
export const TYPE_REGISTRY: Registry = createRegistry(
  ...RESOURCE_TYPES.map((t) => t.schema),
  HttpConnectionManagerSchema, RouterSchema, HTTPFaultSchema, RBACSchema, ExtAuthzSchema, LocalRateLimitSchema, RateLimitSchema,
  JwtAuthenticationSchema, UpstreamTlsContextSchema, DownstreamTlsContextSchema,
);
