/**
 * `palisade certs token|tokens|revoke-token` as an operator runs them: a real CLI process
 * against a real control plane's admin API, whose join tokens live in a temporary state dir.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdminServer } from '../../control/admin/admin-server.ts';
import { AUDIT_FILE, CertsService, JOIN_TOKENS_FILE } from '../../control/certs/certs-service.ts';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.ts';

const CLI = join(import.meta.dirname, '../../cli/main.ts');

let cp: TestControlPlane;
let certs: CertsService;
let admin: AdminServer;
let adminAddress: string;
let stateDir: string;

/** Runs the CLI without blocking this process's event loop (the admin server lives here). */
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'certs', ...args, '--admin-address', adminAddress], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  cp = await startControlPlane({});
  stateDir = await mkdtemp(join(tmpdir(), 'palisade-state-'));
  certs = await CertsService.open(stateDir);
  admin = new AdminServer(cp.cp, certs);
  adminAddress = await admin.listen('127.0.0.1:0');
});

afterAll(async () => {
  await admin?.close();
  await certs?.close();
  await cp?.close();
  await rm(stateDir, { recursive: true, force: true });
});

describe('palisade certs', () => {
  it('mints a one-time join token, prints it once, and lists it without the secret', async () => {
    const minted = await cli(['token', '--namespace', 'shop', '--service-account', 'web', '--ttl', '30m']);
    expect(minted.code).toBe(0);
    const token = minted.stdout.trim();
    expect(token).toMatch(/^pal1\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    const id = token.split('.')[1]!;
    expect(minted.stderr).toMatch(new RegExp(`join token ${id} for namespace shop, service account web; one use, expires `));

    const listed = await cli(['tokens', '-o', 'json']);
    expect(listed.code).toBe(0);
    const tokens = JSON.parse(listed.stdout) as Array<{ id: string; namespace: string; serviceAccount: string; state: string }>;
    expect(tokens.find((t) => t.id === id)).toMatchObject({ namespace: 'shop', serviceAccount: 'web', state: 'active' });
    const secret = token.split('.')[2]!;
    expect(listed.stdout).not.toContain(secret);
    expect(await readFile(join(stateDir, JOIN_TOKENS_FILE), 'utf8')).not.toContain(secret);
    const audit = await readFile(join(stateDir, AUDIT_FILE), 'utf8');
    expect(audit).toContain('"type":"token.minted"');
    expect(audit).not.toContain(secret);

    // The token redeems once: the control plane's store is the one the CLI minted into.
    expect(await certs.tokens.redeem(token, { namespace: 'shop', serviceAccount: 'web' })).toMatchObject({ ok: true });
    expect(await certs.tokens.redeem(token, { namespace: 'shop', serviceAccount: 'web' })).toMatchObject({ ok: false, reason: 'used' });
  });

  it('revokes an unused token, and refuses to revoke it twice', async () => {
    const id = (await cli(['token', '--namespace', 'shop', '--service-account', 'api'])).stdout.trim().split('.')[1]!;
    const revoked = await cli(['revoke-token', id]);
    expect([revoked.code, revoked.stdout]).toEqual([0, `revoked join token ${id}\n`]);
    expect((await cli(['tokens'])).stdout).toMatch(new RegExp(`${id}\\s+shop\\s+api\\s+\\S+\\s+revoked`));
    const again = await cli(['revoke-token', id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/revoked/);
  });

  it.each([
    [['token', '--namespace', 'Shop', '--service-account', 'web'], 1, 'namespace must be a DNS label'],
    [['token', '--namespace', 'shop', '--service-account', 'web', '--ttl', '200h'], 1, 'ttl must be at most 7d, got "200h"'],
    [['token', '--namespace', 'shop', '--service-account', 'web', '--ttl', 'soon'], 1, 'ttl must be a duration like 30m or 1h, got "soon"'],
    [['token', '--service-account', 'web'], 2, '--namespace is required'],
    [['revoke-token', 'abc'], 2, 'revoke-token needs the token id'],
    [['bogus'], 2, 'unknown subcommand "bogus"'],
  ])('refuses %j with exit %i naming the problem', async (args, code, message) => {
    const r = await cli(args as string[]);
    expect(r.code).toBe(code);
    expect(r.stderr).toContain(message);
  });
});
