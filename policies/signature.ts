/**
 * Verifies an OPA bundle signature the way OPA does (v1/bundle/verify.go, "Bundle signing"
 * in the OPA docs). `.signatures.json` = `{"signatures": ["<JWS compact>"]}`, exactly one
 * token, whose payload is `{files: [{name, hash, algorithm}], keyid?, scope?}`:
 *
 * - the key is chosen by the JWS header `kid`, else the payload's deprecated `keyid`, else
 *   the key set's `defaultKeyId`; the token's `alg` must be the key's algorithm;
 * - the payload `scope` must equal the configured scope ('' when neither is set);
 * - every file of the bundle except `.signatures.json` must be listed with a matching digest
 *   (bundle-hash.ts: canonical JSON for data.json/.manifest), and every listed file must exist.
 *
 * Keys are imported once (importVerificationKeys, at config time); verifyBundle runs per
 * bundle, when a Policy arrives, never per request. With keys configured an unsigned bundle
 * is refused; whether to configure keys at all is the sidecar's decision.
 */
import { constants as cryptoConstants, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { compactVerify, decodeProtectedHeader, importJWK, importSPKI, type CryptoKey, type JWK } from 'jose';
import type { Bundle } from './bundle.ts';
import { bundleFileDigest, hashAlgorithm } from './bundle-hash.ts';
import { BundleSignatureError, PolicyInvalidOptionError } from './errors.ts';

/** JWS algorithms accepted for bundle signatures. */
export const SIGNATURE_ALGORITHMS = Object.freeze(['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const);
export type SignatureAlgorithm = (typeof SIGNATURE_ALGORITHMS)[number];

/** One public key: a PEM SPKI public key or a public JWK, and the algorithm it verifies. */
export interface VerificationKeyConfig {
  readonly key: string | JWK;
  readonly algorithm: SignatureAlgorithm;
  /** Scope this key's bundles must carry; overridden by VerificationKeysConfig.scope. */
  readonly scope?: string;
}

export interface VerificationKeysConfig {
  /** Keys by key id (OPA's `keyid`; `opa build --signing-key` signs with `kid: "default"`). */
  readonly keys: Readonly<Record<string, VerificationKeyConfig>>;
  /** Key id for tokens that name none. */
  readonly defaultKeyId?: string;
  /** Required payload `scope` for every key. */
  readonly scope?: string;
}

interface ImportedKey {
  readonly key: CryptoKey | Uint8Array;
  readonly algorithm: SignatureAlgorithm;
  readonly scope: string;
}

/** An imported key set, from importVerificationKeys. */
export interface VerificationKeys {
  readonly keys: ReadonlyMap<string, ImportedKey>;
  readonly defaultKeyId: string | null;
}

/** Imports and checks a key set once. Throws PolicyInvalidOptionError (`PAL_ERR_POLICY_INVALID_OPTION`) naming the key. */
export async function importVerificationKeys(config: VerificationKeysConfig): Promise<VerificationKeys> {
  const keys = new Map<string, ImportedKey>();
  for (const [id, k] of Object.entries(config.keys)) {
    if (!SIGNATURE_ALGORITHMS.includes(k.algorithm)) {
      throw new PolicyInvalidOptionError(`keys.${id}.algorithm must be one of ${SIGNATURE_ALGORITHMS.join(', ')}, got ${JSON.stringify(k.algorithm)}`);
    }
    try {
      const key = typeof k.key === 'string' ? await importSPKI(k.key, k.algorithm) : await importJWK(k.key, k.algorithm);
      if (key instanceof Uint8Array) throw new Error('symmetric keys are not accepted');
      keys.set(id, Object.freeze({ key, algorithm: k.algorithm, scope: config.scope ?? k.scope ?? '' }));
    } catch (cause) {
      throw new PolicyInvalidOptionError(`keys.${id}.key is not a ${k.algorithm} public key (PEM SPKI or JWK): ${(cause as Error).message}`, { cause });
    }
  }
  if (keys.size === 0) throw new PolicyInvalidOptionError('keys must hold at least one key');
  const defaultKeyId = config.defaultKeyId ?? null;
  if (defaultKeyId !== null && !keys.has(defaultKeyId)) throw new PolicyInvalidOptionError(`defaultKeyId ${JSON.stringify(defaultKeyId)} is not in keys`);
  return Object.freeze({ keys, defaultKeyId });
}

interface SignedFile {
  readonly name: string;
  readonly hash: string;
  readonly algorithm: string;
}

function parsePayload(bytes: Uint8Array): { files: SignedFile[]; keyid: string | null; scope: string } {
  let p: unknown;
  try {
    p = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new BundleSignatureError('signature payload is not JSON', { cause });
  }
  const o = p as { files?: unknown; keyid?: unknown; scope?: unknown };
  if (typeof p !== 'object' || p === null || !Array.isArray(o.files)) throw new BundleSignatureError('signature payload has no files list');
  const files = o.files.map((f: unknown) => {
    const file = f as Partial<SignedFile>;
    if (typeof f !== 'object' || f === null || typeof file.name !== 'string' || typeof file.hash !== 'string' || typeof file.algorithm !== 'string') {
      throw new BundleSignatureError('signature payload: each file needs string name, hash and algorithm');
    }
    return file as SignedFile;
  });
  return { files, keyid: typeof o.keyid === 'string' && o.keyid !== '' ? o.keyid : null, scope: typeof o.scope === 'string' ? o.scope : '' };
}

function payloadKeyId(token: string): string | null {
  const part = token.split('.')[1];
  if (part === undefined) return null;
  try {
    const p = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as { keyid?: unknown };
    return typeof p.keyid === 'string' && p.keyid !== '' ? p.keyid : null;
  } catch {
    return null;
  }
}

/**
 * Verifies `bundle`'s signature against `keys`. Resolves when every file is signed and
 * intact; otherwise throws BundleSignatureError (`PAL_ERR_POLICY_BUNDLE_SIGNATURE`) with
 * the reason: unsigned, not exactly one token, no key id, unknown key id, bad signature,
 * scope mismatch, file X digest mismatch, file X not signed, signed file Y missing.
 */
export async function verifyBundle(bundle: Bundle, keys: VerificationKeys): Promise<void> {
  const tokens = bundle.signatures;
  if (tokens === null) throw new BundleSignatureError('bundle is unsigned (no .signatures.json) and verification keys are configured');
  if (tokens.length !== 1) throw new BundleSignatureError(`.signatures.json must hold exactly one token, got ${tokens.length}`);
  const token = tokens[0]!;
  let kid: string | null;
  try {
    const h = decodeProtectedHeader(token).kid;
    kid = typeof h === 'string' && h !== '' ? h : null;
  } catch (cause) {
    throw new BundleSignatureError('signature is not a JWS compact token', { cause });
  }
  const keyId = kid ?? payloadKeyId(token) ?? keys.defaultKeyId;
  if (keyId === null) throw new BundleSignatureError('signature names no key id and no default key is configured');
  const key = keys.keys.get(keyId);
  if (key === undefined) throw new BundleSignatureError(`signature key id ${JSON.stringify(keyId)} is not a configured verification key`);
  let payloadBytes: Uint8Array;
  try {
    payloadBytes = (await compactVerify(token, key.key, { algorithms: [key.algorithm] })).payload;
  } catch (cause) {
    throw new BundleSignatureError(`signature does not verify with key ${JSON.stringify(keyId)} (${key.algorithm}): ${(cause as Error).message}`, { cause });
  }
  checkPayload(bundle, payloadBytes, keyId, key.scope);
}

function checkPayload(bundle: Bundle, payloadBytes: Uint8Array, keyId: string, scope: string): void {
  const payload = parsePayload(payloadBytes);
  if (payload.scope !== scope) throw new BundleSignatureError(`signature scope ${JSON.stringify(payload.scope)} does not match the expected ${JSON.stringify(scope)} (key ${JSON.stringify(keyId)})`);

  const signed = new Map<string, SignedFile>();
  for (const f of payload.files) signed.set(f.name, f);
  for (const [path, bytes] of bundle.files) {
    if (path === '/.signatures.json') continue;
    const name = path.slice(1); // OPA signs bundle paths without the leading slash
    const f = signed.get(name);
    if (f === undefined) throw new BundleSignatureError(`file ${name} is not signed`);
    signed.delete(name);
    const algorithm = hashAlgorithm(f.algorithm);
    if (algorithm === null) throw new BundleSignatureError(`file ${name}: unsupported hashing algorithm ${JSON.stringify(f.algorithm)}`);
    let digest: string;
    try {
      digest = bundleFileDigest(name, bytes, algorithm);
    } catch (cause) {
      throw new BundleSignatureError(`file ${name}: cannot be hashed: ${(cause as Error).message}`, { cause });
    }
    if (digest !== f.hash.toLowerCase()) throw new BundleSignatureError(`file ${name}: digest mismatch (signed ${f.hash}, got ${digest})`);
  }
  const missing = [...signed.keys()];
  if (missing.length > 0) throw new BundleSignatureError(`signed file(s) missing from the bundle: ${missing.join(', ')}`);
}

/** A key set for verifyBundleSync: node:crypto public keys by key id. */
export interface SyncVerificationKeys {
  readonly keys: ReadonlyMap<string, { readonly key: KeyObject; readonly algorithm: SignatureAlgorithm; readonly scope: string }>;
  readonly defaultKeyId: string | null;
}

/**
 * Builds a key set for verifyBundleSync from PEM SPKI public keys. The algorithm follows the
 * key type (EC P-256/384/521 → ES256/384/512, Ed25519 → EdDSA, RSA → RS256 unless given).
 * Throws PolicyInvalidOptionError naming the key.
 */
export function syncVerificationKeys(config: { keys: Readonly<Record<string, { pem: string; algorithm?: SignatureAlgorithm; scope?: string }>>; defaultKeyId?: string }): SyncVerificationKeys {
  const keys = new Map<string, { key: KeyObject; algorithm: SignatureAlgorithm; scope: string }>();
  for (const [id, k] of Object.entries(config.keys)) {
    let key: KeyObject;
    try {
      key = createPublicKey(k.pem);
    } catch (cause) {
      throw new PolicyInvalidOptionError(`keys.${id} is not a PEM public key: ${(cause as Error).message}`, { cause });
    }
    const algorithm = k.algorithm ?? algorithmOf(key);
    if (algorithm === null) throw new PolicyInvalidOptionError(`keys.${id}: cannot tell the signature algorithm of a ${key.asymmetricKeyType ?? 'unknown'} key; give one`);
    keys.set(id, { key, algorithm, scope: k.scope ?? '' });
  }
  if (keys.size === 0) throw new PolicyInvalidOptionError('keys must hold at least one key');
  const defaultKeyId = config.defaultKeyId ?? null;
  if (defaultKeyId !== null && !keys.has(defaultKeyId)) throw new PolicyInvalidOptionError(`defaultKeyId ${JSON.stringify(defaultKeyId)} is not in keys`);
  return { keys, defaultKeyId };
}

/** The JWS algorithm a public key signs with by default (EC curve → ES*, Ed25519 → EdDSA, RSA → RS256), or null. */
export function algorithmOf(key: KeyObject): SignatureAlgorithm | null {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    return curve === 'prime256v1' ? 'ES256' : curve === 'secp384r1' ? 'ES384' : curve === 'secp521r1' ? 'ES512' : null;
  }
  return null;
}

/** node:crypto's digest and key options for a JWS algorithm (shared with sign.ts). */
export function jwsAlgorithmParams(alg: SignatureAlgorithm): { digest: string | null; dsaEncoding?: 'ieee-p1363'; pssSaltLength?: number } {
  switch (alg) {
    case 'ES256': return { digest: 'sha256', dsaEncoding: 'ieee-p1363' };
    case 'ES384': return { digest: 'sha384', dsaEncoding: 'ieee-p1363' };
    case 'ES512': return { digest: 'sha512', dsaEncoding: 'ieee-p1363' };
    case 'EdDSA': case 'Ed25519': return { digest: null };
    case 'RS256': return { digest: 'sha256' };
    case 'RS384': return { digest: 'sha384' };
    case 'RS512': return { digest: 'sha512' };
    case 'PS256': return { digest: 'sha256', pssSaltLength: 32 };
    case 'PS384': return { digest: 'sha384', pssSaltLength: 48 };
    case 'PS512': return { digest: 'sha512', pssSaltLength: 64 };
  }
}

/** The key argument node:crypto's sign/verify take for `alg`. */
export function jwsKey(alg: SignatureAlgorithm, key: KeyObject): KeyObject | { key: KeyObject; dsaEncoding?: 'ieee-p1363'; padding?: number; saltLength?: number } {
  const p = jwsAlgorithmParams(alg);
  if (p.dsaEncoding !== undefined) return { key, dsaEncoding: p.dsaEncoding };
  if (p.pssSaltLength !== undefined) return { key, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: p.pssSaltLength };
  return key;
}

/**
 * verifyBundle, synchronously with node:crypto: for an xDS client's resource validator,
 * which must decide ACK or NACK before it answers. Same checks, same errors.
 */
export function verifyBundleSync(bundle: Bundle, keys: SyncVerificationKeys): void {
  const tokens = bundle.signatures;
  if (tokens === null) throw new BundleSignatureError('bundle is unsigned (no .signatures.json) and verification keys are configured');
  if (tokens.length !== 1) throw new BundleSignatureError(`.signatures.json must hold exactly one token, got ${tokens.length}`);
  const token = tokens[0]!;
  const parts = token.split('.');
  if (parts.length !== 3) throw new BundleSignatureError('signature is not a JWS compact token');
  let header: { alg?: unknown; kid?: unknown };
  try {
    header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as { alg?: unknown; kid?: unknown };
  } catch (cause) {
    throw new BundleSignatureError('signature is not a JWS compact token', { cause });
  }
  const kid = typeof header.kid === 'string' && header.kid !== '' ? header.kid : null;
  const keyId = kid ?? payloadKeyId(token) ?? keys.defaultKeyId;
  if (keyId === null) throw new BundleSignatureError('signature names no key id and no default key is configured');
  const key = keys.keys.get(keyId);
  if (key === undefined) throw new BundleSignatureError(`signature key id ${JSON.stringify(keyId)} is not a configured verification key`);
  const alg = key.algorithm === 'Ed25519' ? 'EdDSA' : key.algorithm;
  if (header.alg !== alg) throw new BundleSignatureError(`signature algorithm ${JSON.stringify(header.alg)} is not the key's ${alg} (key ${JSON.stringify(keyId)})`);
  let ok: boolean;
  try {
    ok = cryptoVerify(jwsAlgorithmParams(key.algorithm).digest, Buffer.from(`${parts[0]}.${parts[1]}`, 'ascii'), jwsKey(key.algorithm, key.key), Buffer.from(parts[2]!, 'base64url'));
  } catch (cause) {
    throw new BundleSignatureError(`signature does not verify with key ${JSON.stringify(keyId)} (${key.algorithm}): ${(cause as Error).message}`, { cause });
  }
  if (!ok) throw new BundleSignatureError(`signature does not verify with key ${JSON.stringify(keyId)} (${key.algorithm}): signature verification failed`);
  checkPayload(bundle, Buffer.from(parts[1]!, 'base64url'), keyId, key.scope);
}
