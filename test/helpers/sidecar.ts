/** An in-process Palisade sidecar for e2e tests: node web-1 of service web, every port ephemeral on 127.0.0.1. */
import pino from 'pino';
import { parseBootstrap } from '../../sidecar/bootstrap/bootstrap.ts';
import { Sidecar, type SidecarAddresses } from '../../sidecar/sidecar.ts';

/** Starts a sidecar in front of the workload on `workloadPort`, against the control plane at `controlPlane`, and waits until it is ready. */
export async function startTestSidecar(controlPlane: string, workloadPort: number): Promise<{ sidecar: Sidecar; addresses: SidecarAddresses }> {
  const parsed = parseBootstrap({
    node: { id: 'web-1', service: 'web' },
    inbound: { address: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1' },
    workload: { address: `127.0.0.1:${workloadPort}` },
    outbound: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    controlPlane: { address: controlPlane },
  });
  if (!parsed.valid) throw new Error(parsed.errors.join('\n'));
  const sidecar = new Sidecar({ bootstrap: parsed.result, logger: pino({ level: 'silent' }), version: 'test', drainTimeoutMs: 2000 });
  const addresses = await sidecar.start();
  await sidecar.whenReady();
  return { sidecar, addresses };
}
