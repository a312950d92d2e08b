/**
 * Envoy's `RegexMatcher` (RE2) on JS RegExp: route, header and query matchers use RE2
 * `FullMatch` (the whole value must match), rewrites use `GlobalReplace` with RE2's `\1`
 * substitution syntax. The RE2 → JS translation itself is `compileRe2` in xds/validate; a
 * pattern it cannot translate comes back as the reason, for the caller to report with a path.
 */
import { compileRe2 } from '../../xds/validate/pgv-formats.ts';

/** A regex whose match must cover the whole subject, as RE2 `FullMatch`; or why it can't run. */
export function compileFullMatch(src: string): RegExp | string {
  const re = compileRe2(src);
  if (typeof re === 'string') return re;
  // With (?m) in the pattern `^`/`$` would also match at line breaks: anchor on the subject's ends instead.
  const anchored = re.flags.includes('m') ? `(?<![\\s\\S])(?:${re.source})(?![\\s\\S])` : `^(?:${re.source})$`;
  return new RegExp(anchored, re.flags);
}

/** A compiled `RegexMatchAndSubstitute`: `pattern` is global, `substitution` in JS replacement syntax. */
export interface RegexRewrite {
  readonly pattern: RegExp;
  readonly substitution: string;
}

/**
 * `RegexMatchAndSubstitute` → a global RegExp and a JS replacement string: RE2's `\0`..`\9`
 * become `$&` and `$01`..`$09` (two digits, so a literal digit after them stays literal, as in
 * RE2), `\\` a backslash, `$` is escaped. Any other backslash escape, or a group the pattern
 * does not have, is an error, as RE2's `Rewrite` would refuse it.
 */
export function compileRegexRewrite(src: string, substitution: string): RegexRewrite | string {
  const re = compileRe2(src);
  if (typeof re === 'string') return re;
  const groups = new RegExp(`(?:${re.source})|`, re.flags).exec('')!.length - 1;
  let out = '';
  for (let i = 0; i < substitution.length; i++) {
    const c = substitution[i]!;
    if (c === '$') {
      out += '$$';
    } else if (c !== '\\') {
      out += c;
    } else {
      const d = substitution[i + 1];
      i++;
      if (d === '\\') out += '\\';
      else if (d !== undefined && d >= '0' && d <= '9') {
        const n = d.charCodeAt(0) - 48;
        if (n > groups) return `substitution refers to group ${n} but the pattern has ${groups}`;
        out += n === 0 ? '$&' : `$0${n}`;
      } else return `substitution has an invalid escape ${d === undefined ? 'at its end' : `\\${d}`}`;
    }
  }
  return { pattern: new RegExp(re.source, `${re.flags}g`), substitution: out };
}
