/** Two gRPC echo backends on loopback, free ports: the workload behind the Service `echo`. */
import { startEchoBackend } from '../echo-backend.ts';
import type { DemoStep } from '../step.ts';

/** Backend names and their weights in the sample Service, in endpoint order. */
export const SAMPLE_BACKENDS = Object.freeze([
  { name: 'a', weight: 3 },
  { name: 'b', weight: 1 },
]);

export const startBackends: DemoStep = {
  title: 'start two gRPC echo backends',
  timeoutMs: 5000,
  skip: (ctx) => (ctx.options.configDir !== null ? `--config given: calls go to the endpoints of its Service echo` : null),
  async run(ctx) {
    for (const { name } of SAMPLE_BACKENDS) {
      const backend = await startEchoBackend(name);
      ctx.defer(`echo backend ${name}`, () => backend.close());
      ctx.backends.push(backend);
    }
    return ctx.backends.map((b) => `${b.name}  ${b.host}:${b.port}  (answers every call with "${b.name}")`);
  },
};
