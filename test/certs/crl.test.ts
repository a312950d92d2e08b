/** certs/crl.ts: CRLs signed by the intermediate, read back by @peculiar/x509 and by the openssl CLI. */
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crlNumberOf, crlReasonOf, generateCrl } from '../../certs/crl.ts';
import { createCsr } from '../../certs/csr.ts';
import { x509 } from '../../certs/x509.ts';
import { generateKeyPair, makePki, tempDir, TD } from './support.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function leaf(pki: Awaited<ReturnType<typeof makePki>>, sa: string) {
  const got = await pki.ca.signCsr(await createCsr(await generateKeyPair(), `spiffe://${TD}/ns/shop/sa/${sa}`), { namespace: 'shop', serviceAccount: sa });
  if (!got.valid) throw new Error(got.errors.join('; '));
  return got.result;
}

describe('generateCrl', () => {
  it('lists each revoked serial with its date and reason, numbered, with the issuer AKI, signed by the intermediate', async () => {
    const pki = await makePki();
    const revokedAt = new Date('2026-11-27T10:00:00.000Z');
    const now = new Date('2026-11-27T12:00:00.000Z');
    const { crl, pem } = await generateCrl(pki.intermediate, [
      { serial: '4a01', revokedAt, reason: 'key compromise' },
      { serial: '4b02', revokedAt, reason: 'unspecified' },
    ], { number: 7n, now, validityMs: 3_600_000 });
    expect(pem).toMatch(/^-----BEGIN X509 CRL-----\n[\s\S]+-----END X509 CRL-----\n$/);
    expect(crl.issuer).toBe(pki.intermediate.cert.subject);
    expect([crl.thisUpdate.toISOString(), crl.nextUpdate?.toISOString()]).toEqual([now.toISOString(), '2026-11-27T13:00:00.000Z']);
    expect(crlNumberOf(crl)).toBe(7n);
    expect(crl.entries.map((e) => [e.serialNumber, e.revocationDate.toISOString(), e.reason])).toEqual([
      ['4a01', revokedAt.toISOString(), x509.X509CrlReason.keyCompromise],
      ['4b02', revokedAt.toISOString(), undefined],
    ]);
    const aki = crl.getExtension(x509.AuthorityKeyIdentifierExtension);
    expect(aki?.keyId).toBe(pki.intermediate.cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId);
    expect(await crl.verify({ publicKey: pki.intermediate.cert })).toBe(true);
    expect(await crl.verify({ publicKey: pki.root.cert })).toBe(false);
  });

  it.each(['ecdsa-p256', 'ed25519', 'rsa-3072'] as const)('is read by openssl (%s): the revoked SVID fails verify -crl_check, another passes', async (keyType) => {
    const pki = await makePki(keyType);
    const revoked = await leaf(pki, 'web');
    const kept = await leaf(pki, 'api');
    const { pem } = await generateCrl(pki.intermediate, [{ serial: revoked.serialNumber, revokedAt: new Date(), reason: 'keyCompromise' }], { number: 1n });
    const dir = await tempDir('crl');
    dirs.push(dir);
    const f = (name: string, text: string) => writeFile(join(dir, name), text).then(() => join(dir, name));
    const [crlFile, rootFile, interFile, revokedFile, keptFile] = await Promise.all([
      f('crl.pem', pem), f('root.pem', pki.root.pem), f('inter.pem', pki.intermediate.pem), f('revoked.pem', revoked.certPem), f('kept.pem', kept.certPem),
    ]);
    const text = execFileSync('openssl', ['crl', '-in', crlFile, '-noout', '-text'], { encoding: 'utf8' });
    expect(text).toContain('Version 2 (0x1)');
    expect(text).toMatch(/X509v3 CRL Number:\s*\n\s*1\n/);
    expect(text).toContain('X509v3 Authority Key Identifier');
    expect(text.toLowerCase().replace(/\s/g, '')).toContain(`serialnumber:${revoked.serialNumber.toLowerCase()}`);
    expect(text).toContain('Key Compromise');
    const verify = (leafFile: string) => spawnSync('openssl', ['verify', '-crl_check', '-CAfile', rootFile, '-untrusted', interFile, '-CRLfile', crlFile, leafFile], { encoding: 'utf8' });
    const bad = verify(revokedFile);
    expect(bad.status).not.toBe(0);
    expect(bad.stdout + bad.stderr).toContain('certificate revoked');
    const good = verify(keptFile);
    expect([good.status, good.stdout.trim()]).toEqual([0, `${keptFile}: OK`]);
  });

  it('refuses an issuer without its key', async () => {
    const pki = await makePki();
    await expect(generateCrl({ ...pki.intermediate, keys: null }, [], { number: 1n })).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_INVALID_OPTION' });
  });
});

describe('crlReasonOf', () => {
  it.each([
    ['key compromise', x509.X509CrlReason.keyCompromise],
    ['keyCompromise', x509.X509CrlReason.keyCompromise],
    ['KEY_COMPROMISE', x509.X509CrlReason.keyCompromise],
    ['superseded', x509.X509CrlReason.superseded],
    ['cessation-of-operation', x509.X509CrlReason.cessationOfOperation],
    ['affiliation changed', x509.X509CrlReason.affiliationChanged],
    ['unspecified', undefined],
    ['workload deleted', undefined],
    [null, undefined],
  ] as const)('maps %j to %j', (reason, code) => {
    expect(crlReasonOf(reason)).toBe(code);
  });
});
