import { describe, expect, it } from 'vitest';
import { createPrivateKey, generateKeyPairSync, sign, verify, createPublicKey } from 'node:crypto';
import {
  DEFAULT_KEY_TYPE,
  KEY_TYPES,
  exportPrivateKeyPem,
  exportPublicKeyPem,
  generateKeyPair,
  importPrivateKeyPem,
  keyTypeOf,
  signingAlgorithm,
} from '../../certs/keys.ts';
import { webcrypto } from '../../certs/x509.ts';

describe('keys', () => {
  it('defaults to ECDSA P-256', () => {
    expect(DEFAULT_KEY_TYPE).toBe('ecdsa-p256');
    expect(KEY_TYPES).toEqual(['ecdsa-p256', 'ed25519', 'rsa-3072']);
  });

  it.each([
    ['ecdsa-p256', 'ec', { namedCurve: 'prime256v1' }],
    ['ed25519', 'ed25519', {}],
    ['rsa-3072', 'rsa', { modulusLength: 3072, publicExponent: 65537n }],
  ] as const)('generates %s keys that export to PEM PKCS#8 and import back', async (type, nodeType, details) => {
    const pair = await generateKeyPair(type);
    expect(pair.type).toBe(type);
    expect(keyTypeOf(pair.privateKey)).toBe(type);
    const pem = await exportPrivateKeyPem(pair.privateKey);
    expect(pem.startsWith('-----BEGIN PRIVATE KEY-----\n')).toBe(true);
    expect(pem.endsWith('-----END PRIVATE KEY-----\n')).toBe(true);
    const nodeKey = createPrivateKey(pem);
    expect(nodeKey.asymmetricKeyType).toBe(nodeType);
    expect(nodeKey.asymmetricKeyDetails).toMatchObject(details);

    const back = await importPrivateKeyPem(pem);
    expect(back.type).toBe(type);
    expect(await exportPrivateKeyPem(back.privateKey)).toBe(pem);
    expect(await exportPublicKeyPem(back.publicKey)).toBe(await exportPublicKeyPem(pair.publicKey));

    // A signature made with the imported key verifies with the original public key.
    const data = new TextEncoder().encode('palisade');
    const sig = await webcrypto.subtle.sign(signingAlgorithm(type), back.privateKey, data);
    expect(await webcrypto.subtle.verify(signingAlgorithm(type), pair.publicKey, sig, data)).toBe(true);
  });

  it('uses ECDSA/SHA-256, Ed25519 and RSASSA-PKCS1-v1_5/SHA-256 signatures', () => {
    expect(signingAlgorithm('ecdsa-p256')).toEqual({ name: 'ECDSA', hash: 'SHA-256' });
    expect(signingAlgorithm('ed25519')).toEqual({ name: 'Ed25519' });
    expect(signingAlgorithm('rsa-3072')).toEqual({ name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' });
  });

  it('signs RSA with PKCS#1 v1.5 so node:crypto verifies it with the default padding', async () => {
    const pair = await generateKeyPair('rsa-3072');
    const data = Buffer.from('x');
    const sig = Buffer.from(await webcrypto.subtle.sign(signingAlgorithm('rsa-3072'), pair.privateKey, data));
    expect(verify('sha256', data, createPublicKey(await exportPublicKeyPem(pair.publicKey)), sig)).toBe(true);
  });

  it.each([
    ['an EC P-384 key', generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey, 'EC curve secp384r1 is not supported (want P-256)'],
    ['an RSA-2048 key', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, 'RSA modulus of 2048 bits is not supported (want 3072)'],
    ['an Ed448 key', generateKeyPairSync('ed448').privateKey, 'key type ed448 is not supported (want ecdsa-p256, ed25519, rsa-3072)'],
  ])('refuses to import %s with PAL_ERR_CERTS_INVALID_KEY', async (_what, key, message) => {
    const pem = key.export({ format: 'pem', type: 'pkcs8' }) as string;
    await expect(importPrivateKeyPem(pem)).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_INVALID_KEY', message });
  });

  it('refuses an unknown key type with PAL_ERR_CERTS_INVALID_OPTION', async () => {
    await expect(generateKeyPair('rsa-1024' as never)).rejects.toMatchObject({
      code: 'PAL_ERR_CERTS_INVALID_OPTION',
      message: 'keyType must be one of ecdsa-p256, ed25519, rsa-3072, got "rsa-1024"',
    });
  });

  it('refuses a malformed PEM with PAL_ERR_CERTS_INVALID_KEY', async () => {
    await expect(importPrivateKeyPem('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')).rejects.toMatchObject({
      code: 'PAL_ERR_CERTS_INVALID_KEY',
      message: 'private key is not a valid PKCS#8 key',
    });
  });

  it('node:crypto signatures agree with the imported key (Ed25519)', async () => {
    const pair = await generateKeyPair('ed25519');
    const pem = await exportPrivateKeyPem(pair.privateKey);
    const sig = sign(null, Buffer.from('m'), createPrivateKey(pem));
    expect(await webcrypto.subtle.verify({ name: 'Ed25519' }, pair.publicKey, sig, Buffer.from('m'))).toBe(true);
  });
});
