/**
 * signBundle: Palisade signs a bundle exactly as `opa build --signing-key` does, so both its
 * own verifier and OPA's (`opa build -b BUNDLE --verification-key`) accept it, and refuse it
 * under another key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readBundle } from '../../policies/bundle.ts';
import { findOpa } from '../../policies/opa-binary.ts';
import { signBundle } from '../../policies/sign.ts';
import { syncVerificationKeys, verifyBundleSync } from '../../policies/signature.ts';
import { cleanup, keyPair, opaBuild, tempDir } from './support.ts';

const run = promisify(execFile);
let unsigned: Uint8Array;

/** OPA's own verification of a bundle file with a public key: true when it accepts it. */
async function opaAccepts(bundle: Uint8Array, publicPem: string, alg: string): Promise<boolean> {
  const dir = await tempDir('opa-verify');
  await writeFile(join(dir, 'b.tar.gz'), bundle);
  await writeFile(join(dir, 'pub.pem'), publicPem);
  return run(findOpa(), ['build', '-b', 'b.tar.gz', '--verification-key', 'pub.pem', '--signing-alg', alg, '-o', 'out.tar.gz'], { cwd: dir }).then(() => true, () => false);
}

beforeAll(async () => {
  unsigned = await opaBuild({ 'authz.rego': 'package envoy.authz\n\ndefault allow := false\n\nallow if input.x == 1\n', 'data.json': '{"roles": {"a": [1.0]}}' }, { entrypoints: ['envoy/authz/allow'], revision: 'r9' });
}, 60_000);

afterAll(cleanup);

describe('signBundle', () => {
  it.each([['ec', 'ES256'], ['ed25519', 'EdDSA']] as const)('signs with a %s key as opa does: OPA and Palisade verify it', async (type, alg) => {
    const key = keyPair(type);
    const signed = signBundle(unsigned, key.privatePem);
    const bundle = readBundle(signed);
    expect(bundle.revision).toBe('r9');
    expect([...bundle.files.keys()].sort()).toEqual([...readBundle(unsigned).files.keys(), '/.signatures.json'].sort());
    expect(() => verifyBundleSync(bundle, syncVerificationKeys({ keys: { default: { pem: key.publicPem } } }))).not.toThrow();
    expect(await opaAccepts(signed, key.publicPem, alg)).toBe(true);
    expect(await opaAccepts(signed, keyPair(type).publicPem, alg)).toBe(false);
  });

  it('replaces an existing signature', () => {
    const a = keyPair('ec');
    const b = keyPair('ec');
    const twice = signBundle(signBundle(unsigned, a.privatePem), b.privatePem);
    expect(readBundle(twice).signatures).toHaveLength(1);
    expect(() => verifyBundleSync(readBundle(twice), syncVerificationKeys({ keys: { default: { pem: b.publicPem } } }))).not.toThrow();
    expect(() => verifyBundleSync(readBundle(twice), syncVerificationKeys({ keys: { default: { pem: a.publicPem } } }))).toThrow(/does not verify/);
  });

  it('refuses a key it cannot sign with', () => {
    expect(() => signBundle(unsigned, 'nope')).toThrow(/not a PEM private key/);
  });
});
