/**
 * The desired-state model: one TypeBox schema per kind gives the validator, the TypeScript
 * types (`Static<>`) and the JSON Schema (`JSON_SCHEMAS`, for editors and the REST API).
 * Documents are `{ apiVersion: 'palisade.dev/v1', kind, metadata, spec }`; unknown fields
 * are rejected so typos surface. Field-level details live in `schema/<kind>.ts`.
 */
import type { TObject } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { TypeCheck } from '@sinclair/typebox/compiler';
import { deepFreeze } from './schema/common.ts';
import type { Report } from './schema/common.ts';
import { MeshSchema } from './schema/mesh.ts';
import type { MeshDocument, MeshResource } from './schema/mesh.ts';
import { RouteSchema, checkRoute, normalizeRoute } from './schema/route.ts';
import type { RouteDocument, RouteResource } from './schema/route.ts';
import { ServiceSchema, checkService } from './schema/service.ts';
import { checkPolicy, PolicySchema } from './schema/policy.ts';
import type { PolicyDocument, PolicyResource } from './schema/policy.ts';
import { RequestAuthenticationSchema, checkRequestAuthentication, normalizeRequestAuthentication } from './schema/request-authentication.ts';
import type { RequestAuthenticationDocument, RequestAuthenticationResource } from './schema/request-authentication.ts';
import type { ServiceDocument, ServiceResource } from './schema/service.ts';
import { QuotaSchema, checkQuota, normalizeQuota } from './schema/quota.ts';
import type { QuotaDocument, QuotaResource } from './schema/quota.ts';

export {
  ADDRESS_PATTERN,
  API_VERSION,
  CLAIM_PATTERN,
  DNS_LABEL_PATTERN,
  DNS_NAME_PATTERN,
  DURATION_PATTERN,
  ENTRYPOINT_PATTERN,
  INPUT_PATH_PATTERN,
  HEADER_NAME_PATTERN,
  HOST_PATTERN,
  HTTP_URL_PATTERN,
  LABEL_KEY_PATTERN,
  LABEL_VALUE_PATTERN,
  METHOD_PATTERN,
  MetadataSchema,
  PATTERN_PHRASES,
  PROVIDER_NAME_PATTERN,
  SCHEMA_ID_BASE,
  SERVICE_REF_PATTERN,
  durationProblem,
  parseDuration,
} from './schema/common.ts';
export type { Defaulted, MetadataDocument, Replace, Report, ResourceMetadata, Simplify } from './schema/common.ts';
export { MTLS_MODES, MeshSchema, MeshSpecSchema } from './schema/mesh.ts';
export type { MeshDocument, MeshResource, MeshSpec, MeshSpecDocument, MtlsMode, MtlsSettings } from './schema/mesh.ts';
export { EndpointSchema, PROTOCOLS, ServiceSchema, ServiceSpecSchema, addressProblem, checkService } from './schema/service.ts';
export type { Endpoint, EndpointDocument, Locality, Protocol, ServiceDocument, ServiceResource, ServiceSpec, ServiceSpecDocument } from './schema/service.ts';
export {
  BackendSchema,
  FaultSchema,
  HeaderMatchSchema,
  HttpMatchSchema,
  HttpRuleSchema,
  RETRY_CONDITIONS,
  RetriesSchema,
  RouteSchema,
  RouteSpecSchema,
  checkRoute,
  normalizeRoute,
} from './schema/route.ts';
export type {
  Backend,
  BackendDocument,
  Fault,
  FaultAbort,
  FaultDelay,
  FaultDocument,
  HeaderMatch,
  HttpMatch,
  HttpRule,
  HttpRuleDocument,
  Retries,
  RetryCondition,
  RouteDocument,
  RouteResource,
  RouteSpec,
  RouteSpecDocument,
} from './schema/route.ts';
export { POLICY_MODES, PolicySchema, PolicySpecSchema } from './schema/policy.ts';
export type { PolicyDocument, PolicyMode, PolicyResource, PolicySelector, PolicySpec, PolicySpecDocument } from './schema/policy.ts';
export {
  RequestAuthenticationSchema,
  RequestAuthenticationSpecSchema,
  checkRequestAuthentication,
  jwksProblem,
  normalizeRequestAuthentication,
} from './schema/request-authentication.ts';
export type {
  JwtProviderDocument,
  RequestAuthenticationDocument,
  RequestAuthenticationResource,
  RequestAuthenticationSelector,
  RequestAuthenticationSpec,
  RequestAuthenticationSpecDocument,
} from './schema/request-authentication.ts';
export {
  ATTRIBUTE_SOURCES, DEFAULT_QUOTA_ROUTE, QUOTA_FAILURE_MODES, QUOTA_NAME_PATTERN, QUOTA_SCOPES, QuotaSchema, QuotaSpecSchema,
  attributeSource, checkQuota, intervalProblem, normalizeQuota, splitJwtClaim,
} from './schema/quota.ts';
export type {
  QuotaAttribute, QuotaDescriptor, QuotaDocument, QuotaFailureMode, QuotaLimit, QuotaPriority, QuotaResource, QuotaRoute, QuotaScope, QuotaSelector,
  QuotaSpec, QuotaSpecDocument,
} from './schema/quota.ts';
export { regexProblem } from './schema/regex.ts';
export type { SourceRef } from './config-error.ts';

/** Every kind, in the order a configuration is usually read (and known kinds are listed). */
export const KINDS = ['Mesh', 'Service', 'Route', 'Policy', 'RequestAuthentication', 'Quota'] as const;
export type Kind = (typeof KINDS)[number];

/** A validated resource with defaults applied and its origin. */
export type Resource = MeshResource | ServiceResource | RouteResource | PolicyResource | RequestAuthenticationResource | QuotaResource;
/** A document as written (defaulted fields optional, no `source`). */
export type ResourceDocument = MeshDocument | ServiceDocument | RouteDocument | PolicyDocument | RequestAuthenticationDocument | QuotaDocument;

/** What the validator needs to know about one kind. */
export interface KindDefinition {
  readonly kind: Kind;
  readonly schema: TObject;
  /** Compiled once at load; `Check` is the fast path, `Errors` is walked only on failure. */
  readonly compiled: TypeCheck<TObject>;
  /** Rules beyond the schema, run on a structurally valid document as written. */
  readonly check: ((doc: never, report: Report) => void) | null;
  /** Rewrites omissions into explicit values after TypeBox defaults; mutates its argument. */
  readonly normalize: ((doc: never) => void) | null;
}

function define(kind: Kind, schema: TObject, check: KindDefinition['check'], normalize: KindDefinition['normalize']): KindDefinition {
  return Object.freeze({ kind, schema, compiled: TypeCompiler.Compile(schema), check, normalize });
}

export const KIND_DEFINITIONS: Readonly<Record<Kind, KindDefinition>> = Object.freeze({
  Mesh: define('Mesh', MeshSchema, null, null),
  Service: define('Service', ServiceSchema, checkService, null),
  Route: define('Route', RouteSchema, checkRoute, normalizeRoute),
  Policy: define('Policy', PolicySchema, checkPolicy, null),
  RequestAuthentication: define('RequestAuthentication', RequestAuthenticationSchema, checkRequestAuthentication, normalizeRequestAuthentication),
  Quota: define('Quota', QuotaSchema, checkQuota, normalizeQuota),
});

/** True if `kind` names a known kind. */
export function isKind(kind: unknown): kind is Kind {
  return typeof kind === 'string' && Object.hasOwn(KIND_DEFINITIONS, kind);
}

/** A plain-JSON copy of a TypeBox schema as a draft 2020-12 document (TypeBox's symbol keys dropped). */
function toJsonSchema(schema: TObject): Record<string, unknown> {
  const json = JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
  return deepFreeze({ $schema: 'https://json-schema.org/draft/2020-12/schema', ...json });
}

/**
 * The JSON Schema (draft 2020-12) of each kind, `$id` `https://palisade.dev/schemas/v1/<kind>.json`.
 * Cross-field rules (at most one path matcher, exactly one abort status) appear as `not`/`oneOf`;
 * rules no JSON Schema can state (RE2-compatible regexes, positive durations, references between
 * resources) are only enforced by `parseConfig` and `buildState`.
 */
export const JSON_SCHEMAS: Readonly<Record<Kind, Readonly<Record<string, unknown>>>> = Object.freeze({
  Mesh: toJsonSchema(MeshSchema),
  Service: toJsonSchema(ServiceSchema),
  Route: toJsonSchema(RouteSchema),
  Policy: toJsonSchema(PolicySchema),
  RequestAuthentication: toJsonSchema(RequestAuthenticationSchema),
  Quota: toJsonSchema(QuotaSchema),
});
