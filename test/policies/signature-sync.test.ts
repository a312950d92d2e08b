/**
 * verifyBundleSync (node:crypto, for the sidecar's xDS validator, which decides ACK or NACK
 * synchronously) against bundles signed by the real opa: it accepts what verifyBundle
 * accepts and refuses with the same reasons.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBundle } from '../../policies/bundle.ts';
import { importVerificationKeys, syncVerificationKeys, verifyBundle, verifyBundleSync, type SyncVerificationKeys } from '../../policies/signature.ts';
import { cleanup, flipByte, keyPair, opaBuild, rewrite, type KeyMaterial } from './support.ts';

const REGO = 'package envoy.authz\ndefault allow := false\nallow if input.attributes.request.http.method == "GET"\n';

let es: KeyMaterial;
let ed: KeyMaterial;
let esBundle: Uint8Array;
let edBundle: Uint8Array;
let unsigned: Uint8Array;
let esKeys: SyncVerificationKeys;

function refusal(bundle: Uint8Array, keys: SyncVerificationKeys): string {
  try {
    verifyBundleSync(readBundle(bundle), keys);
  } catch (err) {
    expect(err).toMatchObject({ code: 'PAL_ERR_POLICY_BUNDLE_SIGNATURE' });
    return (err as Error).message;
  }
  throw new Error('the bundle was accepted');
}

beforeAll(async () => {
  es = keyPair('ec');
  ed = keyPair('ed25519');
  const files = { 'authz.rego': REGO };
  [esBundle, edBundle, unsigned] = await Promise.all([
    opaBuild(files, { entrypoints: ['envoy/authz/allow'], signingAlg: 'ES256', signingKey: es, revision: 'r1' }),
    opaBuild(files, { entrypoints: ['envoy/authz/allow'], signingAlg: 'EdDSA', signingKey: ed, revision: 'r1' }),
    opaBuild(files, { entrypoints: ['envoy/authz/allow'], revision: 'r1' }),
  ]);
  esKeys = syncVerificationKeys({ keys: { default: { pem: es.publicPem } } });
}, 60_000);

afterAll(cleanup);

describe('verifyBundleSync', () => {
  it('accepts ES256 and EdDSA bundles signed by opa build, the algorithm taken from the key', () => {
    expect(() => verifyBundleSync(readBundle(esBundle), esKeys)).not.toThrow();
    expect(() => verifyBundleSync(readBundle(edBundle), syncVerificationKeys({ keys: { default: { pem: ed.publicPem } } }))).not.toThrow();
    expect(esKeys.keys.get('default')!.algorithm).toBe('ES256');
  });

  it('refuses what verifyBundle refuses, with the same reason', async () => {
    const asyncKeys = await importVerificationKeys({ keys: { default: { key: es.publicPem, algorithm: 'ES256' } } });
    const cases: Array<[Uint8Array, RegExp]> = [
      [flipByte(esBundle, '/policy.wasm'), /file policy\.wasm: digest mismatch/],
      [rewrite(esBundle, (f) => [...f, { name: '/extra.json', data: new TextEncoder().encode('{}') }]), /file extra\.json is not signed/],
      [rewrite(esBundle, (f) => f.filter((x) => x.name !== '/data.json')), /signed file\(s\) missing from the bundle: data\.json/],
      [unsigned, /bundle is unsigned/],
    ];
    for (const [bundle, reason] of cases) {
      const sync = refusal(bundle, esKeys);
      expect(sync).toMatch(reason);
      const asyncMessage = await verifyBundle(readBundle(bundle), asyncKeys).then(() => 'accepted', (e: Error) => e.message);
      expect(asyncMessage).toBe(sync);
    }
  });

  it('refuses a bundle signed by another key, and an algorithm that is not the key\'s', () => {
    expect(refusal(edBundle, esKeys)).toMatch(/signature algorithm "EdDSA" is not the key's ES256/);
    const otherEc = syncVerificationKeys({ keys: { default: { pem: keyPair('ec').publicPem } } });
    expect(refusal(esBundle, otherEc)).toMatch(/signature does not verify with key "default" \(ES256\)/);
    expect(refusal(esBundle, syncVerificationKeys({ keys: { other: { pem: es.publicPem } } }))).toMatch(/key id "default" is not a configured verification key/);
  });

  it('refuses a key that is not a public key', () => {
    expect(() => syncVerificationKeys({ keys: { default: { pem: 'not a key' } } })).toThrow(/keys\.default is not a PEM public key/);
  });
});
