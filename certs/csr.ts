/**
 * The workload side of issuance: a PKCS#10 CSR for a locally generated key pair, naming the
 * requested SPIFFE ID as its only subjectAltName. Only the public key and the request leave
 * the workload; the private key stays where it was generated.
 */
import { OID_SAN, x509 } from './x509.ts';
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

/** The SPIFFE ID a PEM CSR asks for (its first URI SAN), or null when it names none or cannot be parsed. */
export function requestedSpiffeId(csrPem: string): string | null {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch {
    return null;
  }
  const raw = csr.extensions.find((e) => e.type === OID_SAN);
  if (raw === undefined) return null;
  const san = new x509.SubjectAlternativeNameExtension(raw.rawData);
  const uri = san.names.items.find((n) => n.type === 'url');
  return uri === undefined ? null : uri.value;
}
