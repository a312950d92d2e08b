/** Two plain HTTP workloads on loopback, free ports: `frontend` and `backend`, each to get a sidecar. */
import { startHttpWorkload } from '../http-workload.ts';
import { HTTP_SERVICES } from '../sample-config.ts';
import type { DemoStep } from '../step.ts';

/** Why the sidecar steps do not apply, or null. */
export function sidecarsSkip(ctx: { options: { configDir: string | null } }): string | null {
  return ctx.options.configDir !== null ? '--config given: the sidecar steps need the sample Services frontend and backend' : null;
}

export const startWorkloads: DemoStep = {
  title: 'start two HTTP workloads, frontend and backend',
  timeoutMs: 5000,
  skip: sidecarsSkip,
  async run(ctx) {
    for (const { name } of HTTP_SERVICES) {
      const workload = await startHttpWorkload(name);
      ctx.defer(`HTTP workload ${name}`, () => workload.close());
      ctx.workloads.push(workload);
    }
    return ctx.workloads.map((w) => `${w.name.padEnd(8)}  http://${w.host}:${w.port}  (answers with its name and the request it got, as JSON)`);
  },
};
