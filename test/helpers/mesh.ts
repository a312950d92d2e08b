/**
 * An mTLS mesh for e2e tests, in this process on 127.0.0.1, wired as `palisade control` wires
 * it with a CA: a state dir with a root and an intermediate, the control plane's own SVID on
 * its xDS port (client certificates required, streams authorized by SVID), the CA endpoint
 * where sidecars enroll with join tokens, and sidecars that enroll at start.
 */
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { CertificateAuthority } from '../../certs/ca.ts';
import { FileKek } from '../../certs/keyring.ts';
import { DirectorySource } from '../../control/config/source.ts';
import { ControlPlane } from '../../control/control-plane.ts';
import { CA_DIR, CertsService, KEK_FILE } from '../../control/certs/certs-service.ts';
import { EnrollServer } from '../../control/certs/enroll-server.ts';
import { IdentityProvider, keepIdentityFresh } from '../../control/certs/server-identity.ts';
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
  startSidecar(service: string, workloadPort: number, options?: { policyKeys?: readonly string[] }): Promise<{ sidecar: Sidecar; addresses: SidecarAddresses }>;
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
  // Atomically (temp + rename, as editors save): the watcher must never read half a file.
  const writeConfig = async (docs: string, mode: 'STRICT' | 'PERMISSIVE' = options.mode ?? 'STRICT') => {
    const tmp = join(configDir, '.mesh.yaml.tmp');
    await writeFile(tmp, `${meshYaml(mode)}---\n${docs}`);
    await rename(tmp, join(configDir, 'mesh.yaml'));
  };
  await writeConfig(documents);
  const root = await CertificateAuthority.initRoot({ trustDomain: TRUST_DOMAIN });
  await CertificateAuthority.writeState(join(state, CA_DIR), await FileKek.open(join(state, KEK_FILE)), { root, intermediate: await CertificateAuthority.createIntermediate(root) });
  const certs = await CertsService.open(state);
  const identity = await certs.serverIdentity();
  const provider = new IdentityProvider(identity);
  const logger = createLogger('silent');
  const cp = new ControlPlane({
    source: new DirectorySource({ dir: configDir, debounceMs: 20 }), xdsAddress: '127.0.0.1:0', logger, endpointGraceMs: 500,
    xdsCredentials: provider.serverCredentials(),
    authorizeStream: createStreamAuthorizer({ trustDomain: TRUST_DOMAIN, mode: 'STRICT' }),
    trustBundle: certs.trust().bundle,
    crl: certs.trust().crl,
    issueCertificate: (namespace, serviceAccount) => certs.issueForProxy(namespace, serviceAccount),
  });
  await cp.start();
  const enroll = new EnrollServer(certs, identity);
  const caAddress = await enroll.listen('127.0.0.1:0');
  // As palisade control: trust changes are pushed; a rotation phase re-issues the control plane's SVID.
  const fresh = keepIdentityFresh(certs, provider, logger, (next) => enroll.setIdentity(next));
  certs.onTrustChange((trust, cause) => {
    cp.setTrust(trust);
    if (cause === 'rotation-started' || cause === 'rotation-finished') void fresh.renewNow();
  });
  const bundleFile = join(dir, 'bundle.pem');
  await writeFile(bundleFile, identity.bundle);
  const sidecars: Sidecar[] = [];
  let n = 0;
  return {
    dir, configDir, certs, cp, caAddress, bundleFile, writeConfig,
    async startSidecar(service, workloadPort, options = {}) {
      const token = (await certs.tokens.mint({ namespace: 'default', serviceAccount: service, ttlMs: 600_000 })).token;
      const parsed = parseBootstrap({
        node: { id: `${service}-${++n}`, service },
        controlPlane: { address: cp.xdsAddress },
        inbound: { address: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1' },
        outbound: { address: '127.0.0.1', port: 0 }, admin: { address: '127.0.0.1', port: 0 },
        workload: { address: `127.0.0.1:${workloadPort}` },
        identity: { caAddress, trustBundle: bundleFile, joinToken: token },
        ...(options.policyKeys !== undefined ? { policy: { verificationKeys: [...options.policyKeys] } } : {}),
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
      fresh.stop();
      await enroll.close();
      await cp.close();
      await certs.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** What {@link mtlsGet} got: the HTTP answer and the serial of the certificate the server presented. */
export interface MtlsReply {
  readonly status: number;
  readonly body: string;
  /** The server's leaf serial as node prints it (uppercase hex). */
  readonly serverSerial: string;
  /** Whether the handshake resumed `client.session`. */
  readonly resumed: boolean;
  /** The TLS session to resume on a later connection, if the server issued one. */
  readonly session: Buffer | undefined;
}

/**
 * One GET over a fresh mTLS connection (no agent; resuming `client.session` if given) to
 * `address` (host:port), presenting `client` and verifying the server's chain against `ca` (its
 * name is not checked: SVIDs carry SPIFFE IDs). Rejects on a refused handshake or a connection
 * closed before the answer, or after 5 s.
 */
export function mtlsGet(address: string, client: { keyPem: string; chainPem: string; ca: string; session?: Buffer }, path: string, host: string): Promise<MtlsReply> {
  const i = address.lastIndexOf(':');
  let session: Buffer | undefined;
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: address.slice(0, i), port: Number(address.slice(i + 1)), path, headers: { host }, agent: false,
      key: client.keyPem, cert: client.chainPem, ca: client.ca, checkServerIdentity: () => undefined,
      ...(client.session === undefined ? {} : { session: client.session }),
    }, (res) => {
      const socket = res.socket as TLSSocket;
      const serverSerial = socket.getPeerCertificate().serialNumber;
      const resumed = socket.isSessionReused();
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, serverSerial, resumed, session: session ?? socket.getSession() }));
    });
    // TLS 1.3 tickets arrive after the handshake, possibly before the answer.
    req.on('socket', (socket) => socket.on('session', (s: Buffer) => (session = s)));
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}
