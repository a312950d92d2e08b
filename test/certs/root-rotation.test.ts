/**
 * CertsService over a real state dir: revocation changes trust() (the CRL lists the serial),
 * and a root rotation goes start → finish with the phase on disk, issuance from the new
 * intermediate, finish refused while old-root certificates are live.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CertificateAuthority } from '../../certs/ca.ts';
import { crlNumberOf } from '../../certs/crl.ts';
import { createCsr } from '../../certs/csr.ts';
import { FileKek } from '../../certs/keyring.ts';
import { certFingerprint, CA_ARCHIVE_DIR } from '../../certs/root-rotation.ts';
import { verifySvid } from '../../certs/svid.ts';
import { parseCertificates, x509 } from '../../certs/x509.ts';
import { AUDIT_FILE, CA_DIR, CertsService, KEK_FILE, type Trust, type TrustChangeCause } from '../../control/certs/certs-service.ts';
import { generateKeyPair, tempDir } from './support.ts';

const TD = 'mesh.local';
const dirs: string[] = [];
const services: CertsService[] = [];

afterEach(async () => {
  for (const s of services.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function stateWithCa(keepRootKey = false): Promise<string> {
  const dir = await tempDir('rotation');
  dirs.push(dir);
  const root = await CertificateAuthority.initRoot({ trustDomain: TD });
  const intermediate = await CertificateAuthority.createIntermediate(root);
  await CertificateAuthority.writeState(join(dir, CA_DIR), await FileKek.open(join(dir, KEK_FILE)), { root, intermediate, keepRootKey });
  return dir;
}

async function open(dir: string): Promise<CertsService> {
  const s = await CertsService.open(dir);
  services.push(s);
  return s;
}

async function enroll(certs: CertsService, sa: string) {
  const { token } = await certs.tokens.mint({ namespace: 'shop', serviceAccount: sa, ttlMs: 600_000 });
  const r = await certs.enroll(await createCsr(await generateKeyPair(), `spiffe://${TD}/ns/shop/sa/${sa}`), token);
  if (!r.ok) throw new Error(r.errors.join('; '));
  return r.enrolled;
}

async function renew(certs: CertsService, previous: { spiffeId: string; serial: string }) {
  const r = await certs.renew(await createCsr(await generateKeyPair(), previous.spiffeId), previous.spiffeId, previous.serial);
  if (!r.ok) throw new Error(r.errors.join('; '));
  return r.enrolled;
}

function crls(trust: Trust): x509.X509Crl[] {
  return (trust.crl?.match(/-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g) ?? []).map((p) => new x509.X509Crl(p));
}

function issuerOf(chain: string): x509.X509Certificate {
  return parseCertificates(chain)[1]!;
}

describe('CertsService trust and revocation', () => {
  it('has no CRL until a certificate is revoked; then the CRL lists its serial and listeners hear it', async () => {
    const certs = await open(await stateWithCa());
    const web = await enroll(certs, 'web');
    expect(certs.trust()).toEqual({ bundle: certs.ca!.trustBundle(), crl: null });
    const heard: Array<[TrustChangeCause, Trust]> = [];
    certs.onTrustChange((t, cause) => heard.push([cause, t]));

    const r = await certs.revokeCert(web.serial, 'key compromise', 'operator:test');
    expect(r.ok).toBe(true);
    const trust = certs.trust();
    expect(heard).toEqual([['revocation', trust]]);
    const [crl, ...more] = crls(trust);
    expect(more).toEqual([]);
    expect(crl!.findRevoked(web.serial)?.reason).toBe(x509.X509CrlReason.keyCompromise);
    expect(await crl!.verify({ publicKey: certs.ca!.intermediate.cert })).toBe(true);
    expect(crlNumberOf(crl!)).toBe(1n);

    // The CRL number keeps increasing across a restart.
    await certs.close();
    services.splice(services.indexOf(certs), 1);
    const again = await open(certs.stateDir);
    expect(crlNumberOf(crls(again.trust())[0]!)).toBe(2n);
    expect(crls(again.trust())[0]!.findRevoked(web.serial)).not.toBeNull();
  });
});

describe('CertsService root rotation', () => {
  it('start: two roots in the bundle, new SVIDs from the new intermediate that verify against it; finish refused while old certs live', async () => {
    const dir = await stateWithCa();
    const certs = await open(dir);
    const oldRoot = certs.ca!.root.cert;
    const old = await enroll(certs, 'web');
    expect(certs.rotationStatus()).toMatchObject({ phase: 'none', oldRoot: null, liveCerts: { root: 1, oldRoot: 0, retired: 0 } });
    const heard: TrustChangeCause[] = [];
    certs.onTrustChange((_t, cause) => heard.push(cause));

    const started = await certs.startRotation({ actor: 'operator:test' });
    expect(started.rootKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/); // the old root key was offline: so is the new one
    expect(heard).toEqual(['rotation-started']);
    const bundle = certs.trust().bundle;
    const roots = parseCertificates(bundle);
    expect(roots).toHaveLength(2);
    expect(roots[0]!.equal(oldRoot)).toBe(true);
    expect(roots[1]!.equal(certs.ca!.root.cert)).toBe(true);
    expect(certs.ca!.rootKeyOnline).toBe(false);
    expect(started.status).toMatchObject({ phase: 'rotating', liveCerts: { root: 0, oldRoot: 1, retired: 0 } });
    expect(started.status.oldRoot?.notAfter).toBe(oldRoot.notAfter.toISOString());
    expect(existsSync(join(started.archive, 'root.pem'))).toBe(true);
    expect(await readFile(join(started.archive, 'root.pem'), 'utf8')).toContain(oldRoot.toString('base64').slice(0, 40));

    const fresh = await enroll(certs, 'api');
    expect(issuerOf(fresh.chain).equal(certs.ca!.intermediate.cert)).toBe(true);
    expect(await issuerOf(fresh.chain).verify({ publicKey: certs.ca!.root.cert.publicKey, signatureOnly: true })).toBe(true);
    expect(fresh.bundle).toBe(bundle);
    expect((await verifySvid(fresh.chain, bundle, { trustDomain: TD })).valid).toBe(true);
    expect((await verifySvid(old.chain, bundle, { trustDomain: TD })).valid).toBe(true);
    expect((await verifySvid(fresh.chain, certs.ca!.root.pem, { trustDomain: TD })).valid).toBe(true);
    expect((await verifySvid(old.chain, certs.ca!.root.pem, { trustDomain: TD })).valid).toBe(false);

    await expect(certs.startRotation({ actor: 'operator:test' })).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_ROTATION_IN_PROGRESS' });
    await expect(certs.finishRotation({ actor: 'operator:test' })).rejects.toMatchObject({
      code: 'PAL_ERR_CERTS_ROTATION_OLD_CERTS_LIVE',
      message: expect.stringMatching(/^1 live certificate\(s\) still chain to the old root /),
    });
    expect(certs.rotationStatus().phase).toBe('rotating');

    // The old certificate renews: from the new intermediate, and finish is allowed.
    const renewed = await renew(certs, old);
    expect(issuerOf(renewed.chain).equal(certs.ca!.intermediate.cert)).toBe(true);
    expect(certs.rotationStatus().liveCerts).toEqual({ root: 2, oldRoot: 0, retired: 0 });
    const finished = await certs.finishRotation({ actor: 'operator:test' });
    expect(finished.stranded).toBe(0);
    expect(finished.status).toMatchObject({ phase: 'none', oldRoot: null, liveCerts: { root: 2, oldRoot: 0, retired: 0 } });
    expect(parseCertificates(certs.trust().bundle).map((c) => certFingerprint(c))).toEqual([certFingerprint(certs.ca!.root.cert)]);
    expect(heard).toEqual(['rotation-started', 'rotation-finished']);
    expect(existsSync(join(dir, CA_DIR, 'previous-intermediate.pem'))).toBe(false);
    expect((await readdir(join(dir, CA_ARCHIVE_DIR))).sort()).toEqual([expect.stringMatching(/-before-rotation-start$/), expect.stringMatching(/-retired-root$/)]);
    await expect(certs.finishRotation({ actor: 'operator:test' })).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_ROTATION_NOT_STARTED' });

    const audit = (await readFile(join(dir, AUDIT_FILE), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    expect(audit.filter((e) => e.type === 'root.rotation').map((e) => [e.phase, e.oldRootFingerprint, e.newRootFingerprint])).toEqual([
      ['published-both', certFingerprint(oldRoot), certFingerprint(certs.ca!.root.cert)],
      ['retired', certFingerprint(oldRoot), certFingerprint(certs.ca!.root.cert)],
    ]);
  });

  it('finishes with force while old-root certificates are live, and says how many', async () => {
    const certs = await open(await stateWithCa(true));
    await enroll(certs, 'web');
    const started = await certs.startRotation({ actor: 'operator:test' });
    expect(started.rootKeyPem).toBeNull();
    expect(certs.ca!.rootKeyOnline).toBe(true);
    const finished = await certs.finishRotation({ force: true, actor: 'operator:test' });
    expect(finished.stranded).toBe(1);
    expect(finished.status.liveCerts).toEqual({ root: 0, oldRoot: 0, retired: 1 });
  });

  it('keeps the phase, both roots and the old intermediate CRL across a restart mid-rotation', async () => {
    const dir = await stateWithCa();
    const certs = await open(dir);
    const old = await enroll(certs, 'web');
    const { status } = await certs.startRotation({ actor: 'operator:test', keyType: 'ed25519' });
    const fresh = await enroll(certs, 'api');
    await certs.revokeCert(fresh.serial, 'superseded', 'operator:test');
    const before = certs.trust();
    // Both intermediates sign a CRL (a CRL-checking peer needs one for each leaf's issuer).
    expect(crls(before).map((c) => c.issuer).sort()).toEqual([certs.ca!.intermediate.cert.subject, certs.ca!.previousIntermediate!.cert.subject].sort());
    await certs.close();
    services.splice(services.indexOf(certs), 1);

    const again = await open(dir);
    expect(again.rotationStatus()).toEqual({ ...status, liveCerts: { root: 0, oldRoot: 1, retired: 0 } });
    expect(again.trust().bundle).toBe(before.bundle);
    expect(again.ca!.previousIntermediate?.cert.equal(issuerOf(old.chain))).toBe(true);
    const [current, previous] = crls(again.trust());
    expect(await current!.verify({ publicKey: again.ca!.intermediate.cert })).toBe(true);
    expect(await previous!.verify({ publicKey: again.ca!.previousIntermediate!.cert })).toBe(true);
    expect(current!.findRevoked(fresh.serial)).not.toBeNull();
    expect(previous!.findRevoked(fresh.serial)).toBeNull();
    // The new root is an Ed25519 root, as asked.
    expect((again.ca!.root.cert.publicKey.algorithm as { name: string }).name).toBe('Ed25519');
  });

  it('recovers a commit interrupted between its two renames', async () => {
    const dir = await stateWithCa();
    const certs = await open(dir);
    await certs.startRotation({ actor: 'operator:test' });
    const bundle = certs.trust().bundle;
    await certs.close();
    services.splice(0);
    // As if the process died after moving ca away and before renaming ca.next into place.
    const { rename } = await import('node:fs/promises');
    await rename(join(dir, CA_DIR), join(dir, `${CA_DIR}.next`));
    const again = await open(dir);
    expect(again.trust().bundle).toBe(bundle);
    expect(existsSync(join(dir, `${CA_DIR}.next`))).toBe(false);
  });
});
