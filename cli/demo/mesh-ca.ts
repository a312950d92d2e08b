/**
 * The demo's certificate authority: a root and an online intermediate in a temporary state
 * directory (the root key kept in the keyring: a demo has nowhere offline to put it), the
 * control plane's own SVID, and the CA endpoint where the demo's sidecars enroll with join
 * tokens. Wired as `palisade control` wires a CA: revocations and root-rotation phases are
 * pushed to every proxy (SDS ROOTCA) and the control plane's SVID is kept fresh.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { CertificateAuthority } from '../../certs/ca.ts';
import { FileKek } from '../../certs/keyring.ts';
import { CA_DIR, CertsService, KEK_FILE, type ServerIdentity } from '../../control/certs/certs-service.ts';
import { EnrollServer } from '../../control/certs/enroll-server.ts';
import { IdentityProvider, keepIdentityFresh } from '../../control/certs/server-identity.ts';
import type { ControlPlane } from '../../control/control-plane.ts';

export interface DemoCa {
  readonly stateDir: string;
  readonly certs: CertsService;
  readonly identity: ServerIdentity;
  readonly provider: IdentityProvider;
  /** The trust bundle as a file, as a sidecar's bootstrap names it. */
  readonly bundleFile: string;
}

export async function createDemoCa(trustDomain: string): Promise<DemoCa> {
  const stateDir = await mkdtemp(join(tmpdir(), 'palisade-demo-state-'));
  try {
    const root = await CertificateAuthority.initRoot({ trustDomain });
    const kek = await FileKek.open(join(stateDir, KEK_FILE));
    await CertificateAuthority.writeState(join(stateDir, CA_DIR), kek, { root, intermediate: await CertificateAuthority.createIntermediate(root), keepRootKey: true });
    const certs = await CertsService.open(stateDir);
    const identity = await certs.serverIdentity();
    const bundleFile = join(stateDir, 'bundle.pem');
    await writeFile(bundleFile, identity.bundle);
    return { stateDir, certs, identity, provider: new IdentityProvider(identity), bundleFile };
  } catch (err) {
    await rm(stateDir, { recursive: true, force: true });
    throw err;
  }
}

/** Serves the CA endpoint and keeps the control plane's trust and SVID current; returns the endpoint's address and a stop function. */
export async function serveDemoCa(ca: DemoCa, cp: ControlPlane, logger: Logger): Promise<{ address: string; stop: () => Promise<void> }> {
  const enroll = new EnrollServer(ca.certs, ca.identity);
  const address = await enroll.listen('127.0.0.1:0');
  const fresh = keepIdentityFresh(ca.certs, ca.provider, logger, (next) => enroll.setIdentity(next));
  const off = ca.certs.onTrustChange((trust, cause) => {
    cp.setTrust(trust);
    if (cause === 'rotation-started' || cause === 'rotation-finished') void fresh.renewNow();
  });
  return {
    address,
    async stop() {
      off();
      fresh.stop();
      await enroll.close();
    },
  };
}
