/** `-o table|json` on the `palisade certs` subcommands that print, against a real admin API. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdminServer } from '../../control/admin/admin-server.ts';
import { CertsService } from '../../control/certs/certs-service.ts';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.ts';

const CLI = join(import.meta.dirname, '../../cli/main.ts');
let cp: TestControlPlane;
let certs: CertsService;
let admin: AdminServer;
let adminAddress: string;
let stateDir: string;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'certs', ...args, '--admin-address', adminAddress], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  cp = await startControlPlane({});
  stateDir = await mkdtemp(join(tmpdir(), 'palisade-output-'));
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

describe('palisade certs -o', () => {
  it('token -o json prints the token with its info; -o table prints the token alone', async () => {
    const json = await cli(['token', '--namespace', 'shop', '--service-account', 'web', '-o', 'json']);
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.stdout) as { token: string; info: { id: string; namespace: string; serviceAccount: string } };
    expect(doc.token.split('.')[1]).toBe(doc.info.id);
    expect(doc.info).toMatchObject({ namespace: 'shop', serviceAccount: 'web' });
    const table = await cli(['token', '--namespace', 'shop', '--service-account', 'api', '-o', 'table']);
    expect(table.stdout).toMatch(/^pal1\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}\n$/);
  });

  it('tokens and list print a table by default and JSON with -o json', async () => {
    const tokens = await cli(['tokens']);
    expect(tokens.stdout.split('\n')[0]).toMatch(/^ID\s+NAMESPACE\s+SERVICE ACCOUNT\s+EXPIRES\s+STATE$/);
    expect(JSON.parse((await cli(['tokens', '-o', 'json'])).stdout)).toHaveLength(2);
    expect((await cli(['list', '-o', 'table'])).stdout.split('\n')[0]).toMatch(/^SERIAL\s+SPIFFE ID\s+NOT AFTER\s+STATE$/);
    expect(JSON.parse((await cli(['list', '-o', 'json'])).stdout)).toEqual([]);
  });

  it.each([['tokens'], ['list'], ['rotate-root', 'status']])('%s refuses an unknown output format (exit 2)', async (...sub) => {
    const r = await cli([...sub, '-o', 'yaml']);
    expect([r.code, r.stderr.split('\n')[0]]).toEqual([2, 'palisade certs: -o/--output must be one of table, json, got "yaml"']);
  });

  it('rotate-root status without a CA is refused with the reason (exit 1)', async () => {
    const r = await cli(['rotate-root', 'status', '-o', 'json']);
    expect([r.code, r.stderr]).toEqual([1, `palisade certs: no CA in the state dir ${stateDir}: run palisade certs init-root\n`]);
  });
});
