/**
 * One document in, one resource (or every problem) out. Order: envelope (object, apiVersion,
 * kind), then the kind's TypeBox schema on the document as written, then the kind's own rules,
 * then defaults and normalization on a clone, then a deep freeze. TypeBox's errors are turned
 * into messages an operator can act on ("must be <= 65535, got 70000", "unknown field "prot"
 * (did you mean "port"?)"), keeping the first problem per path.
 */
import { Kind as TypeBoxKind } from '@sinclair/typebox';
import type { TSchema } from '@sinclair/typebox';
import { Value, ValueErrorType } from '@sinclair/typebox/value';
import type { ValueError } from '@sinclair/typebox/value';
import type { ConfigError, Result, SourceRef } from './config-error.ts';
import { API_VERSION, KINDS, KIND_DEFINITIONS, LABEL_KEY_PATTERN, PATTERN_PHRASES, isKind } from './schema.ts';
import { deepFreeze } from './schema/common.ts';
import type { Resource } from './schema.ts';

/**
 * Validates one parsed document (any JSON value) and returns the resource with defaults
 * applied, normalized, deep-frozen and carrying `source`; or every problem found, each with
 * `source`'s file and index and a JSON-pointer path.
 */
export function validateDocument(value: unknown, source: SourceRef): Result<Resource, ConfigError[]> {
  const errors: ConfigError[] = [];
  const report = (path: string, message: string) => errors.push({ file: source.file, index: source.index, path, message });

  if (!isPlainObject(value)) {
    report('', `a document must be a mapping with apiVersion, kind, metadata and spec, got ${describe(value)}`);
    return { valid: false, errors };
  }
  if (value.apiVersion === undefined) report('/apiVersion', `missing required field "apiVersion" (use "${API_VERSION}")`);
  else if (value.apiVersion !== API_VERSION) report('/apiVersion', `must be "${API_VERSION}", got ${describe(value.apiVersion)}`);
  const kind = value.kind;
  if (kind === undefined) report('/kind', `missing required field "kind"; known kinds: ${KINDS.join(', ')}`);
  else if (!isKind(kind)) report('/kind', `unknown kind ${describe(kind)}; known kinds: ${KINDS.join(', ')}`);
  if (errors.length > 0 || !isKind(kind)) return { valid: false, errors };

  const definition = KIND_DEFINITIONS[kind];
  if (!definition.compiled.Check(value)) {
    const seen = new Set<string>();
    for (const error of definition.compiled.Errors(value)) {
      if (seen.has(error.path)) continue;
      seen.add(error.path);
      report(error.path, messageFor(error));
    }
    return { valid: false, errors };
  }
  definition.check?.(value as never, report);
  if (errors.length > 0) return { valid: false, errors };

  const defaulted = Value.Default(definition.schema, Value.Clone(value));
  definition.normalize?.(defaulted as never);
  const resource = inSchemaOrder(definition.schema, defaulted) as Record<string, unknown>;
  resource.source = { file: source.file, index: source.index };
  return { valid: true, result: deepFreeze(resource) as unknown as Resource };
}

/** The resource as a plain document again: `source` dropped, defaults kept. */
export function toDocument(resource: Resource): Record<string, unknown> {
  const { source: _source, ...doc } = resource;
  return doc;
}

/**
 * A copy of `value` whose object keys follow the schema's property order, so that filled-in
 * defaults sit where a reader expects them (`metadata.namespace` after `name`, not last).
 */
function inSchemaOrder(schema: TSchema, value: unknown): unknown {
  if (Array.isArray(value)) return schema[TypeBoxKind] === 'Array' ? value.map((v) => inSchemaOrder(schema.items as TSchema, v)) : value;
  if (!isPlainObject(value) || schema[TypeBoxKind] !== 'Object') return value;
  const properties = schema.properties as Record<string, TSchema>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(properties)) {
    if (value[key] !== undefined) out[key] = inSchemaOrder(properties[key] as TSchema, value[key]);
  }
  return out;
}

function messageFor(error: ValueError): string {
  const schema = error.schema as TSchema & Record<string, unknown>;
  const v = error.value;
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return `missing required field ${JSON.stringify(lastSegment(error.path))}`;
    case ValueErrorType.ObjectAdditionalProperties: {
      const key = lastSegment(error.path);
      if (schema[TypeBoxKind] === 'Record') {
        const keyPattern = Object.keys(schema.patternProperties as object)[0] as string;
        const what = keyPattern === LABEL_KEY_PATTERN ? 'label key' : 'key';
        return `invalid ${what} ${JSON.stringify(key)}: must be ${PATTERN_PHRASES.get(keyPattern) ?? `a ${what}`}`;
      }
      return unknownField(key, Object.keys((schema.properties ?? {}) as object));
    }
    case ValueErrorType.ObjectMinProperties:
      if (schema[TypeBoxKind] === 'Record') return `must have at least ${String(schema.minProperties)} ${schema.minProperties === 1 ? 'entry' : 'entries'}`;
      return `must set at least one of: ${Object.keys((schema.properties ?? {}) as object).join(', ')}`;
    case ValueErrorType.Object:
      return `must be a mapping, got ${describe(v)}`;
    case ValueErrorType.Array:
      return `must be a list, got ${describe(v)}`;
    case ValueErrorType.ArrayMinItems:
      return schema.minItems === 1 ? 'must not be empty' : `must have at least ${String(schema.minItems)} items, got ${(v as unknown[]).length}`;
    case ValueErrorType.ArrayMaxItems:
      return `must have at most ${String(schema.maxItems)} items, got ${(v as unknown[]).length}`;
    case ValueErrorType.ArrayUniqueItems:
      return `must not repeat an item, got ${describe(firstDuplicate(v as unknown[]))} more than once`;
    case ValueErrorType.String:
      return `must be a string, got ${describe(v)}`;
    case ValueErrorType.StringMinLength:
      return schema.minLength === 1 ? 'must not be empty' : `must be at least ${String(schema.minLength)} characters long, got ${(v as string).length}`;
    case ValueErrorType.StringMaxLength:
      return `must be at most ${String(schema.maxLength)} characters long, got ${(v as string).length}`;
    case ValueErrorType.StringPattern: {
      const phrase = PATTERN_PHRASES.get(schema.pattern as string);
      return phrase === undefined ? `must match ${String(schema.pattern)}, got ${describe(v)}` : `must be ${phrase}, got ${describe(v)}`;
    }
    case ValueErrorType.Integer:
      return `must be an integer, got ${describe(v)}`;
    case ValueErrorType.Number:
      return `must be a number, got ${describe(v)}`;
    case ValueErrorType.Boolean:
      return `must be true or false, got ${describe(v)}`;
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMaximum:
      return `must be <= ${String(schema.maximum)}, got ${describe(v)}`;
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.NumberMinimum:
      return `must be >= ${String(schema.minimum)}, got ${describe(v)}`;
    case ValueErrorType.Literal:
      return `must be ${describe(schema.const)}, got ${describe(v)}`;
    case ValueErrorType.Union: {
      const variants = (schema.anyOf ?? []) as TSchema[];
      if (variants.length > 0 && variants.every((s) => s[TypeBoxKind] === 'Literal')) {
        return `must be one of ${variants.map((s) => describe(s.const)).join(', ')}; got ${describe(v)}`;
      }
      return `does not match any allowed form, got ${describe(v)}`;
    }
    default:
      return `${error.message}, got ${describe(v)}`;
  }
}

function unknownField(key: string, known: string[]): string {
  const close = known.filter((k) => isCloseTo(key, k));
  if (close.length > 0) return `unknown field ${JSON.stringify(key)} (did you mean ${close.map((k) => JSON.stringify(k)).join(' or ')}?)`;
  return `unknown field ${JSON.stringify(key)}; known fields: ${known.join(', ')}`;
}

/** A likely typo of `known`: same up to case, a prefix of it (3+ characters), or at most 2 edits away. */
function isCloseTo(key: string, known: string): boolean {
  const a = key.toLowerCase();
  const b = known.toLowerCase();
  if (a === b) return true;
  if (a.length >= 3 && b.startsWith(a)) return true;
  return editDistance(a, b) <= Math.min(2, Math.floor(b.length / 3));
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
    }
    prev = row;
  }
  return prev[b.length] as number;
}

function firstDuplicate(items: unknown[]): unknown {
  const seen = new Set<string>();
  for (const item of items) {
    const key = JSON.stringify(item);
    if (seen.has(key)) return item;
    seen.add(key);
  }
  return undefined;
}

function lastSegment(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1).replace(/~1/g, '/').replace(/~0/g, '~');
}

/** A value as it appears in a message: strings quoted (and cut at 60 characters), containers by kind. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  return String(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
