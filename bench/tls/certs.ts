/**
 * The certificates of bench/tls, made in memory by Palisade's own CA code (certs/): an ECDSA
 * P-256 root and intermediate, an SVID for the server (spiffe://bench.local/ns/bench/sa/server)
 * and one for the client (…/sa/client), written as PEM files into a temporary directory so
 * that every process (Palisade, nginx, the load generator) reads the same bytes.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { CertificateAuthority } from '../../certs/ca.ts';
import { createCsr } from '../../certs/csr.ts';
import { exportPrivateKeyPem, generateKeyPair } from '../../certs/keys.ts';

export const TRUST_DOMAIN = 'bench.local';
export const NAMESPACE = 'bench';

/** Paths of the PEM files. `*Chain` = leaf then intermediate; `bundle` = the root. */
export interface CertFiles {
  readonly dir: string;
  readonly bundle: string;
  readonly serverKey: string;
  readonly serverChain: string;
  readonly clientKey: string;
  readonly clientChain: string;
  readonly serverId: string;
  readonly clientId: string;
}

async function issue(ca: CertificateAuthority, serviceAccount: string): Promise<{ keyPem: string; chainPem: string; spiffeId: string }> {
  const keys = await generateKeyPair('ecdsa-p256');
  const spiffeId = `spiffe://${TRUST_DOMAIN}/ns/${NAMESPACE}/sa/${serviceAccount}`;
  const signed = await ca.signCsr(await createCsr(keys, spiffeId), { namespace: NAMESPACE, serviceAccount, ttlMs: 24 * 60 * 60_000 });
  if (!signed.valid) throw new Error(`the CA refused the ${serviceAccount} CSR: ${signed.errors.join('; ')}`);
  return { keyPem: await exportPrivateKeyPem(keys.privateKey), chainPem: signed.result.chainPem, spiffeId: signed.result.spiffeId };
}

/** Makes the CA and both SVIDs and writes them into `dir`. */
export async function writeBenchCerts(dir: string): Promise<CertFiles> {
  const root = await CertificateAuthority.initRoot({ trustDomain: TRUST_DOMAIN, keyType: 'ecdsa-p256' });
  const intermediate = await CertificateAuthority.createIntermediate(root);
  const ca = await CertificateAuthority.fromMaterial({ root, intermediate });
  const server = await issue(ca, 'server');
  const client = await issue(ca, 'client');
  const files: CertFiles = {
    dir,
    bundle: join(dir, 'bundle.pem'),
    serverKey: join(dir, 'server-key.pem'),
    serverChain: join(dir, 'server-chain.pem'),
    clientKey: join(dir, 'client-key.pem'),
    clientChain: join(dir, 'client-chain.pem'),
    serverId: server.spiffeId,
    clientId: client.spiffeId,
  };
  writeFileSync(files.bundle, root.pem);
  writeFileSync(files.serverKey, server.keyPem, { mode: 0o600 });
  writeFileSync(files.serverChain, server.chainPem);
  writeFileSync(files.clientKey, client.keyPem, { mode: 0o600 });
  writeFileSync(files.clientChain, client.chainPem);
  return files;
}
