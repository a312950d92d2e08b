/**
 * File digests exactly as OPA's bundle signer computes them (open-policy-agent/opa
 * v1/bundle/hash.go): raw bytes for most files; for structured files (`data.json`,
 * `.manifest`, `.signatures.json`, by base name) a digest of a canonical JSON rendering, so
 * a signature survives re-indentation. Canonical form, per Go's `walk`: objects `{` sorted
 * keys (byte order of UTF-8) `"k":v` joined by `,` `}`, arrays `[v,...]`, no whitespace;
 * scalars as Go's json.Encoder with SetEscapeHTML(false) writes them. OPA decodes with
 * UseNumber, so numbers hash as their literal text (`1.0` stays `1.0`): that is why this
 * module tokenizes JSON itself instead of using JSON.parse.
 */
import { createHash, type Hash } from 'node:crypto';

/** OPA's hashing algorithm names → node:crypto. MD5 and SHA-1, which OPA also accepts, are refused. */
const HASHES: Readonly<Record<string, string>> = Object.freeze({
  'SHA-224': 'sha224',
  'SHA-256': 'sha256',
  'SHA-384': 'sha384',
  'SHA-512': 'sha512',
  'SHA-512-224': 'sha512-224',
  'SHA-512-256': 'sha512-256',
});

const STRUCTURED = new Set(['data.json', 'data.yaml', '.manifest', '.signatures.json']);

/** True for the files OPA hashes as canonical JSON (IsStructuredDoc: by base name). */
export function isStructuredFile(name: string): boolean {
  return STRUCTURED.has(name.slice(name.lastIndexOf('/') + 1));
}

/** The node:crypto name for an OPA hashing algorithm, or null when unsupported. */
export function hashAlgorithm(opaName: string): string | null {
  return Object.hasOwn(HASHES, opaName) ? HASHES[opaName]! : null;
}

/**
 * Hex digest of a bundle file as OPA's signer computes it. `algorithm` is a node:crypto name
 * (see hashAlgorithm). Throws SyntaxError for a structured file that is not JSON.
 */
export function bundleFileDigest(name: string, bytes: Uint8Array, algorithm: string): string {
  const hash = createHash(algorithm);
  if (isStructuredFile(name)) new CanonicalJson(new TextDecoder('utf-8', { fatal: true }).decode(bytes), hash).document();
  else hash.update(bytes);
  return hash.digest('hex');
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
// JSON.parse of the matched token rejects raw control characters and bad escapes.
const STRING = /"(?:[^"\\]|\\.)*"/y;
const WS = /[ \t\n\r]*/y;

/** A strict JSON tokenizer feeding the canonical rendering into a hash as it goes. */
class CanonicalJson {
  readonly #text: string;
  readonly #hash: Hash;
  #pos = 0;

  constructor(text: string, hash: Hash) {
    this.#text = text;
    this.#hash = hash;
  }

  document(): void {
    this.#value(this.#hash);
    this.#ws();
    if (this.#pos !== this.#text.length) this.#fail();
  }

  #fail(): never {
    throw new SyntaxError(`invalid JSON at offset ${this.#pos}`);
  }

  #ws(): void {
    WS.lastIndex = this.#pos;
    WS.exec(this.#text);
    this.#pos = WS.lastIndex;
  }

  #match(re: RegExp): string {
    re.lastIndex = this.#pos;
    const m = re.exec(this.#text);
    if (m === null) this.#fail();
    this.#pos = re.lastIndex;
    return m[0];
  }

  #string(): string {
    return (JSON.parse(this.#match(STRING)) as string).toWellFormed();
  }

  /** Object members are rendered into parts first: keys must be sorted before hashing. */
  #value(out: { update(s: string): unknown }): void {
    this.#ws();
    const c = this.#text[this.#pos];
    if (c === '{') {
      this.#pos++;
      const members = new Map<string, string>();
      this.#ws();
      if (this.#text[this.#pos] === '}') this.#pos++;
      else {
        for (;;) {
          this.#ws();
          const key = this.#string();
          this.#ws();
          if (this.#text[this.#pos++] !== ':') this.#fail();
          const parts: string[] = [];
          this.#value({ update: (s: string) => parts.push(s) });
          members.set(key, parts.join('')); // a duplicate key keeps the last value, as Go's decoder does
          this.#ws();
          const sep = this.#text[this.#pos++];
          if (sep === '}') break;
          if (sep !== ',') this.#fail();
        }
      }
      const keys = [...members.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      out.update('{');
      keys.forEach((k, i) => {
        out.update(`${i > 0 ? ',' : ''}${goString(k)}:`);
        out.update(members.get(k)!);
      });
      out.update('}');
    } else if (c === '[') {
      this.#pos++;
      out.update('[');
      this.#ws();
      if (this.#text[this.#pos] === ']') this.#pos++;
      else {
        for (let i = 0; ; i++) {
          if (i > 0) out.update(',');
          this.#value(out);
          this.#ws();
          const sep = this.#text[this.#pos++];
          if (sep === ']') break;
          if (sep !== ',') this.#fail();
        }
      }
      out.update(']');
    } else if (c === '"') {
      out.update(goString(this.#string()));
    } else if (this.#text.startsWith('true', this.#pos) || this.#text.startsWith('null', this.#pos)) {
      out.update(this.#text.slice(this.#pos, this.#pos + 4));
      this.#pos += 4;
    } else if (this.#text.startsWith('false', this.#pos)) {
      out.update('false');
      this.#pos += 5;
    } else {
      out.update(this.#match(NUMBER));
    }
  }
}

/** Go's json string encoding without HTML escaping: JSON.stringify's, plus U+2028/U+2029 escaped. */
function goString(s: string): string {
  return JSON.stringify(s).replace(/[\u2028\u2029]/g, (c) => (c === '\u2028' ? '\\u2028' : '\\u2029'));
}
