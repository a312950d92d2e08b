/**
 * JWT authentication of inbound requests, with Envoy jwt_authn's semantics: the
 * RequestAuthentications that select this workload, their providers (Envoy JwtProviders)
 * compiled once per update.
 *
 *   request → the token locations of every provider (headers with a value prefix, query
 *   parameters) → the first token whose (unverified) `iss` names a provider → jose
 *   `jwtVerify` with that provider's keys, issuer, audiences and clock skew.
 *
 *   no token      → passes unauthenticated, or 401 "Jwt is missing" when a selecting
 *                   RequestAuthentication is `required`
 *   bad token     → 401 "Jwt verification fails" (expired, not yet valid, wrong audience or
 *                   issuer, bad signature, unknown key), always
 *   good token    → the payload under the provider's payload_in_metadata (the policy input's
 *                   metadataContext), claim_to_headers and forward_payload_header set on the
 *                   upstream request, the token header removed when `forward` is false
 *
 * 401s carry `www-authenticate: Bearer realm="<scheme>://<host><path>"` (plus
 * `error="invalid_token"` for a bad token), as Envoy answers. Headers the providers write
 * (claim_to_headers, forward_payload_header) are removed from every request first, so a caller
 * cannot pose as an authenticated user by sending them itself.
 *
 * `authenticate` answers synchronously when the request has no token; with one, the
 * verification (and a JWKS fetch, when the keys are not cached) makes it a promise.
 */
import { decodeJwt, jwtVerify, type JWTPayload } from 'jose';
import type { JwtProvider } from '../../xds/gen/envoy/extensions/filters/http/jwt_authn/v3/config_pb.js';
import type { RequestAuthentication } from '../../xds/gen/palisade/v1/request_authentication_pb.js';
import type { HeaderEntry } from '../../policies/decision.ts';
import type { DownstreamRequest } from '../listeners/http-listener.ts';
import { inlineJwks, RemoteJwks, type JwksSource, type JwksSourceStats } from './jwks-source.ts';
import type { JwksFetchError } from './errors.ts';

export type AuthnOutcome =
  | {
    readonly authenticated: true;
    /** Verified payloads by payload_in_metadata key; null for a request without a token. */
    readonly payloads: Readonly<Record<string, JWTPayload>> | null;
    readonly setHeaders: readonly HeaderEntry[];
    readonly removeHeaders: readonly string[];
  }
  | { readonly authenticated: false; readonly status: 401; readonly body: string; readonly headers: readonly HeaderEntry[] };

export const JWT_MISSING = 'Jwt is missing';
export const JWT_VERIFICATION_FAILS = 'Jwt verification fails';

interface TokenLocation {
  /** Lowercase header name, or null for a query parameter. */
  readonly header: string | null;
  readonly valuePrefix: string;
  readonly param: string | null;
}

interface FoundToken {
  readonly provider: CompiledProvider;
  readonly token: string;
  readonly location: TokenLocation;
}

interface CompiledProvider {
  readonly name: string;
  readonly issuer: string;
  readonly audiences: readonly string[] | null;
  readonly source: JwksSource;
  readonly locations: readonly TokenLocation[];
  readonly forward: boolean;
  readonly forwardPayloadHeader: string | null;
  readonly payloadKey: string;
  readonly clockSkewSeconds: number;
  readonly claimToHeaders: ReadonlyArray<{ readonly header: string; readonly path: readonly string[] }>;
}

export interface AuthnStats {
  authenticated: number;
  unauthenticated: number;
  missing: number;
  failed: number;
}

export interface JwtAuthenticatorOptions {
  /** Least time between JWKS refetches caused by unknown kids, ms (default 30 000). */
  readonly minRefreshIntervalMs?: number;
  readonly onJwksError?: (err: JwksFetchError, provider: string) => void;
}

/** Envoy's default token locations when a provider names none. */
const DEFAULT_LOCATIONS: readonly TokenLocation[] = Object.freeze([
  { header: 'authorization', valuePrefix: 'Bearer ', param: null },
  { header: null, valuePrefix: '', param: 'access_token' },
]);

export class JwtAuthenticator {
  readonly #providers: readonly CompiledProvider[];
  readonly #required: boolean;
  /** Every header a provider writes: stripped from each request first. */
  readonly #written: readonly string[];
  readonly #stats: AuthnStats = { authenticated: 0, unauthenticated: 0, missing: 0, failed: 0 };

  /**
   * The authenticator for `service` from the accepted resources, or null when none selects it.
   * Remote JWKS sources of `previous` with the same URI, timeout and cache duration are kept
   * (with their cached keys). Throws on a provider that does not compile (an inline JWKS that
   * is not one); the validator NACKs those first.
   */
  static build(resources: Iterable<RequestAuthentication>, service: string, previous: JwtAuthenticator | null, options: JwtAuthenticatorOptions = {}): JwtAuthenticator | null {
    const reuse = new Map<string, JwksSource>();
    for (const p of previous === null ? [] : previous.#providers) if (p.source instanceof RemoteJwks) reuse.set(sourceKey(p.source), p.source);
    const providers: CompiledProvider[] = [];
    let required = false;
    let selected = false;
    for (const r of [...resources].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (r.services.length > 0 && !r.services.includes(service)) continue;
      selected = true;
      required ||= r.required;
      for (const name of Object.keys(r.providers).sort()) providers.push(compile(`${r.name}/${name}`, name, r.providers[name]!, reuse, options));
    }
    return selected ? new JwtAuthenticator(providers, required) : null;
  }

  private constructor(providers: CompiledProvider[], required: boolean) {
    this.#providers = Object.freeze(providers);
    this.#required = required;
    const written = new Set<string>();
    for (const p of providers) {
      for (const c of p.claimToHeaders) written.add(c.header);
      if (p.forwardPayloadHeader !== null) written.add(p.forwardPayloadHeader);
    }
    this.#written = Object.freeze([...written]);
  }

  /** Whether a request without a token is refused. */
  get required(): boolean {
    return this.#required;
  }

  /** Names of the headers a provider writes (removed from every inbound request). */
  get writtenHeaders(): readonly string[] {
    return this.#written;
  }

  /** Authenticates `req` (its headers are not changed: the caller applies the outcome). */
  authenticate(req: DownstreamRequest): AuthnOutcome | Promise<AuthnOutcome> {
    let query: URLSearchParams | null = null;
    let first: FoundToken | null = null;
    let chosen: FoundToken | null = null;
    for (const provider of this.#providers) {
      for (const location of provider.locations) {
        let token: string | null;
        if (location.header !== null) {
          token = fromHeader(req.headers[location.header], location.valuePrefix);
        } else {
          query ??= queryOf(req.url);
          token = query.get(location.param!);
        }
        if (token === null || token === '') continue;
        first ??= { provider, token, location };
        if (issuerOf(token) === provider.issuer) {
          chosen = { provider, token, location };
          break;
        }
      }
      if (chosen !== null) break;
    }
    if (first === null) {
      if (this.#required) {
        this.#stats.missing++;
        return this.#fail(req, JWT_MISSING, false);
      }
      this.#stats.unauthenticated++;
      return { authenticated: true, payloads: null, setHeaders: [], removeHeaders: this.#written };
    }
    // A token no provider's issuer matches: verifying it with the first provider's settings
    // fails on the issuer, as Envoy's single-provider requirement would.
    return this.#verify(req, chosen ?? first);
  }

  stats(): { required: boolean; requests: AuthnStats; providers: Record<string, JwksSourceStats & { issuer: string }> } {
    const providers: Record<string, JwksSourceStats & { issuer: string }> = {};
    for (const p of this.#providers) providers[p.name] = { issuer: p.issuer, ...p.source.stats() };
    return { required: this.#required, requests: { ...this.#stats }, providers };
  }

  async #verify(req: DownstreamRequest, found: FoundToken): Promise<AuthnOutcome> {
    const p = found.provider;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(found.token, p.source.getKey, {
        issuer: p.issuer,
        ...(p.audiences !== null ? { audience: [...p.audiences] } : {}),
        clockTolerance: p.clockSkewSeconds,
      }));
    } catch {
      this.#stats.failed++;
      return this.#fail(req, JWT_VERIFICATION_FAILS, true);
    }
    this.#stats.authenticated++;
    const set: HeaderEntry[] = [];
    for (const c of p.claimToHeaders) {
      const v = claimAt(payload, c.path);
      if (v !== null) set.push([c.header, v]);
    }
    if (p.forwardPayloadHeader !== null) set.push([p.forwardPayloadHeader, found.token.split('.')[1] ?? '']);
    const remove = !p.forward && found.location.header !== null ? [...this.#written, found.location.header] : this.#written;
    return { authenticated: true, payloads: { [p.payloadKey]: payload }, setHeaders: set, removeHeaders: remove };
  }

  #fail(req: DownstreamRequest, body: string, invalid: boolean): AuthnOutcome {
    const realm = `${realmOf(req)}`.replace(/["\\]/g, '');
    const challenge = invalid ? `Bearer realm="${realm}", error="invalid_token"` : `Bearer realm="${realm}"`;
    return { authenticated: false, status: 401, body, headers: [['www-authenticate', challenge]] };
  }
}

function compile(name: string, key: string, p: JwtProvider, reuse: Map<string, JwksSource>, options: JwtAuthenticatorOptions): CompiledProvider {
  let source: JwksSource;
  const spec = p.jwksSourceSpecifier;
  if (spec.case === 'remoteJwks') {
    const remote = spec.value;
    const fresh = new RemoteJwks({
      uri: remote.httpUri?.uri ?? '',
      timeoutMs: durationMs(remote.httpUri?.timeout, 5_000),
      cacheDurationMs: durationMs(remote.cacheDuration, 300_000),
      ...(options.minRefreshIntervalMs !== undefined ? { minRefreshIntervalMs: options.minRefreshIntervalMs } : {}),
      ...(options.onJwksError !== undefined ? { onError: (err: JwksFetchError) => options.onJwksError!(err, name) } : {}),
    });
    source = reuse.get(sourceKey(fresh)) ?? fresh;
  } else if (spec.case === 'localJwks' && spec.value.specifier.case === 'inlineString') {
    source = inlineJwks(spec.value.specifier.value);
  } else {
    throw new Error(`provider ${name}: needs remote_jwks or local_jwks.inline_string`);
  }
  const locations: TokenLocation[] = [
    ...p.fromHeaders.map((h) => ({ header: h.name.toLowerCase(), valuePrefix: h.valuePrefix, param: null })),
    ...p.fromParams.map((param) => ({ header: null, valuePrefix: '', param })),
  ];
  return Object.freeze({
    name,
    issuer: p.issuer,
    audiences: p.audiences.length > 0 ? Object.freeze([...p.audiences]) : null,
    source,
    locations: locations.length > 0 ? Object.freeze(locations) : DEFAULT_LOCATIONS,
    forward: p.forward,
    forwardPayloadHeader: p.forwardPayloadHeader === '' ? null : p.forwardPayloadHeader.toLowerCase(),
    payloadKey: p.payloadInMetadata === '' ? key : p.payloadInMetadata,
    clockSkewSeconds: p.clockSkewSeconds,
    claimToHeaders: Object.freeze(p.claimToHeaders.map((c) => Object.freeze({ header: c.headerName.toLowerCase(), path: Object.freeze(c.claimName.split('.')) }))),
  });
}

function sourceKey(s: RemoteJwks): string {
  return JSON.stringify([s.uri, s.timeoutMs, s.cacheDurationMs]);
}

function durationMs(d: { seconds: bigint; nanos: number } | undefined, fallback: number): number {
  if (d === undefined) return fallback;
  const ms = Number(d.seconds) * 1000 + d.nanos / 1e6;
  return ms > 0 ? ms : fallback;
}

/** The token after `prefix` (compared case-insensitively, as the auth scheme is); null when absent. */
function fromHeader(value: string | string[] | undefined, prefix: string): string | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return null;
  if (prefix === '') return v.trim();
  if (v.length <= prefix.length || v.slice(0, prefix.length).toLowerCase() !== prefix.toLowerCase()) return null;
  return v.slice(prefix.length).trim();
}

function queryOf(url: string | undefined): URLSearchParams {
  const q = url?.indexOf('?') ?? -1;
  return new URLSearchParams(q === -1 ? '' : url!.slice(q + 1));
}

function issuerOf(token: string): string | null {
  try {
    const iss = decodeJwt(token).iss;
    return typeof iss === 'string' ? iss : null;
  } catch {
    return null;
  }
}

/** A claim as a header value: strings as they are, numbers and booleans as text; anything else: null. */
function claimAt(payload: JWTPayload, path: readonly string[]): string | null {
  let v: unknown = payload;
  for (const segment of path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
    v = (v as Record<string, unknown>)[segment];
  }
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : null;
}

function realmOf(req: DownstreamRequest): string {
  const h2 = req.httpVersion === '2.0';
  const authority = h2 ? req.headers[':authority'] : undefined;
  const host = (typeof authority === 'string' ? authority : req.headers.host) ?? '';
  const scheme = (req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : 'http';
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return `${scheme}://${host}${q === -1 ? url : url.slice(0, q)}`;
}
