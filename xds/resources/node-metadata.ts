/**
 * Node metadata keys Palisade's control plane reads (google.protobuf.Struct in
 * envoy.config.core.v3.Node). They are the contract between the control plane and the
 * clients that connect to it: Envoy bootstraps, gRPC bootstraps and Palisade sidecars.
 */

/** "envoy" | "grpc" | "sidecar"; without it the user agent decides. */
export const KIND_KEY = 'palisade.io/kind';
/** The namespace short service names resolve in (and a sidecar's Service lives in). */
export const NAMESPACE_KEY = 'palisade.io/namespace';
/** Istio's key for the same, also honoured. */
export const ISTIO_NAMESPACE_KEY = 'NAMESPACE';
/** A sidecar's Service name: present = register this node as an endpoint of it. */
export const SERVICE_KEY = 'palisade.io/service';
/** A sidecar's service account: with the namespace, the identity its SVID must carry (spiffe://<td>/ns/<ns>/sa/<account>). */
export const SERVICE_ACCOUNT_KEY = 'palisade.io/service-account';
/** The address peers reach the sidecar's inbound listener on (IPv4 or IPv6). */
export const INBOUND_ADDRESS_KEY = 'palisade.io/inbound-address';
/** The sidecar's inbound port, 1..65535. */
export const INBOUND_PORT_KEY = 'palisade.io/inbound-port';
/** Object of string labels of the workload (Route subsets select on them). */
export const LABELS_KEY = 'palisade.io/labels';
/** true once the sidecar has applied its first full configuration. */
export const READY_KEY = 'palisade.io/ready';
