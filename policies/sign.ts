/**
 * Signs an OPA bundle the way `opa build --signing-key` does, for bundles Palisade packs
 * itself (the demo's prebuilt policy, signed with a key made at start): a JWS compact token,
 * header {alg, kid, typ: "JWT"}, payload {files: [{name, hash, algorithm: "SHA-256"}], keyid}
 * over every file but /.signatures.json, hashed as OPA hashes them (bundle-hash.ts), written
 * as /.signatures.json {"signatures": [token]}. OPA's verifier and verifyBundle accept it.
 */
import { createPrivateKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { readBundle } from './bundle.ts';
import { bundleFileDigest } from './bundle-hash.ts';
import { PolicyInvalidOptionError } from './errors.ts';
import { algorithmOf, jwsAlgorithmParams, jwsKey } from './signature.ts';
import { writeTarGz } from './tar-writer.ts';

const SIGNATURES = '/.signatures.json';


/** The bundle with a fresh /.signatures.json (any previous one replaced). `keyId` defaults to OPA's "default". */
export function signBundle(bundleBytes: Uint8Array, privateKeyPem: string, options: { keyId?: string } = {}): Uint8Array {
  let key: KeyObject;
  try {
    key = createPrivateKey(privateKeyPem);
  } catch (cause) {
    throw new PolicyInvalidOptionError(`the signing key is not a PEM private key: ${(cause as Error).message}`, { cause });
  }
  const alg = algorithmOf(key);
  if (alg === null) throw new PolicyInvalidOptionError(`cannot sign with a ${key.asymmetricKeyType ?? 'unknown'} key; use an EC P-256 or Ed25519 key`);
  const keyId = options.keyId ?? 'default';
  const bundle = readBundle(bundleBytes);
  const files = [...bundle.files].filter(([name]) => name !== SIGNATURES);
  const payload = {
    files: files.map(([name, bytes]) => ({ name: name.slice(1), hash: bundleFileDigest(name.slice(1), bytes, 'sha256'), algorithm: 'SHA-256' })),
    keyid: keyId,
  };
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const signingInput = `${b64({ alg, kid: keyId, typ: 'JWT' })}.${b64(payload)}`;
  const signature = cryptoSign(jwsAlgorithmParams(alg).digest, Buffer.from(signingInput), jwsKey(alg, key));
  const token = `${signingInput}.${signature.toString('base64url')}`;
  return writeTarGz([
    ...files.map(([name, data]) => ({ name, data })),
    { name: SIGNATURES, data: Buffer.from(JSON.stringify({ signatures: [token] })) },
  ]);
}
