/** N calls through the client; the split across backends should follow the Service's weights. */
import type { DemoContext } from '../context.ts';
import { ECHO_SERVICE_NAME } from '../sample-config.ts';
import { compareSplit, formatSplit, type WeightedBackend } from '../split.ts';
import type { DemoStep } from '../step.ts';

/** Time allowed for N calls: generous, since each one takes about a millisecond on loopback. */
export function callsTimeoutMs(calls: number): number {
  return 10_000 + 20 * calls;
}

/** The demo backends with the weights last written for them; empty with --config (replies are not ours to name). */
export function configuredBackends(ctx: DemoContext): WeightedBackend[] {
  return ctx.backends.map((b, i) => ({ name: b.name, weight: ctx.weights[i]! }));
}

/** Measures a split and checks it against the weights; detail lines, or throws naming the difference. */
export async function measureSplit(ctx: DemoContext, signal: AbortSignal): Promise<string[]> {
  const client = ctx.need(ctx.client, 'gRPC client');
  const counts = await client.calls(ctx.options.calls, signal);
  const report = compareSplit(counts, configuredBackends(ctx));
  if (report.problems.length > 0) throw new Error(report.problems.join('; '));
  return formatSplit(report.rows);
}

export const splitCalls: DemoStep = {
  title: 'split calls across the backends by weight',
  timeoutMs: (ctx) => callsTimeoutMs(ctx.options.calls),
  async run(ctx, signal) {
    const lines = [`${ctx.options.calls} calls to xds:///${ECHO_SERVICE_NAME}:`, ...(await measureSplit(ctx, signal))];
    if (ctx.backends.length === 0) {
      // --config: show what the Service says, since the replies cannot be matched to endpoints.
      const service = ctx.controlPlane?.state?.services.get(`default/${ECHO_SERVICE_NAME}`);
      const endpoints = service?.spec.endpoints.map((e) => `${e.address}:${e.port} weight ${e.weight}`).join(', ');
      lines.push(`Service ${ECHO_SERVICE_NAME} in the config: ${endpoints ?? 'not found in namespace default'}`);
    }
    return lines;
  },
};
