/**
 * protoc-gen-validate for protobuf-es v2 messages, driven by the `(validate.*)` options kept in
 * the generated descriptors, so any Envoy resource can be checked the way Envoy checks it on load.
 *
 * Why a plan: this runs on every resource a server sends and every resource a client receives,
 * so options are read once per descriptor. `planFor(desc)` turns a message's fields into a list
 * of step closures (WeakMap-cached); fields with nothing to check get no step. Nested messages
 * are planned lazily on first visit, which also keeps recursive types (matchers) finite.
 *
 *   Listener ─ filter_chains[i] ─ filters[j] ─ typed_config (Any)
 *                                                 └─ registry → HttpConnectionManager plan …
 *
 * Semantics follow PGV: rules on an unset message field apply only via `required`; proto3
 * scalars are checked as their zero value when unset; explicit-presence scalars only when set;
 * oneof members only when selected; `(validate.required)` oneofs need a selected member;
 * `(validate.disabled)` messages are not checked at all. Unlike PGV (which cannot), an Any whose
 * type the caller's registry knows is unpacked and its payload validated under the Any's path.
 * Singular wrapper fields are unboxed by protobuf-es, so wrapper rules see the scalar directly.
 */
import {
  fromBinary, getOption, hasOption, isFieldSet, ScalarType,
  type DescEnum, type DescField, type DescMessage, type DescOneof, type Message, type MessageShape, type Registry,
} from '@bufbuild/protobuf';
import { FeatureSet_FieldPresence, isWrapperDesc, type Any } from '@bufbuild/protobuf/wkt';
import { disabled, required, rules as fieldRules, type FieldRules } from '../gen/validate/validate_pb.js';
import { compileFieldRules, hasRule, isRequired, ValidationContext, type Check } from './pgv-rules.ts';

/** Outcome of {@link validateMessage}. */
export type ValidationResult =
  | { valid: true; skippedRules?: string[] }
  | { valid: false; errors: string[]; skippedRules?: string[] };

export interface ValidateOptions {
  /**
   * Types to unpack `google.protobuf.Any` payloads with (e.g. `createRegistry(file_…)`).
   * An Any whose type is not in it is left unchecked, as PGV leaves every Any.
   */
  registry?: Registry;
}

type Fields = Record<string, unknown>;
type Step = (message: Fields, ctx: ValidationContext, path: string) => void;

const ANY = 'google.protobuf.Any';
/** MessageOptions field of upstream PGV's `(validate.ignored)`, absent from our validate.proto. */
const IGNORED_OPTION = 1072;
const plans = new WeakMap<DescMessage, readonly Step[]>();

/**
 * Checks `message` against every PGV rule in `schema`'s descriptor and those of the messages it
 * holds, collecting all violations as `<proto field path>: <reason>`, e.g.
 * `filter_chains[0].filters[1].typed_config.stat_prefix: value length must be at least 1 characters, got 0`.
 * A `pattern` that JS cannot compile is not applied; each such rule met is listed in
 * `skippedRules` (present only when non-empty). Throws TypeError if `message` is not a `schema`.
 */
export function validateMessage<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
  opts?: ValidateOptions,
): ValidationResult {
  if (message.$typeName !== schema.typeName) {
    throw new TypeError(`validateMessage: expected a ${schema.typeName}, got a ${message.$typeName}`);
  }
  const ctx = new ValidationContext(opts?.registry);
  visit(schema, message, ctx, '');
  const skipped = ctx.skipped.length > 0 ? { skippedRules: [...new Set(ctx.skipped)] } : {};
  return ctx.errors.length > 0 ? { valid: false, errors: ctx.errors, ...skipped } : { valid: true, ...skipped };
}

function visit(desc: DescMessage, message: unknown, ctx: ValidationContext, path: string): void {
  if (desc.typeName === ANY) {
    visitAny(message, ctx, path);
    return;
  }
  for (const step of planFor(desc)) step(message as Fields, ctx, path);
}

/** Decodes an Any with the caller's registry and validates the payload at the Any's own path. */
function visitAny(value: unknown, ctx: ValidationContext, path: string): void {
  const any = value as Any;
  if (ctx.registry === undefined || any.typeUrl === '') return;
  const typeName = any.typeUrl.slice(any.typeUrl.lastIndexOf('/') + 1);
  const desc = ctx.registry.getMessage(typeName);
  if (desc === undefined) return;
  let inner: Message;
  try {
    inner = fromBinary(desc, any.value);
  } catch (err) {
    ctx.fail(path, `value cannot be decoded as ${typeName}: ${(err as Error).message}`);
    return;
  }
  visit(desc, inner, ctx, path);
}

/** The cached step list for `desc`; empty when nothing in it is constrained. */
function planFor(desc: DescMessage): readonly Step[] {
  let steps = plans.get(desc);
  if (steps === undefined) {
    steps = buildPlan(desc);
    plans.set(desc, steps);
  }
  return steps;
}

function buildPlan(desc: DescMessage): readonly Step[] {
  const ignored = desc.proto.options?.$unknown?.some((u) => u.no === IGNORED_OPTION && u.data.at(-1) === 1);
  if (ignored || getOption(desc, disabled)) return [];
  const steps: Step[] = [];
  for (const member of desc.members) {
    const step = member.kind === 'oneof' ? oneofStep(member) : member.oneof ? null : fieldStep(member);
    if (step) steps.push(step);
  }
  return steps;
}

const join = (path: string, name: string) => (path === '' ? name : `${path}.${name}`);

function rulesOf(field: DescField): FieldRules | undefined {
  return hasOption(field, fieldRules) ? getOption(field, fieldRules) : undefined;
}

/** Walks into a nested message, or null for types that hold no rules (google.protobuf.*). */
function descend(desc: DescMessage): Check | null {
  if (desc.typeName === ANY) return visitAny;
  // Well-known types carry no PGV rules; Struct fields are plain JSON objects in protobuf-es.
  if (desc.typeName.startsWith('google.protobuf.')) return null;
  let steps: readonly Step[] | undefined;
  return (value, ctx, path) => {
    steps ??= planFor(desc);
    for (const step of steps) step(value as Fields, ctx, path);
  };
}

/**
 * The check for one present value of a field, list item, map value or oneof member: its own
 * rules, then (for messages) the nested message's rules unless `message.skip`. `boxed` says a
 * wrapper type arrives as a message (lists, maps, oneofs) rather than unboxed to its scalar.
 */
function valueCheck(rules: FieldRules | undefined, type: { message?: DescMessage; enum?: DescEnum }, boxed: boolean): Check | null {
  const own = rules ? compileFieldRules(rules, type.enum) : null;
  const desc = type.message;
  if (desc === undefined) return own;
  const rule = own && boxed && isWrapperDesc(desc) ? unwrapped(own) : own;
  const deep = rules?.message?.skip ? null : descend(desc);
  if (!rule || !deep) return rule ?? deep;
  return (value, ctx, path) => {
    rule(value, ctx, path);
    deep(value, ctx, path);
  };
}

function unwrapped(check: Check): Check {
  return (value, ctx, path) => check((value as { value: unknown }).value, ctx, path);
}

function fieldStep(field: DescField): Step | null {
  const rules = rulesOf(field);
  const { name, localName } = field;
  switch (field.fieldKind) {
    case 'scalar':
    case 'enum': {
      const check = rules ? compileFieldRules(rules, field.enum) : null;
      if (!check) return null;
      if (field.presence === FeatureSet_FieldPresence.IMPLICIT) {
        return (m, ctx, path) => check(m[localName], ctx, join(path, name));
      }
      return (m, ctx, path) => {
        if (isFieldSet(m as unknown as Message, field)) check(m[localName], ctx, join(path, name));
      };
    }
    case 'message': {
      const needed = isRequired(rules);
      const check = valueCheck(rules, field, false);
      if (!needed && !check) return null;
      return (m, ctx, path) => {
        const value = m[localName];
        if (value === undefined) {
          if (needed) ctx.fail(join(path, name), 'value is required');
        } else {
          check?.(value, ctx, join(path, name));
        }
      };
    }
    case 'list':
      return listStep(field, rules?.type.case === 'repeated' ? rules.type.value : undefined);
    case 'map':
      return mapStep(field, rules?.type.case === 'map' ? rules.type.value : undefined);
  }
}

function oneofStep(oneof: DescOneof): Step | null {
  const needed = getOption(oneof, required);
  const members = new Map<string, { name: string; check: Check }>();
  for (const field of oneof.fields) {
    const check = valueCheck(rulesOf(field), field, true);
    if (check) members.set(field.localName, { name: field.name, check });
  }
  if (!needed && members.size === 0) return null;
  const missing = `value is required, set one of: ${oneof.fields.map((f) => f.name).join(', ')}`;
  return (m, ctx, path) => {
    const selected = m[oneof.localName] as { case: string | undefined; value?: unknown };
    if (selected.case === undefined) {
      if (needed) ctx.fail(join(path, oneof.name), missing);
      return;
    }
    const member = members.get(selected.case);
    member?.check(selected.value, ctx, join(path, member.name));
  };
}

/** min/max counts shared by repeated (`items`) and map (`pairs`) rules. */
function countLimits(rules: Message | undefined, min: string, max: string, unit: string) {
  const limit = (name: string) => (rules && hasRule(rules, name) ? Number((rules as unknown as Fields)[name]) : undefined);
  const lo = limit(min);
  const hi = limit(max);
  if (lo === undefined && hi === undefined) return null;
  return (n: number, ctx: ValidationContext, path: string) => {
    if (lo !== undefined && n < lo) ctx.fail(path, `value must contain at least ${lo} ${unit}, got ${n}`);
    if (hi !== undefined && n > hi) ctx.fail(path, `value must contain no more than ${hi} ${unit}, got ${n}`);
  };
}

function listStep(field: DescField & { fieldKind: 'list' }, rules: (Message & { ignoreEmpty: boolean; unique: boolean; items?: FieldRules }) | undefined): Step | null {
  const { name, localName } = field;
  const counts = countLimits(rules, 'minItems', 'maxItems', 'item(s)');
  // PGV rejects `unique` on message items at generation time; only scalars are compared here.
  const unique = rules?.unique === true && field.listKind !== 'message';
  const item = valueCheck(rules?.items, field, true);
  if (!counts && !unique && !item) return null;
  const ignoreEmpty = rules?.ignoreEmpty === true;
  return (m, ctx, path) => {
    const list = m[localName] as unknown[];
    if (list.length === 0 && ignoreEmpty) return;
    const p = join(path, name);
    counts?.(list.length, ctx, p);
    if (unique) {
      const seen = new Set<unknown>();
      list.forEach((v, i) => {
        const key = v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v;
        if (seen.has(key)) ctx.fail(`${p}[${i}]`, 'repeated value must contain unique items');
        seen.add(key);
      });
    }
    if (item) for (let i = 0; i < list.length; i++) item(list[i], ctx, `${p}[${i}]`);
  };
}

/** Map keys arrive as object property names; turn them back into the key field's type. */
function keyParser(type: ScalarType): (key: string) => unknown {
  switch (type) {
    case ScalarType.INT64: case ScalarType.UINT64: case ScalarType.SINT64: case ScalarType.FIXED64: case ScalarType.SFIXED64:
      return (k) => BigInt(k);
    case ScalarType.BOOL:
      return (k) => k === 'true';
    case ScalarType.STRING:
      return (k) => k;
    default:
      return (k) => Number(k);
  }
}

function mapStep(field: DescField & { fieldKind: 'map' }, rules: (Message & { ignoreEmpty: boolean; noSparse: boolean; keys?: FieldRules; values?: FieldRules }) | undefined): Step | null {
  const { name, localName } = field;
  const counts = countLimits(rules, 'minPairs', 'maxPairs', 'pair(s)');
  const keyCheck = rules?.keys ? compileFieldRules(rules.keys) : null;
  const valCheck = valueCheck(rules?.values, field, true);
  const noSparse = rules?.noSparse === true && field.mapKind === 'message';
  if (!counts && !keyCheck && !valCheck && !noSparse) return null;
  const ignoreEmpty = rules?.ignoreEmpty === true;
  const parseKey = keyParser(field.mapKey);
  const keyText = field.mapKey === ScalarType.STRING ? (k: string) => JSON.stringify(k) : (k: string) => k;
  return (m, ctx, path) => {
    const map = m[localName] as Fields;
    const keys = Object.keys(map);
    if (keys.length === 0 && ignoreEmpty) return;
    const p = join(path, name);
    counts?.(keys.length, ctx, p);
    if (!keyCheck && !valCheck && !noSparse) return;
    for (const key of keys) {
      const at = `${p}[${keyText(key)}]`;
      const value = map[key];
      if (keyCheck) {
        ctx.keyMode = true;
        keyCheck(parseKey(key), ctx, at);
        ctx.keyMode = false;
      }
      if (value === undefined || value === null) {
        if (noSparse) ctx.fail(at, 'value cannot be sparse, all pairs must be non-nil');
      } else {
        valCheck?.(value, ctx, at);
      }
    }
  };
}
