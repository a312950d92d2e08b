/**
 * Error classes for join tokens (`join-token.ts`) and audit sinks (`audit.ts`).
 *
 * A refused token is an expected failure and comes back from `JoinTokenStore.redeem()` as a
 * value carrying one of the `PAL_ERR_CERTS_TOKEN_*` refusal codes below; `refusalError()` in
 * `join-token.ts` turns such a value into the matching error when a caller wants to throw or
 * log it. The other classes are thrown: bad arguments, an unreadable state file, an invalid
 * audit event (a bug in the emitter), a closed sink. Every code is listed in docs/errors.md.
 */
import { PalisadeError } from '../xds/errors.ts';

/** The presented token is not of the form `pal1.<16 hex>.<43 base64url>`. */
export class JoinTokenMalformedError extends PalisadeError {
  constructor(message: string) {
    super('PAL_ERR_CERTS_TOKEN_MALFORMED', message);
  }
}

/** No stored token has this id and secret (never minted, pruned, or wrong secret). */
export class JoinTokenUnknownError extends PalisadeError {
  constructor(message: string) {
    super('PAL_ERR_CERTS_TOKEN_UNKNOWN', message);
  }
}

/** The token was already redeemed; join tokens are one-time. */
export class JoinTokenUsedError extends PalisadeError {
  constructor(message: string) {
    super('PAL_ERR_CERTS_TOKEN_USED', message);
  }
}

/** The token's expiry has passed. */
export class JoinTokenExpiredError extends PalisadeError {
  constructor(message: string) {
    super('PAL_ERR_CERTS_TOKEN_EXPIRED', message);
  }
}

/** An operator revoked the token before it was used. */
export class JoinTokenRevokedError extends PalisadeError {
  constructor(message: string) {
    super('PAL_ERR_CERTS_TOKEN_REVOKED', message);
  }
}

/** The CSR asks for another namespace or service account than the token is scoped to. */
export class JoinTokenScopeMismatchError extends PalisadeError {
  constructor(message: string) {
    super('PAL_ERR_CERTS_TOKEN_SCOPE_MISMATCH', message);
  }
}

/** `mint()` (or a store option) got an invalid value; the message names each field and value. */
export class JoinTokenInvalidArgumentError extends PalisadeError {
  constructor(problems: readonly string[]) {
    super('PAL_ERR_CERTS_TOKEN_INVALID_ARGUMENT', problems.join('; '));
  }
}

/** The join-token state file exists but cannot be read or is not a valid state document. */
export class JoinTokenStateInvalidError extends PalisadeError {
  constructor(file: string, problem: string, options?: { cause?: unknown }) {
    super('PAL_ERR_CERTS_TOKEN_STATE_INVALID', `join-token state file ${file}: ${problem}`, options);
  }
}

/** An audit event failed validation (unknown type, missing or extra field, a secret in a value): a bug in the emitter. */
export class AuditEventInvalidError extends PalisadeError {
  constructor(problems: readonly string[]) {
    super('PAL_ERR_CERTS_AUDIT_INVALID_EVENT', `invalid audit event: ${problems.join('; ')}`);
  }
}

/** `emit()` was called on an audit sink after `close()`. */
export class AuditSinkClosedError extends PalisadeError {
  constructor(where: string) {
    super('PAL_ERR_CERTS_AUDIT_SINK_CLOSED', `audit sink ${where} is closed`);
  }
}
