import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { X509Certificate as NodeX509, createPrivateKey } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import { inspect, promisify } from 'node:util';
import { CertificateAuthority, CLOCK_SKEW_MS, renewAt } from '../../certs/ca.ts';
import { createCsr } from '../../certs/csr.ts';
import { FileKek } from '../../certs/keyring.ts';
import { KEY_TYPES, exportPrivateKeyPem } from '../../certs/keys.ts';
import { parseCertificates, webcrypto, x509, type CryptoKeyPair, type EcdsaParams } from '../../certs/x509.ts';
import { generateKeyPair, makePki, rawCsr, tempDir, TD } from './support.ts';

const run = promisify(execFile);
const HOUR = 3_600_000;
const WEB = 'spiffe://example.org/ns/shop/sa/web';

let dir: string;
beforeEach(async () => {
  dir = await tempDir('ca');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function ext<T extends x509.Extension>(cert: x509.X509Certificate, type: new (raw: ArrayBuffer) => T): T {
  const e = cert.getExtension(type);
  if (e === null) throw new Error(`missing ${type.name}`);
  return e;
}

async function issue(ca: CertificateAuthority, ns = 'shop', sa = 'web', opts: { ttlMs?: number; now?: Date } = {}) {
  const keys = await generateKeyPair(ca.intermediate.keys!.type);
  const got = await ca.signCsr(await createCsr(keys, `spiffe://${ca.trustDomain}/ns/${ns}/sa/${sa}`), { namespace: ns, serviceAccount: sa, ...opts });
  if (!got.valid) throw new Error(got.errors.join('; '));
  return { keys, svid: got.result };
}

describe('CertificateAuthority.initRoot', () => {
  it.each(KEY_TYPES)('creates a self-signed %s root: CA, keyCertSign+cRLSign, URI SAN spiffe://<td>', async (keyType) => {
    const now = new Date('2026-01-01T00:00:00Z');
    const root = await CertificateAuthority.initRoot({ trustDomain: TD, keyType, ttlMs: 24 * HOUR, now });
    expect(root.trustDomain).toBe(TD);
    expect(root.keys?.type).toBe(keyType);
    expect(await root.cert.isSelfSigned()).toBe(true);
    const bc = ext(root.cert, x509.BasicConstraintsExtension);
    expect([bc.ca, bc.critical, bc.pathLength]).toEqual([true, true, undefined]);
    const ku = ext(root.cert, x509.KeyUsagesExtension);
    expect([ku.usages, ku.critical]).toEqual([x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true]);
    expect(ext(root.cert, x509.SubjectAlternativeNameExtension).names.toJSON()).toEqual([{ type: 'url', value: 'spiffe://example.org' }]);
    expect(ext(root.cert, x509.SubjectKeyIdentifierExtension).keyId).toMatch(/^[0-9a-f]{40}$/);
    expect(root.cert.notBefore.toISOString()).toBe(new Date(now.getTime() - CLOCK_SKEW_MS).toISOString());
    expect(root.cert.notAfter.toISOString()).toBe('2026-01-02T00:00:00.000Z');
    expect(root.cert.subject).toMatch(/^CN=Palisade Root CA [0-9a-f]{8}, O=Palisade, OU=example\.org$/);
  });

  it.each([
    [{ trustDomain: 'Example.org' }, 'trustDomain is invalid: trust domain "Example.org" may contain only lowercase letters, digits, ".", "-" and "_", got "Example.org"'],
    [{ trustDomain: TD, keyType: 'dsa' }, 'keyType must be one of ecdsa-p256, ed25519, rsa-3072, got "dsa"'],
    [{ trustDomain: TD, ttlMs: -1 }, 'ttlMs must be an integer number of ms in 60000..3153600000000, got -1'],
  ])('refuses invalid options %j with PAL_ERR_CERTS_INVALID_OPTION', async (options, message) => {
    await expect(CertificateAuthority.initRoot(options as never)).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_INVALID_OPTION', message });
  });

  it('adds a critical URI name constraint for the trust domain when asked', async () => {
    const root = await CertificateAuthority.initRoot({ trustDomain: TD, nameConstraints: true });
    const nc = root.cert.getExtension('2.5.29.30');
    expect(nc?.critical).toBe(true);
    // SEQUENCE { [0] { SEQUENCE { [6] "example.org" } } }
    expect(Buffer.from(nc!.value).toString('hex')).toBe(`3011a00f300d860b${Buffer.from(TD).toString('hex')}`);
  });
});

describe('CertificateAuthority.createIntermediate', () => {
  it('signs an intermediate with the root: CA pathLen 0, keyCertSign+cRLSign, AKI = root SKI, URI SAN spiffe://<td>', async () => {
    const { root, intermediate } = await makePki();
    expect(await intermediate.cert.verify({ publicKey: root.cert.publicKey, signatureOnly: true })).toBe(true);
    expect(intermediate.cert.issuer).toBe(root.cert.subject);
    const bc = ext(intermediate.cert, x509.BasicConstraintsExtension);
    expect([bc.ca, bc.critical, bc.pathLength]).toEqual([true, true, 0]);
    const ku = ext(intermediate.cert, x509.KeyUsagesExtension);
    expect([ku.usages, ku.critical]).toEqual([x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true]);
    expect(ext(intermediate.cert, x509.AuthorityKeyIdentifierExtension).keyId).toBe(ext(root.cert, x509.SubjectKeyIdentifierExtension).keyId);
    expect(ext(intermediate.cert, x509.SubjectAlternativeNameExtension).names.toJSON()).toEqual([{ type: 'url', value: 'spiffe://example.org' }]);
  });

  it('never outlives the root', async () => {
    const root = await CertificateAuthority.initRoot({ trustDomain: TD, ttlMs: 2 * HOUR });
    const intermediate = await CertificateAuthority.createIntermediate(root, { ttlMs: 100 * HOUR });
    expect(intermediate.cert.notAfter.getTime()).toBe(root.cert.notAfter.getTime());
  });

  it('refuses with PAL_ERR_CERTS_ROOT_KEY_OFFLINE when the root key is not present', async () => {
    const { root } = await makePki();
    await expect(CertificateAuthority.createIntermediate({ ...root, keys: null })).rejects.toMatchObject({
      code: 'PAL_ERR_CERTS_ROOT_KEY_OFFLINE',
      message: 'creating an intermediate needs the root private key, which is offline (not in this keyring)',
    });
  });
});

describe('CertificateAuthority.signCsr', () => {
  it('issues the SVID profile: one critical URI SAN, empty subject, CA:false, digitalSignature, serverAuth+clientAuth, SKI/AKI', async () => {
    const { ca, intermediate } = await makePki('ecdsa-p256', TD, new Date('2026-02-01T00:00:00Z'));
    const now = new Date('2026-03-01T10:00:00Z');
    const keys = await generateKeyPair();
    const got = await ca.signCsr(await createCsr(keys, WEB), { namespace: 'shop', serviceAccount: 'web', now });
    expect(got.valid).toBe(true);
    if (!got.valid) return;
    const leaf = got.result.cert;
    expect(got.result.spiffeId).toBe(WEB);
    expect(leaf.subject).toBe('');
    expect(leaf.issuer).toBe(intermediate.cert.subject);
    const san = ext(leaf, x509.SubjectAlternativeNameExtension);
    expect([san.names.toJSON(), san.critical]).toEqual([[{ type: 'url', value: WEB }], true]);
    const bc = ext(leaf, x509.BasicConstraintsExtension);
    expect([bc.ca, bc.critical, bc.pathLength]).toEqual([false, true, undefined]);
    const ku = ext(leaf, x509.KeyUsagesExtension);
    expect([ku.usages, ku.critical]).toEqual([x509.KeyUsageFlags.digitalSignature, true]);
    const eku = ext(leaf, x509.ExtendedKeyUsageExtension);
    expect([eku.usages, eku.critical]).toEqual([[x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false]);
    expect(ext(leaf, x509.SubjectKeyIdentifierExtension).keyId).toBe(Buffer.from(await leaf.publicKey.getKeyIdentifier()).toString('hex'));
    expect(ext(leaf, x509.AuthorityKeyIdentifierExtension).keyId).toBe(ext(intermediate.cert, x509.SubjectKeyIdentifierExtension).keyId);
    expect(leaf.extensions.map((e) => e.type).sort()).toEqual(['2.5.29.14', '2.5.29.15', '2.5.29.17', '2.5.29.19', '2.5.29.35', '2.5.29.37']);
    // The certified key is the CSR's: the private key never left the workload.
    expect(Buffer.from(leaf.publicKey.rawData).equals(Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey)))).toBe(true);
    // Validity: backdated one minute, 24 h by default, renew at half-life.
    expect(got.result.notBefore.toISOString()).toBe('2026-03-01T09:59:00.000Z');
    expect(got.result.notAfter.toISOString()).toBe('2026-03-02T10:00:00.000Z');
    expect(got.result.renewAt.toISOString()).toBe('2026-03-01T21:59:30.000Z');
    expect(ca.renewAt(leaf).toISOString()).toBe('2026-03-01T21:59:30.000Z');
    // Chain: leaf then intermediate.
    const chain = parseCertificates(got.result.chainPem);
    expect(chain.map((c) => c.subject)).toEqual(['', intermediate.cert.subject]);
    expect(chain[0]!.equal(leaf)).toBe(true);
    expect(parseCertificates(got.result.certPem).length).toBe(1);
  });

  it('adds keyEncipherment for RSA leaf keys only', async () => {
    const { ca } = await makePki('rsa-3072');
    const { svid } = await issue(ca);
    expect(ext(svid.cert, x509.KeyUsagesExtension).usages).toBe(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
  });

  it('uses random positive serials of 16 bytes', async () => {
    const { ca } = await makePki();
    const serials = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const { svid } = await issue(ca);
      expect(svid.serialNumber).toMatch(/^[4-7][0-9a-f]{31}$/);
      serials.add(svid.serialNumber);
    }
    expect(serials.size).toBe(8);
  });

  it('honours a TTL and never issues past the intermediate', async () => {
    const root = await CertificateAuthority.initRoot({ trustDomain: TD });
    const intermediate = await CertificateAuthority.createIntermediate(root, { ttlMs: 2 * HOUR });
    const ca = await CertificateAuthority.fromMaterial({ root, intermediate });
    const now = new Date();
    const short = await issue(ca, 'shop', 'web', { ttlMs: HOUR, now });
    expect(short.svid.notAfter.getTime()).toBe(Math.floor((now.getTime() + HOUR) / 1000) * 1000);
    const long = await issue(ca, 'shop', 'web', { ttlMs: 24 * HOUR, now });
    expect(long.svid.notAfter.getTime()).toBe(intermediate.cert.notAfter.getTime());
  });

  it('uses the CA default TTL (svidTtlMs) and validates it', async () => {
    const { root, intermediate } = await makePki();
    const ca = await CertificateAuthority.fromMaterial({ root, intermediate }, { svidTtlMs: 2 * HOUR });
    const { svid } = await issue(ca, 'shop', 'web', { now: new Date() });
    expect(svid.notAfter.getTime() - svid.notBefore.getTime()).toBe(2 * HOUR + CLOCK_SKEW_MS);
    await expect(CertificateAuthority.fromMaterial({ root, intermediate }, { svidTtlMs: 31 * 24 * HOUR })).rejects.toMatchObject({
      code: 'PAL_ERR_CERTS_INVALID_OPTION',
      message: 'svidTtlMs must be an integer number of ms in 60000..2592000000, got 2678400000',
    });
  });

  it('issues for a CSR without a SAN, and ignores the CSR subject', async () => {
    const { ca } = await makePki();
    const keys = await generateKeyPair();
    const got = await ca.signCsr(await rawCsr(keys, null, 'CN=admin, O=evil'), { namespace: 'shop', serviceAccount: 'web' });
    expect(got.valid && got.result.spiffeId).toBe(WEB);
    expect(got.valid && got.result.cert.subject).toBe('');
  });

  describe('refuses with PAL_ERR_CERTS_CSR_REFUSED', () => {
    it.each([
      ['a wrong namespace', 'spiffe://example.org/ns/admin/sa/web', ['CSR requests SPIFFE ID spiffe://example.org/ns/admin/sa/web, but the caller is entitled only to spiffe://example.org/ns/shop/sa/web']],
      ['a wrong service account', 'spiffe://example.org/ns/shop/sa/db', ['CSR requests SPIFFE ID spiffe://example.org/ns/shop/sa/db, but the caller is entitled only to spiffe://example.org/ns/shop/sa/web']],
      ['another path shape', 'spiffe://example.org/shop/web', ['CSR requests SPIFFE ID spiffe://example.org/shop/web, but the caller is entitled only to spiffe://example.org/ns/shop/sa/web']],
      ['a wrong trust domain', 'spiffe://evil.org/ns/shop/sa/web', ['CSR requests trust domain "evil.org", but this CA issues for "example.org"']],
      ['an invalid SPIFFE ID', 'https://example.org/ns/shop/sa/web', ['CSR requests "https://example.org/ns/shop/sa/web", which is not a valid SPIFFE ID: scheme must be "spiffe", got "https"']],
    ])('a CSR with %s', async (_what, uri, errors) => {
      const { ca } = await makePki();
      const csr = await rawCsr(await generateKeyPair(), [{ type: 'url', value: uri }]);
      expect(await ca.signCsr(csr, { namespace: 'shop', serviceAccount: 'web' })).toEqual({ valid: false, code: 'PAL_ERR_CERTS_CSR_REFUSED', errors });
    });

    it('a CSR with two URI SANs', async () => {
      const { ca } = await makePki();
      const csr = await rawCsr(await generateKeyPair(), [{ type: 'url', value: WEB }, { type: 'url', value: 'spiffe://example.org/ns/shop/sa/db' }]);
      expect(await ca.signCsr(csr, { namespace: 'shop', serviceAccount: 'web' })).toEqual({
        valid: false,
        code: 'PAL_ERR_CERTS_CSR_REFUSED',
        errors: ['CSR requests 2 URI SANs; an X.509-SVID has exactly one'],
      });
    });

    it('a CSR asking for DNS names besides its SPIFFE ID', async () => {
      const { ca } = await makePki();
      const csr = await rawCsr(await generateKeyPair(), [{ type: 'url', value: WEB }, { type: 'dns', value: 'bank.example.com' }]);
      expect(await ca.signCsr(csr, { namespace: 'shop', serviceAccount: 'web' })).toEqual({
        valid: false,
        code: 'PAL_ERR_CERTS_CSR_REFUSED',
        errors: ['CSR requests names other than its SPIFFE ID (dns:bank.example.com); an SVID carries only the SPIFFE ID'],
      });
    });

    it('a CSR whose signature does not verify (no proof of possession)', async () => {
      const { ca } = await makePki();
      const pem = await createCsr(await generateKeyPair(), WEB);
      const csr = new x509.Pkcs10CertificateRequest(pem);
      const der = Buffer.from(csr.rawData);
      der[der.length - 5]! ^= 0x01; // inside the signature
      const tampered = new x509.Pkcs10CertificateRequest(der).toString('pem');
      expect(await ca.signCsr(tampered, { namespace: 'shop', serviceAccount: 'web' })).toEqual({
        valid: false,
        code: 'PAL_ERR_CERTS_CSR_REFUSED',
        errors: ['CSR signature does not verify with its own public key (proof of possession failed)'],
      });
    });

    it('a CSR signed by another key than the one it certifies', async () => {
      const { ca } = await makePki();
      const a = await generateKeyPair();
      const b = await generateKeyPair();
      const csr = await rawCsr({ type: 'ecdsa-p256', privateKey: b.privateKey, publicKey: a.publicKey }, [{ type: 'url', value: WEB }]);
      const got = await ca.signCsr(csr, { namespace: 'shop', serviceAccount: 'web' });
      expect(got).toEqual({ valid: false, code: 'PAL_ERR_CERTS_CSR_REFUSED', errors: ['CSR signature does not verify with its own public key (proof of possession failed)'] });
    });

    it('a CSR signed with SHA-1', async () => {
      const { ca } = await makePki();
      const keys = await generateKeyPair();
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        keys: { privateKey: keys.privateKey, publicKey: keys.publicKey },
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-1' } as EcdsaParams,
        extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: WEB }])],
      });
      expect(await ca.signCsr(csr.toString('pem'), { namespace: 'shop', serviceAccount: 'web' })).toEqual({
        valid: false,
        code: 'PAL_ERR_CERTS_CSR_REFUSED',
        errors: ['CSR is signed with SHA-1, which is not accepted (want SHA-256 or stronger, or Ed25519)'],
      });
    });

    it('text that is not a CSR', async () => {
      const { ca } = await makePki();
      expect(await ca.signCsr('hello', { namespace: 'shop', serviceAccount: 'web' })).toEqual({
        valid: false,
        code: 'PAL_ERR_CERTS_CSR_REFUSED',
        errors: ['CSR is not a valid PEM PKCS#10 certificate request'],
      });
    });

    it('a CSR for an unsupported key (P-384)', async () => {
      const { ca } = await makePki();
      const p384 = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])) as CryptoKeyPair;
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys: p384, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' } as EcdsaParams });
      expect(await ca.signCsr(csr.toString('pem'), { namespace: 'shop', serviceAccount: 'web' })).toEqual({
        valid: false,
        code: 'PAL_ERR_CERTS_CSR_REFUSED',
        errors: ['CSR public key: EC curve secp384r1 is not supported (want P-256)'],
      });
    });

    it('an entitlement that is not a valid namespace', async () => {
      const { ca } = await makePki();
      const csr = await createCsr(await generateKeyPair(), WEB);
      expect(await ca.signCsr(csr, { namespace: '../root', serviceAccount: 'web' })).toEqual({
        valid: false,
        code: 'PAL_ERR_CERTS_CSR_REFUSED',
        errors: ['entitled identity: namespace: path segment "../root" may contain only letters, digits, ".", "-" and "_"'],
      });
    });

    it('any CSR once the intermediate has expired', async () => {
      const { ca, intermediate } = await makePki();
      const later = new Date(intermediate.cert.notAfter.getTime() + 1000);
      const got = await ca.signCsr(await createCsr(await generateKeyPair(), WEB), { namespace: 'shop', serviceAccount: 'web', now: later });
      expect(got).toEqual({
        valid: false,
        code: 'PAL_ERR_CERTS_CSR_REFUSED',
        errors: [`the intermediate CA certificate is not valid at ${later.toISOString()} (valid ${intermediate.cert.notBefore.toISOString()} .. ${intermediate.cert.notAfter.toISOString()})`],
      });
    });
  });

  it('throws PAL_ERR_CERTS_INVALID_OPTION for a TTL out of range (a caller bug)', async () => {
    const { ca } = await makePki();
    await expect(ca.signCsr(await createCsr(await generateKeyPair(), WEB), { namespace: 'shop', serviceAccount: 'web', ttlMs: 1000 })).rejects.toMatchObject({
      code: 'PAL_ERR_CERTS_INVALID_OPTION',
      message: 'ttlMs must be an integer number of ms in 60000..2592000000, got 1000',
    });
  });
});

describe('renewAt', () => {
  it('is the half-life of the certificate', async () => {
    const { ca } = await makePki();
    const { svid } = await issue(ca, 'shop', 'web', { ttlMs: 10 * HOUR, now: new Date() });
    const nb = svid.cert.notBefore.getTime();
    expect(renewAt(svid.certPem).getTime()).toBe(nb + (svid.cert.notAfter.getTime() - nb) / 2);
  });
});

describe('CA state directory', () => {
  it('loads and issues with only the intermediate key present (root kept offline)', async () => {
    const { root, intermediate } = await makePki();
    const kek = await FileKek.open(join(dir, 'kek'));
    const state = join(dir, 'ca');
    await CertificateAuthority.writeState(state, kek, { root, intermediate });
    // The operator keeps the root key elsewhere, e.g. exported as PEM.
    const offlineRootPem = await exportPrivateKeyPem(root.keys!.privateKey);
    expect((await readdir(state)).sort()).toEqual(['bundle.pem', 'intermediate.pem', 'keys', 'root.pem']);
    expect(await readdir(join(state, 'keys'))).toEqual(['intermediate.key.json']);
    for (const f of ['bundle.pem', 'intermediate.pem', 'root.pem', 'keys/intermediate.key.json']) {
      expect(await readFile(join(state, f), 'utf8')).not.toContain(offlineRootPem.split('\n')[1]!);
    }

    const ca = await CertificateAuthority.load(state, kek);
    expect(ca.rootKeyOnline).toBe(false);
    expect(ca.root.keys).toBe(null);
    expect(ca.trustDomain).toBe(TD);
    expect(JSON.parse(JSON.stringify(ca))).toEqual({ trustDomain: TD, root: root.cert.subject, intermediate: intermediate.cert.subject, rootKeyOnline: false });
    expect(inspect(ca)).toBe(`CertificateAuthority ${JSON.stringify(ca.toJSON())}`);
    const { svid } = await issue(ca);
    expect(await svid.cert.verify({ publicKey: intermediate.cert.publicKey, signatureOnly: true })).toBe(true);
    await expect(CertificateAuthority.createIntermediate(ca.root)).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_ROOT_KEY_OFFLINE' });
  });

  it('loads the root key when it is kept online', async () => {
    const { root, intermediate } = await makePki('ed25519');
    const kek = await FileKek.open(join(dir, 'kek'));
    await CertificateAuthority.writeState(join(dir, 'ca'), kek, { root, intermediate, keepRootKey: true });
    const ca = await CertificateAuthority.load(join(dir, 'ca'), kek);
    expect(ca.rootKeyOnline).toBe(true);
    const next = await CertificateAuthority.createIntermediate(ca.root);
    expect(await next.cert.verify({ publicKey: root.cert.publicKey, signatureOnly: true })).toBe(true);
  });

  it('refuses a state without the intermediate key (PAL_ERR_CERTS_CA_STATE)', async () => {
    const { root, intermediate } = await makePki();
    const kek = await FileKek.open(join(dir, 'kek'));
    const state = join(dir, 'ca');
    await CertificateAuthority.writeState(state, kek, { root, intermediate });
    await rm(join(state, 'keys', 'intermediate.key.json'));
    await expect(CertificateAuthority.load(state, kek)).rejects.toMatchObject({
      code: 'PAL_ERR_CERTS_CA_STATE',
      message: `CA state ${state} has no intermediate key in its keyring`,
    });
  });

  it('refuses a missing file, a foreign intermediate and a mismatched key (PAL_ERR_CERTS_CA_STATE)', async () => {
    const a = await makePki();
    const b = await makePki();
    const kek = await FileKek.open(join(dir, 'kek'));
    const state = join(dir, 'ca');
    await CertificateAuthority.writeState(state, kek, { root: a.root, intermediate: a.intermediate });
    await writeFile(join(state, 'intermediate.pem'), b.intermediate.pem);
    await expect(CertificateAuthority.load(state, kek)).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_CA_STATE', message: 'the intermediate certificate is not signed by the root' });
    await CertificateAuthority.writeState(state, kek, { root: a.root, intermediate: { ...a.intermediate, keys: b.intermediate.keys } });
    await expect(CertificateAuthority.load(state, kek)).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_CA_STATE', message: 'the intermediate key in the keyring does not match intermediate.pem' });
    await rm(join(state, 'bundle.pem'));
    await expect(CertificateAuthority.load(state, kek)).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_CA_STATE', message: `CA state ${join(state, 'bundle.pem')} cannot be read` });
  });

  it('refuses to load under another KEK (PAL_ERR_CERTS_KEY_DECRYPT)', async () => {
    const { root, intermediate } = await makePki();
    await CertificateAuthority.writeState(join(dir, 'ca'), await FileKek.open(join(dir, 'kek')), { root, intermediate });
    await expect(CertificateAuthority.load(join(dir, 'ca'), await FileKek.open(join(dir, 'other-kek')))).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_KEY_DECRYPT' });
  });

  it('publishes a trust bundle with two roots during a rotation', async () => {
    const old = await makePki();
    const next = await makePki();
    const kek = await FileKek.open(join(dir, 'kek'));
    await CertificateAuthority.writeState(join(dir, 'ca'), kek, { root: next.root, intermediate: next.intermediate, bundle: [old.root, next.root] });
    const ca = await CertificateAuthority.load(join(dir, 'ca'), kek);
    const bundle = parseCertificates(ca.trustBundle());
    expect(bundle.map((c) => c.subject)).toEqual([old.root.cert.subject, next.root.cert.subject]);
    expect(await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8')).toBe(old.root.pem + next.root.pem);
    // openssl takes the two-root bundle as its CA file and accepts SVIDs under either root.
    for (const [name, pki] of [['old', old], ['next', next]] as const) {
      const { svid } = await issue(pki.ca);
      await writeFile(join(dir, `${name}-inter.pem`), pki.intermediate.pem);
      await writeFile(join(dir, `${name}-leaf.pem`), svid.certPem);
      const { stdout } = await run('openssl', ['verify', '-CAfile', join(dir, 'ca', 'bundle.pem'), '-untrusted', join(dir, `${name}-inter.pem`), join(dir, `${name}-leaf.pem`)]);
      expect(stdout).toBe(`${join(dir, `${name}-leaf.pem`)}: OK\n`);
    }
  });
});

interface TlsSide {
  key: string;
  cert: string;
  ca: string;
}

interface MtlsOutcome {
  /** The server's verdict on the client certificate (node's `socket.authorized` / `authorizationError`). */
  serverAuthorized: boolean;
  serverError: string | undefined;
  serverSaw: string | undefined;
  clientAuthorized: boolean | undefined;
  clientSaw: string | undefined;
}

/**
 * One mutual-TLS handshake on loopback. The server requests a client certificate and, like a
 * Palisade sidecar, decides itself: it answers `ok` only to an authorized peer.
 */
async function mtls(serverSide: TlsSide, clientSide: TlsSide): Promise<MtlsOutcome> {
  const server = createTlsServer({ ...serverSide, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
  const seen: MtlsOutcome = { serverAuthorized: false, serverError: undefined, serverSaw: undefined, clientAuthorized: undefined, clientSaw: undefined };
  server.on('secureConnection', (socket) => {
    seen.serverAuthorized = socket.authorized;
    // node types it as Error, but it is the OpenSSL verify code (a string), or null.
    seen.serverError = (socket.authorizationError as unknown as string | null) ?? undefined;
    seen.serverSaw = socket.getPeerCertificate().subjectaltname;
    if (socket.authorized) socket.end('ok');
    else socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise((resolve) => {
      const socket = tlsConnect({
        ...clientSide,
        host: '127.0.0.1',
        port,
        minVersion: 'TLSv1.3',
        // SVIDs carry no DNS name: the peer is identified by its SPIFFE ID, checked below.
        checkServerIdentity: () => undefined,
      });
      socket.on('secureConnect', () => {
        seen.clientAuthorized = socket.authorized;
        seen.clientSaw = socket.getPeerCertificate().subjectaltname;
      });
      socket.on('data', () => {});
      socket.on('error', () => {});
      socket.on('close', () => resolve(seen));
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('independent implementations accept an issued chain', () => {
  it.each(KEY_TYPES)('node:crypto X509Certificate checks the %s chain', async (keyType) => {
    const { ca, root, intermediate } = await makePki(keyType);
    const { svid, keys } = await issue(ca);
    const leaf = new NodeX509(svid.certPem);
    const inter = new NodeX509(intermediate.pem);
    const rootN = new NodeX509(root.pem);
    expect(leaf.subjectAltName).toBe(`URI:${WEB}`);
    expect([leaf.ca, inter.ca, rootN.ca]).toEqual([false, true, true]);
    expect(leaf.checkIssued(inter)).toBe(true);
    expect(inter.checkIssued(rootN)).toBe(true);
    expect(leaf.checkIssued(rootN)).toBe(false);
    expect(leaf.verify(inter.publicKey)).toBe(true);
    expect(inter.verify(rootN.publicKey)).toBe(true);
    expect(rootN.verify(rootN.publicKey)).toBe(true);
    expect(leaf.verify(rootN.publicKey)).toBe(false);
    expect(leaf.checkPrivateKey(createPrivateKey(await exportPrivateKeyPem(keys.privateKey)))).toBe(true);
    expect(leaf.keyUsage ?? []).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(BigInt(`0x${leaf.serialNumber}`) > 0n).toBe(true);
  });

  it.each(KEY_TYPES)('node:tls completes a TLS 1.3 mutual handshake with %s SVIDs and sees the peer SPIFFE IDs', async (keyType) => {
    const { ca } = await makePki(keyType);
    const server = await issue(ca, 'shop', 'api');
    const client = await issue(ca, 'shop', 'web');
    const bundle = ca.trustBundle();
    const seen = await mtls(
      { key: await exportPrivateKeyPem(server.keys.privateKey), cert: server.svid.chainPem, ca: bundle },
      { key: await exportPrivateKeyPem(client.keys.privateKey), cert: client.svid.chainPem, ca: bundle },
    );
    expect(seen).toEqual({
      serverAuthorized: true,
      serverError: undefined,
      serverSaw: 'URI:spiffe://example.org/ns/shop/sa/web',
      clientAuthorized: true,
      clientSaw: 'URI:spiffe://example.org/ns/shop/sa/api',
    });
  });

  it('node:tls refuses a client whose SVID chains to another root', async () => {
    const { ca } = await makePki();
    const other = await makePki();
    const server = await issue(ca, 'shop', 'api');
    const client = await issue(other.ca, 'shop', 'web');
    expect(
      await mtls(
        { key: await exportPrivateKeyPem(server.keys.privateKey), cert: server.svid.chainPem, ca: ca.trustBundle() },
        { key: await exportPrivateKeyPem(client.keys.privateKey), cert: client.svid.chainPem, ca: ca.trustBundle() },
      ),
    ).toEqual({
      serverAuthorized: false,
      serverError: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
      serverSaw: 'URI:spiffe://example.org/ns/shop/sa/web',
      clientAuthorized: true,
      clientSaw: 'URI:spiffe://example.org/ns/shop/sa/api',
    });
  });

  it.each(KEY_TYPES)('openssl verify accepts the %s chain for TLS client and server use', async (keyType) => {
    const { ca, root } = await makePki(keyType);
    const { svid } = await issue(ca);
    const [leafPem, interPem] = svid.chainPem.split(/(?<=-----END CERTIFICATE-----\n)/);
    await writeFile(join(dir, 'root.pem'), root.pem);
    await writeFile(join(dir, 'inter.pem'), interPem!);
    await writeFile(join(dir, 'leaf.pem'), leafPem!);
    for (const purpose of ['sslclient', 'sslserver']) {
      const { stdout } = await run('openssl', ['verify', '-x509_strict', '-purpose', purpose, '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'inter.pem'), join(dir, 'leaf.pem')]);
      expect(stdout).toBe(`${join(dir, 'leaf.pem')}: OK\n`);
    }
  });

  it('openssl verify enforces the URI name constraint of a constrained root', async () => {
    const root = await CertificateAuthority.initRoot({ trustDomain: TD, nameConstraints: true });
    const intermediate = await CertificateAuthority.createIntermediate(root);
    const ca = await CertificateAuthority.fromMaterial({ root, intermediate });
    const { svid } = await issue(ca);
    await writeFile(join(dir, 'root.pem'), root.pem);
    await writeFile(join(dir, 'inter.pem'), intermediate.pem);
    await writeFile(join(dir, 'leaf.pem'), svid.certPem);
    const { stdout } = await run('openssl', ['verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'inter.pem'), join(dir, 'leaf.pem')]);
    expect(stdout).toBe(`${join(dir, 'leaf.pem')}: OK\n`);
  });

  it('openssl refuses the chain against another root', async () => {
    const { ca, intermediate } = await makePki();
    const other = await makePki();
    const { svid } = await issue(ca);
    await writeFile(join(dir, 'root.pem'), other.root.pem);
    await writeFile(join(dir, 'inter.pem'), intermediate.pem);
    await writeFile(join(dir, 'leaf.pem'), svid.certPem);
    await expect(run('openssl', ['verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'inter.pem'), join(dir, 'leaf.pem')])).rejects.toMatchObject({ code: 2 });
  });
});
