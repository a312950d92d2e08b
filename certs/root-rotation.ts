/**
 * Root rotation of the CA state directory, in two phases:
 *
 *   none ──start──▶ rotating ──finish──▶ none
 *     root.pem = A          root.pem = B (new), intermediate.pem = B's
 *     bundle   = [A]        bundle   = [A, B]   previous-intermediate.pem = A's (signs A's CRL)
 *                                              finish: bundle = [B], A's intermediate retired
 *
 * The phase is what the files say (two roots in the bundle = rotating), so a restart keeps it.
 *
 * Each phase commits a whole new CA directory at once: it is written complete under
 * `<state>/ca.next`, the current `<state>/ca` is moved into `<state>/ca-archive/<time>-<label>`
 * (kept, never deleted: the archive of `start` is the whole old CA, keys included), and
 * `ca.next` is renamed to `ca`. `recoverCaDir()` (run before loading) finishes a commit
 * interrupted between the two renames and drops an uncommitted `ca.next`.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CertificateAuthority, DEFAULT_INTERMEDIATE_TTL_MS, DEFAULT_ROOT_TTL_MS, type CaCertificate } from './ca.ts';
import { keyTypeOfKeyObject, type KeyType } from './keys.ts';
import type { Kek } from './keyring.ts';
import type { x509 } from './x509.ts';

/** The staging directory of a commit, next to the CA directory. */
export const CA_NEXT_SUFFIX = '.next';
/** Where replaced CA directories go, next to the CA directory. */
export const CA_ARCHIVE_DIR = 'ca-archive';

export type RotationPhase = 'none' | 'rotating';

/** SHA-256 of a certificate's DER, lowercase hex (the form issued.json records). */
export function certFingerprint(cert: x509.X509Certificate): string {
  return createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex');
}

/** The key type of a certificate's public key (what the new root uses unless told otherwise). */
export function certKeyType(cert: x509.X509Certificate): KeyType {
  const kind = keyTypeOfKeyObject(createPublicKey({ key: Buffer.from(cert.publicKey.rawData), format: 'der', type: 'spki' }));
  if ('error' in kind) throw new Error(`the current root's key: ${kind.error}`);
  return kind.type;
}

/** The old root during a rotation: the bundle's root that is not the current one. */
export function oldRootOf(ca: CertificateAuthority): x509.X509Certificate | null {
  if (!ca.rotating) return null;
  return ca.bundleRoots.find((c) => !c.equal(ca.root.cert)) ?? null;
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Finishes or drops an interrupted commit of `caDir` (see the module comment). */
export async function recoverCaDir(caDir: string): Promise<void> {
  const next = caDir + CA_NEXT_SUFFIX;
  if (!existsSync(next)) return;
  if (existsSync(caDir)) await rm(next, { recursive: true, force: true });
  else await rename(next, caDir);
}

/**
 * Replaces `caDir` with a CA state holding `material`, all at once; the replaced directory is
 * archived under `<parent>/ca-archive/<time>-<label>`. Returns the archive path.
 */
export async function commitCaState(
  caDir: string,
  kek: Kek,
  material: Parameters<typeof CertificateAuthority.writeState>[2],
  label: string,
  now = new Date(),
): Promise<string> {
  const next = caDir + CA_NEXT_SUFFIX;
  await rm(next, { recursive: true, force: true });
  await CertificateAuthority.writeState(next, kek, material);
  const parent = join(caDir, '..');
  const archiveRoot = join(parent, CA_ARCHIVE_DIR);
  await mkdir(archiveRoot, { recursive: true, mode: 0o700 });
  const archived = join(archiveRoot, `${now.toISOString().replace(/[:.]/g, '-')}-${label}`);
  await rename(caDir, archived);
  await rename(next, caDir);
  await fsyncDir(archiveRoot);
  await fsyncDir(parent);
  return archived;
}

/** Options of {@link startMaterial}. */
export interface StartRotationOptions {
  /** Default: the current root's key type. */
  keyType?: KeyType;
  rootTtlMs?: number;
  intermediateTtlMs?: number;
  now?: Date;
}

/** The new root and intermediate of `start`, and the state to commit (bundle = old + new root). */
export async function startMaterial(ca: CertificateAuthority, options: StartRotationOptions = {}): Promise<{ root: CaCertificate; intermediate: CaCertificate; oldRoot: CaCertificate }> {
  const keyType = options.keyType ?? certKeyType(ca.root.cert);
  const now = options.now ?? new Date();
  const root = await CertificateAuthority.initRoot({ trustDomain: ca.trustDomain, keyType, ttlMs: options.rootTtlMs ?? DEFAULT_ROOT_TTL_MS, now });
  const intermediate = await CertificateAuthority.createIntermediate(root, { ttlMs: options.intermediateTtlMs ?? DEFAULT_INTERMEDIATE_TTL_MS, now });
  return { root, intermediate, oldRoot: ca.root };
}
