/**
 * Quota: token-bucket rate limits on the inbound requests of the workloads it selects
 * (issue #7). Each request yields a descriptor, an ordered list of (key, value) pairs read
 * from the request (a header, a JWT claim, the peer's SPIFFE ID, the quota route, the peer
 * address, the method); the first limit whose `match` entries all equal the descriptor's
 * picks the bucket, one bucket per distinct descriptor value. Field for field it is the xDS
 * resource palisade.v1.Quota (xds/proto/palisade/v1/quota.proto) that sidecars enforce;
 * Envoy nodes get local_ratelimit or ratelimit filters (control/translate/quota.ts).
 *
 * `failureMode` and `fallbackTokens` only matter for `scope: global`; with `scope: local`
 * they are accepted and have no effect (docs/configuration.md says so).
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import type { SourceRef } from '../config-error.ts';
import { pointer } from '../config-error.ts';
import { CLAIM_PATTERN, DNS_LABEL_PATTERN, HEADER_NAME_PATTERN, METHOD_PATTERN, atMostOneOf, documentSchema, duration, listAnd, parseDuration, presentKeys } from './common.ts';
import type { API_VERSION, Report, ResourceMetadata } from './common.ts';

export const QUOTA_SCOPES = ['local', 'global'] as const;
export const QUOTA_FAILURE_MODES = ['open', 'closed'] as const;
/** Where a request attribute is read from: exactly one of these. */
export const ATTRIBUTE_SOURCES = ['header', 'jwtClaim', 'principal', 'route', 'remoteAddress', 'method'] as const;

/** Names of descriptor keys, limits, routes and priority classes (palisade.v1.Quota's rule). */
export const QUOTA_NAME_PATTERN = '^[a-z0-9](?:[a-z0-9_.-]*[a-z0-9])?$';
const QUOTA_NAME_RE = new RegExp(QUOTA_NAME_PATTERN);
const QUOTA_NAME_PHRASE = "1-64 lowercase letters, digits, '_', '.' or '-', starting and ending with a letter or digit";
/** The provider part of a jwtClaim: a provider name without '.' (the first '.' ends it). */
const CLAIM_PROVIDER_RE = /^[A-Za-z0-9][-A-Za-z0-9_]{0,62}$/;
const CLAIM_RE = new RegExp(CLAIM_PATTERN);

/** Route name of a request when the quota names no routes. */
export const DEFAULT_QUOTA_ROUTE = 'default';
/** Refill interval bounds, milliseconds (whole seconds, 1s..24h). */
export const MIN_QUOTA_INTERVAL_MS = 1000;
export const MAX_QUOTA_INTERVAL_MS = 86_400_000;
export const MAX_QUOTA_TOKENS = 1_000_000_000;

const name = (description: string) => Type.String({ minLength: 1, maxLength: 64, description: `${description}; ${QUOTA_NAME_PHRASE}` });

const AttributeSchema = Type.Object(
  {
    header: Type.Optional(Type.String({ pattern: HEADER_NAME_PATTERN, maxLength: 256, description: 'A request header (its first value); matched case-insensitively' })),
    jwtClaim: Type.Optional(Type.String({ minLength: 3, maxLength: 256, description: 'A claim of a token verified by a RequestAuthentication of the namespace: "<provider>.<claim path>", e.g. keycloak.tenant' })),
    principal: Type.Optional(Type.Literal(true, { description: "The peer's SPIFFE ID, from its mTLS client certificate" })),
    route: Type.Optional(Type.Literal(true, { description: 'The name of the quota route the request matched ("default" without routes)' })),
    remoteAddress: Type.Optional(Type.Literal(true, { description: "The downstream peer's IP address" })),
    method: Type.Optional(Type.Literal(true, { description: 'The request method' })),
  },
  { additionalProperties: false, description: `Exactly one of ${ATTRIBUTE_SOURCES.join(', ')}`, ...atMostOneOf(ATTRIBUTE_SOURCES) },
);

const SelectorSchema = Type.Object(
  {
    services: Type.Optional(Type.Array(Type.String({ pattern: DNS_LABEL_PATTERN }), {
      maxItems: 256, uniqueItems: true, description: "Services of the quota's namespace whose inbound requests it limits; none: every workload of the namespace",
    })),
  },
  { additionalProperties: false, default: {} },
);

const RouteSchema = Type.Object(
  {
    name: name('The route name, the value of the route attribute'),
    pathPrefix: Type.String({ pattern: '^/', maxLength: 1024, description: 'Path prefix; "/" matches every path' }),
    methods: Type.Optional(Type.Array(Type.String({ pattern: METHOD_PATTERN, maxLength: 32 }), { maxItems: 16, uniqueItems: true, description: 'Methods; none: every method' })),
  },
  { additionalProperties: false },
);

const DescriptorSchema = Type.Object(
  {
    key: name('The descriptor key, e.g. tenant'),
    from: AttributeSchema,
    default: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Value used when the request has none; absent: such a request is not counted by this quota' })),
  },
  { additionalProperties: false },
);

const LimitSchema = Type.Object(
  {
    name: name('Names the limit in headers, logs and metrics'),
    match: Type.Optional(Type.Record(Type.String(), Type.String({ minLength: 1, maxLength: 256 }), {
      additionalProperties: false, maxProperties: 8,
      description: 'Descriptor key → value the limit applies to; a descriptor key not listed matches any value, each value with its own bucket',
    })),
    tokens: Type.Integer({ minimum: 1, maximum: MAX_QUOTA_TOKENS, description: 'Tokens added per interval (the sustained rate); each request takes one' }),
    interval: duration('The refill interval, whole seconds, 1s..24h'),
    burst: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_QUOTA_TOKENS, default: 0, description: 'Extra tokens a bucket holds beyond tokens, spent on bursts' })),
    fallbackTokens: Type.Optional(Type.Integer({
      minimum: 1, maximum: MAX_QUOTA_TOKENS,
      description: 'scope global: tokens per interval of the per-sidecar bucket used while the global store is unreachable and failureMode is open; default: tokens',
    })),
  },
  { additionalProperties: false },
);

const PriorityClassSchema = Type.Object(
  {
    name: name('The class name'),
    values: Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { maxItems: 64, uniqueItems: true, description: 'Values of priority.from that select this class' }),
    shedAt: Type.Integer({ minimum: 0, maximum: 100, description: 'Shed when overload pressure reaches this percent; 0: never shed' }),
  },
  { additionalProperties: false },
);

const PrioritySchema = Type.Object(
  {
    from: AttributeSchema,
    classes: Type.Array(PriorityClassSchema, { minItems: 1, maxItems: 16, description: 'Priority classes; lower shedAt sheds first' }),
    default: name('The class of a request whose value no class lists; must name a class'),
  },
  { additionalProperties: false },
);

export const QuotaSpecSchema = Type.Object(
  {
    selector: Type.Optional(SelectorSchema),
    routes: Type.Optional(Type.Array(RouteSchema, { maxItems: 64, description: 'Which requests, first match; none: every request (route "default")' })),
    descriptors: Type.Array(DescriptorSchema, { minItems: 1, maxItems: 8, description: 'The descriptor built from each request, in order' }),
    limits: Type.Array(LimitSchema, { minItems: 1, maxItems: 64, description: 'The limits, first match wins; a request no limit matches is not limited' }),
    scope: Type.Optional(Type.Union(QUOTA_SCOPES.map((s) => Type.Literal(s)), {
      default: 'local', description: 'local: one bucket per sidecar (or Envoy); global: one bucket shared by every proxy (Redis, or Envoy\'s rate limit service)',
    })),
    shadow: Type.Optional(Type.Boolean({ default: false, description: 'Count, log and report what would be refused; never refuse' })),
    failureMode: Type.Optional(Type.Union(QUOTA_FAILURE_MODES.map((m) => Type.Literal(m)), {
      default: 'open', description: 'scope global: with the global store unreachable, admit (open, bounded by fallbackTokens) or refuse with 429 (closed)',
    })),
    priority: Type.Optional(PrioritySchema),
  },
  { additionalProperties: false },
);

/** Token-bucket rate limits for the workloads it selects. */
export const QuotaSchema = documentSchema(
  'Quota',
  QuotaSpecSchema,
  'Token-bucket rate limits per request descriptor (header, JWT claim, principal, route, address, method) for the inbound requests of the selected workloads.',
);

export type QuotaScope = (typeof QUOTA_SCOPES)[number];
export type QuotaFailureMode = (typeof QUOTA_FAILURE_MODES)[number];
export type QuotaDocument = Static<typeof QuotaSchema>;
export type QuotaSpecDocument = Static<typeof QuotaSpecSchema>;
export type QuotaSelector = Static<typeof SelectorSchema>;
export type QuotaAttribute = Static<typeof AttributeSchema>;
export type QuotaRoute = Static<typeof RouteSchema>;
export type QuotaDescriptor = Static<typeof DescriptorSchema>;
export type QuotaPriority = Static<typeof PrioritySchema>;
/** A limit after defaults: burst set. */
export type QuotaLimit = Static<typeof LimitSchema> & { burst: number };

/** Quota spec after defaults. */
export interface QuotaSpec {
  selector: QuotaSelector;
  routes?: QuotaRoute[];
  descriptors: QuotaDescriptor[];
  limits: QuotaLimit[];
  scope: QuotaScope;
  shadow: boolean;
  failureMode: QuotaFailureMode;
  priority?: QuotaPriority;
}

export interface QuotaResource {
  apiVersion: typeof API_VERSION;
  kind: 'Quota';
  metadata: ResourceMetadata;
  spec: QuotaSpec;
  source: SourceRef;
}

/** Which source an attribute reads (exactly one is set after validation). */
export function attributeSource(a: QuotaAttribute): (typeof ATTRIBUTE_SOURCES)[number] {
  return presentKeys(a, ATTRIBUTE_SOURCES)[0] as (typeof ATTRIBUTE_SOURCES)[number];
}

/** A jwtClaim split at its first '.': the provider and the claim path. */
export function splitJwtClaim(claim: string): { provider: string; claim: string } {
  const dot = claim.indexOf('.');
  return { provider: claim.slice(0, dot), claim: claim.slice(dot + 1) };
}

/**
 * Rules beyond the schema: one source per attribute, a well-formed jwtClaim, names in the
 * proto's alphabet, unique descriptor keys / limit names / route names / class names / class
 * values, match keys that are descriptor keys, whole-second intervals in 1s..24h, no limit
 * an earlier one makes unreachable, a default class that is listed.
 */
export function checkQuota(doc: QuotaDocument, report: Report): void {
  const spec = doc.spec;
  const checkName = (at: string, value: string) => {
    if (!QUOTA_NAME_RE.test(value)) report(at, `must be ${QUOTA_NAME_PHRASE}, got ${JSON.stringify(value)}`);
  };
  const unique = (seen: Map<string, number>, at: string, what: string, value: string, index: number, list: string) => {
    const first = seen.get(value);
    if (first === undefined) seen.set(value, index);
    else report(at, `duplicate ${what} ${JSON.stringify(value)}: also at spec.${list}[${first}]`);
  };

  const routes = new Map<string, number>();
  (spec.routes ?? []).forEach((r, i) => {
    checkName(pointer('spec', 'routes', i, 'name'), r.name);
    unique(routes, pointer('spec', 'routes', i, 'name'), 'route name', r.name, i, 'routes');
  });

  const keys = new Map<string, number>();
  spec.descriptors.forEach((d, i) => {
    checkName(pointer('spec', 'descriptors', i, 'key'), d.key);
    unique(keys, pointer('spec', 'descriptors', i, 'key'), 'descriptor key', d.key, i, 'descriptors');
    checkAttribute(d.from, ['spec', 'descriptors', i, 'from'], report);
  });

  const limits = new Map<string, number>();
  spec.limits.forEach((l, i) => {
    const at = (...rest: Array<string | number>) => pointer('spec', 'limits', i, ...rest);
    checkName(at('name'), l.name);
    unique(limits, at('name'), 'limit name', l.name, i, 'limits');
    for (const k of Object.keys(l.match ?? {})) {
      if (!keys.has(k)) report(at('match', k), `unknown descriptor key ${JSON.stringify(k)}; descriptor keys: ${listAnd([...keys.keys()])}`);
    }
    const problem = intervalProblem(l.interval);
    if (problem !== null) report(at('interval'), problem);
    // First match wins: an earlier limit whose entries are all among this one's takes all its requests.
    const covering = spec.limits.slice(0, i).find((e) => Object.entries(e.match ?? {}).every(([k, v]) => l.match?.[k] === v));
    if (covering !== undefined) report(at(), `limit ${JSON.stringify(l.name)} is never applied: the earlier limit ${JSON.stringify(covering.name)} matches every request it matches`);
  });

  if (spec.priority !== undefined) {
    const p = spec.priority;
    checkAttribute(p.from, ['spec', 'priority', 'from'], report);
    const classes = new Map<string, number>();
    const values = new Map<string, string>();
    p.classes.forEach((c, i) => {
      checkName(pointer('spec', 'priority', 'classes', i, 'name'), c.name);
      unique(classes, pointer('spec', 'priority', 'classes', i, 'name'), 'class name', c.name, i, 'priority.classes');
      c.values.forEach((v, j) => {
        const owner = values.get(v);
        if (owner === undefined) values.set(v, c.name);
        else if (owner !== c.name) report(pointer('spec', 'priority', 'classes', i, 'values', j), `value ${JSON.stringify(v)} already selects class ${JSON.stringify(owner)}`);
      });
    });
    if (!classes.has(p.default)) report(pointer('spec', 'priority', 'default'), `must name a class (${listAnd([...classes.keys()])}), got ${JSON.stringify(p.default)}`);
  }
}

/** Fills in defaults TypeBox leaves to the arrays' items: burst 0. */
export function normalizeQuota(doc: QuotaDocument): void {
  for (const l of doc.spec.limits) l.burst ??= 0;
}

/** Why `s` is not a quota interval (whole seconds, 1s..24h), or null. */
export function intervalProblem(s: string): string | null {
  let ms: number;
  try {
    ms = parseDuration(s);
  } catch {
    return `must be a positive duration, got ${JSON.stringify(s)}`;
  }
  if (ms % 1000 !== 0) return `must be whole seconds, got ${JSON.stringify(s)}`;
  if (ms < MIN_QUOTA_INTERVAL_MS || ms > MAX_QUOTA_INTERVAL_MS) return `must be between 1s and 24h, got ${JSON.stringify(s)}`;
  return null;
}

function checkAttribute(a: QuotaAttribute, path: Array<string | number>, report: Report): void {
  const sources = presentKeys(a, ATTRIBUTE_SOURCES);
  if (sources.length === 0) report(pointer(...path), `must set one of ${listAnd([...ATTRIBUTE_SOURCES]).replace(/ and (\w+)$/, ' or $1')}`);
  else if (sources.length > 1) report(pointer(...path), `must set only one of ${ATTRIBUTE_SOURCES.join(', ')}, got ${listAnd(sources)}`);
  if (a.jwtClaim !== undefined) {
    const { provider, claim } = splitJwtClaim(a.jwtClaim);
    if (a.jwtClaim.indexOf('.') <= 0 || !CLAIM_PROVIDER_RE.test(provider) || !CLAIM_RE.test(claim)) {
      report(pointer(...path, 'jwtClaim'), `must be "<provider>.<claim path>" (a provider name without '.', then the claim, nested claims separated by '.'), e.g. keycloak.tenant, got ${JSON.stringify(a.jwtClaim)}`);
    }
  }
}
