/** Shared fixtures for the certs tests: CA material, CSRs built by hand, temp dirs. */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority, type CaCertificate } from '../../certs/ca.ts';
import { generateKeyPair, signingAlgorithm, type KeyPair, type KeyType } from '../../certs/keys.ts';
import { x509 } from '../../certs/x509.ts';

export const TD = 'example.org';

export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `palisade-${prefix}-`));
}

export interface Pki {
  root: CaCertificate;
  intermediate: CaCertificate;
  ca: CertificateAuthority;
}

/** A root, an intermediate and an in-memory CA, all of `keyType`. */
export async function makePki(keyType: KeyType = 'ecdsa-p256', trustDomain = TD, now?: Date): Promise<Pki> {
  const root = await CertificateAuthority.initRoot({ trustDomain, keyType, ...(now ? { now } : {}) });
  const intermediate = await CertificateAuthority.createIntermediate(root, now ? { now } : {});
  const ca = await CertificateAuthority.fromMaterial({ root, intermediate });
  return { root, intermediate, ca };
}

/** A CSR with arbitrary SANs and subject (to build requests the CA must refuse). */
export async function rawCsr(keys: KeyPair, names: x509.JsonGeneralNames | null, subject = ''): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: subject,
    keys: { privateKey: keys.privateKey, publicKey: keys.publicKey },
    signingAlgorithm: signingAlgorithm(keys.type),
    extensions: names === null ? [] : [new x509.SubjectAlternativeNameExtension(names)],
  });
  return csr.toString('pem');
}

export { generateKeyPair };
