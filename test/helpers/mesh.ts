/**
 * An mTLS mesh for e2e tests, in this process on 127.0.0.1, wired as `palisade control` wires
 * it with a CA: a state dir with a root and an intermediate, the control plane's own SVID on
 * its xDS port (client certificates required, streams authorized by SVID), the CA endpoint
 * where sidecars enroll with join tokens, and sidecars that enroll at start.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { CertificateAuthority } from '../../certs/ca.ts';
import { FileKek } from '../../certs/keyring.ts';
import { DirectorySource } from '../../control/config/source.ts';
import { ControlPlane } from '../../control/control-plane.ts';
import { CA_DIR, CertsService, KEK_FILE } from '../../control/certs/certs-service.ts';
import { EnrollServer } from '../../control/certs/enroll-server.ts';
import { IdentityProvider } from '../../control/certs/server-identity.ts';
import { createLogger } from '../../control/log.ts';
import { createStreamAuthorizer } from '../../control/security/stream-authorizer.ts';
import { parseBootstrap } from '../../sidecar/bootstrap/bootstrap.ts';
import { Sidecar, type SidecarAddresses } from '../../sidecar/sidecar.ts';

export const TRUST_DOMAIN = 'mesh.local';

export interface TestMesh {
  readonly dir: string;
  readonly configDir: string;
  readonly certs: CertsService;
  readonly cp: ControlPlane;
  readonly caAddress: string;
  readonly bundleFile: string;
  /** Writes the config (Mesh + the given documents) and waits for nothing: the control plane watches the directory. */
  writeConfig(documents: string, mode?: 'STRICT' | 'PERMISSIVE'): Promise<void>;
  /** A sidecar of Service `service` (service account `service`) in front of the workload port, enrolled with a fresh join token, ready. */
  startSidecar(service: string, workloadPort: number): Promise<{ sidecar: Sidecar; addresses: SidecarAddresses }>;
  close(): Promise<void>;
}

export function meshYaml(mode: 'STRICT' | 'PERMISSIVE'): string {
  return `apiVersion: palisade.dev/v1\nkind: Mesh\nmetadata: { name: mesh }\nspec: { trustDomain: ${TRUST_DOMAIN}, mtls: { mode: ${mode} } }\n`;
}

export async function startMesh(documents: string, options: { mode?: 'STRICT' | 'PERMISSIVE'; svidTtlMs?: number } = {}): Promise<TestMesh> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-mesh-'));
  const configDir = join(dir, 'config');
  const state = join(dir, 'state');
  await mkdir(configDir);
  await mkdir(state);
  const writeConfig = (docs: string, mode: 'STRICT' | 'PERMISSIVE' = options.mode ?? 'STRICT') => writeFile(join(configDir, 'mesh.yaml'), `${meshYaml(mode)}---\n${docs}`);
  await writeConfig(documents);
  const root = await CertificateAuthority.initRoot({ trustDomain: TRUST_DOMAIN });
  await CertificateAuthority.writeState(join(state, CA_DIR), await FileKek.open(join(state, KEK_FILE)), { root, intermediate: await CertificateAuthority.createIntermediate(root) });
  const certs = await CertsService.open(state);
  const identity = await certs.serverIdentity();
  const cp = new ControlPlane({
    source: new DirectorySource({ dir: configDir, debounceMs: 20 }), xdsAddress: '127.0.0.1:0', logger: createLogger('silent'), endpointGraceMs: 500,
    xdsCredentials: new IdentityProvider(identity).serverCredentials(),
    authorizeStream: createStreamAuthorizer({ trustDomain: TRUST_DOMAIN, mode: 'STRICT' }),
    trustBundle: identity.bundle,
  });
  await cp.start();
  const enroll = new EnrollServer(certs, identity);
  const caAddress = await enroll.listen('127.0.0.1:0');
  const bundleFile = join(dir, 'bundle.pem');
  await writeFile(bundleFile, identity.bundle);
  const sidecars: Sidecar[] = [];
  let n = 0;
  return {
    dir, configDir, certs, cp, caAddress, bundleFile, writeConfig,
    async startSidecar(service, workloadPort) {
      const token = (await certs.tokens.mint({ namespace: 'default', serviceAccount: service, ttlMs: 600_000 })).token;
      const parsed = parseBootstrap({
        node: { id: `${service}-${++n}`, service },
        controlPlane: { address: cp.xdsAddress },
        inbound: { address: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1' },
        outbound: { address: '127.0.0.1', port: 0 }, admin: { address: '127.0.0.1', port: 0 },
        workload: { address: `127.0.0.1:${workloadPort}` },
        identity: { caAddress, trustBundle: bundleFile, joinToken: token },
      });
      if (!parsed.valid) throw new Error(parsed.errors.join('; '));
      const sidecar = new Sidecar({ bootstrap: parsed.result, logger: pino({ level: 'silent' }), version: 'test', drainTimeoutMs: 1000 });
      sidecars.push(sidecar);
      const addresses = await sidecar.start();
      await sidecar.whenReady();
      return { sidecar, addresses };
    },
    async close() {
      await Promise.all(sidecars.map((s) => s.close()));
      await enroll.close();
      await cp.close();
      await certs.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
