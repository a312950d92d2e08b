/**
 * One-time join tokens for sidecar bootstrap.
 *
 * An operator mints a token scoped to a namespace and service account with an expiry; the
 * sidecar presents it with its CSR; the control plane redeems it once. The token string
 *
 *     pal1.<id: 16 hex>.<secret: 32 random bytes, base64url (43 chars)>
 *
 * is returned by `mint()` only. The state file keeps the id, the SHA-256 of the secret bytes,
 * the scope and the times: reading the file does not let anyone join.
 *
 * State file: JSON, replaced atomically on every change (write a temp file in the same
 * directory, fsync, rename over, fsync the directory), mode 0600. The file has ONE writer, the
 * control-plane process; the store keeps the state in memory after `open()` and never re-reads
 * it, so two processes writing the same file would lose each other's changes. Within the
 * process every operation runs through one promise chain, so two redeems of the same token at
 * once see each other: exactly one wins. `redeem()` persists the "used" mark (and emits its
 * audit event) before it resolves, so a crash after a success never lets the token be reused.
 *
 * Refusals are values (`{ ok: false, reason, code, message }`), never state changes: a refused
 * presentation does not burn the token. The secret is checked (constant time) before anything
 * else about the token is revealed, so only a holder of the secret learns "used" or "expired".
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { removeStaleTemps, writeAtomic } from './atomic-file.ts';
import type { AuditEvent, AuditSink } from './audit.ts';
import {
  JoinTokenExpiredError,
  JoinTokenInvalidArgumentError,
  JoinTokenMalformedError,
  JoinTokenRevokedError,
  JoinTokenScopeMismatchError,
  JoinTokenStateInvalidError,
  JoinTokenUnknownError,
  JoinTokenUsedError,
} from './token-errors.ts';
import type { PalisadeError } from '../xds/errors.ts';

/** Token string prefix; the `1` is the format version. */
export const JOIN_TOKEN_PREFIX = 'pal1';
/** Longest allowed token lifetime: 7 days, in ms. */
export const MAX_JOIN_TOKEN_TTL_MS = 7 * 24 * 60 * 60 * 1000;
/** How long used, revoked or expired entries are kept before `prune()` drops them: 7 days, in ms. */
export const DEFAULT_JOIN_TOKEN_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

const TOKEN_RE = /^pal1\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;
const ID_RE = /^[0-9a-f]{16}$/;
const SHA256_HEX_RE = /^[0-9a-f]{64}$/;
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const STATE_VERSION = 1;
/** Compared against when the id is unknown, so that path costs the same hash + compare. */
const DUMMY_HASH = Buffer.alloc(32);

/** The workload identity a token admits: `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`. */
export interface JoinIdentity {
  namespace: string;
  serviceAccount: string;
}

/** A token's record without its secret. Times are ISO 8601. */
export interface JoinTokenRecord {
  id: string;
  namespace: string;
  serviceAccount: string;
  createdAt: string;
  expiresAt: string;
  usedAt: string | null;
  revokedAt: string | null;
}

/** What `list()` shows of a token: never the secret or its hash. */
export interface JoinTokenInfo extends JoinTokenRecord {
  /** At the time of `list()`: used and revoked win over expired. */
  state: 'active' | 'used' | 'revoked' | 'expired';
}

/** Arguments of `JoinTokenStore.mint()`. */
export interface MintRequest extends JoinIdentity {
  /** Lifetime in ms: an integer in 1..maxTtlMs (default `MAX_JOIN_TOKEN_TTL_MS`). */
  ttlMs: number;
  /** Defaults to the store's clock. */
  now?: Date;
  /** Who mints (audit); defaults to the store's actor. */
  actor?: string;
}

/** What `mint()` returns: the token string (once) and its stored description. */
export interface MintResult {
  /** The token string. Shown once: it is not stored and cannot be recovered. */
  token: string;
  info: JoinTokenInfo;
}

/** Arguments of `JoinTokenStore.redeem()` besides the token. */
export interface RedeemOptions {
  /** The namespace the CSR asks for; when given it must equal the token's. */
  namespace?: string;
  /** The service account the CSR asks for; when given it must equal the token's. */
  serviceAccount?: string;
  now?: Date;
  actor?: string;
}

/** Why `redeem()` refused a token; `code` is the matching `PAL_ERR_CERTS_TOKEN_*`, `message` is for humans. */
export type RedeemRefusal =
  | { ok: false; reason: 'malformed'; code: 'PAL_ERR_CERTS_TOKEN_MALFORMED'; message: string }
  | { ok: false; reason: 'unknown'; code: 'PAL_ERR_CERTS_TOKEN_UNKNOWN'; message: string; id: string }
  | { ok: false; reason: 'used'; code: 'PAL_ERR_CERTS_TOKEN_USED'; message: string; id: string; usedAt: string }
  | { ok: false; reason: 'expired'; code: 'PAL_ERR_CERTS_TOKEN_EXPIRED'; message: string; id: string; expiredAt: string }
  | { ok: false; reason: 'revoked'; code: 'PAL_ERR_CERTS_TOKEN_REVOKED'; message: string; id: string; revokedAt: string }
  | {
      ok: false;
      reason: 'scope-mismatch';
      code: 'PAL_ERR_CERTS_TOKEN_SCOPE_MISMATCH';
      message: string;
      id: string;
      scope: JoinIdentity;
      requested: Partial<JoinIdentity>;
    };

/** `redeem()`'s outcome: the identity the token admits (now used), or a refusal. */
export type RedeemResult = { ok: true; id: string; identity: JoinIdentity; redeemedAt: string } | RedeemRefusal;

/** `revoke()`'s outcome. */
export type RevokeResult =
  | { ok: true; info: JoinTokenInfo }
  | { ok: false; reason: 'malformed' | 'unknown' | 'used' | 'revoked'; message: string };

/** Options of `JoinTokenStore.open()`. */
export interface JoinTokenStoreOptions {
  /** The state file; created (with its directory) on the first change. */
  file: string;
  /** Receives token.minted / redeemed / refused / revoked; each is emitted before the call resolves. */
  audit: AuditSink;
  /** Default `() => new Date()`; every call may pass its own `now`. */
  clock?: () => Date;
  /** Default actor for audit events. Default `control-plane`. */
  actor?: string;
  /** Upper bound for `ttlMs`, in ms, 1..MAX_JOIN_TOKEN_TTL_MS. Default `MAX_JOIN_TOKEN_TTL_MS`. */
  maxTtlMs?: number;
  /** How long finished (used, revoked, expired) entries are kept, in ms (≥ 0). Default 7 days. `mint()` prunes with it. */
  retentionMs?: number;
}

/** What the state file keeps: the record and the SHA-256 of the secret, never the secret. */
interface StoredToken extends JoinTokenRecord {
  secretSha256: string;
}

interface StateFile {
  version: number;
  tokens: StoredToken[];
}

/** Checks that `value` is a Kubernetes DNS label (RFC 1123: lowercase alnum and '-', 1..63, alnum at both ends). */
export function dnsLabelProblem(field: string, value: unknown): string | null {
  if (typeof value !== 'string' || value.length === 0 || value.length > 63 || !DNS_LABEL_RE.test(value)) {
    return `${field} must be a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters), got ${JSON.stringify(value) ?? String(value)}`;
  }
  return null;
}

/** Validates a mint request (namespace, serviceAccount, ttlMs), collecting every problem. The CLI can call this before `mint()`. */
export function validateMintRequest(
  req: { namespace: unknown; serviceAccount: unknown; ttlMs: unknown },
  maxTtlMs: number = MAX_JOIN_TOKEN_TTL_MS,
): { valid: true; result: JoinIdentity & { ttlMs: number } } | { valid: false; errors: string[] } {
  const errors: string[] = [];
  const ns = dnsLabelProblem('namespace', req.namespace);
  if (ns) errors.push(ns);
  const sa = dnsLabelProblem('serviceAccount', req.serviceAccount);
  if (sa) errors.push(sa);
  const ttl = req.ttlMs;
  if (typeof ttl !== 'number' || !Number.isSafeInteger(ttl) || ttl <= 0 || ttl > maxTtlMs) {
    errors.push(`ttlMs must be a positive integer number of milliseconds no greater than ${maxTtlMs} (${formatMs(maxTtlMs)}), got ${JSON.stringify(ttl) ?? String(ttl)}`);
  }
  if (errors.length > 0) return { valid: false, errors };
  return { valid: true, result: { namespace: req.namespace as string, serviceAccount: req.serviceAccount as string, ttlMs: ttl as number } };
}

/** Turns a refusal into the matching `PalisadeError` (for callers that throw or log refusals). */
export function refusalError(refusal: RedeemRefusal): PalisadeError {
  switch (refusal.reason) {
    case 'malformed':
      return new JoinTokenMalformedError(refusal.message);
    case 'unknown':
      return new JoinTokenUnknownError(refusal.message);
    case 'used':
      return new JoinTokenUsedError(refusal.message);
    case 'expired':
      return new JoinTokenExpiredError(refusal.message);
    case 'revoked':
      return new JoinTokenRevokedError(refusal.message);
    case 'scope-mismatch':
      return new JoinTokenScopeMismatchError(refusal.message);
  }
}

/**
 * Join tokens over a single-writer JSON state file. Create with `JoinTokenStore.open()`.
 */
export class JoinTokenStore {
  readonly file: string;
  #audit: AuditSink;
  #clock: () => Date;
  #actor: string;
  #maxTtlMs: number;
  #retentionMs: number;
  /** Current state; replaced (never mutated) after each successful write. */
  #tokens: ReadonlyMap<string, Readonly<StoredToken>>;
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(options: Required<JoinTokenStoreOptions>, tokens: Map<string, StoredToken>) {
    this.file = options.file;
    this.#audit = options.audit;
    this.#clock = options.clock;
    this.#actor = options.actor;
    this.#maxTtlMs = options.maxTtlMs;
    this.#retentionMs = options.retentionMs;
    this.#tokens = tokens;
  }

  /**
   * Loads the state file (a missing file is an empty store) and removes temp files a crash
   * left behind. Throws `PAL_ERR_CERTS_TOKEN_INVALID_ARGUMENT` for bad options and
   * `PAL_ERR_CERTS_TOKEN_STATE_INVALID` for an unreadable or invalid state file.
   */
  static async open(options: JoinTokenStoreOptions): Promise<JoinTokenStore> {
    const problems: string[] = [];
    if (typeof options.file !== 'string' || options.file === '') problems.push(`file must be a non-empty path, got ${JSON.stringify(options.file)}`);
    if (typeof options.audit?.emit !== 'function') problems.push('audit must be an AuditSink (an object with emit(event))');
    const maxTtlMs = options.maxTtlMs ?? MAX_JOIN_TOKEN_TTL_MS;
    if (!Number.isSafeInteger(maxTtlMs) || maxTtlMs <= 0 || maxTtlMs > MAX_JOIN_TOKEN_TTL_MS) problems.push(`maxTtlMs must be an integer in 1..${MAX_JOIN_TOKEN_TTL_MS}, got ${JSON.stringify(maxTtlMs)}`);
    const retentionMs = options.retentionMs ?? DEFAULT_JOIN_TOKEN_RETENTION_MS;
    if (!Number.isSafeInteger(retentionMs) || retentionMs < 0) problems.push(`retentionMs must be a non-negative integer, got ${JSON.stringify(retentionMs)}`);
    const actor = options.actor ?? 'control-plane';
    if (typeof actor !== 'string' || actor === '') problems.push(`actor must be a non-empty string, got ${JSON.stringify(actor)}`);
    if (options.clock !== undefined && typeof options.clock !== 'function') problems.push('clock must be a function returning a Date');
    if (problems.length > 0) throw new JoinTokenInvalidArgumentError(problems);
    const tokens = await readState(options.file);
    await removeStaleTemps(options.file);
    return new JoinTokenStore({ file: options.file, audit: options.audit, clock: options.clock ?? (() => new Date()), actor, maxTtlMs, retentionMs }, tokens);
  }

  /**
   * Mints a token for `namespace`/`serviceAccount` valid for `ttlMs`. Persists it (and prunes
   * finished entries past retention), emits `token.minted`, then returns the token string: the
   * only time it exists outside the caller. Throws `PAL_ERR_CERTS_TOKEN_INVALID_ARGUMENT`
   * naming each bad field and value.
   */
  mint(req: MintRequest): Promise<MintResult> {
    const v = validateMintRequest(req, this.#maxTtlMs);
    if (!v.valid) return Promise.reject(new JoinTokenInvalidArgumentError(v.errors));
    return this.#serialize(async () => {
      const now = this.#now(req.now);
      let id = randomBytes(8).toString('hex');
      while (this.#tokens.has(id)) id = randomBytes(8).toString('hex');
      const secret = randomBytes(32);
      const stored: StoredToken = {
        id,
        secretSha256: sha256(secret).toString('hex'),
        namespace: v.result.namespace,
        serviceAccount: v.result.serviceAccount,
        createdAt: now.toISOString(),
        expiresAt: new Date(now.getTime() + v.result.ttlMs).toISOString(),
        usedAt: null,
        revokedAt: null,
      };
      const next = this.#pruned(now, this.#retentionMs);
      next.set(id, stored);
      await this.#commit(next);
      await this.#emit({ type: 'token.minted', time: now.toISOString(), actor: req.actor ?? this.#actor, id, namespace: stored.namespace, serviceAccount: stored.serviceAccount, expiresAt: stored.expiresAt });
      return { token: `${JOIN_TOKEN_PREFIX}.${id}.${secret.toString('base64url')}`, info: info(stored, now) };
    });
  }

  /**
   * Redeems `token` once. Checks, in order: format, id and secret (constant-time compare of
   * SHA-256), revoked, used, expired (`now >= expiresAt`), scope (each of `namespace` /
   * `serviceAccount` that the caller states must equal the token's). On success the token is
   * marked used on disk and `token.redeemed` emitted before this resolves; on refusal nothing
   * changes and `token.refused` is emitted. If the audit sink rejects after the used mark was
   * written, this rejects and the token stays used (fail closed).
   */
  redeem(token: string, options: RedeemOptions = {}): Promise<RedeemResult> {
    return this.#serialize(async () => {
      const now = this.#now(options.now);
      const actor = options.actor ?? this.#actor;
      const result = this.#check(token, options, now);
      if (!result.ok) {
        await this.#emit({ type: 'token.refused', time: now.toISOString(), actor, ...('id' in result ? { id: result.id } : {}), reason: result.reason, code: result.code });
        return result;
      }
      const stored = this.#tokens.get(result.id)!;
      const next = new Map(this.#tokens);
      next.set(stored.id, { ...stored, usedAt: now.toISOString() });
      await this.#commit(next);
      await this.#emit({ type: 'token.redeemed', time: now.toISOString(), actor, id: stored.id, namespace: stored.namespace, serviceAccount: stored.serviceAccount });
      return result;
    });
  }

  /** Every stored token, oldest first, without secrets. `now` decides `state` (default the clock). */
  list(options: { now?: Date } = {}): Promise<JoinTokenInfo[]> {
    return this.#serialize(async () => {
      const now = this.#now(options.now);
      return [...this.#tokens.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id)).map((t) => info(t, now));
    });
  }

  /** Revokes an unused token by id (persisted, `token.revoked` emitted). A used or already revoked token is refused; an expired one may be revoked. */
  revoke(id: string, options: { now?: Date; actor?: string } = {}): Promise<RevokeResult> {
    return this.#serialize(async (): Promise<RevokeResult> => {
      const now = this.#now(options.now);
      if (typeof id !== 'string' || !ID_RE.test(id)) return { ok: false, reason: 'malformed', message: `token id must be 16 hex characters, got ${JSON.stringify(id)}` };
      const stored = this.#tokens.get(id);
      if (!stored) return { ok: false, reason: 'unknown', message: `no join token with id ${id}` };
      if (stored.usedAt !== null) return { ok: false, reason: 'used', message: `join token ${id} was already used at ${stored.usedAt}` };
      if (stored.revokedAt !== null) return { ok: false, reason: 'revoked', message: `join token ${id} was already revoked at ${stored.revokedAt}` };
      const revoked = { ...stored, revokedAt: now.toISOString() };
      const next = new Map(this.#tokens);
      next.set(id, revoked);
      await this.#commit(next);
      await this.#emit({ type: 'token.revoked', time: now.toISOString(), actor: options.actor ?? this.#actor, id });
      return { ok: true, info: info(revoked, now) };
    });
  }

  /**
   * Drops entries that are finished (used, revoked or expired) for longer than `retentionMs`
   * (default the store's). Returns the removed ids. A pruned token is refused as `unknown`.
   */
  prune(options: { now?: Date; retentionMs?: number } = {}): Promise<string[]> {
    const retentionMs = options.retentionMs ?? this.#retentionMs;
    if (!Number.isSafeInteger(retentionMs) || retentionMs < 0) return Promise.reject(new JoinTokenInvalidArgumentError([`retentionMs must be a non-negative integer, got ${JSON.stringify(retentionMs)}`]));
    return this.#serialize(async () => {
      const next = this.#pruned(this.#now(options.now), retentionMs);
      const removed = [...this.#tokens.keys()].filter((id) => !next.has(id));
      if (removed.length > 0) await this.#commit(next);
      return removed;
    });
  }

  #check(token: string, options: RedeemOptions, now: Date): Extract<RedeemResult, { ok: true }> | RedeemRefusal {
    const m = typeof token === 'string' ? TOKEN_RE.exec(token) : null;
    if (!m) return { ok: false, reason: 'malformed', code: 'PAL_ERR_CERTS_TOKEN_MALFORMED', message: `join token is malformed: expected ${JOIN_TOKEN_PREFIX}.<16 hex id>.<43 base64url characters>` };
    const id = m[1]!;
    const secret = Buffer.from(m[2]!, 'base64url');
    // 43 base64url characters carry 258 bits; refuse the non-canonical spellings of the same 32 bytes.
    if (secret.length !== 32 || secret.toString('base64url') !== m[2]) return { ok: false, reason: 'malformed', code: 'PAL_ERR_CERTS_TOKEN_MALFORMED', message: `join token is malformed: the secret is not canonical base64url of 32 bytes` };
    const stored = this.#tokens.get(id);
    const presented = sha256(secret);
    const expected = stored ? Buffer.from(stored.secretSha256, 'hex') : DUMMY_HASH;
    const match = timingSafeEqual(presented, expected) && stored !== undefined;
    if (!match || !stored) return { ok: false, reason: 'unknown', code: 'PAL_ERR_CERTS_TOKEN_UNKNOWN', message: `join token ${id} is unknown (never minted, pruned, or wrong secret)`, id };
    if (stored.revokedAt !== null) return { ok: false, reason: 'revoked', code: 'PAL_ERR_CERTS_TOKEN_REVOKED', message: `join token ${id} was revoked at ${stored.revokedAt}`, id, revokedAt: stored.revokedAt };
    if (stored.usedAt !== null) return { ok: false, reason: 'used', code: 'PAL_ERR_CERTS_TOKEN_USED', message: `join token ${id} was already used at ${stored.usedAt}`, id, usedAt: stored.usedAt };
    if (now.getTime() >= Date.parse(stored.expiresAt)) return { ok: false, reason: 'expired', code: 'PAL_ERR_CERTS_TOKEN_EXPIRED', message: `join token ${id} expired at ${stored.expiresAt}`, id, expiredAt: stored.expiresAt };
    const scope = { namespace: stored.namespace, serviceAccount: stored.serviceAccount };
    const requested: Partial<JoinIdentity> = {};
    if (options.namespace !== undefined) requested.namespace = options.namespace;
    if (options.serviceAccount !== undefined) requested.serviceAccount = options.serviceAccount;
    if ((requested.namespace !== undefined && requested.namespace !== scope.namespace) || (requested.serviceAccount !== undefined && requested.serviceAccount !== scope.serviceAccount)) {
      return {
        ok: false,
        reason: 'scope-mismatch',
        code: 'PAL_ERR_CERTS_TOKEN_SCOPE_MISMATCH',
        message: `join token ${id} is scoped to ${describe(scope)}, but the request asks for ${describe(requested)}`,
        id,
        scope,
        requested,
      };
    }
    return { ok: true, id, identity: scope, redeemedAt: now.toISOString() };
  }

  #pruned(now: Date, retentionMs: number): Map<string, StoredToken> {
    const cutoff = now.getTime() - retentionMs;
    const next = new Map<string, StoredToken>();
    for (const t of this.#tokens.values()) {
      const finishedAt = t.usedAt ?? t.revokedAt ?? (Date.parse(t.expiresAt) <= now.getTime() ? t.expiresAt : null);
      if (finishedAt === null || Date.parse(finishedAt) > cutoff) next.set(t.id, t);
    }
    return next;
  }

  async #commit(next: Map<string, StoredToken>): Promise<void> {
    const state: StateFile = { version: STATE_VERSION, tokens: [...next.values()] };
    await writeAtomic(this.file, `${JSON.stringify(state, null, 2)}\n`);
    this.#tokens = next;
  }

  async #emit(event: AuditEvent): Promise<void> {
    await this.#audit.emit(event);
  }

  #now(now: Date | undefined): Date {
    const d = now ?? this.#clock();
    if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw new JoinTokenInvalidArgumentError([`now must be a valid Date, got ${String(d)}`]);
    return d;
  }

  #serialize<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(op);
    this.#tail = run.catch(() => undefined);
    return run;
  }
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

function info(t: Readonly<StoredToken>, now: Date): JoinTokenInfo {
  const state = t.usedAt !== null ? 'used' : t.revokedAt !== null ? 'revoked' : now.getTime() >= Date.parse(t.expiresAt) ? 'expired' : 'active';
  return { id: t.id, namespace: t.namespace, serviceAccount: t.serviceAccount, createdAt: t.createdAt, expiresAt: t.expiresAt, usedAt: t.usedAt, revokedAt: t.revokedAt, state };
}

function describe(identity: Partial<JoinIdentity>): string {
  const parts: string[] = [];
  if (identity.namespace !== undefined) parts.push(`namespace ${JSON.stringify(identity.namespace)}`);
  if (identity.serviceAccount !== undefined) parts.push(`service account ${JSON.stringify(identity.serviceAccount)}`);
  return parts.join(', ');
}

function formatMs(ms: number): string {
  const day = 24 * 60 * 60 * 1000;
  return ms % day === 0 ? `${ms / day}d` : `${ms}ms`;
}

async function readState(file: string): Promise<Map<string, StoredToken>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new JoinTokenStateInvalidError(file, `cannot be read: ${(err as Error).message}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new JoinTokenStateInvalidError(file, `is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const d = doc as Partial<StateFile> | null;
  if (typeof d !== 'object' || d === null || d.version !== STATE_VERSION || !Array.isArray(d.tokens)) {
    throw new JoinTokenStateInvalidError(file, `expected {"version": ${STATE_VERSION}, "tokens": [...]}`);
  }
  const tokens = new Map<string, StoredToken>();
  d.tokens.forEach((raw: unknown, i) => {
    const problem = storedTokenProblem(raw);
    if (problem) throw new JoinTokenStateInvalidError(file, `tokens[${i}]: ${problem}`);
    const t = raw as StoredToken;
    if (tokens.has(t.id)) throw new JoinTokenStateInvalidError(file, `tokens[${i}]: duplicate id ${t.id}`);
    tokens.set(t.id, { id: t.id, secretSha256: t.secretSha256, namespace: t.namespace, serviceAccount: t.serviceAccount, createdAt: t.createdAt, expiresAt: t.expiresAt, usedAt: t.usedAt, revokedAt: t.revokedAt });
  });
  return tokens;
}

function storedTokenProblem(raw: unknown): string | null {
  if (typeof raw !== 'object' || raw === null) return 'not an object';
  const t = raw as Record<string, unknown>;
  if (typeof t.id !== 'string' || !ID_RE.test(t.id)) return `id must be 16 hex characters, got ${JSON.stringify(t.id)}`;
  if (typeof t.secretSha256 !== 'string' || !SHA256_HEX_RE.test(t.secretSha256)) return 'secretSha256 must be 64 hex characters';
  const label = dnsLabelProblem('namespace', t.namespace) ?? dnsLabelProblem('serviceAccount', t.serviceAccount);
  if (label) return label;
  for (const f of ['createdAt', 'expiresAt'] as const) if (typeof t[f] !== 'string' || Number.isNaN(Date.parse(t[f]))) return `${f} must be an ISO time, got ${JSON.stringify(t[f])}`;
  for (const f of ['usedAt', 'revokedAt'] as const) if (t[f] !== null && (typeof t[f] !== 'string' || Number.isNaN(Date.parse(t[f])))) return `${f} must be null or an ISO time, got ${JSON.stringify(t[f])}`;
  return null;
}
