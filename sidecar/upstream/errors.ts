/** Errors of upstream connections (docs/errors.md, section Sidecar). */
import { PalisadeError } from '../../xds/errors.ts';

/**
 * The TLS handshake with an upstream host failed: the server's certificate does not chain to
 * the trust bundle, no SAN matches the cluster's matchers, its serial is revoked, or the
 * server refused ours. A connect failure for retries, outlier detection and the response flags.
 */
export class UpstreamTlsError extends PalisadeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PAL_ERR_SIDECAR_UPSTREAM_TLS', message, options);
  }
}

/**
 * An upstream TLS connection could not start: the SDS secret it needs (certificate or
 * validation) is not there yet, the sidecar has no TLS secrets at all, or the material does
 * not load. A connect failure, as the handshake never started.
 */
export class UpstreamTlsSecretError extends PalisadeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PAL_ERR_SIDECAR_UPSTREAM_TLS_SECRET', message, options);
  }
}
