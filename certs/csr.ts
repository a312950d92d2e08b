/**
 * The workload side of issuance: a PKCS#10 CSR for a locally generated key pair, naming the
 * requested SPIFFE ID as its only subjectAltName. Only the public key and the request leave
 * the workload; the private key stays where it was generated.
 */
import { x509 } from './x509.ts';
import { signingAlgorithm, type KeyPair } from './keys.ts';
import { parseSpiffeId } from './spiffe.ts';
import { CertsInvalidOptionError } from './errors.ts';

/** Creates a PEM CSR for `keys` requesting `spiffeId` (URI SAN in the extension request, empty subject). */
export async function createCsr(keys: KeyPair, spiffeId: string): Promise<string> {
  const id = parseSpiffeId(spiffeId);
  if (!id.valid) throw new CertsInvalidOptionError(`spiffeId is invalid: ${id.errors.join('; ')}, got ${JSON.stringify(spiffeId)}`);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys: { privateKey: keys.privateKey, publicKey: keys.publicKey },
    signingAlgorithm: signingAlgorithm(keys.type),
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id.result.uri }], false)],
  });
  return `${csr.toString('pem')}\n`;
}
