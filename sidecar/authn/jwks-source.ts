/**
 * Where a JWT provider's verification keys come from: an inline JWKS (imported once) or a
 * remote one (Envoy's remote_jwks). A remote JWKS is fetched on first use, with a timeout,
 * and used for `cacheDurationMs`; after that the next token triggers a refetch. A token whose
 * `kid` is in no key of the set triggers a refetch too, but at most once per
 * `minRefreshIntervalMs` (the key was rotated at the issuer: one refetch picks it up; a flood
 * of tokens with made-up kids costs one fetch per interval, not one per request). Requests
 * waiting for a fetch share it; a failed fetch keeps the last good set.
 */
import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, type JWTHeaderParameters, type FlattenedJWSInput } from 'jose';
import { JwksFetchError } from './errors.ts';

type KeyResolver = ReturnType<typeof createLocalJWKSet>;
/** What jose's `jwtVerify` calls to find the key of a token. */
export type GetKey = (header: JWTHeaderParameters, token: FlattenedJWSInput) => ReturnType<KeyResolver>;

export interface JwksSourceStats {
  fetches: number;
  failures: number;
  /** Refetches caused by an unknown kid. */
  kidRefreshes: number;
  /** Unknown kids seen while a refetch was not allowed yet. */
  kidRefreshesSuppressed: number;
}

export interface JwksSource {
  readonly getKey: GetKey;
  stats(): JwksSourceStats;
}

/** A JWKS given as text: parsed and imported once. Throws on text that is not a JWKS. */
export function inlineJwks(text: string): JwksSource {
  const resolver = createLocalJWKSet(parseJwks(text));
  const st = Object.freeze({ fetches: 0, failures: 0, kidRefreshes: 0, kidRefreshesSuppressed: 0 });
  return { getKey: (header, token) => resolver(header, token), stats: () => ({ ...st }) };
}

export interface RemoteJwksOptions {
  readonly uri: string;
  /** Timeout of one fetch, ms. */
  readonly timeoutMs: number;
  /** How long a fetched set is used, ms. */
  readonly cacheDurationMs: number;
  /** Least time between two refetches caused by unknown kids, ms. Default 30 000. */
  readonly minRefreshIntervalMs?: number;
  /** Clock, ms since the epoch (tests). */
  readonly now?: () => number;
  /** Called with each failed fetch (the caller logs it). */
  readonly onError?: (err: JwksFetchError) => void;
}

export const DEFAULT_MIN_REFRESH_INTERVAL_MS = 30_000;

export class RemoteJwks implements JwksSource {
  readonly uri: string;
  readonly timeoutMs: number;
  readonly cacheDurationMs: number;
  readonly #o: RemoteJwksOptions;
  readonly #now: () => number;
  readonly #minRefresh: number;
  #resolver: KeyResolver | null = null;
  #fetchedAt = -Infinity;
  #lastKidRefresh = -Infinity;
  #inflight: Promise<void> | null = null;
  readonly #stats: JwksSourceStats = { fetches: 0, failures: 0, kidRefreshes: 0, kidRefreshesSuppressed: 0 };

  constructor(options: RemoteJwksOptions) {
    this.#o = options;
    this.uri = options.uri;
    this.timeoutMs = options.timeoutMs;
    this.cacheDurationMs = options.cacheDurationMs;
    this.#now = options.now ?? Date.now;
    this.#minRefresh = options.minRefreshIntervalMs ?? DEFAULT_MIN_REFRESH_INTERVAL_MS;
  }

  readonly getKey: GetKey = async (header, token) => {
    if (this.#resolver === null || this.#now() - this.#fetchedAt >= this.#o.cacheDurationMs) await this.#refresh();
    const resolver = this.#resolver;
    if (resolver === null) throw new joseErrors.JWKSNoMatchingKey('no JWKS could be fetched yet');
    try {
      return await resolver(header, token);
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
      // An unknown kid: the issuer may have rotated its keys. Refetch, rate-limited.
      if (this.#now() - this.#lastKidRefresh < this.#minRefresh) {
        this.#stats.kidRefreshesSuppressed++;
        throw err;
      }
      this.#lastKidRefresh = this.#now();
      this.#stats.kidRefreshes++;
      await this.#refresh();
      return await this.#resolver!(header, token);
    }
  };

  stats(): JwksSourceStats {
    return { ...this.#stats };
  }

  /** One fetch at a time; callers arriving meanwhile wait for it. Never rejects. */
  #refresh(): Promise<void> {
    this.#inflight ??= this.#fetch().finally(() => {
      this.#inflight = null;
    });
    return this.#inflight;
  }

  async #fetch(): Promise<void> {
    this.#stats.fetches++;
    try {
      const res = await fetch(this.uri, { signal: AbortSignal.timeout(this.#o.timeoutMs), headers: { accept: 'application/json' } });
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new JwksFetchError(`JWKS ${this.uri}: HTTP ${res.status}`);
      }
      this.#resolver = createLocalJWKSet(parseJwks(await res.text()));
      this.#fetchedAt = this.#now();
    } catch (err) {
      this.#stats.failures++;
      const e = err instanceof JwksFetchError ? err : new JwksFetchError(`JWKS ${this.uri}: ${(err as Error).message}`, { cause: err });
      // Keep the last good set; retry no sooner than the kid-refresh interval.
      if (this.#resolver !== null) this.#fetchedAt = this.#now() - this.#o.cacheDurationMs + Math.min(this.#minRefresh, this.#o.cacheDurationMs);
      this.#o.onError?.(e);
    }
  }
}

function parseJwks(text: string): JSONWebKeySet {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new JwksFetchError(`not a JWKS: ${(err as Error).message}`, { cause: err });
  }
  if (parsed === null || typeof parsed !== 'object' || !Array.isArray((parsed as { keys?: unknown }).keys)) {
    throw new JwksFetchError('not a JWKS: a JSON object with a "keys" array is required');
  }
  return parsed as JSONWebKeySet;
}
