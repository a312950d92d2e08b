/**
 * A mesh PKI for the mTLS tests: a root and intermediate made by certs/ca.ts, SVIDs issued
 * from real CSRs, and a TlsSecrets holder filled the way the sidecar fills it.
 */
import { X509Certificate } from 'node:crypto';
import { CertificateAuthority } from '../../certs/ca.ts';
import { createCsr } from '../../certs/csr.ts';
import { exportPrivateKeyPem, generateKeyPair } from '../../certs/keys.ts';
import { normalizeSerial, TlsSecrets, type CertificateSecret } from '../../sidecar/tls/secrets.ts';

export const TD = 'mesh.local';

export interface MeshPki {
  readonly ca: CertificateAuthority;
  /** PEM roots. */
  readonly bundle: string;
  /** An SVID for spiffe://mesh.local/ns/<ns>/sa/<sa>. */
  svid(namespace: string, serviceAccount: string): Promise<CertificateSecret>;
}

export async function makeMeshPki(): Promise<MeshPki> {
  const root = await CertificateAuthority.initRoot({ trustDomain: TD });
  const intermediate = await CertificateAuthority.createIntermediate(root);
  const ca = await CertificateAuthority.fromMaterial({ root, intermediate });
  return {
    ca,
    bundle: root.pem,
    async svid(namespace, serviceAccount) {
      const keys = await generateKeyPair();
      const spiffeId = `spiffe://${TD}/ns/${namespace}/sa/${serviceAccount}`;
      const r = await ca.signCsr(await createCsr(keys, spiffeId), { namespace, serviceAccount });
      if (!r.valid) throw new Error(r.errors.join('; '));
      return {
        spiffeId,
        keyPem: await exportPrivateKeyPem(keys.privateKey),
        chainPem: r.result.chainPem,
        serial: normalizeSerial(r.result.serialNumber),
        notAfter: r.result.notAfter,
      };
    },
  };
}

/** A holder with `default` = `svid` and `ROOTCA` = the PKI's bundle (plus `revoked`). */
export function secretsWith(pki: MeshPki, svid: CertificateSecret | null, revoked: string[] = []): TlsSecrets {
  const s = new TlsSecrets();
  if (svid !== null) s.setCertificate('default', svid);
  s.setValidation('ROOTCA', { bundlePem: pki.bundle, revokedSerials: new Set(revoked.map(normalizeSerial)) });
  return s;
}

/** The serial of the leaf a TLS peer presented, normalized. */
export function serialOf(raw: Buffer): string {
  return normalizeSerial(new X509Certificate(raw).serialNumber);
}
