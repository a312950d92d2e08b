/**
 * Reads a Policy's cache keys straight from the request description, so a decision-cache hit
 * costs no input document: each supported dotted path gives exactly the value the same path
 * has in buildInput's document (policies/input.ts), so keys built either way are equal. A
 * Policy with any other cache key gets null here and the sidecar builds the input first.
 */
import { parsePath, type RequestDescription } from '../../policies/input.ts';

export type DescriptionKey = (d: RequestDescription) => unknown;

const HTTP = 'attributes.request.http.';
const PSEUDO: Readonly<Record<string, (d: RequestDescription) => string>> = {
  ':authority': (d) => d.host, ':method': (d) => d.method, ':path': (d) => d.path, ':scheme': (d) => d.scheme,
};

function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q === -1 ? path : path.slice(0, q);
}

function header(d: RequestDescription, name: string): string | undefined {
  const pseudo = PSEUDO[name];
  if (pseudo !== undefined) return pseudo(d);
  // buildInput lowercases names; the sidecar's headers (node:http, node:http2) already are.
  const v = d.headers[name];
  return v === undefined ? undefined : typeof v === 'string' ? v : v.join(',');
}

function one(path: string): DescriptionKey | null {
  switch (path) {
    case 'attributes.source.principal': return (d) => (d.sourcePrincipal === null || d.sourcePrincipal === '' ? undefined : d.sourcePrincipal);
    case 'attributes.destination.principal': return (d) => (d.destinationPrincipal === null || d.destinationPrincipal === '' ? undefined : d.destinationPrincipal);
    case `${HTTP}method`: return (d) => d.method;
    case `${HTTP}path`: return (d) => d.path;
    case `${HTTP}host`: return (d) => d.host;
    case `${HTTP}scheme`: return (d) => d.scheme;
    case `${HTTP}protocol`: return (d) => d.protocol;
    case 'parsed_path': return (d) => parsePath(pathOnly(d.path));
  }
  const index = /^parsed_path\.(0|[1-9][0-9]{0,5})$/.exec(path);
  if (index !== null) {
    const i = Number(index[1]);
    return (d) => parsePath(pathOnly(d.path))[i];
  }
  if (path.startsWith(`${HTTP}headers.`)) {
    const name = path.slice(HTTP.length + 'headers.'.length);
    // A name with a dot is a nested path in the input, not a header: leave it to the input.
    if (name === '' || name.includes('.') || name !== name.toLowerCase()) return null;
    return (d) => header(d, name);
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
