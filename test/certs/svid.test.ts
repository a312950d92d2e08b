/**
 * X.509-SVID conformance: every MUST of the SPIFFE X509-SVID spec checked on certificates
 * issued by CertificateAuthority.signCsr (for each key type), then verifySvid's refusals
 * on certificates forged to break one rule each.
 */
import { describe, expect, it } from 'vitest';
import { X509Certificate as NodeX509 } from 'node:crypto';
import { CertificateAuthority } from '../../certs/ca.ts';
import { createCsr } from '../../certs/csr.ts';
import { KEY_TYPES, signingAlgorithm, type KeyType } from '../../certs/keys.ts';
import { parseSpiffeId } from '../../certs/spiffe.ts';
import { verifySvid } from '../../certs/svid.ts';
import { x509 } from '../../certs/x509.ts';
import { generateKeyPair, makePki, TD, type Pki } from './support.ts';

const WEB = 'spiffe://example.org/ns/shop/sa/web';
const KU = x509.KeyUsageFlags;
const HOUR = 3_600_000;

async function issued(keyType: KeyType) {
  const pki = await makePki(keyType);
  const keys = await generateKeyPair(keyType);
  const got = await pki.ca.signCsr(await createCsr(keys, WEB), { namespace: 'shop', serviceAccount: 'web' });
  if (!got.valid) throw new Error(got.errors.join('; '));
  return { pki, svid: got.result };
}

function extOf<T extends x509.Extension>(cert: x509.X509Certificate, type: new (raw: ArrayBuffer) => T): T | null {
  return cert.getExtension(type);
}

describe.each(KEY_TYPES)('X.509-SVID conformance of signCsr output (%s)', (keyType) => {
  it('X509-SVID §2: the leaf contains exactly one URI SAN, and it is the SPIFFE ID', async () => {
    const { svid } = await issued(keyType);
    const sans = svid.cert.getExtensions(x509.SubjectAlternativeNameExtension);
    expect(sans.length).toBe(1);
    const uris = sans[0]!.names.items.filter((n) => n.type === 'url').map((n) => n.value);
    expect(uris).toEqual([WEB]);
    expect(parseSpiffeId(uris[0]!).valid).toBe(true);
    expect(new NodeX509(svid.certPem).subjectAltName).toBe(`URI:${WEB}`);
  });

  it('X509-SVID §3.1: the leaf SPIFFE ID has a non-root path; with no subject, the URI SAN is critical', async () => {
    const { svid } = await issued(keyType);
    const id = parseSpiffeId(WEB);
    expect(id.valid && id.result.path).toBe('/ns/shop/sa/web');
    expect(svid.cert.subjectName.toJSON()).toEqual([]);
    expect(extOf(svid.cert, x509.SubjectAlternativeNameExtension)!.critical).toBe(true);
  });

  it('X509-SVID §3.2: signing certificates set keyCertSign and cA=true; their SPIFFE ID has no path', async () => {
    const { pki } = await issued(keyType);
    for (const ca of [pki.root.cert, pki.intermediate.cert]) {
      expect(extOf(ca, x509.BasicConstraintsExtension)!.ca).toBe(true);
      expect(extOf(ca, x509.KeyUsagesExtension)!.usages & KU.keyCertSign).toBe(KU.keyCertSign);
      const uris = extOf(ca, x509.SubjectAlternativeNameExtension)!.names.items.filter((n) => n.type === 'url').map((n) => n.value);
      expect(uris).toEqual(['spiffe://example.org']);
    }
  });

  it('X509-SVID §4.1: leaf cA=false, signing certificates cA=true', async () => {
    const { pki, svid } = await issued(keyType);
    expect(extOf(svid.cert, x509.BasicConstraintsExtension)!.ca).toBe(false);
    expect(new NodeX509(svid.certPem).ca).toBe(false);
    expect(new NodeX509(pki.intermediate.pem).ca).toBe(true);
    expect(new NodeX509(pki.root.pem).ca).toBe(true);
  });

  it('X509-SVID §4.3: keyUsage is set and critical on every SVID; leaf has digitalSignature and neither keyCertSign nor cRLSign; signing certs have keyCertSign and no digitalSignature', async () => {
    const { pki, svid } = await issued(keyType);
    for (const cert of [svid.cert, pki.intermediate.cert, pki.root.cert]) expect(extOf(cert, x509.KeyUsagesExtension)!.critical).toBe(true);
    const leafKu = extOf(svid.cert, x509.KeyUsagesExtension)!.usages;
    expect(leafKu & KU.digitalSignature).toBe(KU.digitalSignature);
    expect(leafKu & (KU.keyCertSign | KU.cRLSign)).toBe(0);
    // Appendix A: keyEncipherment only for RSA leaves; nothing else.
    expect(leafKu).toBe(keyType === 'rsa-3072' ? KU.digitalSignature | KU.keyEncipherment : KU.digitalSignature);
    for (const ca of [pki.intermediate.cert, pki.root.cert]) expect(extOf(ca, x509.KeyUsagesExtension)!.usages).toBe(KU.keyCertSign | KU.cRLSign);
  });

  it('X509-SVID §4.4: the leaf extKeyUsage has id-kp-serverAuth and id-kp-clientAuth', async () => {
    const { svid } = await issued(keyType);
    expect(extOf(svid.cert, x509.ExtendedKeyUsageExtension)!.usages).toEqual([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
  });

  it('X509-SVID §5.1 and §5.2: path validation to the trust bundle and leaf validation pass', async () => {
    const { pki, svid } = await issued(keyType);
    const got = await verifySvid(svid.chainPem, pki.ca.trustBundle(), { trustDomain: TD });
    expect(got.valid).toBe(true);
    if (!got.valid) return;
    expect(got.result.spiffeId.uri).toBe(WEB);
    expect(got.result.path.map((c) => c.subject)).toEqual(['', pki.intermediate.cert.subject, pki.root.cert.subject]);
  });
});

/** A certificate signed by the PKI's intermediate with whatever fields a test needs (to break one rule). */
async function forge(
  pki: Pki,
  opts: { extensions?: x509.Extension[]; subject?: string; notBefore?: Date; notAfter?: Date; ca?: 'root' | 'intermediate' },
): Promise<string> {
  const signer = opts.ca === 'root' ? pki.root : pki.intermediate;
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.create({
    subject: opts.subject ?? '',
    issuer: signer.cert.subjectName,
    publicKey: keys.publicKey,
    signingKey: signer.keys!.privateKey,
    signingAlgorithm: signingAlgorithm(signer.keys!.type),
    notBefore: opts.notBefore ?? new Date(Date.now() - 60_000),
    notAfter: opts.notAfter ?? new Date(Date.now() + HOUR),
    extensions: opts.extensions ?? good(WEB),
  });
  return `${cert.toString('pem')}\n`;
}

function good(uri: string, over: { bc?: x509.Extension | null; ku?: x509.Extension | null; eku?: x509.Extension | null; san?: x509.Extension | null } = {}): x509.Extension[] {
  const all = [
    over.bc === undefined ? new x509.BasicConstraintsExtension(false, undefined, true) : over.bc,
    over.ku === undefined ? new x509.KeyUsagesExtension(KU.digitalSignature, true) : over.ku,
    over.eku === undefined ? new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]) : over.eku,
    over.san === undefined ? new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }], true) : over.san,
  ];
  return all.filter((e): e is x509.Extension => e !== null);
}

describe('verifySvid', () => {
  async function refused(chainPem: string, bundle: string, errors: string[], trustDomain = TD, now?: Date) {
    expect(await verifySvid(chainPem, bundle, { trustDomain, ...(now ? { now } : {}) })).toEqual({ valid: false, code: 'PAL_ERR_CERTS_SVID_INVALID', errors });
  }

  it('accepts a forged-but-conforming leaf (the forge helper itself is sound)', async () => {
    const pki = await makePki();
    const got = await verifySvid((await forge(pki, {})) + pki.intermediate.pem, pki.ca.trustBundle(), { trustDomain: TD });
    expect(got.valid).toBe(true);
  });

  it('refuses an expired leaf, naming when it expired', async () => {
    const pki = await makePki();
    const keys = await generateKeyPair();
    const now = new Date();
    const got = await pki.ca.signCsr(await createCsr(keys, WEB), { namespace: 'shop', serviceAccount: 'web', now });
    if (!got.valid) throw new Error('issue failed');
    const later = new Date(got.result.notAfter.getTime() + 1000);
    await refused(got.result.chainPem, pki.ca.trustBundle(), [`leaf expired: notAfter ${got.result.notAfter.toISOString()} is before ${later.toISOString()}`], TD, later);
  });

  it('refuses a leaf that is not yet valid', async () => {
    const pki = await makePki();
    const nb = new Date(Date.now() + HOUR);
    const now = new Date(Date.now() + 60_000);
    const pem = await forge(pki, { notBefore: nb, notAfter: new Date(nb.getTime() + HOUR) });
    const leaf = new x509.X509Certificate(pem);
    await refused(pem + pki.intermediate.pem, pki.ca.trustBundle(), [`leaf is not yet valid: notBefore ${leaf.notBefore.toISOString()} is after ${now.toISOString()}`], TD, now);
  });

  it('refuses a chain whose intermediate has expired', async () => {
    const pki = await makePki();
    const got = await pki.ca.signCsr(await createCsr(await generateKeyPair(), WEB), { namespace: 'shop', serviceAccount: 'web' });
    if (!got.valid) throw new Error('issue failed');
    const later = new Date(pki.intermediate.cert.notAfter.getTime() + 1000);
    const got2 = await verifySvid(got.result.chainPem, pki.ca.trustBundle(), { trustDomain: TD, now: later });
    expect(got2.valid).toBe(false);
    if (!got2.valid) expect(got2.errors).toContain(`certificate 1 (${pki.intermediate.cert.subject}) expired: notAfter ${pki.intermediate.cert.notAfter.toISOString()} is before ${later.toISOString()}`);
  });

  it('refuses an SVID of another trust domain, naming both', async () => {
    const other = await makePki('ecdsa-p256', 'other.org');
    const got = await other.ca.signCsr(await createCsr(await generateKeyPair(), 'spiffe://other.org/ns/shop/sa/web'), { namespace: 'shop', serviceAccount: 'web' });
    if (!got.valid) throw new Error('issue failed');
    // Even with the other domain's root trusted, the expected trust domain decides.
    await refused(got.result.chainPem, other.ca.trustBundle(), ['leaf SPIFFE ID spiffe://other.org/ns/shop/sa/web is in trust domain "other.org", expected "example.org"']);
  });

  it('refuses a chain that does not lead to a bundle root', async () => {
    const pki = await makePki();
    const stranger = await makePki();
    const got = await pki.ca.signCsr(await createCsr(await generateKeyPair(), WEB), { namespace: 'shop', serviceAccount: 'web' });
    if (!got.valid) throw new Error('issue failed');
    await refused(got.result.chainPem, stranger.ca.trustBundle(), ['no certification path from the leaf to a root of the trust bundle (the chain is not signed by a trusted root)']);
    // A root sent inside the chain is not trusted on its own.
    await refused(got.result.chainPem + pki.root.pem, stranger.ca.trustBundle(), ['no certification path from the leaf to a root of the trust bundle (the chain is not signed by a trusted root)']);
  });

  it('accepts a chain under either root of a two-root bundle (rotation)', async () => {
    const oldPki = await makePki();
    const newPki = await makePki();
    const ca = await CertificateAuthority.fromMaterial({ root: newPki.root, intermediate: newPki.intermediate, bundle: [oldPki.root, newPki.root] });
    const fromNew = await ca.signCsr(await createCsr(await generateKeyPair(), WEB), { namespace: 'shop', serviceAccount: 'web' });
    const fromOld = await oldPki.ca.signCsr(await createCsr(await generateKeyPair(), WEB), { namespace: 'shop', serviceAccount: 'web' });
    if (!fromNew.valid || !fromOld.valid) throw new Error('issue failed');
    expect((await verifySvid(fromNew.result.chainPem, ca.trustBundle(), { trustDomain: TD })).valid).toBe(true);
    expect((await verifySvid(fromOld.result.chainPem, ca.trustBundle(), { trustDomain: TD })).valid).toBe(true);
  });

  it('refuses empty input', async () => {
    const pki = await makePki();
    await refused('', pki.ca.trustBundle(), ['certificate chain is empty']);
    await refused(pki.root.pem, '', ['trust bundle holds no certificate']);
  });

  describe('refuses leaves that break one X.509-SVID rule', () => {
    const cases: [string, () => x509.Extension[], string][] = [
      ['§2: two URI SANs', () => good(WEB, { san: new x509.SubjectAlternativeNameExtension([{ type: 'url', value: WEB }, { type: 'url', value: 'spiffe://example.org/ns/shop/sa/db' }], true) }), 'leaf must have exactly one URI SAN, has 2 (X509-SVID 2)'],
      ['§2: no URI SAN', () => good(WEB, { san: new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'web.shop' }], true) }), 'leaf must have exactly one URI SAN, has 0 (X509-SVID 2)'],
      ['§2: no SAN extension', () => good(WEB, { san: null }), 'leaf must have one subjectAltName extension, has 0 (X509-SVID 2)'],
      ['§5.2: a URI SAN that is not spiffe', () => good('https://example.org/ns/shop/sa/web'), 'leaf URI SAN "https://example.org/ns/shop/sa/web" is not a valid SPIFFE ID: scheme must be "spiffe", got "https" (X509-SVID 5.2)'],
      ['§3.1: a root-path SPIFFE ID', () => good('spiffe://example.org'), 'leaf SPIFFE ID spiffe://example.org has no path; a leaf needs a non-root path (X509-SVID 3.1)'],
      ['§3.1: empty subject with a non-critical SAN', () => good(WEB, { san: new x509.SubjectAlternativeNameExtension([{ type: 'url', value: WEB }], false) }), 'leaf has an empty subject, so its subjectAltName must be critical (X509-SVID 3.1)'],
      ['§4.1: cA=true', () => good(WEB, { bc: new x509.BasicConstraintsExtension(true, undefined, true) }), 'leaf has basicConstraints cA=true (X509-SVID 4.1, 5.2)'],
      ['§4.3: no keyUsage', () => good(WEB, { ku: null }), 'leaf has no keyUsage extension (X509-SVID 4.3)'],
      ['§4.3: non-critical keyUsage', () => good(WEB, { ku: new x509.KeyUsagesExtension(KU.digitalSignature, false) }), 'leaf keyUsage is not critical (X509-SVID 4.3)'],
      ['§4.3: no digitalSignature', () => good(WEB, { ku: new x509.KeyUsagesExtension(KU.keyAgreement, true) }), 'leaf keyUsage lacks digitalSignature (X509-SVID 4.3)'],
      ['§4.3: keyCertSign', () => good(WEB, { ku: new x509.KeyUsagesExtension(KU.digitalSignature | KU.keyCertSign, true) }), 'leaf keyUsage has keyCertSign (X509-SVID 4.3, 5.2)'],
      ['§4.3: cRLSign', () => good(WEB, { ku: new x509.KeyUsagesExtension(KU.digitalSignature | KU.cRLSign, true) }), 'leaf keyUsage has cRLSign (X509-SVID 4.3, 5.2)'],
      ['§4.4: EKU without clientAuth', () => good(WEB, { eku: new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]) }), 'leaf extKeyUsage lacks id-kp-clientAuth (X509-SVID 4.4)'],
      ['§4.4: EKU without serverAuth', () => good(WEB, { eku: new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]) }), 'leaf extKeyUsage lacks id-kp-serverAuth (X509-SVID 4.4)'],
    ];
    it.each(cases)('X509-SVID %s', async (_rule, extensions, reason) => {
      const pki = await makePki();
      await refused((await forge(pki, { extensions: extensions() })) + pki.intermediate.pem, pki.ca.trustBundle(), [reason]);
    });

    it('X509-SVID §4.1: accepts a leaf without basicConstraints (cA defaults to false)', async () => {
      const pki = await makePki();
      const pem = await forge(pki, { extensions: good(WEB, { bc: null }) });
      expect((await verifySvid(pem + pki.intermediate.pem, pki.ca.trustBundle(), { trustDomain: TD })).valid).toBe(true);
    });
  });

  describe('refuses signing certificates that break an X.509-SVID rule', () => {
    async function chainVia(pki: Pki, interExtensions: x509.Extension[]): Promise<string> {
      const keys = await generateKeyPair();
      const subject = 'CN=Forged Intermediate, O=Palisade';
      const inter = await x509.X509CertificateGenerator.create({
        subject,
        issuer: pki.root.cert.subjectName,
        publicKey: keys.publicKey,
        signingKey: pki.root.keys!.privateKey,
        signingAlgorithm: signingAlgorithm(pki.root.keys!.type),
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + HOUR),
        extensions: interExtensions,
      });
      const leaf = await x509.X509CertificateGenerator.create({
        subject: '',
        issuer: inter.subjectName,
        publicKey: (await generateKeyPair()).publicKey,
        signingKey: keys.privateKey,
        signingAlgorithm: signingAlgorithm('ecdsa-p256'),
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + HOUR / 2),
        extensions: good(WEB),
      });
      return `${leaf.toString('pem')}\n${inter.toString('pem')}\n`;
    }
    const label = 'certificate 1 (CN=Forged Intermediate, O=Palisade)';
    const td = (uri: string) => new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }]);

    it.each([
      ['§4.1: cA=false', () => [new x509.BasicConstraintsExtension(false, undefined, true), new x509.KeyUsagesExtension(KU.keyCertSign, true), td('spiffe://example.org')], `${label} is not a CA (basicConstraints cA must be true, X509-SVID 4.1)`],
      ['§4.1: no basicConstraints', () => [new x509.KeyUsagesExtension(KU.keyCertSign, true), td('spiffe://example.org')], `${label} is not a CA (basicConstraints cA must be true, X509-SVID 4.1)`],
      ['§3.2/§4.3: no keyCertSign', () => [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(KU.cRLSign, true), td('spiffe://example.org')], `${label} keyUsage lacks keyCertSign (X509-SVID 3.2, 4.3)`],
      ['§3.2: a SPIFFE ID with a path', () => [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(KU.keyCertSign, true), td('spiffe://example.org/ca')], `${label} SPIFFE ID spiffe://example.org/ca has a path; a signing certificate's must not (X509-SVID 3.2)`],
    ] as [string, () => x509.Extension[], string][])('X509-SVID %s', async (_rule, exts, reason) => {
      const pki = await makePki();
      await refused(await chainVia(pki, exts()), pki.ca.trustBundle(), [reason]);
    });

    it('RFC 5280 4.2.1.9: refuses a path longer than the intermediate pathLen allows', async () => {
      const pki = await makePki();
      // intermediate (pathLen 0) → sub-CA → leaf
      const subKeys = await generateKeyPair();
      const sub = await x509.X509CertificateGenerator.create({
        subject: 'CN=Sub CA',
        issuer: pki.intermediate.cert.subjectName,
        publicKey: subKeys.publicKey,
        signingKey: pki.intermediate.keys!.privateKey,
        signingAlgorithm: signingAlgorithm('ecdsa-p256'),
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + HOUR),
        extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(KU.keyCertSign, true)],
      });
      const leaf = await x509.X509CertificateGenerator.create({
        subject: '',
        issuer: sub.subjectName,
        publicKey: (await generateKeyPair()).publicKey,
        signingKey: subKeys.privateKey,
        signingAlgorithm: signingAlgorithm('ecdsa-p256'),
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + HOUR / 2),
        extensions: good(WEB),
      });
      await refused(`${leaf.toString('pem')}\n${sub.toString('pem')}\n${pki.intermediate.pem}`, pki.ca.trustBundle(), [
        `certificate 2 (${pki.intermediate.cert.subject}) allows 0 intermediates below it, the path has 1 (RFC 5280 4.2.1.9)`,
      ]);
    });
  });
});
