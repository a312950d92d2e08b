/**
 * `palisade policy build|test|keygen` as a policy author runs them: real CLI processes, the
 * pinned opa (policies/opa-binary.ts findOpa()), real Rego in temporary directories, and the
 * bundles checked with `tar` and with OPA's own signature verification.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findOpa } from '../../policies/opa-binary.ts';

const CLI = join(import.meta.dirname, '../../cli/main.ts');
const dirs: string[] = [];

afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'palisade-policy-'));
  dirs.push(d);
  return d;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(file: string, args: string[], env: NodeJS.ProcessEnv = process.env, cwd?: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 60_000, env, cwd }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

function cli(args: string[], env: NodeJS.ProcessEnv = process.env, cwd?: string): Promise<Run> {
  return exec(process.execPath, [CLI, 'policy', ...args], env, cwd);
}

/** An OPA-Envoy style policy: callers by SPIFFE ID, GETs under /api/. */
const AUTHZ_REGO = `package envoy.authz

default allow := false

allow if {
  input.attributes.source.principal == "spiffe://mesh.local/ns/shop/sa/web"
  input.attributes.request.http.method == "GET"
  startswith(input.parsed_path[0], "api")
}
`;

const AUTHZ_TEST_REGO = `package envoy.authz_test

import data.envoy.authz

test_web_may_get_api if {
  authz.allow with input as {
    "attributes": {
      "source": {"principal": "spiffe://mesh.local/ns/shop/sa/web"},
      "request": {"http": {"method": "GET", "path": "/api/items"}}
    },
    "parsed_path": ["api", "items"]
  }
}

test_others_denied if {
  not authz.allow with input as {
    "attributes": {
      "source": {"principal": "spiffe://mesh.local/ns/shop/sa/batch"},
      "request": {"http": {"method": "GET", "path": "/api/items"}}
    },
    "parsed_path": ["api", "items"]
  }
}
`;

async function policyDir(files: Record<string, string> = { 'authz.rego': AUTHZ_REGO }): Promise<string> {
  const dir = join(await tempDir(), 'policy');
  await mkdir(dir);
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

async function keygen(type: 'ecdsa-p256' | 'ed25519' = 'ecdsa-p256'): Promise<{ key: string; pub: string }> {
  const key = join(await tempDir(), 'signing.pem');
  const r = await cli(['keygen', '--out', key, '--type', type]);
  expect([r.code, r.stderr]).toEqual([0, '']);
  return { key, pub: join(key, '..', 'signing.pub.pem') };
}

async function tarList(bundle: string): Promise<string[]> {
  const r = await exec('tar', ['-tzf', bundle]);
  expect(r.code).toBe(0);
  return r.stdout.split('\n').filter((l) => l !== '').sort();
}

async function tarRead(bundle: string, member: string): Promise<string> {
  const r = await exec('tar', ['-xzOf', bundle, member]);
  expect(r.code).toBe(0);
  return r.stdout;
}

interface BuildJson {
  bundle: string;
  revision: string;
  entrypoints: string[];
  size: number;
  signed: boolean;
  signingAlg: string | null;
  keyId: string | null;
  keyFingerprint: string | null;
}

describe('palisade policy keygen', () => {
  it.each([
    ['ecdsa-p256', 'ec', 'ES256'],
    ['ed25519', 'ed25519', 'EdDSA'],
  ] as const)('writes a %s PKCS#8 private key (0600) and its SPKI public key, a pair that signs and verifies', async (type, nodeType, alg) => {
    const dir = await tempDir();
    const key = join(dir, 'k.pem');
    const r = await cli(['keygen', '--out', key, '--type', type, '-o', 'json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const out = JSON.parse(r.stdout) as { privateKey: string; publicKey: string; type: string; signingAlg: string; fingerprint: string };
    expect(out).toMatchObject({ privateKey: key, publicKey: join(dir, 'k.pub.pem'), type, signingAlg: alg });
    expect(out.fingerprint).toMatch(/^SHA256:[0-9a-f]{16}$/);

    expect((await stat(key)).mode & 0o777).toBe(0o600);
    const privatePem = await readFile(key, 'utf8');
    const publicPem = await readFile(out.publicKey, 'utf8');
    expect(privatePem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(publicPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    const priv = createPrivateKey(privatePem);
    const pub = createPublicKey(publicPem);
    expect([priv.asymmetricKeyType, pub.asymmetricKeyType]).toEqual([nodeType, nodeType]);
    const hash = type === 'ed25519' ? null : 'sha256';
    const signature = sign(hash, Buffer.from('bundle'), priv);
    expect(verify(hash, Buffer.from('bundle'), pub, signature)).toBe(true);
  });

  it('never overwrites an existing key and leaves it as it was', async () => {
    const { key, pub } = await keygen();
    const before = [await readFile(key, 'utf8'), await readFile(pub, 'utf8')];
    const r = await cli(['keygen', '--out', key]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`palisade policy: ${key} already exists: keygen never overwrites a key\n`);
    expect([await readFile(key, 'utf8'), await readFile(pub, 'utf8')]).toEqual(before);
  });

  it.each([
    [['keygen'], '--out KEY.pem is required'],
    [['keygen', '--out', 'k.pem', '--type', 'rsa-3072'], '--type must be one of ecdsa-p256, ed25519, got "rsa-3072"'],
    [['keygen', '--out', 'k.pem', '--bogus'], "Unknown option '--bogus'"],
  ])('exits 2 on bad flags: %j', async (args, message) => {
    const dir = await tempDir();
    const r = await cli(args, process.env, dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });
});

describe('palisade policy build', () => {
  it('builds a signed wasm bundle that OPA itself verifies with the public key', async () => {
    const dir = await policyDir();
    const { key, pub } = await keygen();
    const bundle = join(await tempDir(), 'authz.tar.gz');
    const r = await cli(['build', dir, '-e', 'envoy/authz/allow', '--signing-key', key, '--revision', 'r-42', '--out', bundle, '-o', 'json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const out = JSON.parse(r.stdout) as BuildJson;
    expect(out).toMatchObject({ bundle, revision: 'r-42', entrypoints: ['envoy/authz/allow'], signed: true, signingAlg: 'ES256', keyId: 'default' });
    expect(out.size).toBe((await stat(bundle)).size);

    const members = await tarList(bundle);
    expect(members).toEqual(expect.arrayContaining(['/policy.wasm', '/.manifest', '/.signatures.json', '/data.json']));
    const manifest = JSON.parse(await tarRead(bundle, '/.manifest')) as { revision: string; wasm: Array<{ entrypoint: string; module: string }> };
    expect(manifest.revision).toBe('r-42');
    expect(manifest.wasm).toEqual([{ entrypoint: 'envoy/authz/allow', module: '/policy.wasm' }]);
    const wasm = await exec('tar', ['-xzOf', bundle, '/policy.wasm']);
    expect(wasm.stdout.slice(0, 4)).toBe('\0asm');

    // OPA's own bundle verification accepts it with the public key, and refuses another key.
    const check = join(await tempDir(), 'check.tar.gz');
    const ok = await exec(findOpa(), ['build', '-b', '--verification-key', pub, '--signing-alg', 'ES256', '-o', check, bundle]);
    expect([ok.code, ok.stderr]).toEqual([0, '']);
    const other = await keygen();
    const bad = await exec(findOpa(), ['build', '-b', '--verification-key', other.pub, '--signing-alg', 'ES256', '-o', check, bundle]);
    expect(bad.code).toBe(1);
    expect(bad.stdout + bad.stderr).toContain('failed to verify JWT signature');
  });

  it('signs with EdDSA for an Ed25519 key, and gives the same content-hash revision to the same sources', async () => {
    const dir = await policyDir();
    const ed = await keygen('ed25519');
    const ec = await keygen();
    const out = await tempDir();
    const a = await cli(['build', dir, '-e', 'envoy/authz/allow', '--signing-key', ed.key, '--out', join(out, 'a.tar.gz'), '-o', 'json']);
    const b = await cli(['build', dir, '-e', 'envoy/authz/allow', '--signing-key', ec.key, '--out', join(out, 'b.tar.gz'), '-o', 'json']);
    expect([a.code, a.stderr, b.code, b.stderr]).toEqual([0, '', 0, '']);
    const [ja, jb] = [JSON.parse(a.stdout) as BuildJson, JSON.parse(b.stdout) as BuildJson];
    expect(ja.signingAlg).toBe('EdDSA');
    expect(ja.revision).toMatch(/^[0-9a-f]{16}$/);
    expect(jb.revision).toBe(ja.revision);
    const manifest = JSON.parse(await tarRead(join(out, 'a.tar.gz'), '/.manifest')) as { revision: string };
    expect(manifest.revision).toBe(ja.revision);
    const ok = await exec(findOpa(), ['build', '-b', '--verification-key', ed.pub, '--signing-alg', 'EdDSA', '-o', join(out, 'check.tar.gz'), join(out, 'a.tar.gz')]);
    expect([ok.code, ok.stderr]).toEqual([0, '']);

    await writeFile(join(dir, 'authz.rego'), AUTHZ_REGO.replace('"GET"', '"POST"'));
    const c = await cli(['build', dir, '-e', 'envoy/authz/allow', '--signing-key', ec.key, '--out', join(out, 'c.tar.gz'), '-o', 'json']);
    expect(c.code).toBe(0);
    expect((JSON.parse(c.stdout) as BuildJson).revision).not.toBe(ja.revision);
  });

  it('prints the path, revision, entrypoints, size and key in table form', async () => {
    const dir = await policyDir();
    const { key } = await keygen();
    const cwd = await tempDir();
    const r = await cli(['build', dir, '-e', 'envoy/authz/allow', '--signing-key', key, '--revision', 'v7'], process.env, cwd);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const size = (await stat(join(cwd, 'bundle.tar.gz'))).size;
    expect(r.stdout).toMatch(
      new RegExp(
        `^bundle {7}${join(cwd, 'bundle.tar.gz')}\nrevision {5}v7\nentrypoints {2}envoy/authz/allow\nsize {9}${size} bytes\nsignature {4}ES256, keyid "default", key SHA256:[0-9a-f]{16}\nEnvoy: ext_authz \\(authz\\.rego:8: .startswith\\(input\\.parsed_path\\[0\\], "api"\\).: .*\\)\n$`,
      ),
    );
  });

  it('passes opa compile errors through, naming the file and line, and exits 1 without a bundle', async () => {
    const dir = await policyDir({ 'authz.rego': 'package envoy.authz\n\nallow if {\n  input.a ==\n}\n' });
    const { key } = await keygen();
    const bundle = join(await tempDir(), 'b.tar.gz');
    const r = await cli(['build', dir, '-e', 'envoy/authz/allow', '--signing-key', key, '--out', bundle]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('authz.rego:5: rego_parse_error: unexpected } token');
    expect(r.stderr).toContain(`palisade policy build: opa build failed (exit 1) in ${dir} (file names above are relative to it); no bundle written\n`);
    await expect(stat(bundle)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses to build without a signing key, saying why and how, unless --unsigned', async () => {
    const dir = await policyDir();
    const bundle = join(await tempDir(), 'b.tar.gz');
    const refused = await cli(['build', dir, '-e', 'envoy/authz/allow', '--out', bundle]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--signing-key KEY.pem is required: sidecars NACK an unsigned bundle (make a key with palisade policy keygen); pass --unsigned to build one anyway');
    await expect(stat(bundle)).rejects.toMatchObject({ code: 'ENOENT' });

    const r = await cli(['build', dir, '-e', 'envoy/authz/allow', '--unsigned', '--out', bundle, '-o', 'json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout)).toMatchObject({ signed: false, signingAlg: null, keyId: null });
    const members = await tarList(bundle);
    expect(members).toContain('/policy.wasm');
    expect(members).not.toContain('/.signatures.json');
  });

  it('serves a --data file as data.<name>', async () => {
    const dir = await policyDir({
      'authz.rego': 'package envoy.authz\n\ndefault allow := false\n\nallow if input.attributes.source.principal in data.callers.allowed\n',
    });
    const data = join(await tempDir(), 'callers.json');
    await writeFile(data, JSON.stringify({ allowed: ['spiffe://mesh.local/ns/shop/sa/web'] }));
    const bundle = join(await tempDir(), 'b.tar.gz');
    const r = await cli(['build', dir, '-e', 'envoy/authz/allow', '--unsigned', '--data', data, '--out', bundle]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(await tarRead(bundle, '/data.json'))).toEqual({
      callers: { allowed: ['spiffe://mesh.local/ns/shop/sa/web'] },
      // The Envoy analysis (docs/envoy-authz.md) rides along as data.palisade.
      palisade: { envoy_rbac: { 'envoy/authz/allow': { expressible: false, reason: expect.stringContaining('reads data (RBAC cannot see bundle data)') } } },
    });
  });

  it.each([
    [['build', '-e', 'envoy/authz/allow', '--unsigned'], 'build needs one policy directory, got none'],
    [['build', 'DIR', '--unsigned'], 'at least one -e/--entrypoint is required'],
    [['build', 'DIR', '-e', '/envoy/authz/allow', '--unsigned'], '-e/--entrypoint must be a slash-separated rule path'],
    [['build', 'DIR', '-e', 'envoy/authz/allow', '--unsigned', '--signing-key', 'k.pem'], '--unsigned and --signing-key exclude each other'],
    [['build', 'DIR', '-e', 'envoy/authz/allow', '--signing-key', 'k.pem', '--signing-alg', 'RS256'], '--signing-alg must be one of ES256, EdDSA, got "RS256"'],
    [['build', 'DIR', '-e', 'envoy/authz/allow', '--unsigned', '-o', 'yaml'], '-o/--output must be one of table, json, got "yaml"'],
    [['frobnicate'], 'unknown subcommand "frobnicate": use build, test, keygen, verify or inspect'],
  ])('exits 2 on bad flags: %j', async (args, message) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });

  it('exits 2 when --signing-alg does not fit the key', async () => {
    const dir = await policyDir();
    const { key } = await keygen('ed25519');
    const r = await cli(['build', dir, '-e', 'envoy/authz/allow', '--signing-key', key, '--signing-alg', 'ES256']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--signing-alg ES256 does not fit the key in ${key}, which signs EdDSA`);
  });

  it('refuses a signing key that is not a key, with exit 1', async () => {
    const dir = await policyDir();
    const key = join(await tempDir(), 'k.pem');
    await writeFile(key, 'not a key\n');
    const r = await cli(['build', dir, '-e', 'envoy/authz/allow', '--signing-key', key]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^palisade policy: ${key} is not an unencrypted PEM private key: `));
  });
});

describe('palisade policy test', () => {
  it('exits 0 and prints opa test report when every test passes', async () => {
    const dir = await policyDir({ 'authz.rego': AUTHZ_REGO, 'authz_test.rego': AUTHZ_TEST_REGO });
    const r = await cli(['test', dir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('PASS: 2/2');
    const verbose = await cli(['test', dir, '-v']);
    expect(verbose.code).toBe(0);
    expect(verbose.stdout).toContain('data.envoy.authz_test.test_web_may_get_api: PASS');
    expect(verbose.stdout).toContain('data.envoy.authz_test.test_others_denied: PASS');
  });

  it("exits with opa's non-zero code and names the failing test", async () => {
    const failing = AUTHZ_TEST_REGO.replace('test_others_denied if {\n  not authz.allow', 'test_others_denied if {\n  authz.allow');
    const dir = await policyDir({ 'authz.rego': AUTHZ_REGO, 'authz_test.rego': failing });
    const r = await cli(['test', dir]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toContain('data.envoy.authz_test.test_others_denied: FAIL');
    expect(r.stdout).toContain('FAIL: 1/2');
  });
});

describe('palisade policy without opa', () => {
  it.each([
    [['test', 'DIR']],
    [['build', 'DIR', '-e', 'envoy/authz/allow', '--unsigned']],
  ])('refuses %j with PAL_ERR_POLICY_OPA_NOT_FOUND and exit 1', async (args) => {
    const dir = await policyDir();
    const r = await cli(
      args.map((a) => (a === 'DIR' ? dir : a)),
      { ...process.env, PALISADE_OPA: '/nonexistent/opa' },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('palisade policy: PAL_ERR_POLICY_OPA_NOT_FOUND: PALISADE_OPA=/nonexistent/opa is not an executable file\n');
  });
});

describe('palisade policy verify and inspect', () => {
  async function signedBundle(type: 'ecdsa-p256' | 'ed25519' = 'ecdsa-p256') {
    const dir = await policyDir();
    const keys = await keygen(type);
    const bundle = join(await tempDir(), 'authz.tar.gz');
    const r = await cli(['build', dir, '-e', 'envoy/authz/allow', '--signing-key', keys.key, '--revision', 'rev-1', '--out', bundle]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    return { bundle, ...keys };
  }

  it.each(['ecdsa-p256', 'ed25519'] as const)('verifies a %s-signed bundle with the public key, as a sidecar would', async (type) => {
    const { bundle, pub } = await signedBundle(type);
    const r = await cli(['verify', bundle, '--verification-key', pub, '-o', 'json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout)).toMatchObject({ bundle, verified: true, revision: 'rev-1', keyId: 'default', algorithm: type === 'ed25519' ? 'EdDSA' : 'ES256' });
  });

  it('refuses another key, an unsigned bundle and a tampered one with PAL_ERR_POLICY_BUNDLE_SIGNATURE', async () => {
    const { bundle, pub } = await signedBundle();
    const other = await keygen();
    const wrongKey = await cli(['verify', bundle, '--verification-key', other.pub]);
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toMatch(/^palisade policy: PAL_ERR_POLICY_BUNDLE_SIGNATURE: signature does not verify with key "default" \(ES256\)/);

    const unsigned = join(await tempDir(), 'unsigned.tar.gz');
    expect((await cli(['build', await policyDir(), '-e', 'envoy/authz/allow', '--unsigned', '--out', unsigned])).code).toBe(0);
    const u = await cli(['verify', unsigned, '--verification-key', pub]);
    expect([u.code, u.stderr]).toEqual([1, 'palisade policy: PAL_ERR_POLICY_BUNDLE_SIGNATURE: bundle is unsigned (no .signatures.json) and verification keys are configured\n']);

    // Change data.json after signing and repack the same files with tar.
    const work = await tempDir();
    expect((await exec('tar', ['-xzf', bundle, '-C', work])).code).toBe(0);
    await writeFile(join(work, 'data.json'), '{"injected":true}');
    const tampered = join(await tempDir(), 'tampered.tar.gz');
    expect((await exec('tar', ['-czf', tampered, '-C', work, '.manifest', '.signatures.json', 'data.json', 'policy.wasm', 'authz.rego'])).code).toBe(0);
    const t = await cli(['verify', tampered, '--verification-key', pub]);
    expect(t.code).toBe(1);
    expect(t.stderr).toMatch(/^palisade policy: PAL_ERR_POLICY_BUNDLE_SIGNATURE: file data\.json: digest mismatch/);
  });

  it('shows the manifest, the files with sizes and who signed', async () => {
    const { bundle } = await signedBundle();
    const r = await cli(['inspect', bundle, '-o', 'json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const out = JSON.parse(r.stdout) as { revision: string; roots: string[]; wasm: unknown[]; files: Array<{ path: string; size: number }>; signed: boolean; signature: unknown };
    expect(out).toMatchObject({ revision: 'rev-1', roots: [''], wasm: [{ entrypoint: 'envoy/authz/allow', module: '/policy.wasm' }], signed: true, signature: { tokens: 1, algorithm: 'ES256', keyId: 'default' } });
    expect(out.files.map((f) => f.path).sort()).toEqual(['/.manifest', '/.signatures.json', '/authz.rego', '/data.json', '/policy.wasm']);
    expect(out.files.find((f) => f.path === '/data.json')!.size).toBe((await tarRead(bundle, '/data.json')).length);

    const table = await cli(['inspect', bundle]);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain('revision     rev-1\n');
    expect(table.stdout).toContain('entrypoints  envoy/authz/allow (/policy.wasm)\n');
    expect(table.stdout).toContain('signature    ES256, keyid "default" (not verified: use policy verify)\n');
  });

  it.each([
    [['verify', 'b.tar.gz'], '--verification-key PUB.pem is required'],
    [['verify', '--verification-key', 'k.pub.pem'], 'verify needs one bundle file, got none'],
    [['inspect'], 'inspect needs one bundle file, got none'],
  ])('exits 2 on bad flags: %j', async (args, message) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });

  it('refuses a file that is not a bundle with PAL_ERR_POLICY_BUNDLE_INVALID', async () => {
    const file = join(await tempDir(), 'not-a-bundle.tar.gz');
    await writeFile(file, 'hello');
    const r = await cli(['inspect', file]);
    expect([r.code, r.stderr]).toEqual([1, 'palisade policy: PAL_ERR_POLICY_BUNDLE_INVALID: bundle is not gzip-compressed\n']);
  });
});

describe('palisade policy build, default revision', () => {
  it('ignores a bundle written into the policy directory itself', async () => {
    const dir = await policyDir();
    const first = await cli(['build', '.', '-e', 'envoy/authz/allow', '--unsigned', '-o', 'json'], process.env, dir);
    const second = await cli(['build', '.', '-e', 'envoy/authz/allow', '--unsigned', '-o', 'json'], process.env, dir);
    expect([first.code, first.stderr, second.code, second.stderr]).toEqual([0, '', 0, '']);
    expect((JSON.parse(second.stdout) as BuildJson).revision).toBe((JSON.parse(first.stdout) as BuildJson).revision);
    expect(await tarList(join(dir, 'bundle.tar.gz'))).toEqual(['/.manifest', '/authz.rego', '/data.json', '/policy.wasm']);
  });
});
