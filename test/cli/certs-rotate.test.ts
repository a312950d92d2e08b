/**
 * `palisade certs rotate-root start|status|finish` as an operator runs them: real CLI
 * processes against a real `palisade control` process whose CA was made by
 * `palisade certs init-root --root-key-out`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCsr } from '../../certs/csr.ts';
import { generateKeyPair, importPrivateKeyPem } from '../../certs/keys.ts';
import { parseCertificates } from '../../certs/x509.ts';
import { CertsService } from '../../control/certs/certs-service.ts';
import { connect } from 'node:tls';
import { startControlProcess } from '../helpers/control-process.ts';
import { until } from '../helpers/until.ts';

/** The issuer subject of the certificate the control plane's CA endpoint presents now. */
function servedIssuer(ca: string): Promise<string> {
  const i = ca.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const socket = connect({ host: ca.slice(0, i), port: Number(ca.slice(i + 1)), rejectUnauthorized: false }, () => {
      const issuer = socket.getPeerCertificate().issuer;
      socket.destroy();
      resolve(`CN=${issuer.CN}`);
    });
    socket.on('error', reject);
  });
}

const CLI = join(import.meta.dirname, '../../cli/main.ts');
const children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'palisade-rotate-'));
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

describe('palisade certs rotate-root', () => {
  it('starts, reports, refuses to finish while an old-root certificate is live, and finishes with --force', async () => {
    const dir = tempDir();
    const stateDir = join(dir, 'state');
    const init = await cli(['init-root', '--trust-domain', 'mesh.local', '--state-dir', stateDir, '--root-key-out', join(dir, 'root-1.pem'), '-o', 'json']);
    expect(init.code).toBe(0);
    // A workload certificate of the first root, recorded before the control plane starts.
    const seed = await CertsService.open(stateDir);
    const { token } = await seed.tokens.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: 600_000 });
    const enrolled = await seed.enroll(await createCsr(await generateKeyPair(), 'spiffe://mesh.local/ns/shop/sa/web'), token);
    expect(enrolled.ok).toBe(true);
    await seed.close();

    const { admin, ca } = await startControlProcess(stateDir, tempDir(), children);
    const at = ['--admin-address', admin];

    const none = await cli(['rotate-root', 'status', '-o', 'json', ...at]);
    expect(none.code).toBe(0);
    expect(JSON.parse(none.stdout)).toMatchObject({ phase: 'none', oldRoot: null, liveCerts: { root: 1, oldRoot: 0, retired: 0 } });
    const table = await cli(['rotate-root', 'status', ...at]);
    expect(table.stdout).toMatch(/^Phase: {11}none\nRoot: {12}CN=Palisade Root CA /);
    expect(table.stdout).toContain('Live certificates: 1 chain to the root\n');

    const noKey = await cli(['rotate-root', 'start', ...at]);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain('say where the new root private key goes');

    const keyFile = join(dir, 'root-2.pem');
    const started = await cli(['rotate-root', 'start', '--key-out', keyFile, '-o', 'json', ...at]);
    expect(started.stderr).toBe('');
    expect(started.code).toBe(0);
    const s = JSON.parse(started.stdout) as { status: { phase: string; root: { fingerprintSha256: string }; oldRoot: { fingerprintSha256: string } }; rootKey: unknown };
    expect(s.status).toMatchObject({ phase: 'rotating', liveCerts: { root: 0, oldRoot: 1, retired: 0 } });
    expect(s.rootKey).toEqual({ location: 'file', path: keyFile });
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    await importPrivateKeyPem(await readFile(keyFile, 'utf8'));
    expect(s.status.oldRoot.fingerprintSha256).toBe((JSON.parse(init.stdout) as { root: { fingerprintSha256: string } }).root.fingerprintSha256);

    const again = await cli(['rotate-root', 'start', '--keep-root-key', ...at]);
    expect([again.code, again.stderr]).toEqual([1, expect.stringMatching(/^palisade certs: PAL_ERR_CERTS_ROTATION_IN_PROGRESS: a root rotation is already under way/)]);
    const overwrite = await cli(['rotate-root', 'start', '--root-key-out', keyFile, ...at]);
    expect([overwrite.code, overwrite.stderr]).toEqual([1, `palisade certs: --root-key-out ${keyFile} already exists; rotate-root never overwrites a key file\n`]);

    // The control plane re-issued its own SVID from the new intermediate.
    const newIntermediate = parseCertificates(await readFile(join(stateDir, 'ca', 'intermediate.pem'), 'utf8'))[0]!;
    const newCn = newIntermediate.subject.split(',')[0]!;
    await until('the control plane serving an SVID of the new intermediate', async () => (await servedIssuer(ca!)) === newCn);

    const trust = await (await fetch(`http://${admin}/api/v1/certs/trust`)).json() as { bundle: string; crl: string | null };
    expect(parseCertificates(trust.bundle)).toHaveLength(2);
    expect(trust.crl).toBeNull();

    const refused = await cli(['rotate-root', 'finish', ...at]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^palisade certs: PAL_ERR_CERTS_ROTATION_OLD_CERTS_LIVE: 1 live certificate\(s\) still chain to the old root /);
    const stillRotating = await cli(['rotate-root', 'status', ...at]);
    expect(stillRotating.stdout).toContain('Live certificates: 0 chain to the new root, 1 to the old root\n');

    const forced = await cli(['rotate-root', 'finish', '--force', '-o', 'json', ...at]);
    expect(forced.code).toBe(0);
    const f = JSON.parse(forced.stdout) as { status: { phase: string; root: { fingerprintSha256: string } }; stranded: number };
    expect(f).toMatchObject({ stranded: 1, status: { phase: 'none', oldRoot: null, root: { fingerprintSha256: s.status.root.fingerprintSha256 } } });
    const after = await (await fetch(`http://${admin}/api/v1/certs/trust`)).json() as { bundle: string };
    expect(parseCertificates(after.bundle)).toHaveLength(1);

    const notStarted = await cli(['rotate-root', 'finish', ...at]);
    expect([notStarted.code, notStarted.stderr]).toEqual([1, 'palisade certs: PAL_ERR_CERTS_ROTATION_NOT_STARTED: no root rotation is under way: start one with palisade certs rotate-root start\n']);
  });

  it('refuses flags of another phase and an unknown phase (exit 2)', async () => {
    const wrong = await cli(['rotate-root', 'finish', '--key-type', 'ed25519']);
    expect([wrong.code, wrong.stderr.split('\n')[0]]).toEqual([2, 'palisade certs: --key-type is not a flag of rotate-root finish']);
    const unknown = await cli(['rotate-root', 'begin']);
    expect([unknown.code, unknown.stderr.split('\n')[0]]).toEqual([2, 'palisade certs: unknown rotate-root phase "begin": use start, status or finish']);
  });
});
