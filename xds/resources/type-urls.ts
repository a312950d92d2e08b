/** Type URLs of the resources Palisade serves over ADS. */
export const TYPE_PREFIX = 'type.googleapis.com/';
export const LISTENER_TYPE_URL = 'type.googleapis.com/envoy.config.listener.v3.Listener';
export const ROUTE_TYPE_URL = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';
export const CLUSTER_TYPE_URL = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
export const ENDPOINT_TYPE_URL = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
export const SECRET_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
export const MESH_CONFIG_TYPE_URL = 'type.googleapis.com/palisade.v1.MeshConfig';
export const POLICY_TYPE_URL = 'type.googleapis.com/palisade.v1.Policy';
export const REQUEST_AUTHENTICATION_TYPE_URL = 'type.googleapis.com/palisade.v1.RequestAuthentication';
export const QUOTA_TYPE_URL = 'type.googleapis.com/palisade.v1.Quota';

/** Filter config types used inside resources (Any payloads). */
export const HCM_TYPE_URL =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const ROUTER_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
export const FAULT_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
