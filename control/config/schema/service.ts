import { isIPv4, isIPv6 } from 'node:net';
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import type { SourceRef } from '../config-error.ts';
import { pointer } from '../config-error.ts';
import { MAX_SPIFFE_ID_LENGTH, parseWorkloadId } from '../../../certs/spiffe.ts';
import { ADDRESS_PATTERN, documentSchema, labels, port } from './common.ts';
import type { API_VERSION, Defaulted, Replace, Report, ResourceMetadata } from './common.ts';

export const PROTOCOLS = ['http', 'grpc'] as const;

const LocalitySchema = Type.Object(
  {
    region: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    zone: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    subZone: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  },
  { additionalProperties: false, description: 'Where the endpoint runs, for locality-aware load balancing' },
);

export const EndpointSchema = Type.Object(
  {
    address: Type.String({ minLength: 1, maxLength: 253, pattern: ADDRESS_PATTERN, description: 'IPv4 address, IPv6 address or DNS hostname' }),
    port: port('Port the endpoint listens on'),
    weight: Type.Optional(Type.Integer({ minimum: 1, maximum: 128, default: 1, description: 'Load-balancing weight, 1..128' })),
    labels: Type.Optional(labels('Labels matched by Route backend subsets')),
    locality: Type.Optional(LocalitySchema),
    identity: Type.Optional(Type.String({
      minLength: 1, maxLength: MAX_SPIFFE_ID_LENGTH,
      description: 'SPIFFE ID the endpoint serves mTLS as (spiffe://<trust domain>/ns/<namespace>/sa/<service account>); Envoy and sidecar clients then dial it over mTLS and check this ID',
    })),
  },
  { additionalProperties: false },
);

export const ServiceSpecSchema = Type.Object(
  {
    protocol: Type.Optional(Type.Union(PROTOCOLS.map((p) => Type.Literal(p)), { default: 'http', description: 'Application protocol' })),
    port: port('Port clients address the Service on'),
    endpoints: Type.Optional(Type.Array(EndpointSchema, { default: [], description: 'Instances serving the Service' })),
  },
  { additionalProperties: false },
);

/** A named set of endpoints that Routes send traffic to. */
export const ServiceSchema = documentSchema('Service', ServiceSpecSchema, 'A named set of endpoints that Routes send traffic to.');

export type Protocol = (typeof PROTOCOLS)[number];
export type ServiceDocument = Static<typeof ServiceSchema>;
export type ServiceSpecDocument = Static<typeof ServiceSpecSchema>;
export type EndpointDocument = Static<typeof EndpointSchema>;
export type Locality = Static<typeof LocalitySchema>;
/** An endpoint after defaults: `weight` is always set (1 unless given). */
export type Endpoint = Defaulted<EndpointDocument, 'weight'>;
/** Service spec after defaults: `protocol` ('http' unless given) and `endpoints` ([] unless given) are set. */
export type ServiceSpec = Replace<Defaulted<ServiceSpecDocument, 'protocol'>, { endpoints: Endpoint[] }>;

export interface ServiceResource {
  apiVersion: typeof API_VERSION;
  kind: 'Service';
  metadata: ResourceMetadata;
  spec: ServiceSpec;
  source: SourceRef;
}

/** Why `address` is not an IPv4 address, IPv6 address or DNS hostname, or null. Assumes ADDRESS_PATTERN matched. */
export function addressProblem(address: string): string | null {
  if (address.includes(':')) return isIPv6(address) ? null : `must be a valid IPv6 address, got ${JSON.stringify(address)}`;
  if (/^[0-9.]+$/.test(address)) return isIPv4(address) ? null : `must be a valid IPv4 address, got ${JSON.stringify(address)}`;
  return null;
}

/** Rules beyond the schema: addresses parse, identities are SPIFFE workload IDs, no endpoint is listed twice. */
export function checkService(doc: ServiceDocument, report: Report): void {
  const seen = new Map<string, number>();
  doc.spec.endpoints?.forEach((ep, i) => {
    const problem = addressProblem(ep.address);
    if (problem !== null) report(pointer('spec', 'endpoints', i, 'address'), problem);
    if (ep.identity !== undefined) {
      const id = parseWorkloadId(ep.identity);
      if (!id.valid) report(pointer('spec', 'endpoints', i, 'identity'), `must be a SPIFFE workload ID (spiffe://<trust domain>/ns/<namespace>/sa/<service account>), got ${JSON.stringify(ep.identity)}: ${id.errors.join('; ')}`);
    }
    const key = `${ep.address.toLowerCase()}|${ep.port}`;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else report(pointer('spec', 'endpoints', i), `duplicate endpoint ${formatHostPort(ep.address, ep.port)} (also at ${pointer('spec', 'endpoints', first)})`);
  });
}

function formatHostPort(address: string, p: number): string {
  return address.includes(':') ? `[${address}]:${p}` : `${address}:${p}`;
}
