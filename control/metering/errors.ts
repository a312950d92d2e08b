import { PalisadeError } from '../../xds/errors.ts';

/** A usage query with a bad parameter (`day` not YYYY-MM-DD, an empty or over-long `tenant`). */
export class InvalidUsageQueryError extends PalisadeError {
  readonly parameter: string;
  constructor(parameter: string, message: string) {
    super('PAL_ERR_METERING_INVALID_QUERY', message);
    this.parameter = parameter;
  }
}

/** A persisted usage file that cannot be read; it is set aside as `<day>.json.corrupt-<ms>` and the day starts empty. */
export class CorruptUsageFileError extends PalisadeError {
  constructor(file: string, cause: unknown) {
    super('PAL_ERR_METERING_CORRUPT_FILE', `usage file ${file} cannot be read: ${(cause as Error).message}`, { cause });
  }
}
