/**
 * `palisade config validate --policy-signing-key`: a Policy with inline Rego is compiled and
 * signed as the control plane would (real CLI process, real opa); without the key it is
 * reported at /spec/rego/inline; a key that cannot sign bundles is a usage error.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CLI = join(import.meta.dirname, '../../cli/main.ts');
const POLICY = `apiVersion: palisade.dev/v1
kind: Policy
metadata: { name: authz }
spec:
  entrypoint: envoy/authz/allow
  rego:
    inline: |
      package envoy.authz

      default allow := false
`;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

let dir: string;
let config: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-config-inline-rego-'));
  config = join(dir, 'config');
  await mkdir(config);
  await writeFile(join(config, 'authz.yaml'), POLICY);
  await writeFile(join(dir, 'key.pem'), generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await writeFile(join(dir, 'rsa.pem'), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('palisade config validate --policy-signing-key', () => {
  it('compiles and signs inline Rego with the key (exit 0)', async () => {
    const r = await cli(['config', 'validate', config, '--policy-signing-key', join(dir, 'key.pem')]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`config     ${config} (1 resources)\nadmission  none\nresult     ACCEPTED\n`);
    expect(r.code).toBe(0);
  });

  it('reports inline Rego without a key at /spec/rego/inline (exit 1)', async () => {
    const r = await cli(['config', 'validate', config]);
    expect(r.stdout).toContain(`${join(config, 'authz.yaml')}#0 /spec/rego/inline: inline Rego needs --policy-signing-key: the control plane signs what it compiles`);
    expect(r.code).toBe(1);
  });

  it('refuses an RSA key as a usage error (exit 2)', async () => {
    const r = await cli(['config', 'validate', config, '--policy-signing-key', join(dir, 'rsa.pem')]);
    expect(r.stderr).toMatch(/--policy-signing-key .*rsa\.pem: must be an EC P-256 or Ed25519 private key, got rsa/);
    expect(r.code).toBe(2);
  });
});
