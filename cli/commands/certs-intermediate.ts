/**
 * `palisade certs new-intermediate`: the offline recovery of a lost intermediate (its key, or the
 * KEK that seals it, is gone; nothing leaked), as Vault's `intermediate/generate` + `set-signed`
 * or step-ca's re-issued intermediate. Same root, same trust bundle, a new intermediate.
 *
 *   <state>/ca/root.pem, bundle.pem   read, kept byte for byte (sidecars keep trusting them)
 *   --root-key FILE                    the offline root key; must be root.pem's key
 *   new intermediate                   signed by the root, sealed under the KEK
 *   <state>/ca  ──commit──▶  <state>/ca-archive/<time>-lost-intermediate  (never deleted)
 *   --new-kek: <state>/kek ──rename──▶ <state>/kek.lost-<time>, a fresh kek, keyring re-sealed
 *   <state>/audit.jsonl                ca.intermediate.replaced
 *
 * It runs with the control plane stopped (which cannot load its CA anyway without the
 * intermediate key), and refuses a CA that still loads with a valid intermediate: a running
 * control plane would keep signing with the old one. Everything is checked before anything is
 * written; the commit is `commitCaState` (root-rotation.ts), as rotate-root's.
 *
 * Throws `UsageError` (exit 2) for bad flags and plain errors (exit 1) otherwise, like init-root.
 */
import { readFile, rename } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { JsonLinesAuditSink } from '../../certs/audit.ts';
import {
  CertificateAuthority,
  INTERMEDIATE_KEY_NAME,
  PREVIOUS_INTERMEDIATE_FILE,
  PREVIOUS_INTERMEDIATE_KEY_NAME,
  ROOT_KEY_NAME,
  type CaCertificate,
} from '../../certs/ca.ts';
import { FileKek, Keyring } from '../../certs/keyring.ts';
import { importPrivateKeyPem, isKeyType, KEY_TYPES, type KeyPair } from '../../certs/keys.ts';
import { certFingerprint, certKeyType, commitCaState, recoverCaDir } from '../../certs/root-rotation.ts';
import { parseSpiffeId } from '../../certs/spiffe.ts';
import { pemOf, webcrypto, type x509 } from '../../certs/x509.ts';
import { AUDIT_FILE, CA_DIR, KEK_FILE } from '../../control/certs/certs-service.ts';
import { checkOutput, parseFlags, UsageError } from '../args.ts';
import { checkTtlFlag, DEFAULT_INTERMEDIATE_TTL, DEFAULT_STATE_DIR, exists, readCertificates, summarize, validityLine, type CertificateSummary } from './certs-ca.ts';

/** The label of the archived CA directory (`ca-archive/<time>-lost-intermediate`). */
export const LOST_INTERMEDIATE_ARCHIVE_LABEL = 'lost-intermediate';
/** A replaced KEK file is renamed `kek.lost-<time>` next to the new one. */
export const LOST_KEK_PREFIX = `${KEK_FILE}.lost-`;

export const newIntermediateHelp = `  new-intermediate --root-key FILE [--state-dir DIR] [--intermediate-ttl DURATION]
                   [--key-type TYPE] [--new-kek]
                     recovery, offline (stop the control plane first): the intermediate key or the
                     KEK is lost. Signs a new intermediate with the root key FILE (PKCS#8 PEM, as
                     init-root --root-key-out wrote it; it must match DIR/ca/root.pem), keeps the
                     same root and trust bundle, archives the old DIR/ca under DIR/ca-archive/ and
                     appends ca.intermediate.replaced to DIR/audit.jsonl. --new-kek creates a fresh
                     KEK (the old file is kept as DIR/kek.lost-<time>) and re-encrypts the keyring.
                     Refuses a CA whose intermediate still loads and is valid (use rotate-root)
`;

export const newIntermediateFlagsHelp = `  --root-key FILE            the offline root private key, PKCS#8 PEM (new-intermediate)
  --new-kek                  new-intermediate: the KEK is lost or broken; make a new one
`;

function timestamp(now: Date): string {
  return now.toISOString().replace(/[:.]/g, '-');
}

async function samePublicKey(cert: x509.X509Certificate, keys: KeyPair): Promise<boolean> {
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  return spki.equals(Buffer.from(cert.publicKey.rawData));
}

/** The `kek` id recorded in a keyring file, or null when the file is absent or not a keyring entry. */
async function sealedUnder(file: string): Promise<string | null> {
  try {
    const stored = JSON.parse(await readFile(file, 'utf8')) as { kek?: unknown };
    return typeof stored.kek === 'string' ? stored.kek : null;
  } catch {
    return null;
  }
}

function operator(): string {
  try {
    const name = userInfo().username;
    return name === '' ? 'operator' : `operator:${name}`;
  } catch {
    return 'operator';
  }
}

/** What `new-intermediate -o json` prints. */
export interface NewIntermediateResult {
  trustDomain: string;
  stateDir: string;
  caDir: string;
  root: CertificateSummary;
  intermediate: CertificateSummary;
  /** The intermediate replaced (from the old intermediate.pem), null when that file was gone too. */
  replaced: CertificateSummary | null;
  archive: string;
  kek: { path: string; replaced: boolean; lostKek: string | null };
  rootKey: { location: 'file' | 'keyring'; path: string };
  /** Null unless a root rotation is under way; then whether the old root's intermediate key survived. */
  rotation: { phase: 'rotating'; previousIntermediateKey: 'kept' | 'lost' } | null;
  intermediateKey: string;
  bundle: string;
  audit: string;
}

/** `palisade certs new-intermediate`. */
export async function newIntermediate(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    'root-key': { type: 'string' },
    'state-dir': { type: 'string', default: DEFAULT_STATE_DIR },
    'intermediate-ttl': { type: 'string', default: DEFAULT_INTERMEDIATE_TTL },
    'key-type': { type: 'string' },
    'new-kek': { type: 'boolean', default: false },
    output: { type: 'string', short: 'o', default: 'table' },
  });
  const output = checkOutput(flags.output);
  const rootKeyFlag = flags['root-key'];
  if (rootKeyFlag === undefined) {
    throw new UsageError('--root-key FILE is required: the root private key (PKCS#8 PEM) that init-root --root-key-out or rotate-root --key-out wrote');
  }
  if (rootKeyFlag === '') throw new UsageError('--root-key must be a file path, got ""');
  if (flags['state-dir'] === '') throw new UsageError('--state-dir must be a directory path, got ""');
  const keyTypeFlag = flags['key-type'];
  if (keyTypeFlag !== undefined && !isKeyType(keyTypeFlag)) {
    throw new UsageError(`--key-type must be one of ${KEY_TYPES.join(', ')}, got ${JSON.stringify(keyTypeFlag)} (default: the root's key type)`);
  }
  const ttlMs = checkTtlFlag('--intermediate-ttl', flags['intermediate-ttl']);
  const newKek = flags['new-kek'];

  const now = new Date();
  const stateDir = resolve(flags['state-dir']);
  const caDir = join(stateDir, CA_DIR);
  const kekPath = join(stateDir, KEK_FILE);
  const keysDir = join(caDir, 'keys');
  const keyPath = resolve(rootKeyFlag);

  // 1. The CA as it is: root.pem and bundle.pem are kept, so they must be there and agree.
  await recoverCaDir(caDir); // what the control plane does before loading: finish or drop an interrupted commit
  const rootFile = join(caDir, 'root.pem');
  if (!(await exists(rootFile))) {
    throw new Error(`${caDir} holds no CA (no root.pem): new-intermediate replaces the intermediate of an existing CA; create one with palisade certs init-root --state-dir ${stateDir}`);
  }
  const roots = await readCertificates(rootFile, 'root certificate');
  if (roots.length !== 1) throw new Error(`root certificate ${rootFile} must hold exactly one certificate, holds ${roots.length}`);
  const rootCert = roots[0]!;
  const bundleFile = join(caDir, 'bundle.pem');
  const bundleCerts = await readCertificates(bundleFile, 'trust bundle');
  if (!bundleCerts.some((c) => c.equal(rootCert))) throw new Error(`trust bundle ${bundleFile} does not contain ${rootFile}: the CA state is inconsistent; restore it from a backup`);
  const rootSummary = await summarize(rootCert, now);
  const rootId = rootSummary.spiffeId === null ? null : parseSpiffeId(rootSummary.spiffeId);
  if (rootId === null || !rootId.valid || rootId.result.path !== '') throw new Error(`root certificate ${rootFile} has no URI SAN spiffe://<trust-domain>`);
  const trustDomain = rootId.result.trustDomain;
  if (rootSummary.status !== 'valid') {
    throw new Error(`the root ${rootSummary.subject} is ${rootSummary.status} (${rootSummary.notBefore} .. ${rootSummary.notAfter}): an intermediate under it would verify nowhere; replace the CA (docs/security.md, Recovering)`);
  }

  // 2. The root key: root.pem's, or nothing happens.
  let rootKeyPem: string;
  try {
    rootKeyPem = await readFile(keyPath, 'utf8');
  } catch (err) {
    throw new Error(`cannot read --root-key ${keyPath}: ${(err as Error).message}`, { cause: err });
  }
  let rootKeys: KeyPair;
  try {
    rootKeys = await importPrivateKeyPem(rootKeyPem);
  } catch (err) {
    throw new Error(`--root-key ${keyPath} is not a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----, as init-root --root-key-out writes): ${(err as Error).message}`, { cause: err });
  }
  if (!(await samePublicKey(rootCert, rootKeys))) {
    throw new Error(
      `--root-key ${keyPath} is not the private key of this CA's root: ${rootFile} is ${rootSummary.subject} (SHA-256 ${rootSummary.fingerprintSha256}) ` +
        'and its public key differs. Nothing was changed; find the key init-root --root-key-out (or rotate-root --key-out) wrote for this root',
    );
  }
  const keyType = keyTypeFlag ?? certKeyType(rootCert);

  // 3. The old intermediate (for the record) and, during a rotation, the old root's intermediate.
  const oldIntermediate: x509.X509Certificate | null = await readCertificates(join(caDir, 'intermediate.pem'), 'intermediate certificate').then(
    (certs) => certs[0] ?? null,
    () => null,
  );
  const rotating = bundleCerts.length > 1;
  let previousCert: x509.X509Certificate | null = null;
  if (await exists(join(caDir, PREVIOUS_INTERMEDIATE_FILE))) {
    previousCert = (await readCertificates(join(caDir, PREVIOUS_INTERMEDIATE_FILE), 'previous intermediate certificate'))[0]!;
  }

  // 4. The KEK as it is. FileKek.open would create a missing file: look first.
  let oldKek: FileKek | null = null;
  let kekProblem: string | null = null;
  if (!(await exists(kekPath))) kekProblem = `the KEK file ${kekPath} is missing`;
  else {
    try {
      oldKek = await FileKek.open(kekPath);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      kekProblem = `${typeof code === 'string' ? `${code}: ` : ''}${(err as Error).message}`;
    }
  }
  const suggestNewKek = 'If the KEK is lost or damaged, run again with --new-kek: a fresh KEK is created (the old file is kept as kek.lost-<time>) and the keyring is re-encrypted under it';
  if (oldKek !== null) {
    // A CA that loads with a valid intermediate is not lost: a running control plane would keep using it.
    const intact = await CertificateAuthority.load(caDir, oldKek).catch(() => null);
    if (intact !== null && now.getTime() < intact.intermediate.cert.notAfter.getTime()) {
      throw new Error(
        `the CA in ${caDir} is intact: its intermediate key decrypts under ${kekPath} and the intermediate ${intact.intermediate.cert.subject} ` +
          `is valid until ${intact.intermediate.cert.notAfter.toISOString()}. new-intermediate is for a lost intermediate key or KEK; ` +
          'to replace a healthy intermediate, rotate the root (palisade certs rotate-root start)',
      );
    }
  }
  if (!newKek) {
    if (kekProblem !== null) throw new Error(`${kekProblem}. ${suggestNewKek}`);
    for (const name of [INTERMEDIATE_KEY_NAME, ROOT_KEY_NAME, PREVIOUS_INTERMEDIATE_KEY_NAME]) {
      const sealed = await sealedUnder(join(keysDir, `${name}.key.json`));
      if (sealed !== null && sealed !== oldKek!.id) {
        throw new Error(`the keyring ${keysDir} was encrypted under KEK ${sealed}, but ${kekPath} is KEK ${oldKek!.id}: the KEK that sealed it is lost or was replaced. ${suggestNewKek}`);
      }
    }
  }

  // The keys that are kept: the root's when it was in the keyring (re-sealed from --root-key),
  // and during a rotation the old root's intermediate key when it still decrypts.
  const keepRootKey = await exists(join(keysDir, `${ROOT_KEY_NAME}.key.json`));
  let previous: CaCertificate | null = null;
  if (previousCert !== null) {
    let keys: KeyPair | null = null;
    if (oldKek !== null && (await exists(join(keysDir, `${PREVIOUS_INTERMEDIATE_KEY_NAME}.key.json`)))) {
      try {
        const k = await (await Keyring.open(keysDir, oldKek)).get(PREVIOUS_INTERMEDIATE_KEY_NAME);
        keys = (await samePublicKey(previousCert, k)) ? k : null;
      } catch {
        keys = null;
      }
    }
    previous = Object.freeze({ trustDomain, cert: previousCert, pem: pemOf(previousCert), keys });
  }

  // 5. Everything checked: make the intermediate, then the KEK, then commit, then audit.
  const root: CaCertificate = Object.freeze({ trustDomain, cert: rootCert, pem: pemOf(rootCert), keys: rootKeys });
  const intermediate = await CertificateAuthority.createIntermediate(root, { keyType, ttlMs, now });
  let lostKek: string | null = null;
  if (newKek && (await exists(kekPath))) {
    lostKek = join(stateDir, `${LOST_KEK_PREFIX}${timestamp(now)}`);
    if (await exists(lostKek)) throw new Error(`${lostKek} already exists; run again in a moment`);
    await rename(kekPath, lostKek);
  }
  const kek = newKek ? await FileKek.open(kekPath) : oldKek!;
  const archive = await commitCaState(
    caDir,
    kek,
    {
      root,
      intermediate,
      bundle: bundleCerts.map((c) => Object.freeze({ trustDomain, cert: c, pem: pemOf(c), keys: null })),
      keepRootKey,
      previousIntermediate: previous,
    },
    LOST_INTERMEDIATE_ARCHIVE_LABEL,
    now,
  );
  // What the control plane will do at start: the new state must load.
  await CertificateAuthority.load(caDir, kek);

  const auditFile = join(stateDir, AUDIT_FILE);
  const audit = new JsonLinesAuditSink(auditFile);
  try {
    await audit.emit({
      type: 'ca.intermediate.replaced',
      time: new Date().toISOString(),
      actor: operator(),
      rootFingerprint: certFingerprint(rootCert),
      ...(oldIntermediate === null ? {} : { oldIntermediateFingerprint: certFingerprint(oldIntermediate) }),
      newIntermediateFingerprint: certFingerprint(intermediate.cert),
      kek: newKek ? 'replaced' : 'kept',
    });
  } finally {
    await audit.close();
  }

  const result: NewIntermediateResult = {
    trustDomain,
    stateDir,
    caDir,
    root: rootSummary,
    intermediate: await summarize(intermediate.cert, now),
    replaced: oldIntermediate === null ? null : await summarize(oldIntermediate, now),
    archive,
    kek: { path: kekPath, replaced: newKek, lostKek },
    rootKey: keepRootKey ? { location: 'keyring', path: join(keysDir, `${ROOT_KEY_NAME}.key.json`) } : { location: 'file', path: keyPath },
    rotation: rotating ? { phase: 'rotating', previousIntermediateKey: previous?.keys != null ? 'kept' : 'lost' } : null,
    intermediateKey: join(keysDir, `${INTERMEDIATE_KEY_NAME}.key.json`),
    bundle: bundleFile,
    audit: auditFile,
  };
  if (output === 'json') {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  }
  const block = (label: string, c: CertificateSummary) =>
    `${label}\n  Subject:       ${c.subject}\n  SHA-256:       ${c.fingerprintSha256}\n  Key type:      ${c.keyType}\n  Validity:      ${validityLine(c, now)}\n`;
  process.stdout.write(
    `Replaced the intermediate CA of trust domain ${trustDomain} in ${caDir}: same root, same trust bundle\n\n` +
      block('Root CA (unchanged)', result.root) +
      '\n' +
      block('New intermediate CA (online, signs SVIDs)', result.intermediate) +
      '\n' +
      `Replaced:         ${result.replaced === null ? '(no intermediate.pem was left)' : `${result.replaced.subject} (SHA-256 ${result.replaced.fingerprintSha256})`}\n` +
      `Old CA archived:  ${archive}\n` +
      (lostKek !== null
        ? `KEK:              new ${kekPath} (mode 0600); the old file is kept as ${lostKek}\n`
        : newKek
          ? `KEK:              new ${kekPath} (mode 0600)\n`
          : `KEK:              ${kekPath} (kept)\n`) +
      `Intermediate key: ${result.intermediateKey} (encrypted under ${kekPath})\n` +
      (keepRootKey ? `Root key:         kept in the keyring, ${result.rootKey.path}\n` : `Root key:         not stored; move ${keyPath} back offline\n`) +
      (result.rotation === null
        ? ''
        : `Root rotation:    still under way; the old root's intermediate key was ${result.rotation.previousIntermediateKey}${result.rotation.previousIntermediateKey === 'lost' ? ' (its certificates can no longer be listed in a CRL it signs)' : ''}\n`) +
      `Trust bundle:     ${bundleFile} (unchanged: workloads keep trusting the same root)\n` +
      `Audit:            ca.intermediate.replaced appended to ${auditFile}\n\n` +
      `Next: start the control plane (palisade control --state-dir ${stateDir}); enrollments and renewals now chain through the new intermediate.\n`,
  );
  return 0;
}
