import { PalisadeError } from '../xds/errors.ts';

/** A CA, keyring or KEK option is invalid (bad trust domain, key type, TTL, key name); names the option and value. */
export class CertsInvalidOptionError extends PalisadeError {
  constructor(message: string) {
    super('PAL_ERR_CERTS_INVALID_OPTION', message);
  }
}

/** A KEK key file is readable or writable by group or others; it is refused, never used. */
export class KekInsecureError extends PalisadeError {
  constructor(path: string, mode: number) {
    super(
      'PAL_ERR_CERTS_KEK_INSECURE',
      `KEK file ${path} has mode 0${(mode & 0o777).toString(8)}: it must not be accessible by group or others (chmod 600 ${path})`,
    );
  }
}

/** A KEK key file exists but is not a 32-byte AES-256 key. */
export class KekInvalidError extends PalisadeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PAL_ERR_CERTS_KEK_INVALID', message, options);
  }
}

/** A stored private key could not be decrypted: the file was altered, or it was written under another KEK. */
export class KeyDecryptError extends PalisadeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PAL_ERR_CERTS_KEY_DECRYPT', message, options);
  }
}

/** The keyring holds no key under that name. */
export class KeyNotFoundError extends PalisadeError {
  constructor(name: string) {
    super('PAL_ERR_CERTS_KEY_NOT_FOUND', `the keyring holds no key named ${JSON.stringify(name)}`);
  }
}

/** A private key (PEM or CryptoKey) is malformed or of a type Palisade does not use. */
export class InvalidKeyError extends PalisadeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PAL_ERR_CERTS_INVALID_KEY', message, options);
  }
}

/** The CA state directory is missing a file, or its files do not fit together. */
export class CaStateError extends PalisadeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PAL_ERR_CERTS_CA_STATE', message, options);
  }
}

/** An operation needs the root key, which is kept offline (not in the keyring). */
export class RootKeyOfflineError extends PalisadeError {
  constructor(operation: string) {
    super('PAL_ERR_CERTS_ROOT_KEY_OFFLINE', `${operation} needs the root private key, which is offline (not in this keyring)`);
  }
}

/** A CSR was refused (reported as a result value carrying this code; this class is for callers that log or throw it). */
export class CsrRefusedError extends PalisadeError {
  constructor(errors: readonly string[]) {
    super('PAL_ERR_CERTS_CSR_REFUSED', `CSR refused: ${errors.join('; ')}`);
  }
}

/** An X.509-SVID failed verification (reported as a result value carrying this code; the class is for callers that throw it). */
export class SvidInvalidError extends PalisadeError {
  constructor(errors: readonly string[]) {
    super('PAL_ERR_CERTS_SVID_INVALID', `X.509-SVID refused: ${errors.join('; ')}`);
  }
}

/** Stable codes of the refusals reported as values. */
export const CSR_REFUSED = 'PAL_ERR_CERTS_CSR_REFUSED';
export const SVID_INVALID = 'PAL_ERR_CERTS_SVID_INVALID';

/** An expected failure reported as a value, with every problem (CONVENTIONS: Types and errors). */
export type Result<T> = { valid: true; result: T } | { valid: false; errors: string[] };

/** A refusal reported as a value that also carries its stable code (CSR refused, SVID invalid). */
export type CodedResult<T> = { valid: true; result: T } | { valid: false; code: string; errors: string[] };

/** `rotate-root start` while a root rotation is already under way (finish it first). */
export class RotationInProgressError extends PalisadeError {
  constructor(message: string) {
    super('PAL_ERR_CERTS_ROTATION_IN_PROGRESS', message);
  }
}

/** `rotate-root finish` when no root rotation was started. */
export class RotationNotStartedError extends PalisadeError {
  constructor(message: string) {
    super('PAL_ERR_CERTS_ROTATION_NOT_STARTED', message);
  }
}

/** `rotate-root finish` refused: live certificates still chain only to the old root (renew them, or force). */
export class RotationOldCertsLiveError extends PalisadeError {
  constructor(message: string) {
    super('PAL_ERR_CERTS_ROTATION_OLD_CERTS_LIVE', message);
  }
}
