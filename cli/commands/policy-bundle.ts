/**
 * `palisade policy verify|inspect`: look at a built bundle with the sidecar's own reader and
 * verifier (policies/bundle.ts readBundle, policies/signature.ts verifyBundle), so `verify`
 * passing here means a sidecar holding the same public key accepts the bundle.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { readBundle, type Bundle } from '../../policies/bundle.ts';
import { algorithmOf, importVerificationKeys, SIGNATURE_ALGORITHMS, verifyBundle, type SignatureAlgorithm } from '../../policies/signature.ts';
import { checkOutput, UsageError } from '../args.ts';
import { formatTable } from '../table.ts';
import { OPA_DEFAULT_KEY_ID } from './policy-build.ts';
import { keyFingerprint } from './policy-keys.ts';
import { parseCommand } from './policy-opa.ts';

export const bundleHelp = `  verify BUNDLE --verification-key PUB.pem [--signing-alg ALG] [--key-id ID]
                     check BUNDLE's signature and every file's digest exactly as a sidecar does,
                     with the public key (keygen's KEY.pub.pem); exit 1 with
                     PAL_ERR_POLICY_BUNDLE_SIGNATURE (or _BUNDLE_INVALID) when it does not verify
  inspect BUNDLE     show the manifest (revision, roots, wasm entrypoints), the files with their
                     sizes, and the signature (algorithm, key id); verifies nothing
`;

export const bundleFlagsHelp = `  --verification-key FILE   PEM public key to verify with (verify)
  --signing-alg ALG          the key's algorithm (verify)   (default: from the key: P-256 ES256, P-384 ES384,
                             Ed25519 EdDSA, RSA RS256)
  --key-id ID                the key id the signature must name (verify)   (default ${OPA_DEFAULT_KEY_ID}, as opa build signs)
`;

async function loadBundle(file: string): Promise<Bundle> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new Error(`cannot read bundle ${file}: ${(err as Error).message}`, { cause: err });
  }
  return readBundle(bytes);
}

function oneBundle(positionals: string[], sub: string): string {
  if (positionals.length !== 1) throw new UsageError(`${sub} needs one bundle file, got ${positionals.length === 0 ? 'none' : JSON.stringify(positionals.join(' '))}`);
  return positionals[0]!;
}

/** What the signature token says about itself (header `alg` and `kid`, else payload `keyid`); nothing verified. */
function describeSignature(token: string): { algorithm: string | null; keyId: string | null } {
  const [h, p] = token.split('.');
  const decode = (part: string | undefined): Record<string, unknown> => {
    try {
      const v: unknown = JSON.parse(Buffer.from(part ?? '', 'base64url').toString('utf8'));
      return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
    } catch {
      return {};
    }
  };
  const header = decode(h);
  const payload = decode(p);
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);
  return { algorithm: str(header.alg), keyId: str(header.kid) ?? str(payload.keyid) };
}

/** `palisade policy verify`. */
export async function verify(argv: string[]): Promise<number> {
  const { values: flags, positionals } = parseCommand(argv, {
    'verification-key': { type: 'string' },
    'signing-alg': { type: 'string' },
    'key-id': { type: 'string', default: OPA_DEFAULT_KEY_ID },
    output: { type: 'string', short: 'o', default: 'table' },
  });
  const output = checkOutput(flags.output);
  const file = oneBundle(positionals, 'verify');
  const keyFile = flags['verification-key'];
  if (keyFile === undefined) throw new UsageError('--verification-key PUB.pem is required (the public key next to the signing key: KEY.pub.pem)');
  const alg = flags['signing-alg'];
  if (alg !== undefined && !(SIGNATURE_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new UsageError(`--signing-alg must be one of ${SIGNATURE_ALGORITHMS.join(', ')}, got ${JSON.stringify(alg)}`);
  }
  let pem: string;
  let key: KeyObject;
  try {
    pem = await readFile(keyFile, 'utf8');
    key = createPublicKey(pem);
  } catch (err) {
    throw new Error(`${keyFile} is not a readable PEM public key: ${(err as Error).message}`, { cause: err });
  }
  const algorithm = (alg as SignatureAlgorithm | undefined) ?? algorithmOf(key);
  if (algorithm === null) throw new Error(`${keyFile}: no default signing algorithm for a ${key.asymmetricKeyType ?? 'unknown'} key; pass --signing-alg`);
  const keyId = flags['key-id'];
  const keys = await importVerificationKeys({ keys: { [keyId]: { key: pem, algorithm } }, defaultKeyId: keyId });
  const bundle = await loadBundle(file);
  await verifyBundle(bundle, keys);
  const result = { bundle: file, verified: true, revision: bundle.revision, keyId, algorithm, keyFingerprint: keyFingerprint(key), files: bundle.files.size - 1 };
  if (output === 'json') process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(`${file}: signature verified (${algorithm}, keyid "${keyId}", key ${result.keyFingerprint}); revision ${JSON.stringify(bundle.revision)}, ${result.files} files intact\n`);
  return 0;
}

/** `palisade policy inspect`. */
export async function inspect(argv: string[]): Promise<number> {
  const { values: flags, positionals } = parseCommand(argv, { output: { type: 'string', short: 'o', default: 'table' } });
  const output = checkOutput(flags.output);
  const file = oneBundle(positionals, 'inspect');
  const bundle = await loadBundle(file);
  const signature = bundle.signatures === null ? null : { tokens: bundle.signatures.length, ...describeSignature(bundle.signatures[0] ?? '') };
  const result = {
    bundle: file,
    revision: bundle.manifest.revision,
    roots: bundle.manifest.roots,
    regoVersion: bundle.manifest.regoVersion,
    wasm: bundle.manifest.wasm,
    files: [...bundle.files].map(([path, bytes]) => ({ path, size: bytes.length })),
    signed: signature !== null,
    signature,
  };
  if (output === 'json') {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  }
  const sig = signature === null ? 'none (unsigned: sidecars with verification keys refuse it)' : `${signature.algorithm ?? '?'}, keyid ${JSON.stringify(signature.keyId ?? '(none)')} (not verified: use policy verify)`;
  process.stdout.write(
    `bundle       ${file}\n` +
      `revision     ${result.revision === '' ? '(none)' : result.revision}\n` +
      `roots        ${result.roots.map((r) => JSON.stringify(r)).join(', ')}\n` +
      `entrypoints  ${result.wasm.length === 0 ? '(no wasm)' : result.wasm.map((w) => `${w.entrypoint} (${w.module})`).join(', ')}\n` +
      `signature    ${sig}\n\n` +
      formatTable([['FILE', 'SIZE'], ...result.files.map((f) => [f.path, String(f.size)])], '(no files)'),
  );
  return 0;
}
