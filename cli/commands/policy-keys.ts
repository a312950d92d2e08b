/**
 * Bundle signing keys for `palisade policy`: `keygen` writes the pair operators sign with
 * (`build --signing-key`) and sidecars verify with; `signingKey` reads a private key and
 * says which JWS algorithm OPA signs with for it.
 *
 * | --type       | private key (PKCS#8 PEM) | JWS alg |
 * |--------------|--------------------------|---------|
 * | `ecdsa-p256` | EC, P-256 (default)      | ES256   |
 * | `ed25519`    | Ed25519                  | EdDSA   |
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { open, readFile, unlink } from 'node:fs/promises';
import { resolve } from 'node:path';
import { checkOutput, UsageError } from '../args.ts';
import { parseCommand } from './policy-opa.ts';

export const POLICY_KEY_TYPES = ['ecdsa-p256', 'ed25519'] as const;
export type PolicyKeyType = (typeof POLICY_KEY_TYPES)[number];
export const SIGNING_ALGS = ['ES256', 'EdDSA'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

const ALG_OF_TYPE: Record<PolicyKeyType, SigningAlg> = { 'ecdsa-p256': 'ES256', ed25519: 'EdDSA' };

export const keygenHelp = `  keygen --out KEY.pem [--type ecdsa-p256|ed25519]
                     make a bundle signing key pair: KEY.pem, the PKCS#8 private key (mode 0600),
                     for build --signing-key, and KEY.pub.pem, the SPKI public key sidecars verify
                     bundles with. Never overwrites either file.
`;

export const keygenFlagsHelp = `  --out FILE                 build: the bundle to write (default bundle.tar.gz); keygen: the private key
                             to write, the public key going next to it as FILE minus .pem + .pub.pem
  --type TYPE                ${POLICY_KEY_TYPES.join(', ')} (keygen)   (default ecdsa-p256)
`;

/** `SHA256:<first 16 hex digits>` of the public key's SPKI DER: a short name for a key pair. */
export function keyFingerprint(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return `SHA256:${createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16)}`;
}

/** The JWS algorithm OPA signs with for `key`, or null for a key type bundles are not signed with. */
export function algorithmOfKey(key: KeyObject): SigningAlg | null {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  return null;
}

/** Reads a PEM private key; throws (exit 1) naming the file when it is unreadable, encrypted or not a key. */
export async function readSigningKey(file: string): Promise<KeyObject> {
  let pem: Buffer;
  try {
    pem = await readFile(file);
  } catch (err) {
    throw new Error(`cannot read signing key ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new Error(`${file} is not an unencrypted PEM private key: ${(err as Error).message}`, { cause: err });
  }
}

/** `key.pem` → `key.pub.pem`; any other name gets `.pub.pem` appended. */
export function publicKeyPath(privatePath: string): string {
  return privatePath.endsWith('.pem') ? `${privatePath.slice(0, -'.pem'.length)}.pub.pem` : `${privatePath}.pub.pem`;
}

async function writeNew(file: string, data: string, mode: number): Promise<void> {
  let fh;
  try {
    fh = await open(file, 'wx', mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new Error(`${file} already exists: keygen never overwrites a key`, { cause: err });
    throw new Error(`cannot create ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    await fh.chmod(mode);
    await fh.writeFile(data);
  } finally {
    await fh.close();
  }
}

/** `palisade policy keygen`. */
export async function keygen(argv: string[]): Promise<number> {
  const { values: flags, positionals } = parseCommand(argv, {
    out: { type: 'string' },
    type: { type: 'string', default: 'ecdsa-p256' },
    output: { type: 'string', short: 'o', default: 'table' },
  });
  const output = checkOutput(flags.output);
  if (positionals.length > 0) throw new UsageError(`keygen takes no arguments, got ${JSON.stringify(positionals.join(' '))}`);
  if (flags.out === undefined || flags.out === '') throw new UsageError('--out KEY.pem is required');
  const type = flags.type;
  if (!(POLICY_KEY_TYPES as readonly string[]).includes(type)) throw new UsageError(`--type must be one of ${POLICY_KEY_TYPES.join(', ')}, got ${JSON.stringify(type)}`);
  const keyType = type as PolicyKeyType;
  const privatePath = resolve(flags.out);
  const pubPath = publicKeyPath(privatePath);

  const pair = keyType === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const privatePem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const publicPem = pair.publicKey.export({ type: 'spki', format: 'pem' }) as string;

  await writeNew(privatePath, privatePem, 0o600);
  try {
    await writeNew(pubPath, publicPem, 0o644);
  } catch (err) {
    await unlink(privatePath);
    throw err;
  }
  const result = { privateKey: privatePath, publicKey: pubPath, type: keyType, signingAlg: ALG_OF_TYPE[keyType], fingerprint: keyFingerprint(pair.publicKey) };
  if (output === 'json') process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    process.stdout.write(
      `private key  ${result.privateKey} (mode 0600: keep it where bundles are built)\n` +
        `public key   ${result.publicKey} (give it to the sidecars that verify bundles)\n` +
        `type         ${result.type}, signs ${result.signingAlg}\n` +
        `fingerprint  ${result.fingerprint}\n`,
    );
  }
  return 0;
}
