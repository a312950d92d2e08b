/**
 * The control plane, in this process: the config directory watcher, the translator and the
 * ADS server, plus the admin HTTP endpoint. It logs only warnings and errors (JSON on
 * stderr), so the demo's own output stays readable.
 *
 * With a mesh CA (cli/demo/mesh-ca.ts) as `palisade control --state-dir` runs with one: the
 * ADS port requires a client certificate (each stream authorized by its SVID), the CA
 * endpoint enrolls sidecars, and a second, plaintext ADS port serves the proxyless gRPC
 * client, whose library (grpc-js-xds) cannot present a certificate (Istio's 15010).
 */
import { AdminServer } from '../../../control/admin/admin-server.ts';
import { DirectorySource } from '../../../control/config/source.ts';
import { ControlPlane } from '../../../control/control-plane.ts';
import { createLogger } from '../../../control/log.ts';
import { generateKeyPairSync } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createStreamAuthorizer } from '../../../control/security/stream-authorizer.ts';
import { createDemoCa, serveDemoCa } from '../mesh-ca.ts';
import { DEMO_TRUST_DOMAIN } from '../sample-config.ts';
import { chooseListenAddress } from '../ports.ts';
import type { DemoStep } from '../step.ts';

export const startControlPlane: DemoStep = {
  title: 'start the control plane',
  timeoutMs: 10_000,
  async run(ctx) {
    const dir = ctx.need(ctx.configDir, 'config directory');
    const xds = await chooseListenAddress(ctx.options.xdsAddress, ctx.options.xdsAddressIsDefault);
    const admin = await chooseListenAddress(ctx.options.adminAddress, ctx.options.adminAddressIsDefault);

    const logger = createLogger('warn', 'palisade-demo');
    ctx.defer('control plane log', () => logger.flush());
    const ca = await createDemoCa(DEMO_TRUST_DOMAIN);
    ctx.defer('mesh CA state', async () => {
      await ca.certs.close();
      await rm(ca.stateDir, { recursive: true, force: true });
    });
    const cp: ControlPlane = new ControlPlane({
      source: new DirectorySource({ dir, debounceMs: 50 }), xdsAddress: xds.address, logger,
      xdsCredentials: ca.provider.serverCredentials(),
      xdsPlaintextAddress: '127.0.0.1:0',
      authorizeStream: createStreamAuthorizer({ trustDomain: DEMO_TRUST_DOMAIN, mode: () => cp.state?.mesh?.spec.mtls.mode ?? 'STRICT', plaintextKinds: ['grpc'] }),
      trustBundle: ca.certs.trust().bundle,
      crl: ca.certs.trust().crl,
      issueCertificate: (namespace, serviceAccount) => ca.certs.issueForProxy(namespace, serviceAccount),
    });
    ctx.defer('control plane', () => cp.close());
    try {
      await cp.start();
    } catch (err) {
      throw new Error(`${(err as Error).message}${portHint(err, '--xds-address')}`, { cause: err });
    }
    const served = await serveDemoCa(ca, cp, logger);
    ctx.defer('CA endpoint', () => served.stop());
    ctx.mesh = { certs: ca.certs, caAddress: served.address, bundleFile: ca.bundleFile, trustDomain: DEMO_TRUST_DOMAIN };
    // The key policy bundles are signed with (as palisade policy keygen makes it); sidecars trust its public half.
    const policyKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const publicKeyFile = join(ca.stateDir, 'policy-signing.pub.pem');
    await writeFile(publicKeyFile, policyKey.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    ctx.policyKey = { privatePem: policyKey.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, publicKeyFile };
    const adminServer = new AdminServer(cp, ca.certs);
    let adminBound: string;
    try {
      adminBound = await adminServer.listen(admin.address);
    } catch (err) {
      throw new Error(`admin endpoint: ${(err as Error).message}${portHint(err, '--admin-address')}`, { cause: err });
    }
    ctx.defer('admin endpoint', () => adminServer.close());
    adminServer.markReady();
    ctx.controlPlane = cp;
    ctx.xdsAddress = cp.xdsAddress;
    ctx.grpcXdsAddress = cp.xdsPlaintextAddress ?? cp.xdsAddress;
    ctx.adminAddress = adminBound;

    const url = `http://${adminBound}`;
    ctx.lookAround.push(
      `curl ${url}/ready`,
      `curl ${url}/api/v1/proxies      connected proxies, what each ACKed or NACKed`,
      `curl ${url}/api/v1/snapshots    xDS resources per node group, with versions`,
      `curl ${url}/api/v1/state        last applied and last refused configuration`,
      `npx palisade proxies --admin-address ${adminBound}`,
      `config: ${dir}  (watched: save a change and it is pushed at once)`,
    );
    return [
      `xDS (ADS)  ${cp.xdsAddress}  mTLS: client certificate required, each stream authorized by its SPIFFE ID${xds.note ? `  (${xds.note})` : ''}`,
      `xDS (ADS)  ${ctx.grpcXdsAddress}  plaintext, for the proxyless gRPC client only (grpc-js-xds cannot present a certificate)`,
      `CA         https://${served.address}  trust domain ${DEMO_TRUST_DOMAIN}; sidecars enroll here with one-time join tokens (state in ${ca.stateDir})`,
      `admin      ${url}${admin.note ? `  (${admin.note})` : ''}`,
    ];
  },
};

function portHint(err: unknown, flag: string): string {
  const text = `${(err as Error).message} ${(err as NodeJS.ErrnoException).code ?? ''}`;
  return /EADDRINUSE|address already in use|No address added/i.test(text) ? ` (is the port taken? try ${flag} 127.0.0.1:0)` : '';
}
