/**
 * Edits the Service file (weights 3:1 → 1:3) the way an editor saves it and waits until the
 * client has ACKed the endpoints the control plane pushes in response: no restart, no
 * reconnect. Then measures the split again.
 */
import type { ControlPlane } from '../../../control/control-plane.ts';
import type { TypeStatus } from '../../../control/inventory/inventory.ts';
import { SERVICE_FILE, serviceYaml, writeConfigFile } from '../sample-config.ts';
import type { DemoStep } from '../step.ts';
import { waitFor } from '../wait.ts';
import { DEMO_NODE_ID } from './resolve-client.ts';
import { callsTimeoutMs, measureSplit } from './split-calls.ts';

const FOLLOW_WITHIN_MS = 10_000;

function clientEds(cp: ControlPlane): TypeStatus | undefined {
  return cp.inventory.list().find((p) => p.nodeId === DEMO_NODE_ID)?.types['EDS'];
}

export const changeWeights: DemoStep = {
  title: 'change the weights to 1:3; the client follows',
  timeoutMs: (ctx) => FOLLOW_WITHIN_MS + callsTimeoutMs(ctx.options.calls),
  skip: (ctx) => (ctx.options.configDir !== null ? '--config given: its files are left as they are' : null),
  async run(ctx, signal) {
    const cp = ctx.need(ctx.controlPlane, 'control plane');
    const dir = ctx.need(ctx.configDir, 'config directory');
    const sentBefore = clientEds(cp)?.sentVersion;
    const rejectionsBefore = cp.status.rejections;

    ctx.weights = [...ctx.weights].reverse();
    const endpoints = ctx.backends.map((b, i) => ({ name: b.name, host: b.host, port: b.port, weight: ctx.weights[i]! }));
    await writeConfigFile(dir, SERVICE_FILE, serviceYaml(endpoints));
    const saved = performance.now();

    const eds = await waitFor(() => {
      if (cp.status.rejections > rejectionsBefore) {
        throw new Error(`the control plane refused the edit: ${cp.status.lastRejection?.errors.join('; ')}`);
      }
      const t = clientEds(cp);
      if (!t || t.sentVersion === sentBefore) return null;
      if (t.lastNack?.nonce === t.sentNonce) throw new Error(`the client NACKed the new endpoints: ${t.lastNack.error}`);
      return t.ackedNonce === t.sentNonce ? t : null;
    }, { timeoutMs: FOLLOW_WITHIN_MS, signal, timeoutMessage: `the client did not ACK new endpoints within ${FOLLOW_WITHIN_MS / 1000} s of saving ${SERVICE_FILE}` });
    const followedMs = Math.round(performance.now() - saved);

    return [
      `saved ${SERVICE_FILE} with ${endpoints.map((e) => `${e.name} weight ${e.weight}`).join(', ')}`,
      `control plane pushed new endpoints (EDS ${eds.sentVersion.slice(0, 12)}); the client ACKed them ${followedMs} ms after the save`,
      `${ctx.options.calls} more calls:`,
      ...(await measureSplit(ctx, signal)),
    ];
  },
};
