/**
 * Builds the OPA-Envoy plugin's input document (an Envoy ext_authz v3 CheckRequest rendered
 * as protojson, plus OPA-Envoy's parsed_path / parsed_query) from a small description of an
 * HTTP request, so Rego written for OPA-Envoy (`input.attributes.request.http.method`,
 * `input.parsed_path`, ...) runs unchanged on Palisade sidecars. The sidecar fills a
 * RequestDescription from node:http or node:http2; this module imports neither.
 *
 * Verified JWT claims: OPA-Envoy has no standard place for them. Palisade puts them where
 * Envoy's jwt_authn filter with `payload_in_metadata: <key>` does:
 * `input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"][<key>]`.
 *
 * Shape notes, following Envoy + protojson: header names are lowercase, repeated headers are
 * joined with ","; the pseudo-headers `:authority`, `:method`, `:path`, `:scheme` are included
 * as Envoy passes them; empty strings (principal) are omitted; `size` (int64) is a string.
 * parsed_path is the percent-decoded path (query dropped) split on "/" after trimming leading
 * slashes, as OPA-Envoy's Go url.Parse does ("/" → [""]); a path with a bad escape is split
 * undecoded. parsed_query follows Go's url.ParseQuery: `+` is a space, pairs with `;` or a
 * bad escape are dropped. parsed_body is not produced (no body buffering): policies must not
 * depend on it; truncated_body is false.
 */

/** The request facts the input is built from. */
export interface RequestDescription {
  readonly method: string;
  /** Path with query, as on the request line (`/api/v1/products?x=1`). */
  readonly path: string;
  /** Request headers; names in any case; arrays are joined with ",". */
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  /** Host / :authority. */
  readonly host: string;
  readonly scheme: 'http' | 'https';
  readonly protocol: 'HTTP/1.0' | 'HTTP/1.1' | 'HTTP/2';
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly destinationAddress: string;
  readonly destinationPort: number;
  /** Peer SPIFFE ID from the verified mTLS client certificate; null without one. */
  readonly sourcePrincipal: string | null;
  /** This workload's SPIFFE ID. */
  readonly destinationPrincipal: string | null;
  /** x-request-id or a generated id. */
  readonly requestId: string;
  /** Request time; omitted when absent. */
  readonly time?: Date;
  /** Body size in bytes when known (content-length); omitted when absent. */
  readonly bodySize?: number;
  /** Verified JWT payloads by metadata key (jwt_authn `payload_in_metadata`), e.g. `{ "my-issuer": claims }`. */
  readonly jwtPayloads?: Readonly<Record<string, unknown>> | null;
}

/** The document a policy sees as `input`. Plain JSON: opa-wasm stringifies it. */
export interface EnvoyAuthzInput {
  readonly attributes: {
    readonly source: Peer;
    readonly destination: Peer;
    readonly request: {
      readonly time?: string;
      readonly http: {
        readonly id: string;
        readonly method: string;
        readonly headers: Record<string, string>;
        readonly path: string;
        readonly host: string;
        readonly scheme: string;
        readonly protocol: string;
        readonly size?: string;
      };
    };
    readonly metadataContext: { readonly filterMetadata?: Record<string, unknown> };
  };
  readonly parsed_path: string[];
  readonly parsed_query: Record<string, string[]>;
  readonly truncated_body: false;
  readonly version: { readonly encoding: 'protojson'; readonly ext_authz: 'v3' };
}

interface Peer {
  readonly address: { readonly socketAddress: { readonly address: string; readonly portValue: number } };
  readonly principal?: string;
}

/** The filterMetadata namespace JWT payloads go under, as Envoy's jwt_authn filter uses. */
export const JWT_METADATA_NAMESPACE = 'envoy.filters.http.jwt_authn';

const VERSION = Object.freeze({ encoding: 'protojson', ext_authz: 'v3' } as const);

function peer(address: string, port: number, principal: string | null): Peer {
  const socketAddress = { address: { socketAddress: { address, portValue: port } } };
  return principal === null || principal === '' ? socketAddress : { ...socketAddress, principal };
}

function decodeQueryComponent(s: string): string | null {
  try {
    return decodeURIComponent(s.includes('+') ? s.replaceAll('+', ' ') : s);
  } catch {
    return null;
  }
}

/** OPA-Envoy's parsed_query: Go url.ParseQuery, keeping the pairs that parse. */
export function parseQuery(query: string): Record<string, string[]> {
  // Null prototype: a `__proto__` key is data, not a prototype change.
  const out = Object.create(null) as Record<string, string[]>;
  if (query === '') return out;
  for (const pair of query.split('&')) {
    if (pair === '' || pair.includes(';')) continue;
    const eq = pair.indexOf('=');
    const key = decodeQueryComponent(eq === -1 ? pair : pair.slice(0, eq));
    const value = eq === -1 ? '' : decodeQueryComponent(pair.slice(eq + 1));
    if (key === null || value === null) continue;
    (Object.hasOwn(out, key) ? out[key]! : (out[key] = [])).push(value);
  }
  return out;
}

/** OPA-Envoy's parsed_path: decoded path without query, leading slashes trimmed, split on "/". */
export function parsePath(pathOnly: string): string[] {
  let decoded = pathOnly;
  if (pathOnly.includes('%')) {
    try {
      decoded = decodeURIComponent(pathOnly);
    } catch {
      // Keep it undecoded: see the module comment.
    }
  }
  let i = 0;
  while (i < decoded.length && decoded.charCodeAt(i) === 0x2f) i++;
  return decoded.slice(i).split('/');
}

/** Builds the OPA-Envoy input for one request. Pure and allocation-light: called per request on a cache miss. */
export function buildInput(req: RequestDescription): EnvoyAuthzInput {
  const headers = Object.create(null) as Record<string, string>;
  Object.assign(headers, {
    ':authority': req.host,
    ':method': req.method,
    ':path': req.path,
    ':scheme': req.scheme,
  });
  for (const name in req.headers) {
    const v = req.headers[name];
    if (v === undefined) continue;
    headers[name.toLowerCase()] = typeof v === 'string' ? v : v.join(',');
  }
  const q = req.path.indexOf('?');
  const pathOnly = q === -1 ? req.path : req.path.slice(0, q);
  const http: EnvoyAuthzInput['attributes']['request']['http'] = {
    id: req.requestId,
    method: req.method,
    headers,
    path: req.path,
    host: req.host,
    scheme: req.scheme,
    protocol: req.protocol,
    ...(req.bodySize === undefined ? {} : { size: String(req.bodySize) }),
  };
  const jwt = req.jwtPayloads;
  return {
    attributes: {
      source: peer(req.sourceAddress, req.sourcePort, req.sourcePrincipal),
      destination: peer(req.destinationAddress, req.destinationPort, req.destinationPrincipal),
      request: req.time === undefined ? { http } : { time: req.time.toISOString(), http },
      metadataContext: jwt === undefined || jwt === null ? {} : { filterMetadata: { [JWT_METADATA_NAMESPACE]: jwt } },
    },
    parsed_path: parsePath(pathOnly),
    parsed_query: parseQuery(q === -1 ? '' : req.path.slice(q + 1)),
    truncated_body: false,
    version: VERSION,
  };
}
