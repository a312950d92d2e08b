/** Errors of inbound request authentication (docs/errors.md, section Sidecar). */
import { PalisadeError } from '../../xds/errors.ts';

/**
 * A remote JWKS could not be fetched or is not a JWKS: connection refused, timeout, a non-200
 * status, a body that is not JSON with a `keys` array. The last good key set stays in use;
 * tokens whose key is not in it fail verification (401).
 */
export class JwksFetchError extends PalisadeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PAL_ERR_SIDECAR_JWKS_FETCH', message, options);
  }
}
