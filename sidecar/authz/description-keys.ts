/**
 * Reads a Policy's cache keys straight from the request description, so a decision-cache hit
 * costs no input document: each supported dotted path gives exactly the key part
 * (policies/decision-cache.ts keyPart) of the value the same path has in buildInput's document
 * (policies/input.ts), so keys built either way are equal. A Policy with any other cache key
 * gets null here and the sidecar builds the input first.
 */
import { keyPart } from '../../policies/decision-cache.ts';
import { parsePath, type RequestDescription } from '../../policies/input.ts';
import { pathOnly } from './request-description.ts';

/**
 * What the readers read: a RequestDescription has all of it; the inbound filter builds just
 * this (request-description.ts requestKeys), so that a cache hit needs no description.
 */
export type KeySource = Pick<RequestDescription, 'method' | 'path' | 'headers' | 'host' | 'scheme' | 'protocol' | 'sourcePrincipal' | 'destinationPrincipal'>;

/** Reads one cache key's part from a request's key source: keyPart() of the input's value. */
export type DescriptionKey = (d: KeySource) => string;

const HTTP = 'attributes.request.http.';
/** A Map, not an object: a header named like an Object.prototype member (`constructor`) is no pseudo-header. */
const PSEUDO: ReadonlyMap<string, (d: KeySource) => string> = new Map([
  [':authority', (d: KeySource) => d.host], [':method', (d: KeySource) => d.method],
  [':path', (d: KeySource) => d.path], [':scheme', (d: KeySource) => d.scheme],
]);

function header(d: KeySource, name: string): string | undefined {
  // As buildInput: the request's own header first (node:http2 keeps the pseudo-headers the
  // client sent, :scheme included), the description's value for a pseudo-header it lacks.
  // buildInput lowercases names; the sidecar's headers (node:http, node:http2) already are.
  // Own properties only, as keyFor reads the input: a key named `constructor` is an absent header.
  const v = Object.hasOwn(d.headers, name) ? d.headers[name] : undefined;
  if (v === undefined) return PSEUDO.get(name)?.(d);
  return typeof v === 'string' ? v : v.join(',');
}

/**
 * keyPart(parsePath(p)) without building the array: for a path with no `%` (nothing to
 * decode) and no key separator, the segments joined by U+0001 after an `a`, as keyPart writes
 * an array of strings.
 */
function parsedPathPart(path: string): string {
  const p = pathOnly(path);
  // `%`: decoding; "\n", U+0001: keyPart's separators, which it encodes otherwise.
  if (p.includes('%') || p.includes('\n') || p.includes('\u0001')) return keyPart(parsePath(p));
  let i = 0;
  while (i < p.length && p.charCodeAt(i) === 0x2f) i++;
  return `a${p.slice(i).replaceAll('/', '\u0001')}`;
}

/** The principal as the input has it: absent when null or empty. */
function principalPart(p: string | null): string {
  return p === null || p === '' ? 'u' : keyPart(p);
}

function one(path: string): DescriptionKey | null {
  switch (path) {
    case 'attributes.source.principal': return (d) => principalPart(d.sourcePrincipal);
    case 'attributes.destination.principal': return (d) => principalPart(d.destinationPrincipal);
    case `${HTTP}method`: return (d) => keyPart(d.method);
    case `${HTTP}path`: return (d) => keyPart(d.path);
    case `${HTTP}host`: return (d) => keyPart(d.host);
    case `${HTTP}scheme`: return (d) => keyPart(d.scheme);
    case `${HTTP}protocol`: return (d) => keyPart(d.protocol);
    case 'parsed_path': return (d) => parsedPathPart(d.path);
  }
  const index = /^parsed_path\.(0|[1-9][0-9]{0,5})$/.exec(path);
  if (index !== null) {
    const i = Number(index[1]);
    return (d) => keyPart(parsePath(pathOnly(d.path))[i]);
  }
  if (path.startsWith(`${HTTP}headers.`)) {
    const name = path.slice(HTTP.length + 'headers.'.length);
    // A name with a dot is a nested path in the input, not a header: leave it to the input.
    if (name === '' || name.includes('.') || name !== name.toLowerCase()) return null;
    return (d) => keyPart(header(d, name));
  }
  return null;
}

/** Readers for every cache key, in order, or null when one of them needs the built input. */
export function descriptionKeys(cacheKeys: readonly string[]): DescriptionKey[] | null {
  const out: DescriptionKey[] = [];
  for (const k of cacheKeys) {
    const f = one(k);
    if (f === null) return null;
    out.push(f);
  }
  return out;
}
