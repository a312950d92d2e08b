/**
 * ASCII-only case folding for the request path, as Envoy does it (absl `AsciiStrToLower`,
 * `StartsWithIgnoreCase`, `EqualsIgnoreCase`): patterns are lowered once at compile time and
 * each request character is folded as it is compared, so nothing is allocated per request.
 * Non-ASCII characters compare as they are, like absl.
 */

const UPPER_RUN = /[A-Z]+/g;
const lowerRun = (run: string): string => run.toLowerCase();

/** `A`..`Z` → `a`..`z`; anything else unchanged. */
function fold(c: number): number {
  return c >= 65 && c <= 90 ? c + 32 : c;
}

/** `s` with ASCII capitals lowered; `s` itself (no allocation) when it has none. */
export function lowerAscii(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) return s.replace(UPPER_RUN, lowerRun);
  }
  return s;
}

/** Whether `s` holds `lower` (already ASCII-lowercase) at `pos`, ignoring ASCII case. */
export function startsWithIgnoreCase(s: string, lower: string, pos: number): boolean {
  const n = lower.length;
  if (pos < 0 || s.length - pos < n) return false;
  for (let i = 0; i < n; i++) {
    if (fold(s.charCodeAt(pos + i)) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** Whether `s` ends with `lower` (already ASCII-lowercase), ignoring ASCII case. */
export function endsWithIgnoreCase(s: string, lower: string): boolean {
  return startsWithIgnoreCase(s, lower, s.length - lower.length);
}

/** Whether `s` equals `lower` (already ASCII-lowercase), ignoring ASCII case. */
export function equalsIgnoreCase(s: string, lower: string): boolean {
  return s.length === lower.length && startsWithIgnoreCase(s, lower, 0);
}

/** Whether `s` contains `lower` (already ASCII-lowercase), ignoring ASCII case. */
export function includesIgnoreCase(s: string, lower: string): boolean {
  for (let pos = 0, last = s.length - lower.length; pos <= last; pos++) {
    if (startsWithIgnoreCase(s, lower, pos)) return true;
  }
  return false;
}
