import { PalisadeError } from '../xds/errors.ts';

/** A desired state that validates but whose translation breaks Envoy's rules (a translator bug). */
export class InvalidTranslationError extends PalisadeError {
  constructor(problems: readonly string[]) {
    super('PAL_ERR_CONTROL_INVALID_TRANSLATION', `configuration does not translate to valid xDS: ${problems.join('; ')}`);
  }
}
