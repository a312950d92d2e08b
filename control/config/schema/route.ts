import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import type { SourceRef } from '../config-error.ts';
import { pointer } from '../config-error.ts';
import {
  HEADER_NAME_PATTERN,
  HOST_PATTERN,
  METHOD_PATTERN,
  SERVICE_REF_PATTERN,
  atMostOneOf,
  documentSchema,
  duration,
  durationProblem,
  labels,
  listAnd,
  percent,
  port,
  presentKeys,
} from './common.ts';
import type { API_VERSION, Defaulted, Replace, Report, ResourceMetadata } from './common.ts';
import { regexProblem } from './regex.ts';

/** Envoy `retry_on` conditions a Route may name (HTTP and gRPC). */
export const RETRY_CONDITIONS = [
  '5xx',
  'gateway-error',
  'reset',
  'connect-failure',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
  'retriable-headers',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
] as const;

const PATH_MATCHERS = ['prefix', 'exact', 'regex'] as const;
const HEADER_MATCHERS = ['exact', 'prefix', 'regex', 'present'] as const;
const ABORT_KINDS = ['httpStatus', 'grpcStatus'] as const;

const path = (description: string) => Type.String({ pattern: '^/', maxLength: 4096, description });
const regex = (description: string) => Type.String({ minLength: 1, maxLength: 4096, description: `${description} (RE2 syntax: no lookaround, no backreferences)` });

export const HeaderMatchSchema = Type.Object(
  {
    name: Type.String({ pattern: HEADER_NAME_PATTERN, maxLength: 256, description: 'Header name, matched case-insensitively' }),
    exact: Type.Optional(Type.String({ description: 'The value equals this' })),
    prefix: Type.Optional(Type.String({ minLength: 1, description: 'The value starts with this' })),
    regex: Type.Optional(regex('The whole value matches this')),
    present: Type.Optional(Type.Boolean({ description: 'true: the header is present; false: it is absent' })),
    invert: Type.Optional(Type.Boolean({ description: 'Negate the match' })),
  },
  {
    additionalProperties: false,
    description: 'At most one of exact, prefix, regex, present; none means present: true',
    ...atMostOneOf(HEADER_MATCHERS),
  },
);

export const HttpMatchSchema = Type.Object(
  {
    prefix: Type.Optional(path('The path starts with this')),
    exact: Type.Optional(path('The path equals this')),
    regex: Type.Optional(regex('The whole path matches this')),
    headers: Type.Optional(Type.Array(HeaderMatchSchema, { description: 'Every header matcher must match' })),
    method: Type.Optional(Type.String({ pattern: METHOD_PATTERN, maxLength: 64, description: 'HTTP method, upper case' })),
  },
  {
    additionalProperties: false,
    description: "At most one of prefix, exact, regex; none means prefix '/'. Every condition given must hold.",
    ...atMostOneOf(PATH_MATCHERS),
  },
);

export const BackendSchema = Type.Object(
  {
    service: Type.String({ pattern: SERVICE_REF_PATTERN, maxLength: 127, description: "A Service in the Route's namespace, or name.namespace" }),
    port: Type.Optional(port("Must equal the Service's port when given")),
    subset: Type.Optional(labels('Only endpoints carrying all these labels')),
    weight: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 1_000_000, default: 1, description: 'Share of traffic relative to the other backends; set on every backend of a rule or on none' }),
    ),
  },
  { additionalProperties: false },
);

export const RetriesSchema = Type.Object(
  {
    attempts: Type.Integer({ minimum: 0, maximum: 10, description: 'Retries after the first try' }),
    perTryTimeout: Type.Optional(duration('Timeout of each try')),
    on: Type.Optional(
      Type.Array(Type.Union(RETRY_CONDITIONS.map((c) => Type.Literal(c))), {
        uniqueItems: true,
        description: 'Envoy retry_on conditions',
      }),
    ),
  },
  { additionalProperties: false },
);

export const FaultSchema = Type.Object(
  {
    delay: Type.Optional(
      Type.Object(
        {
          fixed: duration('Delay added before forwarding'),
          percent: Type.Optional(percent('Share of requests delayed')),
        },
        { additionalProperties: false },
      ),
    ),
    abort: Type.Optional(
      Type.Object(
        {
          httpStatus: Type.Optional(Type.Integer({ minimum: 200, maximum: 599, description: 'HTTP status returned' })),
          grpcStatus: Type.Optional(Type.Integer({ minimum: 0, maximum: 16, description: 'gRPC status code returned' })),
          percent: Type.Optional(percent('Share of requests aborted')),
        },
        {
          additionalProperties: false,
          description: 'Exactly one of httpStatus, grpcStatus',
          oneOf: [{ required: ['httpStatus'] }, { required: ['grpcStatus'] }],
        },
      ),
    ),
    headers: Type.Optional(Type.Array(HeaderMatchSchema, { description: 'The fault applies only to requests every one of these header matchers matches; absent: every request of the rule' })),
  },
  { additionalProperties: false, description: 'Fault injection: at least one of delay, abort; headers limit it to the requests they match' },
);

/** An SLO window: whole days or hours (`30d`, `28d`, `720h`), 1d..90d; checked by checkRoute. */
const SLO_WINDOW_RE = /^[1-9][0-9]{0,3}(?:d|h)$/;
/** The SLO window when `slo.window` is not given. */
export const DEFAULT_SLO_WINDOW = '30d';
const SLO_WINDOW_MIN_MS = 86_400_000;
const SLO_WINDOW_MAX_MS = 90 * 86_400_000;

const objectivePercent = (description: string) => Type.Number({ minimum: 0, maximum: 100, description: `${description}; above 0 and below 100` });

export const SloSchema = Type.Object(
  {
    availability: Type.Optional(objectivePercent('Percent of requests that must not fail (5xx or a local failure), e.g. 99.9')),
    latency: Type.Optional(
      Type.Object(
        {
          threshold: duration('A request slower than this counts against the latency objective, e.g. 250ms'),
          percent: objectivePercent('Percent of requests that must finish within threshold, e.g. 99'),
        },
        { additionalProperties: false },
      ),
    ),
    window: Type.Optional(
      Type.String({ minLength: 1, maxLength: 16, default: DEFAULT_SLO_WINDOW, description: 'The error-budget window: whole days or hours, 1d..90d (30d, 28d, 720h)' }),
    ),
  },
  { additionalProperties: false, description: 'Service level objectives of the rule: at least one of availability, latency' },
);

export const HttpRuleSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 253, description: 'Names the rule in stats and logs' })),
    match: Type.Optional(
      Type.Array(HttpMatchSchema, { default: [{ prefix: '/' }], description: 'The rule applies if any entry matches; absent or empty matches every request' }),
    ),
    backends: Type.Array(BackendSchema, { minItems: 1, description: 'Where matching requests go, split by weight' }),
    timeout: Type.Optional(duration('Overall request timeout, retries included')),
    retries: Type.Optional(RetriesSchema),
    fault: Type.Optional(FaultSchema),
    slo: Type.Optional(SloSchema),
  },
  { additionalProperties: false },
);

export const RouteSpecSchema = Type.Object(
  {
    hosts: Type.Array(Type.String({ pattern: HOST_PATTERN, maxLength: 261 }), {
      minItems: 1,
      uniqueItems: true,
      description: "Hostnames this Route serves, with optional :port; a leading '*.' matches any subdomain. A host belongs to one Route.",
    }),
    http: Type.Array(HttpRuleSchema, { minItems: 1, description: 'Rules, first match wins' }),
  },
  { additionalProperties: false },
);

/** How requests for some hosts are matched and sent to Services. */
export const RouteSchema = documentSchema('Route', RouteSpecSchema, 'How requests for some hosts are matched and sent to Services.');

export type RetryCondition = (typeof RETRY_CONDITIONS)[number];
export type RouteDocument = Static<typeof RouteSchema>;
export type RouteSpecDocument = Static<typeof RouteSpecSchema>;
export type HttpRuleDocument = Static<typeof HttpRuleSchema>;
export type HeaderMatch = Static<typeof HeaderMatchSchema>;
/** A match entry. After defaults exactly one of prefix, exact, regex is set. */
export type HttpMatch = Static<typeof HttpMatchSchema>;
export type BackendDocument = Static<typeof BackendSchema>;
/** A backend after defaults: `weight` is always set (1 unless given). */
export type Backend = Defaulted<BackendDocument, 'weight'>;
export type Retries = Static<typeof RetriesSchema>;
export type FaultDocument = Static<typeof FaultSchema>;
/** A fault delay after defaults: `percent` is always set (100 unless given). */
export type FaultDelay = Defaulted<NonNullable<FaultDocument['delay']>, 'percent'>;
/** A fault abort after defaults: `percent` is always set (100 unless given); exactly one of httpStatus, grpcStatus. */
export type FaultAbort = Defaulted<NonNullable<FaultDocument['abort']>, 'percent'>;
export type Fault = { delay?: FaultDelay; abort?: FaultAbort; headers?: HeaderMatch[] };
export type SloDocument = Static<typeof SloSchema>;
/** An SLO after defaults: `window` is always set (`30d` unless given). */
export type Slo = Defaulted<SloDocument, 'window'>;
/** A rule after defaults: `match` is never empty and `backends` carry weights. */
export type HttpRule = Replace<HttpRuleDocument, { match: HttpMatch[]; backends: Backend[]; fault?: Fault; slo?: Slo }>;
export type RouteSpec = Replace<RouteSpecDocument, { http: HttpRule[] }>;

export interface RouteResource {
  apiVersion: typeof API_VERSION;
  kind: 'Route';
  metadata: ResourceMetadata;
  spec: RouteSpec;
  source: SourceRef;
}

/** Rules beyond the schema: exclusive matchers, RE2 regexes, positive durations, consistent weights. */
export function checkRoute(doc: RouteDocument, report: Report): void {
  const checkDuration = (value: string | undefined, ...at: Array<string | number>) => {
    if (value === undefined) return;
    const problem = durationProblem(value);
    if (problem !== null) report(pointer(...at), problem);
  };
  const checkRegex = (value: string | undefined, ...at: Array<string | number>) => {
    if (value === undefined) return;
    const problem = regexProblem(value);
    if (problem !== null) report(pointer(...at), `invalid regex ${JSON.stringify(value)}: ${problem}`);
  };

  doc.spec.http.forEach((rule, r) => {
    const at = ['spec', 'http', r] as const;
    rule.match?.forEach((m, i) => {
      const set = presentKeys(m, PATH_MATCHERS);
      if (set.length > 1) report(pointer(...at, 'match', i), `at most one of prefix, exact, regex may be set, got ${listAnd(set)}`);
      checkRegex(m.regex, ...at, 'match', i, 'regex');
      m.headers?.forEach((h, j) => {
        const hset = presentKeys(h, HEADER_MATCHERS);
        if (hset.length > 1) report(pointer(...at, 'match', i, 'headers', j), `at most one of exact, prefix, regex, present may be set, got ${listAnd(hset)}`);
        checkRegex(h.regex, ...at, 'match', i, 'headers', j, 'regex');
      });
    });

    const weighted = rule.backends.filter((b) => b.weight !== undefined).length;
    if (weighted > 0 && weighted < rule.backends.length) {
      rule.backends.forEach((b, i) => {
        if (b.weight === undefined) report(pointer(...at, 'backends', i, 'weight'), 'must be set: weight is set on other backends of this rule, so set it on every backend or on none');
      });
    } else if (weighted > 0 && rule.backends.every((b) => b.weight === 0)) {
      report(pointer(...at, 'backends'), 'at least one backend must have a weight above 0');
    }

    checkDuration(rule.timeout, ...at, 'timeout');
    checkDuration(rule.retries?.perTryTimeout, ...at, 'retries', 'perTryTimeout');
    checkDuration(rule.fault?.delay?.fixed, ...at, 'fault', 'delay', 'fixed');
    const abort = rule.fault?.abort;
    if (abort !== undefined) {
      const set = presentKeys(abort, ABORT_KINDS);
      if (set.length !== 1) report(pointer(...at, 'fault', 'abort'), `exactly one of httpStatus, grpcStatus must be set, got ${set.length === 0 ? 'neither' : 'both'}`);
    }
    if (rule.fault !== undefined && rule.fault.delay === undefined && rule.fault.abort === undefined) {
      report(pointer(...at, 'fault'), 'must set at least one of: delay, abort');
    }
    rule.fault?.headers?.forEach((h, j) => {
      const hset = presentKeys(h, HEADER_MATCHERS);
      if (hset.length > 1) report(pointer(...at, 'fault', 'headers', j), `at most one of exact, prefix, regex, present may be set, got ${listAnd(hset)}`);
      checkRegex(h.regex, ...at, 'fault', 'headers', j, 'regex');
    });
    if (rule.slo !== undefined) checkSlo(rule.slo, report, ...at, 'slo');
  });
}

/** Milliseconds of an SLO window (`30d`, `720h`); the string must be whole days or hours (validated documents are). */
export function parseSloWindow(s: string): number {
  const n = Number(s.slice(0, -1));
  return s.endsWith('d') ? n * 86_400_000 : n * 3_600_000;
}

function checkSlo(slo: SloDocument, report: Report, ...at: Array<string | number>): void {
  const checkPercent = (value: number | undefined, ...field: string[]) => {
    if (value !== undefined && (value <= 0 || value >= 100)) {
      report(pointer(...at, ...field), `must be above 0 and below 100 (100 leaves no error budget), got ${value}`);
    }
  };
  if (slo.availability === undefined && slo.latency === undefined) report(pointer(...at), 'at least one of availability, latency must be set');
  checkPercent(slo.availability, 'availability');
  if (slo.latency !== undefined) {
    checkPercent(slo.latency.percent, 'latency', 'percent');
    const problem = durationProblem(slo.latency.threshold);
    if (problem !== null) report(pointer(...at, 'latency', 'threshold'), problem);
  }
  if (slo.window !== undefined && !SLO_WINDOW_RE.test(slo.window)) {
    report(pointer(...at, 'window'), `must be whole days or hours like 30d or 720h, got ${JSON.stringify(slo.window)}`);
  } else if (slo.window !== undefined) {
    const ms = parseSloWindow(slo.window);
    if (ms < SLO_WINDOW_MIN_MS || ms > SLO_WINDOW_MAX_MS) report(pointer(...at, 'window'), `must be between 1d and 90d, got ${JSON.stringify(slo.window)}`);
  }
}

/**
 * Spells out what omission means, after TypeBox defaults: a match entry with no path matcher
 * gets `prefix: '/'`, an empty `match` list becomes `[{ prefix: '/' }]`, a header matcher
 * with no value matcher gets `present: true`. Mutates `doc`, which the caller owns.
 */
export function normalizeRoute(doc: RouteDocument): void {
  for (const rule of doc.spec.http) {
    if (rule.match === undefined || rule.match.length === 0) rule.match = [{ prefix: '/' }];
    for (const m of rule.match) {
      if (presentKeys(m, PATH_MATCHERS).length === 0) m.prefix = '/';
      for (const h of m.headers ?? []) {
        if (presentKeys(h, HEADER_MATCHERS).length === 0) h.present = true;
      }
    }
    for (const h of rule.fault?.headers ?? []) {
      if (presentKeys(h, HEADER_MATCHERS).length === 0) h.present = true;
    }
  }
}
