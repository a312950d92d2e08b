import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import type { SourceRef } from '../config-error.ts';
import { CLAIM_PATTERN, DNS_NAME_PATTERN, documentSchema, duration, HEADER_NAME_PATTERN } from './common.ts';
import type { API_VERSION, Defaulted, Replace, ResourceMetadata } from './common.ts';

export const MTLS_MODES = ['STRICT', 'PERMISSIVE'] as const;

/** Usage metering defaults (Mesh spec.metering). */
export const METERING_DEFAULTS = Object.freeze({ tenantHeader: 'x-tenant-id', reportInterval: '10s', maxTenants: 10_000 });

const MeteringSchema = Type.Object(
  {
    tenant: Type.Optional(
      Type.Union(
        [
          Type.Object(
            { header: Type.String({ pattern: HEADER_NAME_PATTERN, maxLength: 256, description: 'request header holding the tenant (its first value)' }) },
            { additionalProperties: false },
          ),
          Type.Object(
            { jwtClaim: Type.String({ pattern: CLAIM_PATTERN, minLength: 3, maxLength: 256, description: 'claim of a verified token: <provider>.<claim path>, e.g. keycloak.tenant (the provider name ends at the first dot)' }) },
            { additionalProperties: false },
          ),
        ],
        { description: 'where the tenant of a request comes from (default: header x-tenant-id); a request without a value counts as "unknown"' },
      ),
    ),
    reportInterval: Type.Optional(
      Type.String({ ...duration('how often sidecars report usage (the control plane\'s suggested LRS interval), 100ms..1h'), default: METERING_DEFAULTS.reportInterval }),
    ),
    maxTenants: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1_000_000, default: METERING_DEFAULTS.maxTenants, description: 'distinct tenants a sidecar counts per report interval; further ones count as "other"' }),
    ),
  },
  { additionalProperties: false, description: 'usage metering (issue #7); absent: header x-tenant-id, 10s, 10 000 tenants' },
);

export const MeshSpecSchema = Type.Object(
  {
    trustDomain: Type.String({
      pattern: DNS_NAME_PATTERN,
      maxLength: 253,
      description: 'SPIFFE trust domain of every workload identity: spiffe://<trustDomain>/ns/<namespace>/sa/<account>',
    }),
    mtls: Type.Optional(
      Type.Object(
        {
          mode: Type.Optional(
            Type.Union(
              MTLS_MODES.map((m) => Type.Literal(m)),
              { default: 'STRICT', description: 'STRICT: inbound accepts mTLS only; PERMISSIVE: mTLS and plaintext' },
            ),
          ),
        },
        { additionalProperties: false, default: {} },
      ),
    ),
    metering: Type.Optional(MeteringSchema),
  },
  { additionalProperties: false },
);

/** Mesh-wide settings; at most one Mesh exists. */
export const MeshSchema = documentSchema('Mesh', MeshSpecSchema, 'Mesh-wide settings: trust domain and mTLS mode. At most one per configuration.');

export type MeshDocument = Static<typeof MeshSchema>;
export type MeshSpecDocument = Static<typeof MeshSpecSchema>;
export type MtlsMode = (typeof MTLS_MODES)[number];
/** `mtls` after defaults: `mode` is always set (STRICT unless given). */
export type MtlsSettings = Defaulted<NonNullable<MeshSpecDocument['mtls']>, 'mode'>;
/** `metering` after defaults: `reportInterval` and `maxTenants` are set when `metering` is; no `tenant` means header x-tenant-id. */
export type MeteringSettings = Defaulted<NonNullable<MeshSpecDocument['metering']>, 'reportInterval' | 'maxTenants'>;
/** Mesh spec after defaults: `mtls` is always set; `metering` when given (absent: METERING_DEFAULTS). */
export type MeshSpec = Replace<MeshSpecDocument, { mtls: MtlsSettings; metering?: MeteringSettings }>;

export interface MeshResource {
  apiVersion: typeof API_VERSION;
  kind: 'Mesh';
  metadata: ResourceMetadata;
  spec: MeshSpec;
  source: SourceRef;
}
