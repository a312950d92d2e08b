/**
 * Key pairs for the CA and for workloads, as WebCrypto keys.
 *
 * | key type     | WebCrypto key                         | signature                          |
 * |--------------|---------------------------------------|------------------------------------|
 * | `ecdsa-p256` | ECDSA, namedCurve P-256 (default)     | ECDSA with SHA-256                 |
 * | `ed25519`    | Ed25519                               | Ed25519 (pure, no pre-hash)        |
 * | `rsa-3072`   | RSASSA-PKCS1-v1_5, 3072 bits, e=65537 | RSASSA-PKCS1-v1_5 with SHA-256     |
 *
 * RSA uses PKCS#1 v1.5 rather than PSS: it is what every TLS stack and `openssl verify`
 * accept for certificate signatures without parameters to negotiate.
 * Private keys move in and out as PEM PKCS#8 (`-----BEGIN PRIVATE KEY-----`).
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { webcrypto, type Algorithm, type CryptoKey, type CryptoKeyPair, type EcdsaParams, type EcKeyImportParams, type RsaHashedImportParams, type RsaHashedKeyGenParams } from './x509.ts';
import { CertsInvalidOptionError, InvalidKeyError } from './errors.ts';

/** Key types Palisade generates and accepts. */
export const KEY_TYPES = ['ecdsa-p256', 'ed25519', 'rsa-3072'] as const;
export type KeyType = (typeof KEY_TYPES)[number];
/** The default key type. */
export const DEFAULT_KEY_TYPE: KeyType = 'ecdsa-p256';

/** A key pair together with its type. */
export interface KeyPair {
  readonly type: KeyType;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}

const RSA_ALGORITHM = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;

/** True when `value` names a supported key type. */
export function isKeyType(value: unknown): value is KeyType {
  return typeof value === 'string' && (KEY_TYPES as readonly string[]).includes(value);
}

/** The WebCrypto algorithm used to generate and import keys of `type`. */
export function keyAlgorithm(type: KeyType): EcKeyImportParams | RsaHashedImportParams | Algorithm {
  switch (type) {
    case 'ecdsa-p256':
      return { name: 'ECDSA', namedCurve: 'P-256' };
    case 'ed25519':
      return { name: 'Ed25519' };
    case 'rsa-3072':
      return RSA_ALGORITHM;
  }
}

/** The signature algorithm used by a key of `type` (for `@peculiar/x509` and WebCrypto `sign`). */
export function signingAlgorithm(type: KeyType): Algorithm | EcdsaParams {
  switch (type) {
    case 'ecdsa-p256':
      return { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams;
    case 'ed25519':
      return { name: 'Ed25519' };
    case 'rsa-3072':
      return RSA_ALGORITHM as Algorithm;
  }
}

/** Generates a fresh key pair. The private key is extractable so it can be exported as PEM or stored in a keyring. */
export async function generateKeyPair(type: KeyType = DEFAULT_KEY_TYPE): Promise<KeyPair> {
  if (!isKeyType(type)) throw new CertsInvalidOptionError(`keyType must be one of ${KEY_TYPES.join(', ')}, got ${JSON.stringify(type)}`);
  const params =
    type === 'rsa-3072'
      ? { ...RSA_ALGORITHM, modulusLength: 3072, publicExponent: new Uint8Array([1, 0, 1]) }
      : keyAlgorithm(type);
  const pair = (await webcrypto.subtle.generateKey(params as RsaHashedKeyGenParams, true, ['sign', 'verify'])) as CryptoKeyPair;
  return Object.freeze({ type, privateKey: pair.privateKey, publicKey: pair.publicKey });
}

/** The key type of a node `KeyObject` (public or private), or the reason it is not one Palisade uses. */
export function keyTypeOfKeyObject(key: KeyObject): { type: KeyType } | { error: string } {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec':
      return details.namedCurve === 'prime256v1' ? { type: 'ecdsa-p256' } : { error: `EC curve ${details.namedCurve ?? '?'} is not supported (want P-256)` };
    case 'ed25519':
      return { type: 'ed25519' };
    case 'rsa':
      return details.modulusLength === 3072 ? { type: 'rsa-3072' } : { error: `RSA modulus of ${details.modulusLength ?? '?'} bits is not supported (want 3072)` };
    default:
      return { error: `key type ${key.asymmetricKeyType ?? '?'} is not supported (want ${KEY_TYPES.join(', ')})` };
  }
}

/** The key type of a WebCrypto key. */
export function keyTypeOf(key: CryptoKey): KeyType {
  const alg = key.algorithm as Algorithm & { namedCurve?: string; modulusLength?: number };
  if (alg.name === 'ECDSA' && alg.namedCurve === 'P-256') return 'ecdsa-p256';
  if (alg.name === 'Ed25519') return 'ed25519';
  if (alg.name === 'RSASSA-PKCS1-v1_5' && alg.modulusLength === 3072) return 'rsa-3072';
  throw new InvalidKeyError(`unsupported key algorithm ${JSON.stringify(key.algorithm)}`);
}

/** Exports a private key as PEM PKCS#8. */
export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return toPem('PRIVATE KEY', der);
}

/** Exports a public key as PEM SPKI. */
export async function exportPublicKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('spki', key));
  return toPem('PUBLIC KEY', der);
}

/** Imports a PKCS#8 private key (PEM or DER) and derives its public key; throws `PAL_ERR_CERTS_INVALID_KEY` when malformed or unsupported. */
export async function importPrivateKey(pkcs8: string | Uint8Array): Promise<KeyPair> {
  let keyObject: KeyObject;
  try {
    keyObject =
      typeof pkcs8 === 'string'
        ? createPrivateKey({ key: pkcs8, format: 'pem' })
        : createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
  } catch (cause) {
    throw new InvalidKeyError('private key is not a valid PKCS#8 key', { cause });
  }
  const kind = keyTypeOfKeyObject(keyObject);
  if ('error' in kind) throw new InvalidKeyError(kind.error);
  const algorithm = keyAlgorithm(kind.type);
  const der = keyObject.export({ format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(keyObject).export({ format: 'der', type: 'spki' });
  const privateKey = await webcrypto.subtle.importKey('pkcs8', der, algorithm, true, ['sign']);
  const publicKey = await webcrypto.subtle.importKey('spki', spki, algorithm, true, ['verify']);
  return Object.freeze({ type: kind.type, privateKey, publicKey });
}

/** Imports a PEM PKCS#8 private key; see {@link importPrivateKey}. */
export function importPrivateKeyPem(pem: string): Promise<KeyPair> {
  return importPrivateKey(pem);
}

function toPem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}
