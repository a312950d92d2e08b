import { PalisadeError } from '../../xds/errors.ts';

/** An admission bundle answers neither `admission/deny` nor `admission/patch`: it would admit everything unseen. */
export class AdmissionNoEntrypointError extends PalisadeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PAL_ERR_ADMISSION_NO_ENTRYPOINT', message, options);
  }
}

/** The first configuration was denied by admission control; the control plane does not start. `denials` lists each. */
export class AdmissionDeniedError extends PalisadeError {
  readonly denials: readonly string[];

  constructor(denials: readonly string[]) {
    super('PAL_ERR_ADMISSION_DENIED', `configuration denied by admission control:\n${denials.map((d) => `  ${d}`).join('\n')}`);
    this.denials = denials;
  }
}
