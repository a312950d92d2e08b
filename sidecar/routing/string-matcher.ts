/**
 * Envoy's `envoy.type.matcher.v3.StringMatcher`, compiled to a flat struct checked by one
 * `switch`: every instance has the same shape, so the call site stays monomorphic. Case-
 * insensitive forms compare against a pattern lowered at compile time (ASCII, as Envoy).
 */
import type { StringMatcher } from '../../xds/gen/envoy/type/matcher/v3/string_pb.js';
import { endsWithIgnoreCase, equalsIgnoreCase, includesIgnoreCase, lowerAscii, startsWithIgnoreCase } from './ascii.ts';
import { compileFullMatch } from './re2.ts';

export const STRING_EXACT = 0;
export const STRING_PREFIX = 1;
export const STRING_SUFFIX = 2;
export const STRING_CONTAINS = 3;
export const STRING_REGEX = 4;

export class CompiledStringMatcher {
  /** One of the STRING_* constants. */
  readonly kind: number;
  /** The literal to compare with; ASCII-lowercase when `ignoreCase`. Empty for regex. */
  readonly value: string;
  readonly ignoreCase: boolean;
  /** Anchored at both ends (RE2 FullMatch); null unless `kind` is STRING_REGEX. */
  readonly regex: RegExp | null;

  constructor(kind: number, value: string, ignoreCase: boolean, regex: RegExp | null) {
    this.kind = kind;
    this.value = ignoreCase ? lowerAscii(value) : value;
    this.ignoreCase = ignoreCase;
    this.regex = regex;
    Object.freeze(this);
  }
}

export function stringMatches(m: CompiledStringMatcher, v: string): boolean {
  switch (m.kind) {
    case STRING_EXACT: return m.ignoreCase ? equalsIgnoreCase(v, m.value) : v === m.value;
    case STRING_PREFIX: return m.ignoreCase ? startsWithIgnoreCase(v, m.value, 0) : v.startsWith(m.value);
    case STRING_SUFFIX: return m.ignoreCase ? endsWithIgnoreCase(v, m.value) : v.endsWith(m.value);
    case STRING_CONTAINS: return m.ignoreCase ? includesIgnoreCase(v, m.value) : v.includes(m.value);
    default: return m.regex!.test(v);
  }
}

/** A regex matcher from an RE2 pattern, or null after pushing `<path>: <reason>` onto `errors`. */
export function compileRegexMatcher(regex: string, path: string, errors: string[]): CompiledStringMatcher | null {
  const re = compileFullMatch(regex);
  if (typeof re === 'string') {
    errors.push(`${path}: ${re}`);
    return null;
  }
  return new CompiledStringMatcher(STRING_REGEX, '', false, re);
}

/**
 * Compiles a StringMatcher; `path` names it in errors (`….string_match`). Refuses what Envoy
 * refuses (`ignore_case` with `safe_regex`) and what the sidecar has no extension for (`custom`).
 */
export function compileStringMatcher(sm: StringMatcher, path: string, errors: string[]): CompiledStringMatcher | null {
  const p = sm.matchPattern;
  switch (p.case) {
    case 'exact': return new CompiledStringMatcher(STRING_EXACT, p.value, sm.ignoreCase, null);
    case 'prefix': return new CompiledStringMatcher(STRING_PREFIX, p.value, sm.ignoreCase, null);
    case 'suffix': return new CompiledStringMatcher(STRING_SUFFIX, p.value, sm.ignoreCase, null);
    case 'contains': return new CompiledStringMatcher(STRING_CONTAINS, p.value, sm.ignoreCase, null);
    case 'safeRegex':
      if (sm.ignoreCase) {
        errors.push(`${path}.ignore_case: has no effect with safe_regex (Envoy refuses it); use (?i) in the pattern`);
        return null;
      }
      return compileRegexMatcher(p.value.regex, `${path}.safe_regex.regex`, errors);
    case 'custom':
      errors.push(`${path}.custom: custom string matcher extensions are not supported by the sidecar`);
      return null;
    default:
      errors.push(`${path}: no match_pattern set`);
      return null;
  }
}
