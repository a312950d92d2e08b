/**
 * `palisade certs new-intermediate`, the offline recovery of a lost intermediate key or KEK, as
 * an operator runs it: real CA state written by `palisade certs init-root`, real CLI processes,
 * the control plane's own loader (`CertsService.open`) and a real `palisade control` afterwards.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { CertificateAuthority } from '../../certs/ca.ts';
import { validateAuditEvent } from '../../certs/audit.ts';
import { FileKek } from '../../certs/keyring.ts';
import { exportPrivateKeyPem } from '../../certs/keys.ts';
import { verifySvid } from '../../certs/svid.ts';
import { certFingerprint } from '../../certs/root-rotation.ts';
import { parseCertificates } from '../../certs/x509.ts';
import { AUDIT_FILE, CA_DIR, CertsService, KEK_FILE } from '../../control/certs/certs-service.ts';
import { enrollWorkload, renewWorkload } from '../../sidecar/identity/enroll.ts';
import { startControlProcess } from '../helpers/control-process.ts';
import type { NewIntermediateResult } from '../../cli/commands/certs-intermediate.ts';

const CLI = join(import.meta.dirname, '../../cli/main.ts');
const dirs: string[] = [];
const children: ChildProcess[] = [];
const services: CertsService[] = [];

afterEach(async () => {
  for (const s of services.splice(0)) await s.close();
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'palisade-certs-intermediate-'));
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

async function open(state: string): Promise<CertsService> {
  const s = await CertsService.open(state);
  services.push(s);
  return s;
}

/** Every file under `dir`: relative path → mode and content, to prove a refusal changed nothing. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      const mode = ((await stat(p)).mode & 0o777).toString(8);
      if (e.isDirectory()) {
        out[`${relative(dir, p)}/`] = mode;
        await walk(p);
      } else out[relative(dir, p)] = `${mode} ${(await readFile(p)).toString('base64')}`;
    }
  };
  await walk(dir);
  return out;
}

/** init-root into a fresh state dir with an offline root key (or one kept in the keyring). */
async function initState(extra: string[] = []): Promise<{ dir: string; state: string; rootKey: string; bundlePem: string; rootPem: string; intermediatePem: string }> {
  const dir = await tempDir();
  const state = join(dir, 'state');
  const rootKey = join(dir, 'root-key.pem');
  const keyFlags = extra.includes('--keep-root-key') ? extra : ['--root-key-out', rootKey, ...extra];
  const r = await cli(['init-root', '--trust-domain', 'example.org', '--state-dir', state, ...keyFlags]);
  expect([r.code, r.stderr]).toEqual([0, '']);
  const read = (f: string) => readFile(join(state, CA_DIR, f), 'utf8');
  return { dir, state, rootKey, bundlePem: await read('bundle.pem'), rootPem: await read('root.pem'), intermediatePem: await read('intermediate.pem') };
}

function fingerprintOf(pem: string): string {
  return certFingerprint(parseCertificates(pem)[0]!);
}

async function auditLines(state: string): Promise<Array<Record<string, string>>> {
  const text = await readFile(join(state, AUDIT_FILE), 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, string>);
}

describe('palisade certs new-intermediate', () => {
  it('replaces a lost intermediate key: the control plane loads again, and what it signs verifies against the original bundle', async () => {
    const { state, rootKey, bundlePem, rootPem, intermediatePem } = await initState();
    await unlink(join(state, CA_DIR, 'keys', 'intermediate.key.json'));
    await expect(CertsService.open(state)).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_CA_STATE', message: expect.stringContaining('has no intermediate key') });

    const r = await cli(['new-intermediate', '--root-key', rootKey, '--state-dir', state, '-o', 'json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const out = JSON.parse(r.stdout) as NewIntermediateResult;

    // Same root, same bundle, byte for byte; a new intermediate chained to that root.
    expect(await readFile(join(state, CA_DIR, 'bundle.pem'), 'utf8')).toBe(bundlePem);
    expect(await readFile(join(state, CA_DIR, 'root.pem'), 'utf8')).toBe(rootPem);
    const service = await open(state);
    const ca = service.requireCa();
    expect(ca.root.pem).toBe(rootPem);
    expect(ca.rootKeyOnline).toBe(false);
    expect(ca.intermediate.pem).not.toBe(intermediatePem);
    expect(certFingerprint(ca.intermediate.cert)).toBe(out.intermediate.fingerprintSha256.replaceAll(':', '').toLowerCase());
    expect(await ca.intermediate.cert.verify({ publicKey: ca.root.cert.publicKey, signatureOnly: true })).toBe(true);
    expect(ca.intermediate.cert.issuer).toBe(ca.root.cert.subject);

    // An SVID from the recovered CA verifies against the bundle the workloads already hold.
    const identity = await service.serverIdentity();
    const verdict = await verifySvid(identity.chain, bundlePem, { trustDomain: 'example.org' });
    expect(verdict.valid && verdict.result.spiffeId.uri).toBe('spiffe://example.org/ns/palisade-system/sa/control-plane');
    expect(parseCertificates(identity.chain).map(certFingerprint)).toEqual([expect.any(String), certFingerprint(ca.intermediate.cert)]);

    // The JSON says what happened; the old CA directory is archived, not deleted; the audit log has it.
    expect(out).toEqual({
      trustDomain: 'example.org',
      stateDir: state,
      caDir: join(state, CA_DIR),
      root: expect.objectContaining({ kind: 'root', spiffeId: 'spiffe://example.org', fingerprintSha256: expect.stringMatching(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/) }),
      intermediate: expect.objectContaining({ kind: 'intermediate', spiffeId: 'spiffe://example.org', pathLength: 0, keyType: 'ecdsa-p256', status: 'valid', issuer: ca.root.cert.subject }),
      replaced: expect.objectContaining({ kind: 'intermediate', subject: parseCertificates(intermediatePem)[0]!.subject }),
      archive: expect.stringMatching(new RegExp(`^${join(state, 'ca-archive')}/\\d{4}-\\d{2}-\\d{2}T[\\d-]+Z-lost-intermediate$`)),
      kek: { path: join(state, KEK_FILE), replaced: false, lostKek: null },
      rootKey: { location: 'file', path: rootKey },
      rotation: null,
      intermediateKey: join(state, CA_DIR, 'keys', 'intermediate.key.json'),
      bundle: join(state, CA_DIR, 'bundle.pem'),
      audit: join(state, AUDIT_FILE),
    });
    expect(await readFile(join(out.archive, 'intermediate.pem'), 'utf8')).toBe(intermediatePem);
    expect((await readdir(join(state, 'ca-archive'))).length).toBe(1);
    const events = (await auditLines(state)).filter((e) => e.type === 'ca.intermediate.replaced');
    expect(events).toEqual([
      {
        type: 'ca.intermediate.replaced',
        time: expect.any(String),
        actor: expect.stringMatching(/^operator/),
        rootFingerprint: fingerprintOf(rootPem),
        oldIntermediateFingerprint: fingerprintOf(intermediatePem),
        newIntermediateFingerprint: certFingerprint(ca.intermediate.cert),
        kek: 'kept',
      },
    ]);
    expect(validateAuditEvent(events[0]).valid).toBe(true);
  });

  it('prints what it did as text: the unchanged root, the new intermediate, the archive and what to do next', async () => {
    const { state, rootKey } = await initState();
    await unlink(join(state, CA_DIR, 'keys', 'intermediate.key.json'));
    const r = await cli(['new-intermediate', '--root-key', rootKey, '--state-dir', state]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toMatch(new RegExp(`^Replaced the intermediate CA of trust domain example.org in ${join(state, CA_DIR)}: same root, same trust bundle\n`));
    expect(r.stdout).toContain('Root CA (unchanged)\n');
    expect(r.stdout).toContain('New intermediate CA (online, signs SVIDs)\n');
    expect(r.stdout).toMatch(/\nOld CA archived: {2}\S+-lost-intermediate\n/);
    expect(r.stdout).toContain(`KEK:              ${join(state, KEK_FILE)} (kept)\n`);
    expect(r.stdout).toContain(`Root key:         not stored; move ${rootKey} back offline\n`);
    expect(r.stdout).toContain(`Next: start the control plane (palisade control --state-dir ${state})`);
  });

  it('refuses a root key that is not the root\'s, and changes nothing on disk', async () => {
    const { state } = await initState();
    const other = await initState();
    await unlink(join(state, CA_DIR, 'keys', 'intermediate.key.json'));
    const before = await snapshot(state);
    const r = await cli(['new-intermediate', '--root-key', other.rootKey, '--state-dir', state]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^palisade certs: --root-key ${other.rootKey} is not the private key of this CA's root: ${join(state, CA_DIR, 'root.pem')} is CN=Palisade Root CA [0-9a-f]{8}, O=Palisade, OU=example.org \\(SHA-256 [0-9A-F:]{95}\\) and its public key differs. Nothing was changed`));
    expect(await snapshot(state)).toEqual(before);
  });

  it('refuses a root key file that is not a PKCS#8 private key, or missing, and changes nothing', async () => {
    const { dir, state } = await initState();
    await unlink(join(state, CA_DIR, 'keys', 'intermediate.key.json'));
    const before = await snapshot(state);
    const notKey = join(dir, 'not-a-key.pem');
    await writeFile(notKey, await readFile(join(state, CA_DIR, 'root.pem')));
    const bad = await cli(['new-intermediate', '--root-key', notKey, '--state-dir', state]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`--root-key ${notKey} is not a PKCS#8 PEM private key`);
    const missing = await cli(['new-intermediate', '--root-key', join(dir, 'nope.pem'), '--state-dir', state]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`cannot read --root-key ${join(dir, 'nope.pem')}`);
    expect(await snapshot(state)).toEqual(before);
  });

  it('refuses a CA whose intermediate still loads and is valid, pointing to rotate-root', async () => {
    const { state, rootKey } = await initState();
    const before = await snapshot(state);
    const r = await cli(['new-intermediate', '--root-key', rootKey, '--state-dir', state]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`the CA in ${join(state, CA_DIR)} is intact`);
    expect(r.stderr).toContain('rotate the root (palisade certs rotate-root start)');
    expect(await snapshot(state)).toEqual(before);
  });

  it('refuses a state dir without a CA, naming init-root', async () => {
    const dir = await tempDir();
    const { rootKey } = await initState();
    const r = await cli(['new-intermediate', '--root-key', rootKey, '--state-dir', join(dir, 'empty')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${join(dir, 'empty', CA_DIR)} holds no CA (no root.pem)`);
  });

  it.each([
    ['no --root-key', ['new-intermediate'], /^palisade certs: --root-key FILE is required/],
    ['an unknown key type', ['new-intermediate', '--root-key', 'k.pem', '--key-type', 'dsa'], /^palisade certs: --key-type must be one of ecdsa-p256, ed25519, rsa-3072, got "dsa"/],
    ['a bad TTL', ['new-intermediate', '--root-key', 'k.pem', '--intermediate-ttl', '10d'], /^palisade certs: --intermediate-ttl must be a duration like 8760h/],
    ['a bad output', ['new-intermediate', '--root-key', 'k.pem', '-o', 'yaml'], /^palisade certs: /],
  ])('exits 2 on %s', async (_name, args, message) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('honours --key-type and --intermediate-ttl', async () => {
    const { state, rootKey } = await initState();
    await unlink(join(state, CA_DIR, 'keys', 'intermediate.key.json'));
    const r = await cli(['new-intermediate', '--root-key', rootKey, '--state-dir', state, '--key-type', 'ed25519', '--intermediate-ttl', '720h', '-o', 'json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const out = JSON.parse(r.stdout) as NewIntermediateResult;
    expect(out.intermediate.keyType).toBe('ed25519');
    expect(Date.parse(out.intermediate.notAfter) - Date.parse(out.intermediate.notBefore)).toBe(720 * 3_600_000 + 60_000);
    const ca = (await open(state)).requireCa();
    expect(ca.intermediate.keys!.type).toBe('ed25519');
  });
});

describe('palisade certs new-intermediate --new-kek', () => {
  it('without --new-kek, a deleted KEK file is an error that suggests it, and no KEK is created', async () => {
    const { state, rootKey } = await initState();
    await unlink(join(state, KEK_FILE));
    const before = await snapshot(state);
    const r = await cli(['new-intermediate', '--root-key', rootKey, '--state-dir', state]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `palisade certs: the KEK file ${join(state, KEK_FILE)} is missing. If the KEK is lost or damaged, run again with --new-kek: ` +
        'a fresh KEK is created (the old file is kept as kek.lost-<time>) and the keyring is re-encrypted under it\n',
    );
    expect(await snapshot(state)).toEqual(before);
  });

  it('creates a fresh 0600 KEK when the file was deleted, and the control plane loads with it', async () => {
    const { state, rootKey, bundlePem } = await initState();
    await unlink(join(state, KEK_FILE));
    const r = await cli(['new-intermediate', '--root-key', rootKey, '--state-dir', state, '--new-kek', '-o', 'json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const out = JSON.parse(r.stdout) as NewIntermediateResult;
    expect(out.kek).toEqual({ path: join(state, KEK_FILE), replaced: true, lostKek: null });
    expect((await stat(join(state, KEK_FILE))).mode & 0o777).toBe(0o600);
    const ca = (await open(state)).requireCa();
    expect(ca.trustBundle()).toBe(bundlePem);
    expect((await auditLines(state)).filter((e) => e.type === 'ca.intermediate.replaced').map((e) => e.kek)).toEqual(['replaced']);
  });

  it('moves a KEK that no longer decrypts the keyring aside as kek.lost-<time>, and re-seals a kept root key under the new one', async () => {
    const { state, bundlePem, rootPem, dir } = await initState(['--keep-root-key']);
    // The root key kept in the keyring is exported for the operator, as backups would hold it.
    const kept = await CertificateAuthority.load(join(state, CA_DIR), await FileKek.open(join(state, KEK_FILE)));
    const rootKey = join(dir, 'root-key-backup.pem');
    await writeFile(rootKey, await exportPrivateKeyPem(kept.root.keys!.privateKey), { mode: 0o600 });
    // The KEK file is overwritten (lost): same size, other bytes.
    const wrongKek = randomBytes(32);
    await writeFile(join(state, KEK_FILE), wrongKek, { mode: 0o600 });
    await expect(CertsService.open(state)).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_KEY_DECRYPT' });

    const refused = await cli(['new-intermediate', '--root-key', rootKey, '--state-dir', state]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/the keyring \S+ was encrypted under KEK file:[0-9a-f]{16}, but \S+ is KEK file:[0-9a-f]{16}: the KEK that sealed it is lost or was replaced\. If the KEK is lost or damaged, run again with --new-kek/);

    const r = await cli(['new-intermediate', '--root-key', rootKey, '--state-dir', state, '--new-kek', '-o', 'json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const out = JSON.parse(r.stdout) as NewIntermediateResult;
    expect(out.kek.lostKek).toMatch(new RegExp(`^${join(state, 'kek.lost-')}\\d{4}-\\d{2}-\\d{2}T[\\d-]+Z$`));
    expect(await readFile(out.kek.lostKek!)).toEqual(wrongKek);
    expect(await readFile(join(state, KEK_FILE))).not.toEqual(wrongKek);
    expect(out.rootKey).toEqual({ location: 'keyring', path: join(state, CA_DIR, 'keys', 'root.key.json') });

    const ca = (await open(state)).requireCa();
    expect([ca.rootKeyOnline, ca.root.pem, ca.trustBundle()]).toEqual([true, rootPem, bundlePem]);
  });
});

describe('palisade certs new-intermediate during a root rotation', () => {
  it('keeps both roots and the old root\'s intermediate, and issues from a new intermediate of the new root', async () => {
    const { dir, state } = await initState();
    const service = await CertsService.open(state);
    const started = await service.startRotation({ rootKey: 'return', actor: 'operator:test' });
    await service.close();
    const newRootKey = join(dir, 'new-root-key.pem');
    await writeFile(newRootKey, started.rootKeyPem!, { mode: 0o600 });
    const bundlePem = await readFile(join(state, CA_DIR, 'bundle.pem'), 'utf8');
    const previousPem = await readFile(join(state, CA_DIR, 'previous-intermediate.pem'), 'utf8');
    await unlink(join(state, CA_DIR, 'keys', 'intermediate.key.json'));

    const r = await cli(['new-intermediate', '--root-key', newRootKey, '--state-dir', state, '-o', 'json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect((JSON.parse(r.stdout) as NewIntermediateResult).rotation).toEqual({ phase: 'rotating', previousIntermediateKey: 'kept' });
    const ca = (await open(state)).requireCa();
    expect([ca.rotating, ca.trustBundle(), ca.previousIntermediate?.pem, ca.previousIntermediate?.keys !== null]).toEqual([true, bundlePem, previousPem, true]);
    const identity = await services[0]!.serverIdentity();
    expect((await verifySvid(identity.chain, bundlePem, { trustDomain: 'example.org' })).valid).toBe(true);
  });
});

describe('palisade certs new-intermediate, then palisade control', () => {
  it('a workload enrolled before the loss renews through the new intermediate, and still verifies against its bundle', async () => {
    const dir = await tempDir();
    const state = join(dir, 'state');
    const config = join(dir, 'config');
    await mkdir(config);
    const rootKey = join(dir, 'root-key.pem');
    expect((await cli(['init-root', '--trust-domain', 'mesh.local', '--state-dir', state, '--root-key-out', rootKey])).code).toBe(0);
    const bundlePem = await readFile(join(state, CA_DIR, 'bundle.pem'), 'utf8');

    const first = await startControlProcess(state, config, children);
    const minted = await cli(['token', '--namespace', 'shop', '--service-account', 'web', '--admin-address', first.admin]);
    expect(minted.code).toBe(0);
    const enrolled = await enrollWorkload({ caAddress: first.ca!, bundlePem, trustDomain: 'mesh.local', namespace: 'shop', serviceAccount: 'web', token: minted.stdout.trim() });
    const oldIntermediate = parseCertificates(enrolled.chainPem)[1]!;
    const control = children.pop()!;
    await new Promise((resolve) => {
      control.once('exit', resolve);
      control.kill('SIGTERM');
    });

    // The intermediate key is lost: the control plane cannot start.
    await unlink(join(state, CA_DIR, 'keys', 'intermediate.key.json'));
    await expect(startControlProcess(state, config, children)).rejects.toThrow(/control exited/);
    children.splice(0);

    const r = await cli(['new-intermediate', '--root-key', rootKey, '--state-dir', state]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const second = await startControlProcess(state, config, children);
    const renewed = await renewWorkload(enrolled, { caAddress: second.ca!, trustDomain: 'mesh.local' });
    const newIntermediate = parseCertificates(renewed.chainPem)[1]!;
    expect(certFingerprint(newIntermediate)).not.toBe(certFingerprint(oldIntermediate));
    expect(renewed.bundlePem).toBe(bundlePem);
    for (const chain of [enrolled.chainPem, renewed.chainPem]) {
      const v = await verifySvid(chain, bundlePem, { trustDomain: 'mesh.local' });
      expect(v.valid && v.result.spiffeId.uri).toBe('spiffe://mesh.local/ns/shop/sa/web');
    }
  });
});
