/**
 * Errors of the xDS client. Callers branch on `err.code` (see xds/errors.ts and
 * docs/errors.md), never on `instanceof`.
 */
import { PalisadeError } from '../errors.ts';

/** An AdsClient option is missing, of the wrong type or out of range; the message lists each. */
export class InvalidOptionError extends PalisadeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PAL_ERR_XDS_CLIENT_INVALID_OPTION', message, options);
  }
}

/** A method argument is malformed (e.g. resource names that are not strings). */
export class InvalidArgumentError extends PalisadeError {
  constructor(message: string) {
    super('PAL_ERR_XDS_CLIENT_INVALID_ARGUMENT', message);
  }
}

/** The client was closed: it cannot be started or subscribed again. */
export class ClientClosedError extends PalisadeError {
  constructor(operation: string) {
    super('PAL_ERR_XDS_CLIENT_CLOSED', `cannot ${operation}: the xDS client is closed`);
  }
}
