import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import type { SourceRef } from '../config-error.ts';
import { DNS_NAME_PATTERN, documentSchema } from './common.ts';
import type { API_VERSION, Defaulted, Replace, ResourceMetadata } from './common.ts';

export const MTLS_MODES = ['STRICT', 'PERMISSIVE'] as const;

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
/** Mesh spec after defaults: `mtls` is always set. */
export type MeshSpec = Replace<MeshSpecDocument, { mtls: MtlsSettings }>;

export interface MeshResource {
  apiVersion: typeof API_VERSION;
  kind: 'Mesh';
  metadata: ResourceMetadata;
  spec: MeshSpec;
  source: SourceRef;
}
