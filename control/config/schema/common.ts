/**
 * Building blocks shared by every kind's schema: metadata, names, labels, ports, durations.
 *
 * Validation happens in two passes. TypeBox checks structure (types, ranges, patterns,
 * unknown fields) on the document as written; each kind's `check` then adds the rules a
 * JSON Schema cannot say well (regexes that must compile under RE2, mutually exclusive
 * fields, positive durations, duplicates), and only then are defaults filled in. Every
 * regex below sits inside a JSON Schema `pattern`, so it is written in the subset that
 * ECMA-262, RE2 and other validators agree on (no lookaround, no backreferences).
 */
import { Type } from '@sinclair/typebox';
import type { Static, StringOptions, TSchema } from '@sinclair/typebox';
import { InvalidDurationError } from '../errors.ts';

/** The only `apiVersion` this model knows. */
export const API_VERSION = 'palisade.dev/v1';

/** Base of every kind's JSON Schema `$id`. */
export const SCHEMA_ID_BASE = 'https://palisade.dev/schemas/v1/';

const LABEL = '[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?';
const MIXED_CASE_LABEL = '[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?';
const PORT = '(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';
const LABEL_NAME = '[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?';
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";

/** A DNS-1123 label: lowercase alphanumerics and '-', 1..63, alphanumeric at both ends. */
export const DNS_LABEL_PATTERN = `^${LABEL}$`;
/** A lowercase DNS name (DNS-1123 subdomain): dot-separated labels. */
export const DNS_NAME_PATTERN = `^${LABEL}(?:\\.${LABEL})*$`;
/** A hostname with an optional `:port` and an optional leading `*.` wildcard. */
export const HOST_PATTERN = `^(?:\\*\\.)?${LABEL}(?:\\.${LABEL})*(?::${PORT})?$`;
/** A Kubernetes label key: `[prefix/]name`, prefix a DNS name, name 1..63 of `[-A-Za-z0-9_.]`. */
export const LABEL_KEY_PATTERN = `^(?:${LABEL}(?:\\.${LABEL})*/)?${LABEL_NAME}$`;
/** A Kubernetes label value: empty, or 1..63 of `[-A-Za-z0-9_.]`, alphanumeric at both ends. */
export const LABEL_VALUE_PATTERN = `^(?:${LABEL_NAME})?$`;
/** Duration syntax: one or more `<number><unit>`, unit ms, s, m or h (`250ms`, `1.5s`, `1m30s`); `parseDuration` also requires it to be positive. */
export const DURATION_PATTERN = '^(?:[0-9]+(?:\\.[0-9]+)?(?:ms|s|m|h))+$';
/** An HTTP header name (RFC 9110 token), or an HTTP/2 pseudo-header such as `:authority`. */
export const HEADER_NAME_PATTERN = `^:?${TOKEN}$`;
/** An upper-case HTTP method token (`GET`, `POST`, `M-SEARCH`). */
export const METHOD_PATTERN = '^[A-Z][-A-Z0-9_]*$';
/** A hostname (any case), an IPv4 address or an IPv6 address; checked precisely by `addressProblem`. */
export const ADDRESS_PATTERN = `^(?:${MIXED_CASE_LABEL}(?:\\.${MIXED_CASE_LABEL})*|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$`;
/** A Service reference: `name` (the Route's namespace) or `name.namespace`. */
export const SERVICE_REF_PATTERN = `^${LABEL}(?:\\.${LABEL})?$`;

/**
 * What each pattern means, as a noun phrase for error messages: a value failing `pattern`
 * gets "must be <phrase>, got <value>". Keyed by the pattern text, so a field's JSON Schema
 * `description` stays free for documentation.
 */
/** An OPA entrypoint: rule path segments separated by '/', e.g. envoy/authz/allow. */
export const ENTRYPOINT_PATTERN = '^[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*$';
/** A dotted path into the authorization input, e.g. attributes.source.principal. */
export const INPUT_PATH_PATTERN = '^[A-Za-z_][A-Za-z0-9_-]*(?:\\.[A-Za-z0-9_-]+)*$';

/** A JWT provider name: also the key its verified payload appears under in the policy input. */
export const PROVIDER_NAME_PATTERN = '^[A-Za-z0-9][-A-Za-z0-9_.]{0,62}$';
/** A JWT claim name, nested claims separated by '.' (`sub`, `realm_access.role`). */
export const CLAIM_PATTERN = '^[^.\\s]+(?:\\.[^.\\s]+)*$';
/** An http or https URL. */
export const HTTP_URL_PATTERN = '^https?://[^\\s]+$';

export const PATTERN_PHRASES: ReadonlyMap<string, string> = new Map([
  [DNS_LABEL_PATTERN, "a DNS-1123 label (1-63 lowercase letters, digits or '-', starting and ending with a letter or digit)"],
  [DNS_NAME_PATTERN, 'a lowercase DNS name (dot-separated DNS-1123 labels)'],
  [HOST_PATTERN, "a lowercase hostname with an optional :port and an optional leading '*.' wildcard"],
  [LABEL_KEY_PATTERN, "a label key ([prefix/]name: name is 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit; prefix is a lowercase DNS name)"],
  [LABEL_VALUE_PATTERN, "a label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"],
  [DURATION_PATTERN, 'a duration like 250ms, 1.5s, 2m or 1h'],
  [HEADER_NAME_PATTERN, 'an HTTP header name'],
  [METHOD_PATTERN, 'an upper-case HTTP method such as GET or POST'],
  [ADDRESS_PATTERN, 'an IPv4 address, an IPv6 address or a DNS hostname'],
  [SERVICE_REF_PATTERN, 'a Service name, or name.namespace'],
  ['^/', "a path starting with '/'"],
  [ENTRYPOINT_PATTERN, "an OPA entrypoint: rule names separated by '/', e.g. envoy/authz/allow"],
  [INPUT_PATH_PATTERN, 'a dotted path into the authorization input, e.g. attributes.source.principal'],
  [PROVIDER_NAME_PATTERN, "a provider name (1-63 letters, digits, '-', '_' or '.', starting with a letter or digit)"],
  [CLAIM_PATTERN, "a claim name, nested claims separated by '.', e.g. realm_access.role"],
  [HTTP_URL_PATTERN, 'an http:// or https:// URL'],
]);

/** A DNS-1123 label (resource names, namespaces). */
export function dnsLabel(options: StringOptions = {}) {
  return Type.String({ maxLength: 63, ...options, pattern: DNS_LABEL_PATTERN });
}

/** A TCP port, 1..65535. */
export function port(description?: string) {
  return Type.Integer({ minimum: 1, maximum: 65535, description });
}

/** Kubernetes-style labels (also used as label selectors). */
export function labels(description: string) {
  return Type.Record(
    Type.String({ pattern: LABEL_KEY_PATTERN }),
    Type.String({ maxLength: 63, pattern: LABEL_VALUE_PATTERN }),
    { additionalProperties: false, description },
  );
}

/** A positive duration string (`250ms`, `1.5s`, `2m`, `1h`, `1m30s`); see `parseDuration`. */
export function duration(description: string) {
  return Type.String({ pattern: DURATION_PATTERN, description });
}

/** A percentage, 0..100, fractions allowed; defaults to 100 (every request). */
export function percent(description: string) {
  return Type.Number({ minimum: 0, maximum: 100, default: 100, description });
}

export const MetadataSchema = Type.Object(
  {
    name: dnsLabel(),
    namespace: Type.Optional(dnsLabel({ default: 'default' })),
    labels: Type.Optional(labels('Kubernetes-style labels')),
  },
  { additionalProperties: false },
);

/** Metadata as written: `namespace` may be absent. */
export type MetadataDocument = Static<typeof MetadataSchema>;
/** Metadata after defaults: `namespace` is always set (`'default'` unless given). */
export type ResourceMetadata = Defaulted<MetadataDocument, 'namespace'>;

/** Flattens an intersection into one object type, for readable hovers and errors. */
export type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** `T` with the keys `K` present: their defaults have been applied. */
export type Defaulted<T, K extends keyof T> = Simplify<Omit<T, K> & { [P in K]-?: Exclude<T[P], undefined> }>;

/** `T` with the keys of `R` replaced by `R`'s (for nested defaulted objects). */
export type Replace<T, R extends { [K in keyof R]: K extends keyof T ? unknown : never }> = Simplify<Omit<T, keyof R> & R>;

/** The envelope shared by every kind. */
export function documentSchema<K extends string, S extends TSchema>(kind: K, spec: S, description: string) {
  return Type.Object(
    {
      apiVersion: Type.Literal(API_VERSION),
      kind: Type.Literal(kind),
      metadata: MetadataSchema,
      spec,
    },
    { $id: `${SCHEMA_ID_BASE}${kind.toLowerCase()}.json`, title: kind, description, additionalProperties: false },
  );
}

const DURATION_SEGMENT = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;
const DURATION_RE = new RegExp(DURATION_PATTERN);
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Milliseconds in a duration string: `250ms` → 250, `1.5s` → 1500, `2m` → 120000, `1h` →
 * 3600000, `1m30s` → 90000. The result may be fractional (`0.5ms` → 0.5).
 * Throws `InvalidDurationError` (PAL_ERR_CONFIG_INVALID_DURATION) unless the string is a
 * finite, positive duration; documents that passed validation never do.
 */
export function parseDuration(s: string): number {
  if (typeof s !== 'string' || !DURATION_RE.test(s)) throw new InvalidDurationError(s);
  let ms = 0;
  for (const m of s.matchAll(DURATION_SEGMENT)) ms += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  if (!(ms > 0) || !Number.isFinite(ms)) throw new InvalidDurationError(s);
  return ms;
}

/** Why `s` is not a usable duration, or null. For validation of strings that already match the pattern. */
export function durationProblem(s: string): string | null {
  try {
    parseDuration(s);
    return null;
  } catch {
    return `must be a positive duration, got ${JSON.stringify(s)}`;
  }
}

/** Collects one problem at a JSON pointer into the document. */
export type Report = (path: string, message: string) => void;

/**
 * JSON Schema keywords saying at most one of `keys` may be present. TypeBox does not act on
 * them (the kind's `check` enforces the rule with a better message); they are there for
 * editors and other validators reading the exported JSON Schema.
 */
export function atMostOneOf(keys: readonly string[]): { not: { anyOf: Array<{ required: string[] }> } } {
  const pairs: Array<{ required: string[] }> = [];
  for (let i = 0; i < keys.length; i++) {
    for (let j = i + 1; j < keys.length; j++) pairs.push({ required: [keys[i] as string, keys[j] as string] });
  }
  return { not: { anyOf: pairs } };
}

/** "a", "a and b", "a, b and c". */
export function listAnd(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;
}

/** The keys of `keys` present in `value`, in the order given. */
export function presentKeys(value: object, keys: readonly string[]): string[] {
  return keys.filter((k) => (value as Record<string, unknown>)[k] !== undefined);
}

export { deepFreeze } from '../../../xds/deep-freeze.ts';
