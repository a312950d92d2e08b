/** How desired-state names become xDS resource names. */
import type { ServiceResource } from '../config/schema.ts';

/** The outbound listener every Envoy and sidecar gets, and its route configuration. */
export const OUTBOUND_PORT = 15001;
export const OUTBOUND_ADDRESS = '127.0.0.1';
export const OUTBOUND_LISTENER = `${OUTBOUND_ADDRESS}_${OUTBOUND_PORT}`;
export const OUTBOUND_ROUTE = 'outbound';

/**
 * The inbound listener an Envoy with an identity of its own gets (Istio's sidecar Envoy port):
 * it terminates mTLS for the Service named like the Envoy's service account.
 */
export const INBOUND_PORT = 15006;
export const INBOUND_ADDRESS = '0.0.0.0';
export const INBOUND_LISTENER = `inbound_${INBOUND_PORT}`;

/** The local workload behind an inbound listener: inbound|<port>||<name> (STATIC 127.0.0.1:<port>). */
export function inboundClusterName(service: ServiceResource): string {
  return `inbound|${service.spec.port}||${service.metadata.name}`;
}

/** "k=v,k2=v2" with keys sorted, '' for no subset. */
export function subsetKey(subset: Readonly<Record<string, string>> | undefined): string {
  if (!subset) return '';
  return Object.keys(subset).sort().map((k) => `${k}=${subset[k]}`).join(',');
}

/** Istio-style: outbound|<port>|<subset>|<name>.<namespace>. Also the EDS service name. */
export function clusterName(service: ServiceResource, subset?: Readonly<Record<string, string>>): string {
  return `outbound|${service.spec.port}|${subsetKey(subset)}|${service.metadata.name}.${service.metadata.namespace}`;
}

/**
 * Hostnames a Service answers to for a client in `namespace`: `name.ns`, `name.ns.svc`,
 * with and without `:port`, and the short `name` when the client shares its namespace.
 */
export function serviceHosts(service: ServiceResource, namespace: string): string[] {
  const { name, namespace: ns } = service.metadata;
  const bases = [`${name}.${ns}`, `${name}.${ns}.svc`];
  if (ns === namespace) bases.unshift(name);
  return bases.flatMap((h) => [h, `${h}:${service.spec.port}`]);
}
