/**
 * Regexes in routes run in two engines: Envoy compiles them with RE2 (`safe_regex`), the
 * Palisade sidecar with V8. A pattern is accepted only if both can: it must compile as a
 * JavaScript RegExp and must not use what RE2 refuses for its linear-time guarantee,
 * lookaround and backreferences. The scan below finds those outside character classes.
 */

/** Why `source` is not a usable route regex, or null if it is. */
export function regexProblem(source: string): string | null {
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') {
      const next = source[i + 1] ?? '';
      if (!inClass && next >= '1' && next <= '9') return `backreference \\${next} is not supported (RE2)`;
      if (!inClass && next === 'k' && source[i + 2] === '<') return 'named backreference \\k<...> is not supported (RE2)';
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') {
      inClass = true;
      if (source[i + 1] === '^') i++;
      continue;
    }
    if (c === '(' && source[i + 1] === '?') {
      const a = source[i + 2];
      const b = source[i + 3];
      if (a === '=' || a === '!') return `lookahead (?${a}...) is not supported (RE2)`;
      if (a === '<' && (b === '=' || b === '!')) return `lookbehind (?<${b}...) is not supported (RE2)`;
    }
  }
  try {
    new RegExp(source);
  } catch (err) {
    // V8: "Invalid regular expression: /(/: Unterminated group"; keep the reason.
    const message = (err as Error).message;
    return message.slice(message.lastIndexOf(': ') + 2);
  }
  return null;
}
