import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBundle } from '../../policies/bundle.ts';
import { importVerificationKeys, verifyBundle, type VerificationKeys } from '../../policies/signature.ts';
import { cleanup, flipByte, keyPair, opaBuild, rewrite, text, type KeyMaterial } from './support.ts';

const REGO = `package envoy.authz
default allow := false
allow if data.roles[input.attributes.source.principal][_] == input.attributes.request.http.method
`;
// Data that exercises OPA's canonical JSON digest: number literals, key order, HTML and line-separator characters.
const DATA = '{"roles": {"spiffe://example.org/ns/a/sa/web": ["GET"]}, "z": 1.0, "a": [1e2, -0, 0.5], "s": "<&> \\u2028 é 😀"}';

let es: KeyMaterial;
let ed: KeyMaterial;
let esBundle: Uint8Array;
let edBundle: Uint8Array;
let esKeys: VerificationKeys;

async function expectRefused(bundle: Uint8Array, keys: VerificationKeys, reason: RegExp): Promise<void> {
  const err = await verifyBundle(readBundle(bundle), keys).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toMatchObject({ code: 'PAL_ERR_POLICY_BUNDLE_SIGNATURE' });
  expect((err as Error).message).toMatch(reason);
}

function replaceText(bundle: Uint8Array, name: string, from: string, to: string): Uint8Array {
  return rewrite(bundle, (files) =>
    files.map((f) => {
      if (f.name !== name) return f;
      const s = new TextDecoder().decode(f.data);
      expect(s).toContain(from);
      return { ...f, data: text(s.replace(from, to)) };
    }),
  );
}

beforeAll(async () => {
  es = keyPair('ec');
  ed = keyPair('ed25519');
  const files = { 'authz.rego': REGO, 'data.json': DATA };
  [esBundle, edBundle] = await Promise.all([
    opaBuild(files, { entrypoints: ['envoy/authz/allow'], signingAlg: 'ES256', signingKey: es, revision: 'r1' }),
    opaBuild(files, { entrypoints: ['envoy/authz/allow'], signingAlg: 'EdDSA', signingKey: ed, revision: 'r1' }),
  ]);
  esKeys = await importVerificationKeys({ keys: { default: { key: es.publicPem, algorithm: 'ES256' } } });
}, 60_000);

afterAll(cleanup);

describe('verifyBundle', () => {
  it('accepts an ES256 bundle signed by opa build', async () => {
    await expect(verifyBundle(readBundle(esBundle), esKeys)).resolves.toBeUndefined();
  });

  it('accepts an EdDSA (Ed25519) bundle signed by opa build', async () => {
    const keys = await importVerificationKeys({ keys: { default: { key: ed.publicPem, algorithm: 'EdDSA' } } });
    await expect(verifyBundle(readBundle(edBundle), keys)).resolves.toBeUndefined();
  });

  it('accepts a key given as a JWK', async () => {
    const { createPublicKey } = await import('node:crypto');
    const jwk = createPublicKey(es.publicPem).export({ format: 'jwk' });
    const keys = await importVerificationKeys({ keys: { default: { key: jwk, algorithm: 'ES256' } } });
    await expect(verifyBundle(readBundle(esBundle), keys)).resolves.toBeUndefined();
  });

  it('accepts data.json re-indented (OPA hashes structured files canonically)', async () => {
    const reindented = rewrite(esBundle, (files) =>
      files.map((f) => (f.name === '/data.json' ? { ...f, data: text(JSON.stringify(JSON.parse(new TextDecoder().decode(f.data)), null, 2)) } : f)),
    );
    // JSON.parse would turn 1.0 into 1; keep the literal as OPA does by re-indenting textually instead.
    const textual = rewrite(esBundle, (files) =>
      files.map((f) => (f.name === '/data.json' ? { ...f, data: text(`\n ${new TextDecoder().decode(f.data).replaceAll(',', ' ,\n ')}\n`) } : f)),
    );
    await expect(verifyBundle(readBundle(textual), esKeys)).resolves.toBeUndefined();
    await expectRefused(reindented, esKeys, /file data\.json: digest mismatch/);
  });

  it.each([
    ['policy.wasm', (b: Uint8Array) => flipByte(b, '/policy.wasm'), /file policy\.wasm: digest mismatch/],
    ['data.json', (b: Uint8Array) => replaceText(b, '/data.json', '["GET"]', '["PUT"]'), /file data\.json: digest mismatch/],
    ['.manifest', (b: Uint8Array) => replaceText(b, '/.manifest', '"revision":"r1"', '"revision":"r2"'), /file \.manifest: digest mismatch/],
    ['the Rego source', (b: Uint8Array) => flipByte(b, '/src/authz.rego', 0), /file src\/authz\.rego: digest mismatch/],
  ])('refuses a bundle whose %s was changed, naming the file', async (_what, tamper, reason) => {
    await expectRefused(tamper(esBundle), esKeys, reason);
  });

  it('refuses a bundle with a file added', async () => {
    const added = rewrite(esBundle, (files) => [...files, { name: '/extra.rego', data: text('package extra\n') }]);
    await expectRefused(added, esKeys, /^file extra\.rego is not signed$/);
  });

  it('refuses a bundle with a signed file removed', async () => {
    const removed = rewrite(esBundle, (files) => files.filter((f) => f.name !== '/src/authz.rego'));
    await expectRefused(removed, esKeys, /^signed file\(s\) missing from the bundle: src\/authz\.rego$/);
  });

  it('refuses a bundle signed by another key', async () => {
    const other = await importVerificationKeys({ keys: { default: { key: keyPair('ec').publicPem, algorithm: 'ES256' } } });
    await expectRefused(esBundle, other, /signature does not verify with key "default" \(ES256\)/);
  });

  it('refuses a token whose algorithm is not the key\'s', async () => {
    const keys = await importVerificationKeys({ keys: { default: { key: ed.publicPem, algorithm: 'EdDSA' } } });
    await expectRefused(esBundle, keys, /signature does not verify with key "default" \(EdDSA\)/);
  });

  it('refuses an unknown key id', async () => {
    const keys = await importVerificationKeys({ keys: { prod: { key: es.publicPem, algorithm: 'ES256' } }, defaultKeyId: 'prod' });
    await expectRefused(esBundle, keys, /key id "default" is not a configured verification key/);
  });

  it('refuses an unsigned bundle when keys are configured', async () => {
    const unsigned = await opaBuild({ 'authz.rego': REGO }, { entrypoints: ['envoy/authz/allow'] });
    expect(readBundle(unsigned).signatures).toBeNull();
    await expectRefused(unsigned, esKeys, /bundle is unsigned/);
  });

  it('refuses a signature with a scope other than the configured one', async () => {
    const keys = await importVerificationKeys({ keys: { default: { key: es.publicPem, algorithm: 'ES256' } }, scope: 'write' });
    await expectRefused(esBundle, keys, /scope "" does not match the expected "write"/);
  });

  it('refuses .signatures.json with two tokens', async () => {
    const two = rewrite(esBundle, (files) =>
      files.map((f) => {
        if (f.name !== '/.signatures.json') return f;
        const t = (JSON.parse(new TextDecoder().decode(f.data)) as { signatures: string[] }).signatures[0]!;
        return { ...f, data: text(JSON.stringify({ signatures: [t, t] })) };
      }),
    );
    await expectRefused(two, esKeys, /exactly one token, got 2/);
  });
});

describe('importVerificationKeys', () => {
  it.each([
    [{ keys: {} }, /keys must hold at least one key/],
    [{ keys: { a: { key: 'not a pem', algorithm: 'ES256' as const } } }, /keys\.a\.key is not a ES256 public key/],
    [{ keys: { a: { key: 'x', algorithm: 'HS256' as never } } }, /keys\.a\.algorithm must be one of/],
  ])('refuses %j', async (config, reason) => {
    await expect(importVerificationKeys(config)).rejects.toMatchObject({ code: 'PAL_ERR_POLICY_INVALID_OPTION', message: expect.stringMatching(reason) });
  });

  it('refuses a default key id that is not in the set', async () => {
    await expect(importVerificationKeys({ keys: { a: { key: es.publicPem, algorithm: 'ES256' } }, defaultKeyId: 'b' })).rejects.toMatchObject({
      code: 'PAL_ERR_POLICY_INVALID_OPTION',
    });
  });
});
