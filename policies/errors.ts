/**
 * The policy runtime's errors (bundle reading, signature verification, evaluation set-up).
 * Callers branch on `err.code`. Evaluation failures on the request path are not thrown:
 * they are `Decision`s with `error` set (see evaluator.ts), which the sidecar fails closed on.
 */
import { PalisadeError } from '../xds/errors.ts';

/** The bundle bytes are not a well-formed OPA bundle: gzip, tar, paths, sizes, .manifest, data.json. */
export class BundleInvalidError extends PalisadeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PAL_ERR_POLICY_BUNDLE_INVALID', message, options);
  }
}

/** The bundle's `.signatures.json` is missing or does not verify against the configured keys. */
export class BundleSignatureError extends PalisadeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PAL_ERR_POLICY_BUNDLE_SIGNATURE', message, options);
  }
}

/** A policy runtime option is invalid (pool size, cache bound, cache key path, verification key). */
export class PolicyInvalidOptionError extends PalisadeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PAL_ERR_POLICY_INVALID_OPTION', message, options);
  }
}

/** The bundle's wasm module does not compile or instantiate, or lacks the requested entrypoint. */
export class PolicyLoadError extends PalisadeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PAL_ERR_POLICY_LOAD', message, options);
  }
}
