/** The control plane adds each ready sidecar as an endpoint of its Service: no static endpoints needed. */
import type { Registration } from '../../../control/registry/endpoint-registry.ts';
import type { DemoStep } from '../step.ts';
import { sleep } from '../wait.ts';
import { sidecarsSkip } from './start-workloads.ts';

const REGISTERED_WITHIN_MS = 10_000;

type Listed = Registration & { serving: boolean };

export const registerSidecars: DemoStep = {
  title: 'the control plane registers the sidecars as endpoints',
  timeoutMs: REGISTERED_WITHIN_MS + 5000,
  skip: sidecarsSkip,
  async run(ctx, signal) {
    const admin = ctx.need(ctx.adminAddress, 'admin endpoint');
    if (ctx.sidecars.length === 0) throw new Error('no sidecars: the step that starts them did not run');
    const url = `http://${admin}/api/v1/endpoints`;
    const started = performance.now();
    for (;;) {
      const res = await fetch(url, { signal });
      if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
      const { endpoints } = (await res.json()) as { endpoints: Listed[] };
      const rows = ctx.sidecars.map((s) => {
        const inboundPort = Number(s.addresses.inbound.slice(s.addresses.inbound.lastIndexOf(':') + 1));
        const e = endpoints.find((x) => x.nodeId === s.nodeId && x.serving && x.endpoint.port === inboundPort);
        return { s, e };
      });
      if (rows.every((r) => r.e !== undefined)) {
        return [
          `GET ${url}:`,
          ...rows.map(({ s, e }) => `Service ${e!.service.padEnd(16)}  endpoint ${e!.endpoint.address}:${e!.endpoint.port}  (sidecar ${s.nodeId}'s inbound, ready, serving)`),
        ];
      }
      if (performance.now() - started > REGISTERED_WITHIN_MS) {
        const missing = rows.filter((r) => r.e === undefined).map((r) => r.s.nodeId);
        throw new Error(`${missing.join(' and ')} not registered as serving endpoints within ${REGISTERED_WITHIN_MS / 1000} s (${url})`);
      }
      await sleep(50, undefined, { signal });
    }
  },
};
