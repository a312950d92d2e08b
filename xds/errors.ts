/**
 * Palisade's error base. Callers branch on `err.code` (stable, `PAL_ERR_<AREA>_<WHAT>`),
 * never on `instanceof`: two copies of the module may be loaded side by side.
 * Every code is listed in docs/errors.md; a test keeps the two in step.
 */
export class PalisadeError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'PalisadeError';
  }
}

/** An xDS resource failed validation; message lists every problem with its field path. */
export class InvalidResourceError extends PalisadeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PAL_ERR_XDS_INVALID_RESOURCE', message, options);
  }
}

/** A type URL that no entry of the resource-type registry knows. */
export class UnknownTypeError extends PalisadeError {
  constructor(typeUrl: string) {
    super('PAL_ERR_XDS_UNKNOWN_TYPE', `unknown resource type ${JSON.stringify(typeUrl)}`);
  }
}

/** A snapshot whose references (EDS cluster names, RDS route names) are not all present. */
export class InconsistentSnapshotError extends PalisadeError {
  constructor(message: string) {
    super('PAL_ERR_XDS_INCONSISTENT_SNAPSHOT', message);
  }
}
