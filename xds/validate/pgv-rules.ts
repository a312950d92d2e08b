/**
 * Compiles one `(validate.rules)` FieldRules value into a check closure, once per descriptor
 * (the caller caches). Covers the value-level rule families: numbers (all 12 kinds), bool,
 * string, bytes, enum, Duration, Timestamp and Any. Repeated, map and message rules are
 * structural and live in pgv.ts.
 *
 * Semantics follow PGV's Go templates (templates/goshared/*.go): a rule applies when its
 * option is *present* (validate.proto is proto2, so `gt: 0` is a rule and an absent `gt` is
 * not), ranges that pair a lower and an upper bound mean "inside" when lower < upper and
 * "outside" otherwise, and `ignore_empty` skips every rule when the value is its zero value.
 * One deliberate difference: comparisons are written as "fails unless in bounds", so NaN
 * fails a float range (Go's `val <= gt` lets NaN through).
 */
import { createRegistry, isFieldSet, type DescEnum, type Message, type Registry } from '@bufbuild/protobuf';
import type { Duration, Timestamp } from '@bufbuild/protobuf/wkt';
import {
  file_validate_validate,
  type AnyRules, type BoolRules, type BytesRules, type DurationRules, type EnumRules,
  type FieldRules, type StringRules, type TimestampRules,
} from '../gen/validate/validate_pb.js';
import {
  compileRe2, headerRegex, isEmail, isHostname, isIp, isIpv4, isIpv6, isUri, isUriRef, isUuid, runeCount,
} from './pgv-formats.ts';

/** Per-call state: the problems found so far, rules that could not be applied, the Any registry. */
export class ValidationContext {
  readonly errors: string[] = [];
  readonly skipped: string[] = [];
  /** Set while a map key is checked, so reasons read "key …" instead of "value …". */
  keyMode = false;
  readonly registry: Registry | undefined;

  constructor(registry: Registry | undefined) {
    this.registry = registry;
  }

  fail(path: string, reason: string): void {
    if (this.keyMode) reason = reason.startsWith('value ') ? `key ${reason.slice(6)}` : `key: ${reason}`;
    this.errors.push(path === '' ? reason : `${path}: ${reason}`);
  }

  skip(path: string, rule: string): void {
    this.skipped.push(path === '' ? rule : `${path}: ${rule}`);
  }
}

/** Checks one value (already present) and reports each violated rule at `path`. */
export type Check = (value: unknown, ctx: ValidationContext, path: string) => void;
type Rule<T> = (value: T, ctx: ValidationContext, path: string) => string | undefined;

const RULE_TYPES = createRegistry(file_validate_validate);

/** Whether the proto2 rule option `localName` was written in the .proto (not merely defaulted). */
export function hasRule(rules: Message, localName: string): boolean {
  const field = RULE_TYPES.getMessage(rules.$typeName)?.field[localName];
  return field !== undefined && isFieldSet(rules, field);
}

function toCheck<T>(rules: Rule<T>[], convert: (v: unknown) => T, isEmpty?: (v: T) => boolean): Check | null {
  if (rules.length === 0) return null;
  return (raw, ctx, path) => {
    const v = convert(raw);
    if (isEmpty?.(v)) return;
    for (const rule of rules) {
      const why = rule(v, ctx, path);
      if (why !== undefined) ctx.fail(path, why);
    }
  };
}

/** A string for error text: JSON-quoted, cut at 64 characters. */
export function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}

function list<T>(items: readonly T[], fmt: (v: T) => string): string {
  return `[${items.map(fmt).join(', ')}]`;
}

/** Shortest decimal that round-trips through float32 (what the .proto author wrote). */
function float32(v: number): string {
  for (let p = 1; p < 10; p++) {
    const s = v.toPrecision(p);
    if (Math.fround(Number(s)) === v) return String(Number(s));
  }
  return String(v);
}

const NANOS = 1_000_000_000n;

function nanosOf(t: Duration | Timestamp): bigint {
  return BigInt(t.seconds) * NANOS + BigInt(t.nanos);
}

/** A Duration as protobuf JSON prints it: `1.5s`, `0.001s`, `-2s`. */
export function durationText(n: bigint): string {
  const abs = n < 0n ? -n : n;
  const frac = (abs % NANOS).toString().padStart(9, '0').replace(/0+$/, '');
  return `${n < 0n ? '-' : ''}${abs / NANOS}${frac ? `.${frac}` : ''}s`;
}

/** A Timestamp as RFC 3339 with up to nanosecond precision. */
function timestampText(n: bigint): string {
  const secs = n >= 0n ? n / NANOS : -((-n + NANOS - 1n) / NANOS);
  const frac = (n - secs * NANOS).toString().padStart(9, '0').replace(/0+$/, '');
  return new Date(Number(secs) * 1000).toISOString().replace(/\.000Z$/, frac ? `.${frac}Z` : 'Z');
}

interface Bounds<T> { const: T; lt: T; lte: T; gt: T; gte: T; in: T[]; notIn: T[] }

/** const, lt/lte/gt/gte (with PGV's inside/outside range reading) and in/not_in. */
function boundRules<T extends number | bigint>(r: Bounds<T>, fmt: (v: T) => string, present: (name: string) => boolean): Rule<T>[] {
  const rules: Rule<T>[] = [];
  if (present('const')) {
    const c = r.const;
    rules.push((v) => (v === c ? undefined : `value must equal ${fmt(c)}, got ${fmt(v)}`));
  }
  const upper = present('lt') ? { v: r.lt, incl: false } : present('lte') ? { v: r.lte, incl: true } : undefined;
  const lower = present('gt') ? { v: r.gt, incl: false } : present('gte') ? { v: r.gte, incl: true } : undefined;
  const above = (x: T) => lower === undefined || (lower.incl ? x >= lower.v : x > lower.v);
  const below = (x: T) => upper === undefined || (upper.incl ? x <= upper.v : x < upper.v);
  if (upper && lower) {
    const inside = upper.v > lower.v;
    const what = inside
      ? `inside range ${lower.incl ? '[' : '('}${fmt(lower.v)}, ${fmt(upper.v)}${upper.incl ? ']' : ')'}`
      : `outside range ${upper.incl ? '(' : '['}${fmt(upper.v)}, ${fmt(lower.v)}${lower.incl ? ')' : ']'}`;
    rules.push((v) => ((inside ? above(v) && below(v) : above(v) || below(v)) ? undefined : `value must be ${what}, got ${fmt(v)}`));
  } else if (upper) {
    const what = `less than ${upper.incl ? 'or equal to ' : ''}${fmt(upper.v)}`;
    rules.push((v) => (below(v) ? undefined : `value must be ${what}, got ${fmt(v)}`));
  } else if (lower) {
    const what = `greater than ${lower.incl ? 'or equal to ' : ''}${fmt(lower.v)}`;
    rules.push((v) => (above(v) ? undefined : `value must be ${what}, got ${fmt(v)}`));
  }
  rules.push(...memberRules(r.in, r.notIn, fmt, (v) => v));
  return rules;
}

function memberRules<T, K>(inList: readonly T[], notIn: readonly T[], fmt: (v: T) => string, key: (v: T) => K): Rule<T>[] {
  const rules: Rule<T>[] = [];
  if (inList.length > 0) {
    const set = new Set(inList.map(key));
    const what = `value must be in list ${list(inList, fmt)}`;
    rules.push((v) => (set.has(key(v)) ? undefined : `${what}, got ${fmt(v)}`));
  }
  if (notIn.length > 0) {
    const set = new Set(notIn.map(key));
    const what = `value must not be in list ${list(notIn, fmt)}`;
    rules.push((v) => (set.has(key(v)) ? `${what}, got ${fmt(v)}` : undefined));
  }
  return rules;
}

const asNumber = (v: unknown) => v as number;
/** 64-bit values are bigint, or decimal strings for `jstype = JS_STRING` fields. */
const asBigint = (v: unknown) => (typeof v === 'bigint' ? v : BigInt(v as string));

function numberCheck<T extends number | bigint>(r: Message & Bounds<T> & { ignoreEmpty: boolean }, fmt: (v: T) => string, convert: (v: unknown) => T, zero: T): Check | null {
  return toCheck(boundRules(r, fmt, (name) => hasRule(r, name)), convert, r.ignoreEmpty ? (v) => v === zero : undefined);
}

/** len / min / max length rules named by `names`, measured by `measure` in `unit`. */
function lengthRules<T>(r: Message, names: [string, string, string], measure: (v: T) => number, unit: string): Rule<T>[] {
  const rules: Rule<T>[] = [];
  const words = ['', 'at least ', 'at most '];
  names.forEach((name, i) => {
    if (!hasRule(r, name)) return;
    const want = Number((r as unknown as Record<string, bigint>)[name]);
    const ok = i === 0 ? (n: number) => n === want : i === 1 ? (n: number) => n >= want : (n: number) => n <= want;
    const what = `value length must be ${words[i]}${want} ${unit}`;
    rules.push((v) => {
      const n = measure(v);
      return ok(n) ? undefined : `${what}, got ${n}`;
    });
  });
  return rules;
}

const utf8Bytes = (s: string) => Buffer.byteLength(s, 'utf8');

const STRING_FORMATS: Record<string, [(s: string) => boolean, string]> = {
  email: [isEmail, 'value must be a valid email address'],
  hostname: [isHostname, 'value must be a valid hostname'],
  ip: [isIp, 'value must be a valid IP address'],
  ipv4: [isIpv4, 'value must be a valid IPv4 address'],
  ipv6: [isIpv6, 'value must be a valid IPv6 address'],
  uri: [isUri, 'value must be a valid absolute URI'],
  uriRef: [isUriRef, 'value must be a valid URI'],
  address: [(s) => isHostname(s) || isIp(s), 'value must be a valid hostname, or ip address'],
  uuid: [isUuid, 'value must be a valid UUID'],
};

function patternRule<T>(pattern: string, subject: (v: T) => string): Rule<T> {
  const re = compileRe2(pattern);
  if (typeof re === 'string') {
    const why = `pattern ${quote(pattern)} not applied: ${re}`;
    return (_v, ctx, path) => {
      ctx.skip(path, why);
      return undefined;
    };
  }
  const what = `value does not match regex pattern ${quote(pattern)}`;
  return (v) => (re.test(subject(v)) ? undefined : what);
}

function stringCheck(r: StringRules): Check | null {
  const rules: Rule<string>[] = [];
  if (hasRule(r, 'const')) {
    const c = r.const;
    rules.push((s) => (s === c ? undefined : `value must equal ${quote(c)}, got ${quote(s)}`));
  }
  rules.push(...memberRules(r.in, r.notIn, quote, (s) => s));
  rules.push(...lengthRules(r, ['len', 'minLen', 'maxLen'], runeCount, 'characters'));
  rules.push(...lengthRules(r, ['lenBytes', 'minBytes', 'maxBytes'], utf8Bytes, 'bytes'));
  const affix: [string, (s: string, a: string) => boolean, string][] = [
    ['prefix', (s, a) => s.startsWith(a), 'value does not have prefix'],
    ['suffix', (s, a) => s.endsWith(a), 'value does not have suffix'],
    ['contains', (s, a) => s.includes(a), 'value does not contain substring'],
    ['notContains', (s, a) => !s.includes(a), 'value contains substring'],
  ];
  for (const [name, ok, what] of affix) {
    if (!hasRule(r, name)) continue;
    const a = (r as unknown as Record<string, string>)[name]!;
    rules.push((s) => (ok(s, a) ? undefined : `${what} ${quote(a)}, got ${quote(s)}`));
  }
  const wk = r.wellKnown;
  if (wk.case === 'wellKnownRegex') {
    const header = headerRegex(wk.value, r.strict);
    if (header) rules.push((s) => (header.re.test(s) ? undefined : `${header.reason}, got ${quote(s)}`));
  } else if (wk.case !== undefined && wk.value) {
    const [ok, what] = STRING_FORMATS[wk.case]!;
    rules.push((s) => (ok(s) ? undefined : `${what}, got ${quote(s)}`));
  }
  if (hasRule(r, 'pattern')) rules.push(patternRule(r.pattern, (s: string) => s));
  return toCheck(rules, (v) => v as string, r.ignoreEmpty ? (s) => s === '' : undefined);
}

const hex = (b: Uint8Array) => `0x${Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')}`;
const latin1 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

function bytesCheck(r: BytesRules): Check | null {
  const rules: Rule<Uint8Array>[] = [];
  if (hasRule(r, 'const')) {
    const c = latin1(r.const);
    rules.push((b) => (latin1(b) === c ? undefined : `value must equal ${hex(r.const)}, got ${hex(b)}`));
  }
  rules.push(...memberRules(r.in, r.notIn, hex, latin1));
  rules.push(...lengthRules(r, ['len', 'minLen', 'maxLen'], (b: Uint8Array) => b.length, 'bytes'));
  const affix: [string, (b: string, a: string) => boolean, string][] = [
    ['prefix', (b, a) => b.startsWith(a), 'value does not have prefix'],
    ['suffix', (b, a) => b.endsWith(a), 'value does not have suffix'],
    ['contains', (b, a) => b.includes(a), 'value does not contain'],
  ];
  for (const [name, ok, what] of affix) {
    if (!hasRule(r, name)) continue;
    const raw = (r as unknown as Record<string, Uint8Array>)[name]!;
    const a = latin1(raw);
    rules.push((b) => (ok(latin1(b), a) ? undefined : `${what} ${hex(raw)}`));
  }
  const ipLen = { ip: [4, 16], ipv4: [4], ipv6: [16] } as Record<string, number[]>;
  const wk = r.wellKnown;
  if (wk.case !== undefined && wk.value && ipLen[wk.case]) {
    const lens = ipLen[wk.case]!;
    const what = `value must be a valid ${wk.case === 'ip' ? 'IP' : wk.case === 'ipv4' ? 'IPv4' : 'IPv6'} address`;
    rules.push((b) => (lens.includes(b.length) ? undefined : `${what}, got ${b.length} bytes`));
  }
  if (hasRule(r, 'pattern')) {
    const decoder = new TextDecoder();
    rules.push(patternRule(r.pattern, (b: Uint8Array) => decoder.decode(b)));
  }
  return toCheck(rules, (v) => v as Uint8Array, r.ignoreEmpty ? (b) => b.length === 0 : undefined);
}

function enumCheck(r: EnumRules, desc: DescEnum | undefined): Check | null {
  const name = (n: number) => desc?.value[n]?.name ?? String(n);
  const rules: Rule<number>[] = [];
  if (hasRule(r, 'const')) {
    const c = r.const;
    rules.push((v) => (v === c ? undefined : `value must equal ${name(c)}, got ${name(v)}`));
  }
  rules.push(...memberRules(r.in, r.notIn, name, (v) => v));
  if (r.definedOnly && desc) {
    rules.push((v) => (desc.value[v] ? undefined : `value must be one of the defined enum values, got ${v}`));
  }
  return toCheck(rules, asNumber);
}

function boolCheck(r: BoolRules): Check | null {
  if (!hasRule(r, 'const')) return null;
  const c = r.const;
  return toCheck([(v: boolean) => (v === c ? undefined : `value must equal ${c}, got ${v}`)], (v) => v as boolean);
}

/** Duration and Timestamp share the comparisons, on their value in nanoseconds. */
function timeRules(r: DurationRules | TimestampRules, fmt: (n: bigint) => string): Rule<bigint>[] {
  const n = (t: Duration | Timestamp | undefined) => (t ? nanosOf(t) : 0n);
  const bounds = { const: n(r.const), lt: n(r.lt), lte: n(r.lte), gt: n(r.gt), gte: n(r.gte), in: 'in' in r ? r.in.map(nanosOf) : [], notIn: 'notIn' in r ? r.notIn.map(nanosOf) : [] };
  return boundRules(bounds, fmt, (name) => r[name as 'lt'] !== undefined);
}

const MAX_DURATION_SECONDS = 315_576_000_000n;

function durationCheck(r: DurationRules): Check | null {
  const bounds = timeRules(r, durationText);
  if (bounds.length === 0) return null;
  const valid = (d: Duration) => d.seconds >= -MAX_DURATION_SECONDS && d.seconds <= MAX_DURATION_SECONDS
    && d.nanos > -1_000_000_000 && d.nanos < 1_000_000_000
    && !(d.seconds > 0n && d.nanos < 0) && !(d.seconds < 0n && d.nanos > 0);
  const check = toCheck(bounds, (v) => v as bigint)!;
  return (v, ctx, path) => {
    const d = v as Duration;
    if (!valid(d)) ctx.fail(path, `value must be a valid duration, got seconds=${d.seconds} nanos=${d.nanos}`);
    else check(nanosOf(d), ctx, path);
  };
}

const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;

function timestampCheck(r: TimestampRules): Check | null {
  const rules = timeRules(r, timestampText);
  const within = r.within ? nanosOf(r.within) : undefined;
  const span = within === undefined ? '' : ` within ${durationText(within)}`;
  if (r.ltNow || r.gtNow || within !== undefined) {
    const what = r.ltNow ? `value must be less than now${span}`
      : r.gtNow ? `value must be greater than now${span}` : `value must be within ${durationText(within!)} of now`;
    rules.push((t) => {
      const n = BigInt(Date.now()) * 1_000_000n;
      const ok = r.ltNow ? t < n && (within === undefined || t >= n - within)
        : r.gtNow ? t > n && (within === undefined || t <= n + within) : t < n + within! && t > n - within!;
      return ok ? undefined : what;
    });
  }
  if (rules.length === 0) return null;
  const check = toCheck(rules, (v) => v as bigint)!;
  return (v, ctx, path) => {
    const t = v as Timestamp;
    if (t.seconds < MIN_TIMESTAMP_SECONDS || t.seconds > MAX_TIMESTAMP_SECONDS || t.nanos < 0 || t.nanos > 999_999_999) {
      ctx.fail(path, `value must be a valid timestamp, got seconds=${t.seconds} nanos=${t.nanos}`);
    } else {
      check(nanosOf(t), ctx, path);
    }
  };
}

function anyCheck(r: AnyRules): Check | null {
  const rules = memberRules(r.in, r.notIn, quote, (s: string) => s)
    .map((rule): Rule<string> => (url, ctx, path) => rule(url, ctx, path)?.replace(/^value/, 'type URL'));
  return toCheck(rules, (v) => (v as { typeUrl: string }).typeUrl);
}

/**
 * The value-level check for `rules`, or null when it constrains nothing a value could violate.
 * `enumDesc` is the field's enum (for `defined_only` and readable names). Presence rules
 * (`required`) are the caller's: a Check only ever sees a present value.
 */
export function compileFieldRules(rules: FieldRules, enumDesc?: DescEnum): Check | null {
  const t = rules.type;
  switch (t.case) {
    case 'float': return numberCheck(t.value, float32, asNumber, 0);
    case 'double': return numberCheck(t.value, String, asNumber, 0);
    case 'int32': case 'uint32': case 'sint32': case 'fixed32': case 'sfixed32':
      return numberCheck(t.value, String, asNumber, 0);
    case 'int64': case 'uint64': case 'sint64': case 'fixed64': case 'sfixed64':
      return numberCheck(t.value, String, asBigint, 0n);
    case 'bool': return boolCheck(t.value);
    case 'string': return stringCheck(t.value);
    case 'bytes': return bytesCheck(t.value);
    case 'enum': return enumCheck(t.value, enumDesc);
    case 'duration': return durationCheck(t.value);
    case 'timestamp': return timestampCheck(t.value);
    case 'any': return anyCheck(t.value);
    default: return null;
  }
}

/** `required` of message, Duration, Timestamp and Any rules: all mean "the field must be set". */
export function isRequired(rules: FieldRules | undefined): boolean {
  if (!rules) return false;
  const t = rules.type;
  return rules.message?.required === true
    || ((t.case === 'duration' || t.case === 'timestamp' || t.case === 'any') && t.value.required);
}
