/**
 * `palisade certs init-root|inspect` as an operator runs them: real CLI processes writing
 * real CA state in temporary directories, which the control plane's loader then reads.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFile, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority } from '../../certs/ca.ts';
import { createCsr } from '../../certs/csr.ts';
import { FileKek } from '../../certs/keyring.ts';
import { generateKeyPair, importPrivateKeyPem } from '../../certs/keys.ts';
import { verifySvid } from '../../certs/svid.ts';
import { webcrypto, type x509 } from '../../certs/x509.ts';
import { CA_DIR, KEK_FILE } from '../../control/certs/certs-service.ts';
import { startControlProcess } from '../helpers/control-process.ts';
import { enrollWorkload } from '../../sidecar/identity/enroll.ts';

const CLI = join(import.meta.dirname, '../../cli/main.ts');
const dirs: string[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'palisade-certs-ca-'));
  dirs.push(d);
  return d;
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'certs', ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

function startControl(stateDir: string, configDir: string): Promise<{ admin: string; ca: string | null }> {
  return startControlProcess(stateDir, configDir, children);
}


interface InitRootJson {
  trustDomain: string;
  caDir: string;
  kek: string;
  root: { subject: string; fingerprintSha256: string; kind: string; keyType: string; spiffeId: string };
  intermediate: { subject: string; fingerprintSha256: string; kind: string; pathLength: number; notAfter: string };
  rootKey: { location: string; path: string };
}

/** Runs init-root into a fresh state dir, then issues an SVID from the loaded state: what the control plane does. */
async function initAndIssue(extra: string[]) {
  const dir = await tempDir();
  const state = join(dir, 'state');
  const r = await cli(['init-root', '--trust-domain', 'example.org', '--state-dir', state, '-o', 'json', ...extra]);
  expect([r.code, r.stderr]).toEqual([0, '']);
  const out = JSON.parse(r.stdout) as InitRootJson;
  const ca = await CertificateAuthority.load(join(state, CA_DIR), await FileKek.open(join(state, KEK_FILE)));
  const keys = await generateKeyPair();
  const issued = await ca.signCsr(await createCsr(keys, 'spiffe://example.org/ns/shop/sa/web'), { namespace: 'shop', serviceAccount: 'web' });
  if (!issued.valid) throw new Error(issued.errors.join('\n'));
  const chain = join(dir, 'svid.pem');
  await writeFile(chain, issued.result.chainPem);
  return { dir, state, out, ca, issued: issued.result, chain, bundle: join(state, CA_DIR, 'bundle.pem') };
}

describe('palisade certs init-root', () => {
  it('writes the CA state and a 0600 offline root key, and the control plane issues with the intermediate alone', async () => {
    const dir = await tempDir();
    const keyFile = join(dir, 'root-key.pem');
    const { state, out, ca, issued, bundle } = await initAndIssue(['--root-key-out', keyFile]);

    expect((await readdir(state)).sort()).toEqual([CA_DIR, KEK_FILE]);
    expect((await readdir(join(state, CA_DIR))).sort()).toEqual(['bundle.pem', 'intermediate.pem', 'keys', 'root.pem']);
    expect(await readdir(join(state, CA_DIR, 'keys'))).toEqual(['intermediate.key.json']);
    expect((await stat(join(state, KEK_FILE))).mode & 0o777).toBe(0o600);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);

    const keyPem = await readFile(keyFile, 'utf8');
    expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
    const rootKeys = await importPrivateKeyPem(keyPem);
    expect(Buffer.from(await webcrypto.subtle.exportKey('spki', rootKeys.publicKey))).toEqual(Buffer.from(ca.root.cert.publicKey.rawData));

    expect(ca.rootKeyOnline).toBe(false);
    expect(ca.trustDomain).toBe('example.org');
    expect(out).toMatchObject({
      trustDomain: 'example.org',
      caDir: join(state, CA_DIR),
      kek: join(state, KEK_FILE),
      root: { subject: ca.root.cert.subject, kind: 'root', keyType: 'ecdsa-p256', spiffeId: 'spiffe://example.org' },
      intermediate: { subject: ca.intermediate.cert.subject, kind: 'intermediate', pathLength: 0 },
      rootKey: { location: 'file', path: keyFile },
    });
    expect(out.root.fingerprintSha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(out.root.fingerprintSha256.replaceAll(':', '').toLowerCase()).toBe(Buffer.from(await ca.root.cert.getThumbprint('SHA-256')).toString('hex'));

    const verdict = await verifySvid(issued.chainPem, await readFile(bundle, 'utf8'), { trustDomain: 'example.org' });
    expect(verdict.valid && verdict.result.spiffeId.uri).toBe('spiffe://example.org/ns/shop/sa/web');
    // Without the root key, the loaded CA can issue SVIDs but not a new intermediate.
    await expect(CertificateAuthority.createIntermediate(ca.root)).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_ROOT_KEY_OFFLINE' });
  });

  it('keeps the root key in the keyring with --keep-root-key', async () => {
    const { state, out, ca } = await initAndIssue(['--keep-root-key', '--key-type', 'ed25519', '--root-ttl', '48h', '--intermediate-ttl', '24h']);
    expect(ca.rootKeyOnline).toBe(true);
    expect((await readdir(join(state, CA_DIR, 'keys'))).sort()).toEqual(['intermediate.key.json', 'root.key.json']);
    expect(out.rootKey).toEqual({ location: 'keyring', path: join(state, CA_DIR, 'keys', 'root.key.json') });
    expect(out.root.keyType).toBe('ed25519');
    const lifetime = (c: x509.X509Certificate) => c.notAfter.getTime() - c.notBefore.getTime();
    // notBefore is backdated by one minute of clock skew.
    expect(lifetime(ca.root.cert)).toBe(48 * 3_600_000 + 60_000);
    expect(lifetime(ca.intermediate.cert)).toBe(24 * 3_600_000 + 60_000);
  });

  it('prints what it made as text: subjects, fingerprints, validity and where the root key went', async () => {
    const dir = await tempDir();
    const state = join(dir, 'state');
    const keyFile = join(dir, 'root-key.pem');
    const r = await cli(['init-root', '--trust-domain', 'example.org', '--state-dir', state, '--root-key-out', keyFile]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const ca = await CertificateAuthority.load(join(state, CA_DIR), await FileKek.open(join(state, KEK_FILE)));
    expect(r.stdout).toContain(`Created the CA for trust domain example.org (spiffe://example.org) in ${join(state, CA_DIR)}\n`);
    expect(r.stdout).toContain(`Root CA\n  Subject:       ${ca.root.cert.subject}\n  SHA-256:       `);
    expect(r.stdout).toContain(`Intermediate CA (online, signs SVIDs)\n  Subject:       ${ca.intermediate.cert.subject}\n`);
    expect(r.stdout).toMatch(/\(valid for 3649d 23h\)\n/);
    expect(r.stdout).toMatch(/\(valid for 364d 23h\)\n/);
    expect(r.stdout).toContain(`Root key:         written to ${keyFile} (mode 0600): move it offline; the control plane does not need it\n`);
  });

  it('refuses a second init-root on the same state dir, naming the CA directory, and changes nothing', async () => {
    const dir = await tempDir();
    const state = join(dir, 'state');
    expect((await cli(['init-root', '--trust-domain', 'example.org', '--state-dir', state, '--keep-root-key'])).code).toBe(0);
    const before = await readFile(join(state, CA_DIR, 'root.pem'), 'utf8');
    const again = await cli(['init-root', '--trust-domain', 'example.org', '--state-dir', state, '--root-key-out', join(dir, 'k.pem')]);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe('');
    expect(again.stderr).toBe(
      `palisade certs: ${join(state, CA_DIR)} already holds a CA (bundle.pem, intermediate.pem, keys, root.pem); ` +
        'init-root never replaces one: remove that directory deliberately to start over\n',
    );
    expect(await readFile(join(state, CA_DIR, 'root.pem'), 'utf8')).toBe(before);
    await expect(stat(join(dir, 'k.pem'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses to overwrite an existing --root-key-out file, before writing any state', async () => {
    const dir = await tempDir();
    const keyFile = join(dir, 'root-key.pem');
    await writeFile(keyFile, 'precious\n');
    const r = await cli(['init-root', '--trust-domain', 'example.org', '--state-dir', join(dir, 'state'), '--root-key-out', keyFile]);
    expect([r.code, r.stderr]).toEqual([1, `palisade certs: --root-key-out ${keyFile} already exists; init-root never overwrites a key file\n`]);
    expect(await readFile(keyFile, 'utf8')).toBe('precious\n');
    await expect(stat(join(dir, 'state'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a KEK file others can read, before writing the root key or any CA state', async () => {
    const dir = await tempDir();
    const state = join(dir, 'state');
    await mkdir(state);
    await writeFile(join(state, KEK_FILE), Buffer.alloc(32, 7), { mode: 0o644 });
    await chmod(join(state, KEK_FILE), 0o644);
    const keyFile = join(dir, 'root-key.pem');
    const r = await cli(['init-root', '--trust-domain', 'example.org', '--state-dir', state, '--root-key-out', keyFile]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `palisade certs: PAL_ERR_CERTS_KEK_INSECURE: KEK file ${join(state, KEK_FILE)} has mode 0644: it must not be accessible by group or others (chmod 600 ${join(state, KEK_FILE)})\n`,
    );
    expect(await readdir(state)).toEqual([KEK_FILE]);
    await expect(stat(keyFile)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it.each([
    [[], /^palisade certs: say where the root private key goes: --root-key-out FILE writes it to a file \(mode 0600\) to keep offline/],
    [['--root-key-out', 'k.pem', '--keep-root-key'], /^palisade certs: --root-key-out and --keep-root-key exclude each other: choose one\n/],
    [['--trust-domain', 'Example.org'], /^palisade certs: --trust-domain is invalid: trust domain "Example.org" may contain only lowercase letters, digits, "\.", "-" and "_", got "Example.org"\n/],
    [['--trust-domain', 'example.org:8443'], /^palisade certs: --trust-domain is invalid: trust domain must not contain a port or ":";/],
    [['--key-type', 'ecdsa-p384'], /^palisade certs: --key-type must be one of ecdsa-p256, ed25519, rsa-3072, got "ecdsa-p384"\n/],
    [['--root-ttl', '10y'], /^palisade certs: --root-ttl must be a duration like 8760h or 90m \(units ms, s, m, h\), got "10y"\n/],
    [['--intermediate-ttl', '30s'], /^palisade certs: --intermediate-ttl must be between 1m and 876000h \(100 years\), got "30s"\n/],
    [['--root-ttl', '24h', '--intermediate-ttl', '48h'], /^palisade certs: --intermediate-ttl \(48h\) must not be longer than --root-ttl \(24h\)\n/],
    [['--output', 'yaml'], /^palisade certs: -o\/--output must be one of table, json, got "yaml"\n/],
  ])('exits 2 with the flag named for %j', async (flags, message) => {
    const dir = await tempDir();
    const args = ['init-root', '--state-dir', join(dir, 'state'), ...flags];
    if (!flags.includes('--trust-domain')) args.push('--trust-domain', 'example.org');
    if (flags.length > 0 && !flags.includes('--root-key-out') && !flags.includes('--keep-root-key')) args.push('--keep-root-key');
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain('Usage: palisade certs <subcommand> [flags]');
    await expect(stat(join(dir, 'state'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('requires --trust-domain', async () => {
    const r = await cli(['init-root', '--keep-root-key']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^palisade certs: --trust-domain is required\n/);
  });
});

describe('palisade certs init-root, then palisade control', () => {
  it('runs the control plane on the intermediate alone: a workload enrolls and its SVID verifies', async () => {
    const dir = await tempDir();
    const state = join(dir, 'state');
    const config = join(dir, 'config');
    await mkdir(config);
    const init = await cli(['init-root', '--trust-domain', 'mesh.local', '--state-dir', state, '--root-key-out', join(dir, 'root-key.pem')]);
    expect(init.code).toBe(0);
    const { admin, ca } = await startControl(state, config);
    expect(ca).not.toBeNull();

    const minted = await cli(['token', '--namespace', 'shop', '--service-account', 'web', '--admin-address', admin]);
    expect(minted.code).toBe(0);
    const bundlePem = await readFile(join(state, CA_DIR, 'bundle.pem'), 'utf8');
    // The sidecar's own enrollment client: key generated locally, control plane authenticated.
    const svid = await enrollWorkload({ caAddress: ca!, bundlePem, trustDomain: 'mesh.local', namespace: 'shop', serviceAccount: 'web', token: minted.stdout.trim() });
    const chain = join(dir, 'svid.pem');
    await writeFile(chain, svid.chainPem);

    const r = await cli(['inspect', chain, '--bundle', join(state, CA_DIR, 'bundle.pem'), '--trust-domain', 'mesh.local', '-o', 'json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { certificates: Array<{ kind: string; spiffeId: string }>; verification: { valid: boolean; spiffeId: string } };
    expect(out.certificates.map((c) => [c.kind, c.spiffeId])).toEqual([['leaf', 'spiffe://mesh.local/ns/shop/sa/web'], ['intermediate', 'spiffe://mesh.local']]);
    expect(out.verification).toMatchObject({ valid: true, spiffeId: 'spiffe://mesh.local/ns/shop/sa/web' });

    // The control plane recorded it: list shows it, revoke marks it, a second revoke is refused.
    const listed = await cli(['list', '-o', 'json', '--admin-address', admin]);
    expect(listed.code).toBe(0);
    const serial = (JSON.parse(listed.stdout) as Array<{ serial: string; spiffeId: string; state: string }>).find((c) => c.spiffeId === 'spiffe://mesh.local/ns/shop/sa/web')!.serial;
    const revoked = await cli(['revoke', serial, '--reason', 'decommissioned', '--admin-address', admin]);
    expect([revoked.code, revoked.stdout]).toEqual([0, `revoked certificate ${serial} (spiffe://mesh.local/ns/shop/sa/web)\n`]);
    expect((await cli(['list', '--admin-address', admin])).stdout).toMatch(new RegExp(`${serial}\\s+spiffe://mesh.local/ns/shop/sa/web\\s+\\S+\\s+revoked`));
    const again = await cli(['revoke', serial, '--admin-address', admin]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already revoked');
  });
});

describe('palisade certs inspect', () => {
  it('shows each certificate of an SVID chain: the SPIFFE ID, leaf, intermediate, usages, fingerprint', async () => {
    const { chain, issued, ca } = await initAndIssue(['--keep-root-key']);
    const r = await cli(['inspect', chain]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const leafFp = Buffer.from(await issued.cert.getThumbprint('SHA-256')).toString('hex').toUpperCase().replace(/(..)(?!$)/g, '$1:');
    expect(r.stdout).toContain(
      'Certificate 1 of 2\n' +
        '  SPIFFE ID:     spiffe://example.org/ns/shop/sa/web\n' +
        '  Kind:          leaf (not a CA)\n' +
        '  Subject:       (empty)\n' +
        `  Issuer:        ${ca.intermediate.cert.subject}\n` +
        `  Serial:        ${issued.serialNumber}\n` +
        '  SANs:          uri:spiffe://example.org/ns/shop/sa/web\n' +
        `  Validity:      ${issued.notBefore.toISOString()} .. ${issued.notAfter.toISOString()} (valid for 23h `,
    );
    expect(r.stdout).toContain(
      '  Key type:      ecdsa-p256\n' + '  Key usage:     digitalSignature\n' + '  Ext key usage: serverAuth, clientAuth\n' + `  SHA-256:       ${leafFp}\n`,
    );
    expect(r.stdout).toContain(`Certificate 2 of 2\n  SPIFFE ID:     spiffe://example.org\n  Kind:          CA, intermediate (pathLen 0)\n  Subject:       ${ca.intermediate.cert.subject}\n`);
    expect(r.stdout).toContain('  Key usage:     keyCertSign, cRLSign\n');
  });

  it('prints JSON with -o json, and with --bundle verifies the chain as an X.509-SVID', async () => {
    const { chain, bundle, issued } = await initAndIssue(['--keep-root-key']);
    const r = await cli(['inspect', chain, '--bundle', bundle, '--trust-domain', 'example.org', '-o', 'json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const out = JSON.parse(r.stdout) as { file: string; certificates: Array<Record<string, unknown>>; verification: Record<string, unknown> };
    expect(out.file).toBe(chain);
    expect(out.certificates.map((c) => [c.kind, c.spiffeId, c.status])).toEqual([
      ['leaf', 'spiffe://example.org/ns/shop/sa/web', 'valid'],
      ['intermediate', 'spiffe://example.org', 'valid'],
    ]);
    expect(out.certificates[0]).toMatchObject({
      subject: '',
      serialNumber: issued.serialNumber,
      subjectAltNames: ['uri:spiffe://example.org/ns/shop/sa/web'],
      notBefore: issued.notBefore.toISOString(),
      notAfter: issued.notAfter.toISOString(),
      keyType: 'ecdsa-p256',
      keyUsage: ['digitalSignature'],
      extKeyUsage: ['serverAuth', 'clientAuth'],
      pathLength: null,
    });
    expect(out.verification).toMatchObject({ valid: true, spiffeId: 'spiffe://example.org/ns/shop/sa/web' });
    expect((out.verification.path as string[]).length).toBe(3);

    const text = await cli(['inspect', chain, '--bundle', bundle, '--trust-domain', 'example.org']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/\nX\.509-SVID: valid for trust domain example\.org: spiffe:\/\/example\.org\/ns\/shop\/sa\/web \(path: \(empty subject\) -> CN=Palisade Intermediate CA [0-9a-f]{8}, O=Palisade, OU=example\.org -> CN=Palisade Root CA [0-9a-f]{8}, O=Palisade, OU=example\.org\)\n$/);
  });

  it('says why a chain is not valid and exits 1: another trust domain, another CA', async () => {
    const a = await initAndIssue(['--keep-root-key']);
    const b = await initAndIssue(['--keep-root-key']);
    const wrongTd = await cli(['inspect', a.chain, '--bundle', a.bundle, '--trust-domain', 'other.org']);
    expect(wrongTd.code).toBe(1);
    expect(wrongTd.stdout).toContain(
      '\nX.509-SVID: NOT valid for trust domain other.org (PAL_ERR_CERTS_SVID_INVALID):\n' +
        '  - leaf SPIFFE ID spiffe://example.org/ns/shop/sa/web is in trust domain "example.org", expected "other.org"\n',
    );
    const otherCa = await cli(['inspect', a.chain, '--bundle', b.bundle, '--trust-domain', 'example.org', '-o', 'json']);
    expect(otherCa.code).toBe(1);
    expect(JSON.parse(otherCa.stdout).verification).toEqual({
      valid: false,
      code: 'PAL_ERR_CERTS_SVID_INVALID',
      errors: ['no certification path from the leaf to a root of the trust bundle (the chain is not signed by a trusted root)'],
    });
  });

  it('shows a root as a self-signed CA', async () => {
    const { bundle } = await initAndIssue(['--keep-root-key']);
    const r = await cli(['inspect', bundle, '-o', 'json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).certificates.map((c: { kind: string; pathLength: unknown }) => [c.kind, c.pathLength])).toEqual([['root', null]]);
  });

  it('exits 1 naming a file that is not PEM, or missing', async () => {
    const dir = await tempDir();
    const junk = join(dir, 'junk.txt');
    await writeFile(junk, 'not a certificate\n');
    const r = await cli(['inspect', junk]);
    expect([r.code, r.stdout, r.stderr]).toEqual([1, '', `palisade certs: file ${junk} holds no PEM certificate (want -----BEGIN CERTIFICATE----- blocks)\n`]);

    const broken = join(dir, 'broken.pem');
    await writeFile(broken, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    const b = await cli(['inspect', broken]);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(new RegExp(`^palisade certs: file ${broken.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: certificate 1 of 1 cannot be parsed: `));

    const missing = join(dir, 'missing.pem');
    const m = await cli(['inspect', missing]);
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(new RegExp(`^palisade certs: cannot read file ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ENOENT`));
  });

  it.each([
    [['inspect'], /^palisade certs: inspect needs the PEM file to read/],
    [['inspect', 'x.pem', '--bundle', 'b.pem'], /^palisade certs: --bundle needs --trust-domain: the trust domain the SVID must belong to\n/],
    [['inspect', 'x.pem', '--trust-domain', 'example.org'], /^palisade certs: --trust-domain is used only with --bundle BUNDLE \(to verify the chain\)\n/],
    [['inspect', 'x.pem', '--bundle', 'b.pem', '--trust-domain', 'Bad'], /^palisade certs: --trust-domain is invalid: /],
  ])('exits 2 for %j', async (args, message) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});
