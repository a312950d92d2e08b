/**
 * The sidecar's xDS channel over mTLS with its SVID: the control plane must chain to the
 * trust bundle and present its own SPIFFE ID (…/ns/palisade-system/sa/control-plane).
 */
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { expectServerId } from '../../certs/peer-identity.ts';
import type { Logger } from 'pino';
import type { SidecarBootstrap } from '../bootstrap/bootstrap.ts';
import { CONTROL_PLANE_PATH, enrollmentInputs, enrollWorkload, type WorkloadIdentity } from './enroll.ts';
import { WorkloadTls } from './workload-tls.ts';
import type { TlsSecrets } from '../tls/secrets.ts';

export function xdsChannelCredentials(identity: WorkloadIdentity, trustDomain: string): ChannelCredentials {
  return credentials.createSsl(Buffer.from(identity.bundlePem), Buffer.from(identity.keyPem), Buffer.from(identity.chainPem), {
    checkServerIdentity: expectServerId(`spiffe://${trustDomain}${CONTROL_PLANE_PATH}`, 'the control plane'),
  });
}

/**
 * Enrolls when the bootstrap has an identity section and returns the workload's TLS identity
 * (not started: the caller arms renewal with start()); null for a sidecar without one
 * (plaintext mesh). Throws PAL_ERR_SIDECAR_ENROLL.
 */
export async function enrollWorkloadTls(b: SidecarBootstrap, log: Logger, secrets?: TlsSecrets): Promise<WorkloadTls | null> {
  if (b.identity === null) return null;
  const inputs = await enrollmentInputs(b.identity);
  const identity = await enrollWorkload({
    caAddress: b.identity.caAddress, bundlePem: inputs.bundlePem, trustDomain: inputs.trustDomain,
    namespace: b.node.namespace, serviceAccount: b.node.serviceAccount, token: inputs.token,
  });
  log.info({ spiffeId: identity.spiffeId, notAfter: identity.notAfter.toISOString(), renewAt: identity.renewAt.toISOString() }, 'enrolled: workload certificate issued');
  return new WorkloadTls({ identity, caAddress: b.identity.caAddress, trustDomain: inputs.trustDomain, logger: log, ...(secrets !== undefined ? { secrets } : {}) });
}
