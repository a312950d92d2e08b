/**
 * String formats behind protoc-gen-validate's well-known string rules, and an RE2 → JS RegExp
 * translation for `pattern`. Each predicate follows what PGV's Go templates generate
 * (templates/goshared/known.go, string.go, module/checker.go), since that is the behaviour the
 * Envoy protos were written against.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** PGV's HTTP_HEADER_NAME: note `+-.` is a range (0x2B-0x2E), so PGV — and Envoy — accept ','. */
const HTTP_HEADER_NAME = /^:?[0-9a-zA-Z!#$%&'*+-.^_|~\x60]+$/u;
// eslint-disable-next-line no-control-regex -- PGV's definition is a control-character class
const HTTP_HEADER_VALUE = /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/u;
/** PGV's HEADER_STRING, used for either header regex when `strict: false`. */
// eslint-disable-next-line no-control-regex -- PGV's definition is a control-character class
const HEADER_STRING = /^[^\u0000\u000A\u000D]*$/u;

/** The checker for `well_known_regex` (1 = HTTP_HEADER_NAME, 2 = HTTP_HEADER_VALUE). */
export function headerRegex(kind: number, strict: boolean): { re: RegExp; reason: string } | undefined {
  if (kind !== 1 && kind !== 2) return undefined;
  if (!strict) return { re: HEADER_STRING, reason: 'value must not contain NUL, CR or LF characters' };
  return kind === 1
    ? { re: HTTP_HEADER_NAME, reason: 'value must be a valid HTTP header name' }
    : { re: HTTP_HEADER_VALUE, reason: 'value must be a valid HTTP header value' };
}

/** Unicode code points in `s` (Go's utf8.RuneCountInString; a lone surrogate counts as one). */
export function runeCount(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) { n--; i++; }
    }
  }
  return n;
}

/** RFC 1034 hostname as PGV checks it: ≤253 chars, labels 1-63 of [a-z0-9-], no edge hyphens. */
export function isHostname(host: string): boolean {
  if (host.length > 253) return false;
  const s = (host.endsWith('.') ? host.slice(0, -1) : host).toLowerCase();
  for (const part of s.split('.')) {
    if (part.length === 0 || part.length > 63) return false;
    if (part.startsWith('-') || part.endsWith('-')) return false;
    if (!/^[a-z0-9-]+$/.test(part)) return false;
  }
  return true;
}

/** Go's net.ParseIP: dotted IPv4 or IPv6 without a zone. */
export function isIp(s: string): boolean {
  return isIPv4(s) || (isIPv6(s) && !s.includes('%'));
}

/** IPv6 text that Go's `ip.To4()` turns into IPv4 (`::ffff:a.b.c.d` and its hex form). */
function isV4Mapped(s: string): boolean {
  return /^\[::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}\]$/.test(new URL(`http://[${s}]`).hostname);
}

export function isIpv4(s: string): boolean {
  return isIPv4(s) || (isIp(s) && isV4Mapped(s));
}

export function isIpv6(s: string): boolean {
  return isIp(s) && !isIPv4(s) && !isV4Mapped(s);
}

/** Go's url.Parse rejects ASCII control characters anywhere in a URL. */
// eslint-disable-next-line no-control-regex -- control characters are what is being rejected
const URL_CONTROL = /[\u0000-\u001F\u007F]/u;

/** Absolute URI (Go's url.Parse + IsAbs, approximated with WHATWG URL parsing). */
export function isUri(s: string): boolean {
  return /^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(s) && URL.canParse(s) && !URL_CONTROL.test(s);
}

/** Absolute or relative URI reference (approximation of Go's url.Parse). */
export function isUriRef(s: string): boolean {
  return URL.canParse(s, 'http://base.invalid/') && !URL_CONTROL.test(s) && !/%(?![0-9a-fA-F]{2})/.test(s);
}

/** Email as PGV checks it: an RFC 5322 address (optionally `Name <addr>`), ≤254 chars, local ≤64. */
export function isEmail(s: string): boolean {
  const angle = /^[^<>]*<([^<>]+)>$/.exec(s);
  const addr = angle ? angle[1]! : s;
  if (addr.length > 254) return false;
  const at = addr.lastIndexOf('@');
  if (at <= 0 || at > 64) return false;
  if (!/^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$/.test(addr.slice(0, at))) return false;
  return isHostname(addr.slice(at + 1));
}

export function isUuid(s: string): boolean {
  return /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(s);
}

const POSIX_CLASSES: Record<string, string> = {
  alnum: '0-9A-Za-z', alpha: 'A-Za-z', ascii: '\\x00-\\x7F', blank: '\\t ', cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9', graph: '!-~', lower: 'a-z', print: ' -~', punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ', upper: 'A-Z', word: '0-9A-Za-z_', xdigit: '0-9A-Fa-f',
};
/** Characters a `u`-mode RegExp accepts after a backslash as themselves. */
const JS_SYNTAX = new Set('^$\\.*+?()[]{}|/');

function hexEscape(ch: string): string {
  return `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`;
}

/**
 * Compiles an RE2 pattern as a `u`-flag RegExp, translating the RE2-only spellings Envoy-style
 * patterns use: leading `(?ims)`, `(?P<name>`, `\A`, `\z`, `\pL`, `\x{…}`, `\Q…\E`, `\a`,
 * `[[:alpha:]]`, and punctuation escapes `u` mode rejects. Returns the reason as a string when the
 * pattern has no JS equivalent (e.g. `(?U)`, octal escapes) so the caller can skip that rule.
 */
export function compileRe2(src: string): RegExp | string {
  const flags = new Set(['u']);
  let i = 0;
  const lead = /^\(\?([imsU]+)\)/.exec(src);
  if (lead) {
    if (lead[1]!.includes('U')) return 'RE2 flag U (ungreedy) has no JS equivalent';
    for (const f of lead[1]!) flags.add(f);
    i = lead[0].length;
  }
  let out = '';
  let inClass = false;
  while (i < src.length) {
    const c = src[i]!;
    if (c === '\\') {
      const d = src[i + 1];
      if (d === undefined) return 'trailing backslash';
      if (d === 'Q') {
        const end = src.indexOf('\\E', i + 2);
        const lit = src.slice(i + 2, end < 0 ? src.length : end);
        out += lit.replace(/[^0-9A-Za-z]/gu, (ch) => (ch.charCodeAt(0) < 0x80 ? hexEscape(ch) : ch));
        i = end < 0 ? src.length : end + 2;
        continue;
      }
      if ((d === 'p' || d === 'P') && src[i + 2] !== '{' && src[i + 2] !== undefined) {
        out += `\\${d}{${src[i + 2]}}`;
        i += 3;
        continue;
      }
      if (d === 'x' && src[i + 2] === '{') out += '\\u';
      else if (d === 'A' && !inClass) out += '(?<![\\s\\S])';
      else if (d === 'z' && !inClass) out += '(?![\\s\\S])';
      else if (d === 'a') out += '\\x07';
      else if (/[!-/:-@[-`{-~]/.test(d) && !JS_SYNTAX.has(d) && !(inClass && d === '-')) out += hexEscape(d);
      else out += c + d;
      i += 2;
      continue;
    }
    if (inClass) {
      if (c === '[' && src[i + 1] === ':') {
        const end = src.indexOf(':]', i + 2);
        const name = end < 0 ? '' : src.slice(i + 2, end);
        const negated = name.startsWith('^');
        const cls = POSIX_CLASSES[negated ? name.slice(1) : name];
        if (cls === undefined) return `unknown POSIX class [:${name}:]`;
        if (negated) return 'negated POSIX classes have no JS equivalent';
        out += cls;
        i = end + 2;
        continue;
      }
      if (c === ']') inClass = false;
      out += c;
      i++;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      i++;
      if (src[i] === '^') { out += '^'; i++; }
      if (src[i] === ']') { out += '\\]'; i++; }
      continue;
    }
    if (c === '(' && src.startsWith('(?P<', i)) {
      out += '(?<';
      i += 4;
      continue;
    }
    out += c;
    i++;
  }
  try {
    return new RegExp(out, [...flags].join(''));
  } catch (err) {
    return (err as Error).message;
  }
}
