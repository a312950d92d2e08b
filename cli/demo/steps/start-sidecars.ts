/**
 * One Palisade sidecar per HTTP workload, in this process, every listener on a free port.
 * Each gets its bootstrap the way `palisade sidecar` reads it (parseBootstrap), connects to
 * the control plane and is ready once its first complete configuration is applied.
 */
import { createLogger } from '../../../control/log.ts';
import { parseBootstrap } from '../../../sidecar/bootstrap/bootstrap.ts';
import { Sidecar } from '../../../sidecar/sidecar.ts';
import type { DemoStep } from '../step.ts';
import { sidecarsSkip } from './start-workloads.ts';

const READY_WITHIN_MS = 10_000;

/** The node id of a workload's sidecar, as `palisade proxies` lists it. */
export function sidecarNodeId(workload: string): string {
  return `${workload}-1`;
}

export const startSidecars: DemoStep = {
  title: 'start a Palisade sidecar for each workload',
  timeoutMs: READY_WITHIN_MS + 5000,
  skip: sidecarsSkip,
  async run(ctx, signal) {
    const xdsServer = ctx.need(ctx.xdsAddress, 'control plane');
    const mesh = ctx.need(ctx.mesh, 'mesh CA');
    if (ctx.workloads.length === 0) throw new Error('no HTTP workloads: the step that starts them did not run');
    const logger = createLogger('warn', 'palisade-demo-sidecar');
    ctx.defer('sidecar log', () => logger.flush());
    const started = performance.now();
    for (const w of ctx.workloads) {
      const nodeId = sidecarNodeId(w.name);
      // A one-time join token for this workload's identity, as `palisade certs token` mints it.
      const { token } = await mesh.certs.tokens.mint({ namespace: 'default', serviceAccount: w.name, ttlMs: 10 * 60_000, actor: 'palisade-demo' });
      const parsed = parseBootstrap({
        node: { id: nodeId, service: w.name, namespace: 'default' },
        controlPlane: { address: xdsServer },
        inbound: { address: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1' },
        workload: { address: `${w.host}:${w.port}` },
        outbound: { address: '127.0.0.1', port: 0 },
        admin: { address: '127.0.0.1', port: 0 },
        identity: { caAddress: mesh.caAddress, trustBundle: mesh.bundleFile, joinToken: token },
        ...(ctx.policyKey !== undefined ? { policy: { verificationKeys: [ctx.policyKey.publicKeyFile] } } : {}),
      });
      if (!parsed.valid) throw new Error(`bootstrap of ${nodeId}: ${parsed.errors.join('; ')}`);
      const log = logger.child({ node: nodeId });
      const sidecar = new Sidecar({ bootstrap: parsed.result, logger: log, version: 'demo', drainTimeoutMs: 1000 });
      ctx.defer(`sidecar ${nodeId}`, () => {
        // Its own shutdown is expected: no "disconnected from the control plane" warning for it.
        log.level = 'error';
        return sidecar.close();
      });
      const addresses = await sidecar.start();
      ctx.sidecars.push({ name: w.name, nodeId, sidecar, addresses });
    }

    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.all(ctx.sidecars.map((s) => s.sidecar.whenReady())),
        new Promise((_, reject) => {
          timer = setTimeout(() => {
            const waiting = ctx.sidecars.filter((s) => !s.sidecar.ready).map((s) => s.nodeId);
            reject(new Error(`${waiting.join(' and ')} not ready within ${READY_WITHIN_MS / 1000} s (no complete configuration from ${xdsServer})`));
          }, READY_WITHIN_MS);
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
    const readyMs = Math.round(performance.now() - started);

    for (const s of ctx.sidecars) {
      const url = `http://${s.addresses.admin}`;
      ctx.lookAround.push(
        `curl ${url}/ready        sidecar ${s.nodeId}: 200 once configured`,
        `curl ${url}/config_dump  sidecar ${s.nodeId}: listeners, routes, clusters it got over xDS`,
        `curl ${url}/clusters     sidecar ${s.nodeId}: upstream hosts and health`,
        `curl ${url}/stats        sidecar ${s.nodeId}: requests per listener, xDS updates`,
      );
    }
    ctx.lookAround.push(`curl -H 'Host: backend:9090' http://${ctx.sidecars[0]!.addresses.outbound}/hello   frontend → backend through the sidecars`);
    return [
      ...ctx.sidecars.map((s) => `${s.nodeId.padEnd(10)}  inbound ${s.addresses.inbound} (mTLS)  outbound ${s.addresses.outbound}  admin http://${s.addresses.admin}`),
      ...ctx.sidecars.map((s) => `${s.nodeId.padEnd(10)}  enrolled with a join token: ${s.sidecar.identity?.spiffeId ?? '(no identity)'}, valid until ${s.sidecar.identity?.notAfter.toISOString() ?? '-'}; xDS over mTLS`),
      `both ready (first complete xDS configuration applied) ${readyMs} ms after start; /ready answers 200`,
    ];
  },
};
