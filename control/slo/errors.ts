import { PalisadeError } from '../../xds/errors.ts';

/** An `SloEngine` option is out of range; the message names the option and the value. */
export class InvalidSloOptionError extends PalisadeError {
  constructor(message: string) {
    super('PAL_ERR_SLO_INVALID_OPTION', message);
  }
}
