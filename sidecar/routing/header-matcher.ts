/**
 * Envoy's route `HeaderMatcher`, compiled to a flat struct. Semantics follow Envoy's
 * `HeaderUtility::matchHeaders`:
 *
 * - a missing header matches only `present_match: false`, or `present_match: true` inverted;
 *   every other matcher fails on it, inverted or not (unless `treat_missing_header_as_empty`,
 *   which matches against "");
 * - otherwise the result of the match is XORed with `invert_match`;
 * - `range_match` is [start, end) over the value parsed as absl `SimpleAtoi` (decimal int64,
 *   optional sign, surrounding ASCII whitespace);
 * - a matcher with no specifier checks presence.
 *
 * `:method`, `:authority` and `:path` are read from `match()`'s arguments (the authority as
 * received, the path with its query); any other name goes to the caller's HeaderLookup. Envoy
 * joins repeated headers with "," before matching; the lookup decides (Node joins with ", ").
 */
import type { HeaderMatcher } from '../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { lowerAscii } from './ascii.ts';
import {
  CompiledStringMatcher, compileRegexMatcher, compileStringMatcher, stringMatches,
  STRING_CONTAINS, STRING_EXACT, STRING_PREFIX, STRING_SUFFIX,
} from './string-matcher.ts';

/**
 * How the sidecar hands request headers to the matcher: the value of a header by its
 * lowercase name, or undefined when absent; repeated headers joined with ",". Over Node's
 * parsed headers that is `(n) => { const v = req.headers[n]; return Array.isArray(v) ? v.join(',') : v; }`
 * (or a scan of `rawHeaders`): one closure per request, no header object built.
 */
export type HeaderLookup = (lowercaseName: string) => string | undefined;

export const SOURCE_LOOKUP = 0;
export const SOURCE_METHOD = 1;
export const SOURCE_AUTHORITY = 2;
export const SOURCE_PATH = 3;

const KIND_STRING = 0;
const KIND_PRESENT = 1;
const KIND_RANGE = 2;
/** Deprecated `exact_match: ""`: any value of a present header. */
const KIND_ANY_VALUE = 3;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

export class CompiledHeaderMatcher {
  /** Lowercase header name. */
  readonly name: string;
  /** Where the value comes from: one of the SOURCE_* constants. */
  readonly source: number;
  readonly kind: number;
  readonly string: CompiledStringMatcher | null;
  readonly present: boolean;
  readonly rangeStart: bigint;
  readonly rangeEnd: bigint;
  /** The bounds as doubles, for values short enough to be exact in one. */
  readonly rangeStartNumber: number;
  readonly rangeEndNumber: number;
  readonly invert: boolean;
  readonly missingAsEmpty: boolean;

  constructor(name: string, kind: number, string: CompiledStringMatcher | null, present: boolean, range: readonly [bigint, bigint], invert: boolean, missingAsEmpty: boolean) {
    this.name = name;
    this.source = name === ':method' ? SOURCE_METHOD : name === ':authority' ? SOURCE_AUTHORITY : name === ':path' ? SOURCE_PATH : SOURCE_LOOKUP;
    this.kind = kind;
    this.string = string;
    this.present = present;
    this.rangeStart = range[0];
    this.rangeEnd = range[1];
    this.rangeStartNumber = Number(range[0]);
    this.rangeEndNumber = Number(range[1]);
    this.invert = invert;
    this.missingAsEmpty = missingAsEmpty;
    Object.freeze(this);
  }
}

const NO_RANGE = [0n, 0n] as const;

/** Compiles one HeaderMatcher; `path` names it in errors (`virtual_hosts[0].routes[1].match.headers[0]`). */
export function compileHeaderMatcher(h: HeaderMatcher, path: string, errors: string[]): CompiledHeaderMatcher | null {
  const name = lowerAscii(h.name);
  const make = (kind: number, string: CompiledStringMatcher | null, present = false, range: readonly [bigint, bigint] = NO_RANGE) =>
    new CompiledHeaderMatcher(name, kind, string, present, range, h.invertMatch, h.treatMissingHeaderAsEmpty);
  const s = h.headerMatchSpecifier;
  switch (s.case) {
    case 'stringMatch': {
      const m = compileStringMatcher(s.value, `${path}.string_match`, errors);
      return m && make(KIND_STRING, m);
    }
    case 'exactMatch':
      return s.value === '' ? make(KIND_ANY_VALUE, null) : make(KIND_STRING, new CompiledStringMatcher(STRING_EXACT, s.value, false, null));
    case 'prefixMatch': return make(KIND_STRING, new CompiledStringMatcher(STRING_PREFIX, s.value, false, null));
    case 'suffixMatch': return make(KIND_STRING, new CompiledStringMatcher(STRING_SUFFIX, s.value, false, null));
    case 'containsMatch': return make(KIND_STRING, new CompiledStringMatcher(STRING_CONTAINS, s.value, false, null));
    case 'safeRegexMatch': {
      const m = compileRegexMatcher(s.value.regex, `${path}.safe_regex_match.regex`, errors);
      return m && make(KIND_STRING, m);
    }
    case 'rangeMatch': return make(KIND_RANGE, null, false, [s.value.start, s.value.end]);
    case 'presentMatch': return make(KIND_PRESENT, null, s.value);
    default: return make(KIND_PRESENT, null, true);
  }
}

export function headerMatches(m: CompiledHeaderMatcher, method: string, authority: string, path: string, lookup: HeaderLookup): boolean {
  let v: string | undefined;
  switch (m.source) {
    case SOURCE_LOOKUP: v = lookup(m.name); break;
    case SOURCE_METHOD: v = method; break;
    case SOURCE_AUTHORITY: v = authority; break;
    default: v = path;
  }
  if (v === undefined) {
    if (!m.missingAsEmpty) return m.kind === KIND_PRESENT && m.present === m.invert;
    v = '';
  }
  let match: boolean;
  switch (m.kind) {
    case KIND_STRING: match = stringMatches(m.string!, v); break;
    case KIND_PRESENT: match = m.present; break;
    case KIND_RANGE: match = inRange(v, m); break;
    default: match = true;
  }
  return match !== m.invert;
}

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

/** absl `SimpleAtoi<int64_t>(v)` within [start, end). */
function inRange(v: string, m: CompiledHeaderMatcher): boolean {
  let i = 0;
  let j = v.length;
  while (i < j && isSpace(v.charCodeAt(i))) i++;
  while (j > i && isSpace(v.charCodeAt(j - 1))) j--;
  let negative = false;
  const sign = v.charCodeAt(i);
  if (i < j && (sign === 43 || sign === 45)) {
    negative = sign === 45;
    i++;
  }
  if (i === j) return false;
  let n = 0;
  for (let k = i; k < j; k++) {
    const d = v.charCodeAt(k) - 48;
    if (d < 0 || d > 9) return false;
    n = n * 10 + d;
  }
  if (j - i <= 15) {
    // Exact in a double, and |x| < 2^53, so rounding of far-away bounds cannot flip a comparison.
    const x = negative ? -n : n;
    return x >= m.rangeStartNumber && x < m.rangeEndNumber;
  }
  let big = BigInt(v.slice(i, j));
  if (negative) big = -big;
  if (big < INT64_MIN || big > INT64_MAX) return false;
  return big >= m.rangeStart && big < m.rangeEnd;
}
