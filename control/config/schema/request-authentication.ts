/**
 * RequestAuthentication: the JWT providers the sidecars of the selected workloads verify
 * inbound bearer tokens with. Field names follow Envoy's jwt_authn JwtProvider (issuer,
 * audiences, remote/local JWKS, from_headers, from_params, forward_payload_header,
 * claim_to_headers, clock skew); the resource travels to sidecars as
 * palisade.v1.RequestAuthentication, each provider as Envoy's JwtProvider message.
 *
 * `required: false` (the default) is Istio's RequestAuthentication: a request without a token
 * passes unauthenticated and the Policy decides; an invalid token is always refused (401).
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import type { SourceRef } from '../config-error.ts';
import { pointer } from '../config-error.ts';
import { CLAIM_PATTERN, DNS_LABEL_PATTERN, HEADER_NAME_PATTERN, HTTP_URL_PATTERN, PROVIDER_NAME_PATTERN, atMostOneOf, documentSchema, duration, durationProblem, listAnd, presentKeys } from './common.ts';
import type { API_VERSION, Report, ResourceMetadata } from './common.ts';


const JWKS_SOURCES = ['uri', 'inline', 'file'] as const;

const JwksSchema = Type.Object(
  {
    uri: Type.Optional(Type.String({ pattern: HTTP_URL_PATTERN, maxLength: 4096, description: 'Where to fetch the JWKS (http or https); refetched after cacheDuration and on an unknown kid' })),
    cacheDuration: Type.Optional(duration('How long a fetched JWKS is used before it is fetched again (uri only); default 5m')),
    timeout: Type.Optional(duration('Timeout of one JWKS fetch (uri only); default 5s')),
    inline: Type.Optional(Type.String({ minLength: 2, maxLength: 1_048_576, description: 'The JWKS itself, as JSON text' })),
    file: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: "A JWKS JSON file, relative to this file's directory; read with the config" })),
  },
  { additionalProperties: false, description: 'Exactly one of uri, inline, file', ...atMostOneOf(JWKS_SOURCES) },
);

const ProviderSchema = Type.Object(
  {
    issuer: Type.String({ minLength: 1, maxLength: 1024, description: 'The iss claim; a token is matched to its provider by it' }),
    audiences: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 1024 }), {
      maxItems: 64, description: 'Accepted aud values (any one); none: the audience is not checked',
    })),
    jwks: JwksSchema,
    fromHeaders: Type.Optional(Type.Array(Type.Object(
      {
        name: Type.String({ pattern: HEADER_NAME_PATTERN, maxLength: 256 }),
        valuePrefix: Type.Optional(Type.String({ maxLength: 256, description: 'Text before the token, e.g. "Bearer "' })),
      },
      { additionalProperties: false },
    ), { maxItems: 16, description: 'Headers the token is read from; default: Authorization with prefix "Bearer "' })),
    fromParams: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { maxItems: 16, description: 'Query parameters the token is read from' })),
    forward: Type.Optional(Type.Boolean({ default: true, description: 'Keep the token on the request sent to the workload (Envoy forward)' })),
    forwardPayloadHeader: Type.Optional(Type.String({ pattern: HEADER_NAME_PATTERN, maxLength: 256, description: 'Header the verified payload is sent to the workload in (base64url JSON)' })),
    claimToHeaders: Type.Optional(Type.Array(Type.Object(
      {
        claim: Type.String({ pattern: CLAIM_PATTERN, maxLength: 256 }),
        header: Type.String({ pattern: HEADER_NAME_PATTERN, maxLength: 256 }),
      },
      { additionalProperties: false },
    ), { maxItems: 32, description: 'Claims copied into request headers for the workload' })),
    clockSkew: Type.Optional(duration('Leeway for exp and nbf; default 60s')),
  },
  { additionalProperties: false },
);

const SelectorSchema = Type.Object(
  {
    services: Type.Optional(Type.Array(Type.String({ pattern: DNS_LABEL_PATTERN }), {
      maxItems: 256, description: "Services of the resource's namespace whose inbound requests it authenticates; none: every workload of the namespace",
    })),
  },
  { additionalProperties: false, default: {} },
);

export const RequestAuthenticationSpecSchema = Type.Object(
  {
    selector: Type.Optional(SelectorSchema),
    providers: Type.Record(Type.String({ pattern: PROVIDER_NAME_PATTERN }), ProviderSchema, {
      additionalProperties: false, minProperties: 1, maxProperties: 32, description: 'JWT providers by name; the name is the key of the verified payload in the policy input',
    }),
    required: Type.Optional(Type.Boolean({
      default: false, description: 'true: a request without a token gets 401; false: it passes unauthenticated (the policy decides). An invalid token always gets 401',
    })),
  },
  { additionalProperties: false },
);

/** JWT providers, verified by the sidecars of the workloads it selects. */
export const RequestAuthenticationSchema = documentSchema(
  'RequestAuthentication',
  RequestAuthenticationSpecSchema,
  'JWT providers (issuer, audiences, JWKS, where the token is read) the sidecars of the selected workloads verify inbound tokens with.',
);

export type RequestAuthenticationDocument = Static<typeof RequestAuthenticationSchema>;
export type RequestAuthenticationSpecDocument = Static<typeof RequestAuthenticationSpecSchema>;
export type JwtProviderDocument = Static<typeof ProviderSchema>;
export type RequestAuthenticationSelector = Static<typeof SelectorSchema>;

/** RequestAuthentication spec after defaults. */
export interface RequestAuthenticationSpec {
  selector: RequestAuthenticationSelector;
  providers: Record<string, JwtProviderDocument>;
  required: boolean;
}

export interface RequestAuthenticationResource {
  apiVersion: typeof API_VERSION;
  kind: 'RequestAuthentication';
  metadata: ResourceMetadata;
  spec: RequestAuthenticationSpec;
  source: SourceRef;
}

/** Rules beyond the schema: one JWKS source, an inline JWKS that parses, positive durations, one provider per issuer. */
export function checkRequestAuthentication(doc: RequestAuthenticationDocument, report: Report): void {
  const issuers = new Map<string, string>();
  for (const [name, p] of Object.entries(doc.spec.providers)) {
    const at = (...rest: Array<string | number>) => pointer('spec', 'providers', name, ...rest);
    const sources = presentKeys(p.jwks, JWKS_SOURCES);
    if (sources.length !== 1) {
      report(at('jwks'), sources.length === 0 ? 'must set one of uri, inline or file' : `must set only one of uri, inline or file, got ${listAnd(sources)}`);
    }
    if (p.jwks.uri === undefined) {
      for (const k of ['cacheDuration', 'timeout'] as const) if (p.jwks[k] !== undefined) report(at('jwks', k), 'applies to jwks.uri only');
    } else {
      try {
        new URL(p.jwks.uri);
      } catch {
        report(at('jwks', 'uri'), `must be an absolute http or https URL, got ${JSON.stringify(p.jwks.uri)}`);
      }
    }
    if (p.jwks.inline !== undefined) {
      const problem = jwksProblem(p.jwks.inline);
      if (problem !== null) report(at('jwks', 'inline'), problem);
    }
    for (const [k, v] of [['cacheDuration', p.jwks.cacheDuration], ['timeout', p.jwks.timeout]] as const) {
      const problem = v === undefined ? null : durationProblem(v);
      if (problem !== null) report(at('jwks', k), problem);
    }
    const skew = p.clockSkew === undefined ? null : durationProblem(p.clockSkew);
    if (skew !== null) report(at('clockSkew'), skew);
    const other = issuers.get(p.issuer);
    if (other !== undefined) report(at('issuer'), `issuer ${JSON.stringify(p.issuer)} is already used by provider ${JSON.stringify(other)}; a token is matched to its provider by issuer`);
    else issuers.set(p.issuer, name);
  }
}

/** Fills in defaults TypeBox cannot express inside a record: forward true. */
export function normalizeRequestAuthentication(doc: RequestAuthenticationDocument): void {
  for (const p of Object.values(doc.spec.providers)) p.forward ??= true;
}

/** Why `text` is not a JWKS (JSON with a `keys` array), or null. */
export function jwksProblem(text: string): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return `must be a JWKS in JSON: ${(err as Error).message}`;
  }
  if (parsed === null || typeof parsed !== 'object' || !Array.isArray((parsed as { keys?: unknown }).keys)) return 'must be a JWKS: a JSON object with a "keys" array';
  return null;
}
