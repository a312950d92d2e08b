/** The proxy inventory, read from the admin endpoint exactly as `palisade proxies` does. */
import type { ProxyRecord } from '../../../control/inventory/inventory.ts';
import { formatProxies } from '../../commands/proxies.ts';
import type { DemoStep } from '../step.ts';
import { DEMO_NODE_ID } from './resolve-client.ts';

export const listProxies: DemoStep = {
  title: 'list the connected proxies',
  timeoutMs: 5000,
  async run(ctx, signal) {
    const admin = ctx.need(ctx.adminAddress, 'admin endpoint');
    const res = await fetch(`http://${admin}/api/v1/proxies`, { signal });
    if (!res.ok) throw new Error(`GET http://${admin}/api/v1/proxies answered ${res.status}`);
    const { proxies } = (await res.json()) as { proxies: ProxyRecord[] };
    if (!proxies.some((p) => p.nodeId === DEMO_NODE_ID)) throw new Error(`${DEMO_NODE_ID} is not among the ${proxies.length} connected proxies`);
    return [`GET http://${admin}/api/v1/proxies (SYNCED: the proxy ACKed the latest version of that type)`, ...formatProxies(proxies).trimEnd().split('\n')];
  },
};
