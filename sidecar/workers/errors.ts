/** Errors of the `--workers N` sidecar (sidecar/workers/). */
import { PalisadeError } from '../../xds/errors.ts';

/** A worker process could not start: it failed to bind, crashed, or did not listen in time. */
export class WorkerStartError extends PalisadeError {
  readonly index: number;

  constructor(index: number, reason: string) {
    super('PAL_ERR_SIDECAR_WORKER_START', `sidecar worker ${index} could not start: ${reason}`);
    this.index = index;
  }
}
