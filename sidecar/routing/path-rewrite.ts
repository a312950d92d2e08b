/**
 * A route's `prefix_rewrite` / `regex_rewrite`, as Envoy's
 * `currentUrlPathAfterRewriteWithMatchedPath`: a prefix rewrite replaces the part of the path
 * the route matched (its prefix, its exact path, or — for a regex route — the whole path
 * before the query); a regex rewrite substitutes every match in the path before the query.
 * Either way the query string is kept.
 */
import type { RegexRewrite } from './re2.ts';

/** Where the path proper ends: the index of the first `?` or `#`, else the length. */
export function pathEnd(path: string): number {
  const q = path.indexOf('?');
  const h = path.indexOf('#');
  if (q < 0) return h < 0 ? path.length : h;
  return h < 0 || q < h ? q : h;
}

export class PathRewrite {
  /** Replacement for the matched part; null when the rewrite is a regex. */
  readonly prefix: string | null;
  readonly regex: RegexRewrite | null;
  /** Length of the part of the path the route matched; -1 when it is all of it up to the query. */
  readonly matchedLength: number;

  constructor(prefix: string | null, regex: RegexRewrite | null, matchedLength: number) {
    this.prefix = prefix;
    this.regex = regex;
    this.matchedLength = matchedLength;
    Object.freeze(this);
  }

  /** The path (with its query) after the rewrite. */
  apply(path: string): string {
    if (this.prefix !== null) {
      return this.prefix + path.slice(this.matchedLength >= 0 ? this.matchedLength : pathEnd(path));
    }
    const end = pathEnd(path);
    return path.slice(0, end).replace(this.regex!.pattern, this.regex!.substitution) + path.slice(end);
  }
}
