/** A proxyless gRPC client (grpc-js + grpc-js-xds) that finds the echo backends through the control plane. */
import { DemoClient, describeCallError } from '../grpc-client.ts';
import { ECHO_SERVICE_NAME } from '../sample-config.ts';
import type { DemoStep } from '../step.ts';
import { sleep } from '../wait.ts';

/** The node id the demo client gives the control plane; it is how `palisade proxies` lists it. */
export const DEMO_NODE_ID = 'palisade-demo-client';
const FIRST_REPLY_WITHIN_MS = 10_000;

export const resolveClient: DemoStep = {
  title: `resolve xds:///${ECHO_SERVICE_NAME} with a proxyless gRPC client`,
  timeoutMs: FIRST_REPLY_WITHIN_MS + 5000,
  async run(ctx, signal) {
    const xdsServer = ctx.need(ctx.grpcXdsAddress ?? ctx.xdsAddress, 'control plane');
    const client = new DemoClient({ target: `xds:///${ECHO_SERVICE_NAME}`, xdsServer, nodeId: DEMO_NODE_ID, namespace: 'default' });
    ctx.defer('gRPC client', () => client.close());
    ctx.client = client;
    const started = performance.now();
    let lastError: unknown;
    for (;;) {
      try {
        const reply = await client.call();
        return [
          `node ${DEMO_NODE_ID} got listener, route, cluster and endpoints (LDS → RDS → CDS → EDS) from ${xdsServer}`,
          `first reply, from backend "${reply}", after ${Math.round(performance.now() - started)} ms; no proxy in the path`,
        ];
      } catch (err) {
        lastError = err;
      }
      if (performance.now() - started > FIRST_REPLY_WITHIN_MS) {
        throw new Error(`no reply within ${FIRST_REPLY_WITHIN_MS / 1000} s; last error: ${describeCallError(lastError)}`);
      }
      await sleep(250, undefined, { signal });
    }
  },
};
