/**
 * X.509-SVID verification (SPIFFE X509-SVID spec, section 5): RFC 5280-style path
 * validation to a root of the trust bundle, plus the SPIFFE leaf and signing-certificate
 * rules. The sidecar uses this to authenticate peers; the conformance tests use it to
 * check what the CA issues.
 *
 * Path building: from the leaf, each issuer is looked up among the chain's other
 * certificates and the bundle roots by issuer/subject name and signature; the path must
 * end at a certificate that is byte-for-byte a bundle root (a root sent in the chain is not
 * trusted on its own). At most {@link MAX_PATH_LENGTH} certificates.
 */
import { x509, OID_BASIC_CONSTRAINTS, OID_EXT_KEY_USAGE, OID_KEY_USAGE, OID_SAN, parseCertificates } from './x509.ts';
import { SVID_INVALID, type CodedResult } from './errors.ts';
import { parseSpiffeId, type SpiffeId } from './spiffe.ts';

/** Longest accepted certification path, leaf and root included. */
export const MAX_PATH_LENGTH = 5;

/** Options of {@link verifySvid}. */
export interface VerifySvidOptions {
  /** The trust domain the peer must belong to. */
  trustDomain: string;
  /** Verification time; default now. */
  now?: Date;
}

/** A verified X.509-SVID. */
export interface VerifiedSvid {
  readonly spiffeId: SpiffeId;
  readonly leaf: x509.X509Certificate;
  /** The certification path, leaf first, bundle root last. */
  readonly path: readonly x509.X509Certificate[];
}

const KU = x509.KeyUsageFlags;

/** What the SPIFFE rules say about one certificate (empty when it conforms). */
export function leafProblems(leaf: x509.X509Certificate, trustDomain: string): { id: SpiffeId | null; problems: string[] } {
  const problems: string[] = [];
  let id: SpiffeId | null = null;

  // X509-SVID 2 / 5.2: exactly one URI SAN, a valid spiffe ID.
  const sanExts = leaf.extensions.filter((e) => e.type === OID_SAN);
  if (sanExts.length !== 1) problems.push(`leaf must have one subjectAltName extension, has ${sanExts.length} (X509-SVID 2)`);
  else {
    let uris: string[] = [];
    try {
      uris = new x509.SubjectAlternativeNameExtension(sanExts[0]!.rawData).names.items.filter((n) => n.type === 'url').map((n) => n.value);
    } catch {
      problems.push('leaf subjectAltName cannot be parsed');
    }
    if (uris.length !== 1) problems.push(`leaf must have exactly one URI SAN, has ${uris.length} (X509-SVID 2)`);
    else {
      const parsed = parseSpiffeId(uris[0]!);
      if (!parsed.valid) problems.push(`leaf URI SAN ${JSON.stringify(uris[0])} is not a valid SPIFFE ID: ${parsed.errors.join('; ')} (X509-SVID 5.2)`);
      else if (parsed.result.path === '') problems.push(`leaf SPIFFE ID ${parsed.result.uri} has no path; a leaf needs a non-root path (X509-SVID 3.1)`);
      else if (parsed.result.trustDomain !== trustDomain) {
        problems.push(`leaf SPIFFE ID ${parsed.result.uri} is in trust domain ${JSON.stringify(parsed.result.trustDomain)}, expected ${JSON.stringify(trustDomain)}`);
      } else id = parsed.result;
    }
    // X509-SVID 3.1: with no subject, the SAN extension must be critical.
    if (leaf.subjectName.toJSON().length === 0 && sanExts[0]!.critical !== true) {
      problems.push('leaf has an empty subject, so its subjectAltName must be critical (X509-SVID 3.1)');
    }
  }

  // X509-SVID 4.1 / 5.2: not a CA.
  const bc = leaf.extensions.find((e) => e.type === OID_BASIC_CONSTRAINTS);
  if (bc !== undefined && new x509.BasicConstraintsExtension(bc.rawData).ca) problems.push('leaf has basicConstraints cA=true (X509-SVID 4.1, 5.2)');

  // X509-SVID 4.3 / 5.2: key usage present, critical, digitalSignature, no keyCertSign/cRLSign.
  const ku = leaf.extensions.find((e) => e.type === OID_KEY_USAGE);
  if (ku === undefined) problems.push('leaf has no keyUsage extension (X509-SVID 4.3)');
  else {
    const usages = new x509.KeyUsagesExtension(ku.rawData).usages;
    if (!ku.critical) problems.push('leaf keyUsage is not critical (X509-SVID 4.3)');
    if ((usages & KU.digitalSignature) === 0) problems.push('leaf keyUsage lacks digitalSignature (X509-SVID 4.3)');
    if ((usages & KU.keyCertSign) !== 0) problems.push('leaf keyUsage has keyCertSign (X509-SVID 4.3, 5.2)');
    if ((usages & KU.cRLSign) !== 0) problems.push('leaf keyUsage has cRLSign (X509-SVID 4.3, 5.2)');
  }

  // X509-SVID 4.4: when EKU is present, serverAuth and clientAuth are set.
  const eku = leaf.extensions.find((e) => e.type === OID_EXT_KEY_USAGE);
  if (eku !== undefined) {
    const usages = new x509.ExtendedKeyUsageExtension(eku.rawData).usages.map(String);
    if (!usages.includes(x509.ExtendedKeyUsage.serverAuth)) problems.push('leaf extKeyUsage lacks id-kp-serverAuth (X509-SVID 4.4)');
    if (!usages.includes(x509.ExtendedKeyUsage.clientAuth)) problems.push('leaf extKeyUsage lacks id-kp-clientAuth (X509-SVID 4.4)');
  }
  return { id, problems };
}

/** What the SPIFFE rules say about a signing (CA) certificate at `depth` intermediates above the leaf. */
export function signingCertProblems(cert: x509.X509Certificate, label: string, casBelow: number): string[] {
  const problems: string[] = [];
  const bc = cert.extensions.find((e) => e.type === OID_BASIC_CONSTRAINTS);
  const basic = bc === undefined ? undefined : new x509.BasicConstraintsExtension(bc.rawData);
  if (basic?.ca !== true) problems.push(`${label} is not a CA (basicConstraints cA must be true, X509-SVID 4.1)`);
  else if (basic.pathLength !== undefined && casBelow > basic.pathLength) {
    problems.push(`${label} allows ${basic.pathLength} intermediates below it, the path has ${casBelow} (RFC 5280 4.2.1.9)`);
  }
  const ku = cert.extensions.find((e) => e.type === OID_KEY_USAGE);
  if (ku === undefined || (new x509.KeyUsagesExtension(ku.rawData).usages & KU.keyCertSign) === 0) {
    problems.push(`${label} keyUsage lacks keyCertSign (X509-SVID 3.2, 4.3)`);
  }
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  for (const uri of san?.names.items.filter((n) => n.type === 'url') ?? []) {
    const id = parseSpiffeId(uri.value);
    if (id.valid && id.result.path !== '') problems.push(`${label} SPIFFE ID ${id.result.uri} has a path; a signing certificate's must not (X509-SVID 3.2)`);
  }
  return problems;
}

function describe(cert: x509.X509Certificate, index: number): string {
  return index === 0 ? 'leaf' : `certificate ${index} (${cert.subject || 'empty subject'})`;
}

function windowProblems(cert: x509.X509Certificate, label: string, now: Date): string[] {
  if (now.getTime() < cert.notBefore.getTime()) return [`${label} is not yet valid: notBefore ${cert.notBefore.toISOString()} is after ${now.toISOString()}`];
  if (now.getTime() > cert.notAfter.getTime()) return [`${label} expired: notAfter ${cert.notAfter.toISOString()} is before ${now.toISOString()}`];
  return [];
}

async function signedBy(cert: x509.X509Certificate, issuer: x509.X509Certificate): Promise<boolean> {
  if (cert.issuer !== issuer.subject) return false;
  try {
    return await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true });
  } catch {
    return false;
  }
}

/**
 * Verifies an X.509-SVID chain (PEM, leaf first, then intermediates) against a trust bundle
 * (PEM roots). Refusals are values with code `PAL_ERR_CERTS_SVID_INVALID` and every reason.
 */
export async function verifySvid(chainPem: string, bundlePem: string, options: VerifySvidOptions): Promise<CodedResult<VerifiedSvid>> {
  const refuse = (errors: string[]): CodedResult<VerifiedSvid> => ({ valid: false, code: SVID_INVALID, errors });
  const now = options.now ?? new Date();
  let chain: x509.X509Certificate[];
  let roots: x509.X509Certificate[];
  try {
    chain = parseCertificates(chainPem);
  } catch {
    return refuse(['certificate chain is not valid PEM']);
  }
  try {
    roots = parseCertificates(bundlePem);
  } catch {
    return refuse(['trust bundle is not valid PEM']);
  }
  if (chain.length === 0) return refuse(['certificate chain is empty']);
  if (roots.length === 0) return refuse(['trust bundle holds no certificate']);

  const leaf = chain[0]!;
  const errors: string[] = [];
  const { id, problems } = leafProblems(leaf, options.trustDomain);
  errors.push(...problems);

  // Build the path leaf → … → bundle root.
  const path: x509.X509Certificate[] = [leaf];
  const candidates = chain.slice(1);
  let anchored = false;
  while (path.length <= MAX_PATH_LENGTH) {
    const current = path[path.length - 1]!;
    let root: x509.X509Certificate | undefined;
    for (const r of roots) if (await signedBy(current, r)) root = r;
    if (root !== undefined) {
      if (!current.equal(root)) path.push(root);
      anchored = true;
      break;
    }
    let next: x509.X509Certificate | undefined;
    for (const c of candidates) if (!path.includes(c) && (await signedBy(current, c))) next = c;
    if (next === undefined) break;
    path.push(next);
  }
  if (!anchored) {
    errors.push(`no certification path from the leaf to a root of the trust bundle (the chain is not signed by a trusted root)`);
    return refuse(errors);
  }
  if (path.length > MAX_PATH_LENGTH) errors.push(`certification path is longer than ${MAX_PATH_LENGTH}`);

  for (const [i, cert] of path.entries()) {
    const label = describe(cert, i);
    errors.push(...windowProblems(cert, label, now));
    if (i > 0) errors.push(...signingCertProblems(cert, label, Math.max(0, i - 1)));
  }
  if (errors.length > 0 || id === null) return refuse(errors);
  return { valid: true, result: Object.freeze({ spiffeId: id, leaf, path: Object.freeze(path) }) };
}
