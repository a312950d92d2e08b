import { PalisadeError } from '../../xds/errors.ts';
import type { ConfigError } from './config-error.ts';
import { formatConfigError } from './config-error.ts';

/**
 * Desired state that cannot be used: the initial load of a source failed (a missing directory,
 * malformed YAML, a schema violation, a dangling reference). `errors` holds every problem;
 * the message lists them, one formatted line each.
 */
export class InvalidConfigError extends PalisadeError {
  readonly errors: readonly ConfigError[];

  constructor(summary: string, errors: readonly ConfigError[], options?: { cause?: unknown }) {
    const lines = errors.map((e) => `  ${formatConfigError(e)}`).join('\n');
    super('PAL_ERR_CONFIG_INVALID', errors.length === 0 ? summary : `${summary}:\n${lines}`, options);
    this.errors = errors;
  }
}

/** A constructor option of a config source is missing, unknown or out of range; the message names it and the value. */
export class InvalidOptionError extends PalisadeError {
  constructor(message: string) {
    super('PAL_ERR_CONFIG_INVALID_OPTION', message);
  }
}

/** `parseDuration` was handed a string that is not a positive duration (`250ms`, `1.5s`, `2m`, `1h`). */
export class InvalidDurationError extends PalisadeError {
  constructor(value: unknown) {
    super('PAL_ERR_CONFIG_INVALID_DURATION', `invalid duration ${JSON.stringify(value)}: expected a positive duration like 250ms, 1.5s, 2m or 1h`);
  }
}

/** `current()` was called on a source whose `start()` has not resolved yet. */
export class SourceNotStartedError extends PalisadeError {
  constructor() {
    super('PAL_ERR_CONFIG_SOURCE_NOT_STARTED', 'the config source has no state yet: await start() before calling current()');
  }
}

/** `start()` was called on, or raced with, `close()`. */
export class SourceClosedError extends PalisadeError {
  constructor() {
    super('PAL_ERR_CONFIG_SOURCE_CLOSED', 'the config source is closed');
  }
}
