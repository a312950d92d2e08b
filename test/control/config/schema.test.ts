import { Kind as TypeBoxKind } from '@sinclair/typebox';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  API_VERSION,
  DNS_LABEL_PATTERN,
  DURATION_PATTERN,
  HOST_PATTERN,
  JSON_SCHEMAS,
  KINDS,
  KIND_DEFINITIONS,
  LABEL_KEY_PATTERN,
  LABEL_VALUE_PATTERN,
  PATTERN_PHRASES,
  parseDuration,
  regexProblem,
} from '../../../control/config/schema.ts';
import type { Backend, Endpoint, HttpMatch, HttpRule, MeshSpec, Resource, ResourceMetadata, RouteResource, ServiceSpec } from '../../../control/config/schema.ts';

// Keywords of JSON Schema draft 2020-12 (core, applicator, validation, meta-data, format annotation).
const KEYWORDS_2020_12 = new Set([
  '$schema', '$id', '$ref', '$defs', '$comment', '$anchor', '$dynamicRef', '$dynamicAnchor', '$vocabulary',
  'allOf', 'anyOf', 'oneOf', 'not', 'if', 'then', 'else', 'dependentSchemas', 'prefixItems', 'items', 'contains',
  'properties', 'patternProperties', 'additionalProperties', 'propertyNames', 'unevaluatedItems', 'unevaluatedProperties',
  'type', 'const', 'enum', 'multipleOf', 'maximum', 'exclusiveMaximum', 'minimum', 'exclusiveMinimum',
  'maxLength', 'minLength', 'pattern', 'maxItems', 'minItems', 'uniqueItems', 'maxContains', 'minContains',
  'maxProperties', 'minProperties', 'required', 'dependentRequired',
  'title', 'description', 'default', 'deprecated', 'readOnly', 'writeOnly', 'examples', 'format',
]);
// Keywords whose value is a map of name → subschema, or a list of subschemas, or one subschema.
const SCHEMA_MAPS = ['properties', 'patternProperties', '$defs', 'dependentSchemas'];
const SCHEMA_LISTS = ['allOf', 'anyOf', 'oneOf', 'prefixItems'];
const SCHEMA_SINGLE = ['not', 'items', 'contains', 'additionalProperties', 'propertyNames', 'if', 'then', 'else'];

type JsonSchema = Record<string, unknown>;

/** Every subschema of a JSON Schema document, with its location. */
function* subschemas(schema: JsonSchema, at = '#'): Generator<[string, JsonSchema]> {
  yield [at, schema];
  for (const key of SCHEMA_MAPS) {
    for (const [name, sub] of Object.entries((schema[key] ?? {}) as Record<string, JsonSchema>)) yield* subschemas(sub, `${at}/${key}/${name}`);
  }
  for (const key of SCHEMA_LISTS) {
    for (const [i, sub] of ((schema[key] ?? []) as JsonSchema[]).entries()) yield* subschemas(sub, `${at}/${key}/${i}`);
  }
  for (const key of SCHEMA_SINGLE) {
    if (typeof schema[key] === 'object' && schema[key] !== null) yield* subschemas(schema[key] as JsonSchema, `${at}/${key}`);
  }
}

/** Every TypeBox subschema carrying a `default`. */
function* withDefaults(schema: TSchema): Generator<TSchema> {
  if ('default' in schema) yield schema;
  for (const sub of Object.values((schema.properties ?? {}) as Record<string, TSchema>)) yield* withDefaults(sub);
  for (const sub of Object.values((schema.patternProperties ?? {}) as Record<string, TSchema>)) yield* withDefaults(sub);
  for (const sub of (schema.anyOf ?? []) as TSchema[]) yield* withDefaults(sub);
  if (schema.items !== undefined && !Array.isArray(schema.items)) yield* withDefaults(schema.items as TSchema);
}

describe('JSON_SCHEMAS', () => {
  it('has one schema per kind', () => {
    expect(Object.keys(JSON_SCHEMAS).sort()).toEqual([...KINDS].sort());
  });

  it.each(KINDS)('%s serializes as a draft 2020-12 document with $id, type and properties', (kind) => {
    const schema = JSON.parse(JSON.stringify(JSON_SCHEMAS[kind])) as JsonSchema;
    expect(schema).toEqual(JSON_SCHEMAS[kind]);
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.$id).toBe(`https://palisade.dev/schemas/v1/${kind.toLowerCase()}.json`);
    expect(schema.title).toBe(kind);
    expect(schema.type).toBe('object');
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(['apiVersion', 'kind', 'metadata', 'spec']);
    const properties = schema.properties as Record<string, JsonSchema>;
    expect(properties.apiVersion).toMatchObject({ const: API_VERSION });
    expect(properties.kind).toMatchObject({ const: kind });
    expect(Object.getOwnPropertySymbols(JSON_SCHEMAS[kind])).toEqual([]);
  });

  it.each(KINDS)('%s uses only 2020-12 keywords, with well-formed values', (kind) => {
    for (const [at, sub] of subschemas(JSON_SCHEMAS[kind] as JsonSchema)) {
      for (const key of Object.keys(sub)) expect(KEYWORDS_2020_12.has(key), `${at}: keyword ${key}`).toBe(true);
      if (sub.pattern !== undefined) expect(() => new RegExp(sub.pattern as string, 'u'), `${at}: pattern`).not.toThrow();
      for (const p of Object.keys((sub.patternProperties ?? {}) as object)) expect(() => new RegExp(p, 'u'), `${at}: patternProperties`).not.toThrow();
      if (sub.properties !== undefined) {
        expect(sub.type, `${at}: type`).toBe('object');
        for (const r of (sub.required ?? []) as string[]) expect(Object.keys(sub.properties as object), `${at}: required ${r}`).toContain(r);
      }
      if (sub.type === 'object' && sub.properties !== undefined) expect(sub.additionalProperties, `${at}: additionalProperties`).toBe(false);
      if (sub.type !== undefined) expect(['object', 'array', 'string', 'integer', 'number', 'boolean', 'null']).toContain(sub.type);
    }
  });

  it.each(KINDS)('%s has defaults that satisfy their own schema', (kind) => {
    const defaults = [...withDefaults(KIND_DEFINITIONS[kind].schema)];
    for (const schema of defaults) expect(Value.Check(schema, schema.default), JSON.stringify(schema.default)).toBe(true);
    if (kind !== 'Mesh') expect(defaults.length).toBeGreaterThan(1);
  });

  it('describes every pattern it uses in PATTERN_PHRASES', () => {
    for (const kind of KINDS) {
      for (const [at, sub] of subschemas(JSON_SCHEMAS[kind] as JsonSchema)) {
        if (sub.pattern !== undefined) expect(PATTERN_PHRASES.has(sub.pattern as string), `${kind} ${at}`).toBe(true);
      }
    }
  });

  it.each([
    ['Mesh', { trustDomain: 'palisade.local' }],
    ['Service', { port: 80 }],
    ['Route', { hosts: ['web.local'], http: [{ backends: [{ service: 'web' }] }] }],
  ] as const)('compiles a checker accepting a minimal %s', (kind, spec) => {
    const definition = KIND_DEFINITIONS[kind];
    expect(definition.schema[TypeBoxKind]).toBe('Object');
    expect(definition.compiled.Check({ apiVersion: API_VERSION, kind, metadata: { name: 'x' }, spec })).toBe(true);
    expect(definition.compiled.Check({ apiVersion: API_VERSION, kind, metadata: { name: 'x' }, spec, status: {} })).toBe(false);
  });
});

describe('patterns', () => {
  const matches = (pattern: string, value: string) => new RegExp(pattern).test(value);

  it.each([
    ['a', true], ['echo', true], ['echo-v2', true], ['0abc', true], ['a'.repeat(63), true],
    ['', false], ['Echo', false], ['-echo', false], ['echo-', false], ['echo.v2', false], ['echo_v2', false], ['a'.repeat(64), false],
  ])('DNS label %j → %s', (value, ok) => {
    expect(matches(DNS_LABEL_PATTERN, value as string)).toBe(ok);
  });

  it.each([
    ['echo.local', true], ['*.echo.local', true], ['echo.local:8080', true], ['*.local:65535', true], ['localhost', true], ['10.0.0.1:80', true],
    ['Echo.local', false], ['*echo.local', false], ['echo.*.local', false], ['*', false], ['echo.local:0', false], ['echo.local:65536', false],
    ['echo..local', false], ['echo.local.', false], ['[::1]:80', false],
  ])('host %j → %s', (value, ok) => {
    expect(matches(HOST_PATTERN, value as string)).toBe(ok);
  });

  it.each([
    ['app', true], ['app.kubernetes.io/name', true], ['App_Name-1.x', true], ['example.com/a', true],
    ['', false], ['/app', false], ['-app', false], ['Example.com/a', false], ['a/b/c', false], ['a'.repeat(64), false],
  ])('label key %j → %s', (value, ok) => {
    expect(matches(LABEL_KEY_PATTERN, value as string)).toBe(ok);
  });

  it.each([
    ['', true], ['v1', true], ['A-b_c.d', true], ['x'.repeat(63), true],
    ['-v1', false], ['v1.', false], ['a b', false], ['x'.repeat(64), false],
  ])('label value %j → %s', (value, ok) => {
    expect(matches(LABEL_VALUE_PATTERN, value as string)).toBe(ok);
  });

  it.each([
    ['250ms', true], ['1.5s', true], ['2m', true], ['1h', true], ['1m30s', true], ['0s', true],
    ['', false], ['10', false], ['1d', false], ['-1s', false], ['1.s', false], ['.5s', false], [' 1s', false], ['1S', false], ['1 s', false],
  ])('duration syntax %j → %s', (value, ok) => {
    expect(matches(DURATION_PATTERN, value as string)).toBe(ok);
  });
});

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['1.5s', 1500],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['1h1m1s1ms', 3_661_001],
    ['0.5ms', 0.5],
    ['0010s', 10_000],
  ])('parses %j as %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', '0s', '0.0ms', '10', '1d', '-1s', '1.s', ' 1s', '1S', `${'9'.repeat(400)}h`])('rejects %j with PAL_ERR_CONFIG_INVALID_DURATION', (text) => {
    expect(() => parseDuration(text)).toThrow(expect.objectContaining({ code: 'PAL_ERR_CONFIG_INVALID_DURATION' }));
  });

  it('names the value in the message', () => {
    expect(() => parseDuration('5 min')).toThrow('invalid duration "5 min": expected a positive duration like 250ms, 1.5s, 2m or 1h');
  });
});

describe('regexProblem', () => {
  it.each(['^/api/v[0-9]+/', '.*', '(?:a|b)+', '(?<id>[0-9]+)', '[(?=]', '\\(\\?=', '[\\1]', 'a{2,3}?', '^/users/[^/]+$'])('accepts %j', (source) => {
    expect(regexProblem(source)).toBeNull();
  });

  it.each([
    ['(?=a)b', 'lookahead (?=...) is not supported (RE2)'],
    ['a(?!b)', 'lookahead (?!...) is not supported (RE2)'],
    ['(?<=a)b', 'lookbehind (?<=...) is not supported (RE2)'],
    ['(?<!a)b', 'lookbehind (?<!...) is not supported (RE2)'],
    ['(a)\\1', 'backreference \\1 is not supported (RE2)'],
    ['(?<x>a)\\k<x>', 'named backreference \\k<...> is not supported (RE2)'],
    ['(', 'Unterminated group'],
    ['[a', 'Unterminated character class'],
    ['a**', 'Nothing to repeat'],
  ])('rejects %j: %s', (source, problem) => {
    expect(regexProblem(source)).toBe(problem);
  });
});

describe('resolved types', () => {
  it('make defaulted fields required', () => {
    expectTypeOf<ResourceMetadata>().toEqualTypeOf<{ name: string; namespace: string; labels?: Record<string, string> }>();
    expectTypeOf<MeshSpec>().toEqualTypeOf<{
      trustDomain: string; mtls: { mode: 'STRICT' | 'PERMISSIVE' };
      metering?: { tenant?: { header: string } | { jwtClaim: string }; reportInterval: string; maxTenants: number };
    }>();
    expectTypeOf<ServiceSpec['protocol']>().toEqualTypeOf<'http' | 'grpc'>();
    expectTypeOf<ServiceSpec['endpoints']>().toEqualTypeOf<Endpoint[]>();
    expectTypeOf<Endpoint['weight']>().toEqualTypeOf<number>();
    expectTypeOf<HttpRule['match']>().toEqualTypeOf<HttpMatch[]>();
    expectTypeOf<HttpRule['backends']>().toEqualTypeOf<Backend[]>();
    expectTypeOf<Backend>().toEqualTypeOf<{ service: string; port?: number; subset?: Record<string, string>; weight: number }>();
    expectTypeOf<NonNullable<HttpRule['fault']>['abort']>().toEqualTypeOf<{ httpStatus?: number; grpcStatus?: number; percent: number } | undefined>();
    expectTypeOf<RouteResource['spec']['http']>().toEqualTypeOf<HttpRule[]>();
    expectTypeOf<Resource['kind']>().toEqualTypeOf<'Mesh' | 'Service' | 'Route' | 'Policy' | 'RequestAuthentication' | 'Quota'>();
  });
});
