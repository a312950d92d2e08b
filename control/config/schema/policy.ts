/**
 * Policy: an authorization policy for the workloads it selects, as a signed OPA bundle
 * compiled to wasm (`palisade policy build`), or as inline Rego the control plane compiles
 * and signs itself (control/config/policy-compiler.ts). The bundle is read (or compiled) with
 * the config and travels to sidecars as the xDS resource palisade.v1.Policy; sidecars verify
 * its signature and evaluate it on inbound requests (docs/policies.md).
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import type { SourceRef } from '../config-error.ts';
import { atMostOneOf, DNS_LABEL_PATTERN, documentSchema, ENTRYPOINT_PATTERN, INPUT_PATH_PATTERN, listAnd, presentKeys } from './common.ts';
import type { API_VERSION, Defaulted, Replace, Report, ResourceMetadata } from './common.ts';
import { pointer } from '../config-error.ts';

export const POLICY_MODES = ['enforce', 'dry-run', 'audit'] as const;

/** Where a Policy's bundle comes from: exactly one of these. */
const POLICY_SOURCES = ['bundle', 'rego'] as const;

/** Largest inline Rego text, bytes. */
export const MAX_INLINE_REGO_BYTES = 1024 * 1024;


const SelectorSchema = Type.Object(
  {
    services: Type.Optional(Type.Array(Type.String({ pattern: DNS_LABEL_PATTERN }), {
      maxItems: 256, description: "Services of the policy's namespace whose inbound requests it judges; none: every workload of the namespace",
    })),
    pathPrefixes: Type.Optional(Type.Array(Type.String({ pattern: '^/', maxLength: 1024 }), {
      maxItems: 256, description: 'Request paths it judges, by prefix; none: every path',
    })),
  },
  { additionalProperties: false, default: {} },
);

export const PolicySpecSchema = Type.Object(
  {
    mode: Type.Optional(Type.Union(POLICY_MODES.map((m) => Type.Literal(m)), {
      default: 'enforce',
      description: 'enforce: deny with 403; dry-run: serve and log the would-be denial; audit: enforce and log every decision',
    })),
    entrypoint: Type.String({ pattern: ENTRYPOINT_PATTERN, maxLength: 256, description: 'OPA entrypoint the decision is read from, e.g. envoy/authz/allow' }),
    bundle: Type.Optional(Type.Object(
      {
        file: Type.String({ minLength: 1, maxLength: 4096, description: 'The signed bundle (palisade policy build), relative to this file\'s directory' }),
      },
      { additionalProperties: false },
    )),
    rego: Type.Optional(Type.Object(
      {
        inline: Type.String({ minLength: 1, maxLength: MAX_INLINE_REGO_BYTES, description: 'Rego source text; the control plane compiles it to wasm and signs it (--policy-signing-key)' }),
      },
      { additionalProperties: false },
    )),
    selector: Type.Optional(SelectorSchema),
    cacheKeys: Type.Optional(Type.Array(Type.String({ pattern: INPUT_PATH_PATTERN, maxLength: 256 }), {
      maxItems: 32, default: [], description: 'Input fields the decision depends on; decisions are cached per bundle revision and their values. None: no cache',
    })),
    decisionLogPercent: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, default: 0, description: 'Share of decisions logged (audit mode logs all)' })),
  },
  { additionalProperties: false, description: 'Exactly one of bundle, rego', ...atMostOneOf(POLICY_SOURCES) },
);

/** An authorization policy: a signed OPA wasm bundle and the workloads it judges. */
export const PolicySchema = documentSchema('Policy', PolicySpecSchema, 'An authorization policy: a signed OPA wasm bundle, evaluated by the sidecars of the workloads it selects.');

export type PolicyMode = (typeof POLICY_MODES)[number];
export type PolicyDocument = Static<typeof PolicySchema>;
export type PolicySpecDocument = Static<typeof PolicySpecSchema>;
export type PolicySelector = Static<typeof SelectorSchema>;
/** Policy spec after defaults. */
export type PolicySpec = Replace<Defaulted<PolicySpecDocument, 'mode' | 'cacheKeys' | 'decisionLogPercent'>, { selector: PolicySelector }>;

export interface PolicyResource {
  apiVersion: typeof API_VERSION;
  kind: 'Policy';
  metadata: ResourceMetadata;
  spec: PolicySpec;
  source: SourceRef;
}

/** Rules beyond the schema: exactly one of spec.bundle and spec.rego. */
export function checkPolicy(doc: PolicyDocument, report: Report): void {
  const sources = presentKeys(doc.spec, POLICY_SOURCES);
  if (sources.length === 0) report(pointer('spec'), 'must set one of bundle (a signed bundle file) or rego (inline Rego)');
  else if (sources.length > 1) report(pointer('spec'), `must set only one of bundle or rego, got ${listAnd(sources)}`);
}
