/**
 * The sidecar's side of enrollment against a real control-plane CA endpoint on 127.0.0.1:
 * the identity it gets back is its own (key generated here, certificate for its SPIFFE ID),
 * and every failure says where and why.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority } from '../../../certs/ca.ts';
import { FileKek } from '../../../certs/keyring.ts';
import { createCsr } from '../../../certs/csr.ts';
import { exportPrivateKeyPem, generateKeyPair } from '../../../certs/keys.ts';
import { verifySvid } from '../../../certs/svid.ts';
import { CA_DIR, CertsService, KEK_FILE } from '../../../control/certs/certs-service.ts';
import { EnrollServer } from '../../../control/certs/enroll-server.ts';
import { bundleTrustDomain, enrollmentInputs, enrollWorkload, renewWorkload } from '../../../sidecar/identity/enroll.ts';
import { renewalDelayMs, retryDelayMs } from '../../../certs/renewal.ts';
import { readFile } from 'node:fs/promises';
import { AUDIT_FILE } from '../../../control/certs/certs-service.ts';
import { normalizeSerial } from '../../../certs/issued-store.ts';
import { parseBootstrap } from '../../../sidecar/bootstrap/bootstrap.ts';

let dir: string;
let certs: CertsService;
let server: EnrollServer;
let caAddress: string;
let bundle: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-sidecar-enroll-'));
  const root = await CertificateAuthority.initRoot({ trustDomain: 'mesh.local' });
  const intermediate = await CertificateAuthority.createIntermediate(root);
  await CertificateAuthority.writeState(join(dir, CA_DIR), await FileKek.open(join(dir, KEK_FILE)), { root, intermediate });
  certs = await CertsService.open(dir);
  server = new EnrollServer(certs, await certs.serverIdentity());
  caAddress = await server.listen('127.0.0.1:0');
  bundle = certs.ca!.trustBundle();
});

afterAll(async () => {
  await server?.close();
  await certs?.close();
  await rm(dir, { recursive: true, force: true });
});

const mint = async (sa = 'web') => (await certs.tokens.mint({ namespace: 'shop', serviceAccount: sa, ttlMs: 600_000 })).token;

describe('sidecar enrollment', () => {
  it('gets an SVID for its own identity whose key it generated', async () => {
    const id = await enrollWorkload({ caAddress, bundlePem: bundle, trustDomain: 'mesh.local', namespace: 'shop', serviceAccount: 'web', token: await mint() });
    expect(id.spiffeId).toBe('spiffe://mesh.local/ns/shop/sa/web');
    expect((await verifySvid(id.chainPem, id.bundlePem, { trustDomain: 'mesh.local' })).valid).toBe(true);
    const leaf = new X509Certificate(id.chainPem);
    expect(leaf.checkPrivateKey(createPrivateKey(id.keyPem))).toBe(true);
    expect(id.renewAt.getTime()).toBeLessThan(id.notAfter.getTime());
  });

  it('says the CA refused a used token, with its code', async () => {
    const token = await mint();
    const o = { caAddress, bundlePem: bundle, trustDomain: 'mesh.local', namespace: 'shop', serviceAccount: 'web', token };
    await enrollWorkload(o);
    await expect(enrollWorkload(o)).rejects.toMatchObject({ code: 'PAL_ERR_SIDECAR_ENROLL', serverCode: 'PAL_ERR_CERTS_TOKEN_USED', message: expect.stringContaining('refused the enrollment of spiffe://mesh.local/ns/shop/sa/web (401') });
  });

  it('does not send its token to a server the bundle does not vouch for', async () => {
    const other = await CertificateAuthority.initRoot({ trustDomain: 'mesh.local' });
    const token = await mint();
    await expect(enrollWorkload({ caAddress, bundlePem: other.pem, trustDomain: 'mesh.local', namespace: 'shop', serviceAccount: 'web', token }))
      .rejects.toMatchObject({ code: 'PAL_ERR_SIDECAR_ENROLL', serverCode: null, message: expect.stringContaining(`enrolling at ${caAddress} failed`) });
    // The token was never presented, so it still works.
    expect((await enrollWorkload({ caAddress, bundlePem: bundle, trustDomain: 'mesh.local', namespace: 'shop', serviceAccount: 'web', token })).spiffeId).toBe('spiffe://mesh.local/ns/shop/sa/web');
  });

  it('refuses a server in the bundle that is not the control plane', async () => {
    const token = await mint();
    await expect(enrollWorkload({ caAddress, bundlePem: bundle, trustDomain: 'other.local', namespace: 'shop', serviceAccount: 'web', token }))
      .rejects.toThrow(/presented URI:spiffe:\/\/mesh.local\/ns\/palisade-system\/sa\/control-plane, expected URI:spiffe:\/\/other.local\/ns\/palisade-system\/sa\/control-plane/);
  });

  it('reads its bootstrap identity: bundle file, token file, trust domain from the bundle', async () => {
    await writeFile(join(dir, 'bundle.pem'), bundle);
    await writeFile(join(dir, 'token'), `${await mint()}\n`);
    const b = parseBootstrap({ node: { service: 'web', namespace: 'shop' }, workload: { address: '127.0.0.1:8080' }, identity: { caAddress, trustBundle: join(dir, 'bundle.pem'), joinTokenFile: join(dir, 'token') } });
    if (!b.valid) throw new Error(b.errors.join('; '));
    const inputs = await enrollmentInputs(b.result.identity!);
    expect(inputs.trustDomain).toBe('mesh.local');
    expect(bundleTrustDomain(bundle)).toBe('mesh.local');
    const id = await enrollWorkload({ caAddress, bundlePem: inputs.bundlePem, trustDomain: inputs.trustDomain, namespace: 'shop', serviceAccount: b.result.node.serviceAccount, token: inputs.token });
    expect(id.spiffeId).toBe('spiffe://mesh.local/ns/shop/sa/web');
    await expect(enrollmentInputs({ ...b.result.identity!, trustBundle: join(dir, 'missing.pem') })).rejects.toThrow(/cannot read the trust bundle .*missing\.pem/);
  });

  it.each([
    [{ caAddress: '127.0.0.1:18002', trustBundle: 'b.pem' }, 'identity: must set exactly one of joinToken and joinTokenFile'],
    [{ trustBundle: 'b.pem', joinTokenFile: 't' }, 'identity.caAddress: missing'],
    [{ caAddress: '127.0.0.1:18002', trustBundle: 'b.pem', joinToken: 'secret' }, 'identity.joinToken: must be a join token (pal1.<id>.<secret>, from palisade certs token), got "secret"'],
  ])('refuses bootstrap identity %j naming the field', (identity, error) => {
    const r = parseBootstrap({ node: { service: 'web' }, workload: { address: '127.0.0.1:8080' }, identity });
    expect(r.valid).toBe(false);
    if (!r.valid) expect(r.errors.some((e) => e.startsWith(error))).toBe(true);
  });

  it('renews with its current SVID as client certificate: same identity, new key and serial, audited', async () => {
    const first = await enrollWorkload({ caAddress, bundlePem: bundle, trustDomain: 'mesh.local', namespace: 'shop', serviceAccount: 'web', token: await mint() });
    const renewed = await renewWorkload(first, { caAddress, trustDomain: 'mesh.local' });
    expect(renewed.spiffeId).toBe(first.spiffeId);
    expect((await verifySvid(renewed.chainPem, renewed.bundlePem, { trustDomain: 'mesh.local' })).valid).toBe(true);
    const [a, b] = [new X509Certificate(first.chainPem), new X509Certificate(renewed.chainPem)];
    expect(b.serialNumber).not.toBe(a.serialNumber);
    expect(b.checkPrivateKey(createPrivateKey(renewed.keyPem))).toBe(true);
    expect(b.checkPrivateKey(createPrivateKey(first.keyPem))).toBe(false);
    const events = (await readFile(join(dir, AUDIT_FILE), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    const event = events.find((e) => e.type === 'cert.renewed' && e.serial?.toLowerCase() === b.serialNumber.toLowerCase());
    expect(event?.previousSerial?.toLowerCase()).toBe(a.serialNumber.toLowerCase());
    expect(event?.spiffeId).toBe('spiffe://mesh.local/ns/shop/sa/web');
  });

  it('refuses a renewal whose client certificate this CA did not issue', async () => {
    const elsewhere = await CertificateAuthority.fromMaterial(await (async () => {
      const root = await CertificateAuthority.initRoot({ trustDomain: 'mesh.local' });
      return { root, intermediate: await CertificateAuthority.createIntermediate(root) };
    })());
    const keys = await generateKeyPair();
    const forged = await elsewhere.signCsr(await createCsr(keys, 'spiffe://mesh.local/ns/shop/sa/web'), { namespace: 'shop', serviceAccount: 'web' });
    if (!forged.valid) throw new Error(forged.errors.join('; '));
    const identity = { spiffeId: 'spiffe://mesh.local/ns/shop/sa/web', keyPem: await exportPrivateKeyPem(keys.privateKey), chainPem: forged.result.chainPem, bundlePem: bundle, notAfter: forged.result.notAfter, renewAt: forged.result.renewAt };
    await expect(renewWorkload(identity, { caAddress, trustDomain: 'mesh.local' })).rejects.toMatchObject({ code: 'PAL_ERR_SIDECAR_ENROLL', serverCode: 'PAL_ERR_CERTS_RENEW_UNAUTHENTICATED' });
  });

  it('waits until half-life to renew, at least a second, at most a timer\'s range', () => {
    const now = Date.parse('2026-11-27T12:00:00Z');
    expect(renewalDelayMs(new Date(now + 43_200_000), now)).toBe(43_200_000);
    expect(renewalDelayMs(new Date(now - 5_000), now)).toBe(1000);
    expect(renewalDelayMs(new Date(now + 40 * 86_400_000), now)).toBe(2 ** 31 - 1);
    expect([retryDelayMs(new Date(now + 3_600_000), now), retryDelayMs(new Date(now + 8_000), now), retryDelayMs(new Date(now - 1), now)]).toEqual([30_000, 2000, 1000]);
  });

  it('records what it issues, and a revoked certificate can no longer renew', async () => {
    const id = await enrollWorkload({ caAddress, bundlePem: bundle, trustDomain: 'mesh.local', namespace: 'shop', serviceAccount: 'db', token: await mint('db') });
    const serial = new X509Certificate(id.chainPem).serialNumber;
    const listed = certs.issued.list().find((c) => c.serial === normalizeSerial(serial));
    expect(listed).toMatchObject({ spiffeId: 'spiffe://mesh.local/ns/shop/sa/db', state: 'valid', previousSerial: null });

    expect(await certs.revokeCert(serial, 'key compromise', 'test')).toMatchObject({ ok: true, cert: { revokeReason: 'key compromise' } });
    expect(await certs.revokeCert(serial, 'again', 'test')).toMatchObject({ ok: false, reason: 'revoked' });
    expect(certs.issued.list().find((c) => c.serial === normalizeSerial(serial))?.state).toBe('revoked');
    await expect(renewWorkload(id, { caAddress, trustDomain: 'mesh.local' })).rejects.toMatchObject({
      serverCode: 'PAL_ERR_CERTS_RENEW_UNAUTHENTICATED', message: expect.stringContaining('is revoked'),
    });
    expect(await readFile(join(dir, AUDIT_FILE), 'utf8')).toContain(`"type":"cert.revoked"`);
  });
});
