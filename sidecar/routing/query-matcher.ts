/**
 * Envoy's route `QueryParameterMatcher`: the first value of the named parameter (query split
 * on `&`, then at the first `=`; a bare `name` has the value ""; nothing is percent-decoded,
 * as Envoy's `parseQueryString`) must satisfy the string matcher, or merely exist for
 * `present_match: true`. A missing parameter never matches.
 *
 * The query is scanned in place; only a parameter that is found and needs a string compare is
 * sliced out, and only routes that have query matchers pay for it.
 */
import type { QueryParameterMatcher } from '../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { type CompiledStringMatcher, compileStringMatcher, stringMatches } from './string-matcher.ts';

export class CompiledQueryMatcher {
  readonly name: string;
  /** Null for a presence check. */
  readonly string: CompiledStringMatcher | null;
  readonly present: boolean;

  constructor(name: string, string: CompiledStringMatcher | null, present: boolean) {
    this.name = name;
    this.string = string;
    this.present = present;
    Object.freeze(this);
  }
}

export function compileQueryMatcher(q: QueryParameterMatcher, path: string, errors: string[]): CompiledQueryMatcher | null {
  const s = q.queryParameterMatchSpecifier;
  if (s.case === 'stringMatch') {
    const m = compileStringMatcher(s.value, `${path}.string_match`, errors);
    return m && new CompiledQueryMatcher(q.name, m, false);
  }
  return new CompiledQueryMatcher(q.name, null, s.case === 'presentMatch' ? s.value : true);
}

/** Whether the query of `path` (which starts at `queryStart`, the index of `?`; -1 for none) satisfies `m`. */
export function queryMatches(m: CompiledQueryMatcher, path: string, queryStart: number): boolean {
  if (queryStart < 0) return false;
  let end = path.indexOf('#', queryStart);
  if (end < 0) end = path.length;
  const name = m.name;
  let i = queryStart + 1;
  while (i < end) {
    let amp = path.indexOf('&', i);
    if (amp < 0 || amp > end) amp = end;
    const after = i + name.length;
    if (after <= amp && path.startsWith(name, i) && (after === amp || path.charCodeAt(after) === 61 /* = */)) {
      if (m.string === null) return m.present;
      return stringMatches(m.string, after === amp ? '' : path.slice(after + 1, amp));
    }
    i = amp + 1;
  }
  return false;
}
