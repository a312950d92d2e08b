/**
 * Starts bench/full-chain's peer topologies `node` and `node-mtls`: the minimal Node reverse
 * proxy (node-proxy.ts) in front of the same upstream, plaintext or requiring the caller's
 * SVID as the sidecar's STRICT inbound does, checked to answer 200 with the exact body (and,
 * with mTLS, to refuse a client without a certificate) before it is measured.
 */
import { join } from 'node:path';
import { Agent } from 'undici';

import { PATH } from '../authz/policy.ts';
import { get, waitFor200 } from '../common/chain-setup.ts';
import { CHILD_DEADLINE_MS, NODE, REPO } from '../proxy/targets.ts';
import { Child } from '../xds-scale/child.ts';
import type { NodeProxySpec } from './node-proxy.ts';
import { tlsAgent, type Pki, type TlsFiles } from './pki.ts';

export interface NodePeer {
  readonly url: string;
  /** What the load generator presents: the caller's SVID with mTLS, else null. */
  readonly tls: TlsFiles | null;
  readonly pid: number;
  readonly verified: unknown;
  stop(): Promise<void>;
}

export async function startNodePeer(mtls: boolean, pki: Pki | null, upstreamPort: number, headers: Record<string, string>, body: string): Promise<NodePeer> {
  if (mtls && pki === null) throw new Error('the node-mtls peer needs the run\'s PKI');
  const spec: NodeProxySpec = { upstreamPort, tls: mtls ? { key: pki!.server.key, cert: pki!.server.cert, ca: pki!.bundle } : null };
  const child = new Child(mtls ? 'node-mtls' : 'node', NODE, [join(REPO, 'bench', 'full-chain', 'node-proxy.ts'), JSON.stringify(spec)], { cwd: REPO, deadlineMs: CHILD_DEADLINE_MS, echoStderr: true });
  const agents: Agent[] = [];
  const stop = async () => {
    await Promise.all(agents.map((a) => a.close()));
    await child.stop(5000);
  };
  try {
    const { port } = await child.waitForEvent('listening', 30_000);
    const url = `${mtls ? 'https' : 'http'}://127.0.0.1:${String(port)}${PATH}`;
    let verified: unknown = { mtls: false };
    if (mtls) {
      const caller = tlsAgent(pki!.caller, pki!.bundle);
      const anonymous = new Agent({ connect: { rejectUnauthorized: false } });
      agents.push(caller, anonymous);
      await waitFor200(url, headers, [child], 20_000, body, caller);
      // As the sidecar's STRICT inbound: a client without a certificate gets no answer.
      const refused = await get(url, headers, anonymous).then((r) => `HTTP ${r.status}`, (err: Error) => err.message);
      if (refused.startsWith('HTTP ')) throw new Error(`the node-mtls peer answered a client without a certificate: ${refused}`);
      verified = { mtls: true, withoutCertificate: refused };
    } else {
      await waitFor200(url, headers, [child], 20_000, body);
    }
    return { url, tls: mtls ? pki!.caller : null, pid: child.pid, verified, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
