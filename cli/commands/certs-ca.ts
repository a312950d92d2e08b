/**
 * `palisade certs init-root` and `palisade certs inspect`: local CA operations that need no
 * control plane. `init-root` makes the root and the online intermediate and writes the state
 * the control plane loads (`<state-dir>/ca`, keys sealed under `<state-dir>/kek`); the root
 * key goes somewhere explicit: a 0600 PEM file to keep offline, or the keyring. `inspect`
 * shows what is in a PEM file and, given a bundle, whether it is a valid X.509-SVID chain.
 *
 * Both throw `UsageError` (exit 2) for bad flags and plain errors (exit 1) for everything
 * else; `certs.ts` runs them under its `guard`.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { lstat, mkdir, open, readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  CertificateAuthority,
  DEFAULT_INTERMEDIATE_TTL_MS,
  DEFAULT_ROOT_TTL_MS,
  INTERMEDIATE_KEY_NAME,
  ROOT_KEY_NAME,
} from '../../certs/ca.ts';
import { FileKek } from '../../certs/keyring.ts';
import { DEFAULT_KEY_TYPE, exportPrivateKeyPem, isKeyType, KEY_TYPES, keyTypeOfKeyObject } from '../../certs/keys.ts';
import { parseSpiffeId, trustDomainProblems } from '../../certs/spiffe.ts';
import { verifySvid } from '../../certs/svid.ts';
import { x509 } from '../../certs/x509.ts';
import { parseDuration } from '../../control/config/schema.ts';
import { CA_DIR, KEK_FILE } from '../../control/certs/certs-service.ts';
import { checkOutput, parseFlags, UsageError, type Output } from '../args.ts';

/** Where `init-root` puts its state unless `--state-dir` says otherwise. */
export const DEFAULT_STATE_DIR = './palisade-state';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Longest root or intermediate lifetime `initRoot` / `createIntermediate` accept: 100 years. */
const MAX_CA_TTL_MS = 100 * 365 * DAY;

/** `87600h` for 10 years: the flag defaults, in the units `parseDuration` reads (ms, s, m, h). */
const DEFAULT_ROOT_TTL = `${DEFAULT_ROOT_TTL_MS / HOUR}h`;
export const DEFAULT_INTERMEDIATE_TTL = `${DEFAULT_INTERMEDIATE_TTL_MS / HOUR}h`;

export const caHelp = `  init-root --trust-domain TD (--root-key-out FILE | --keep-root-key)
            [--state-dir DIR] [--key-type TYPE] [--root-ttl DURATION] [--intermediate-ttl DURATION]
                     create the trust domain's root CA and an online intermediate, and write the
                     CA state the control plane loads: DIR/ca (certificates, keyring) and DIR/kek
                     (the key-encryption key, created 0600). The root key goes where you say:
                     --root-key-out FILE writes it as PKCS#8 PEM (mode 0600) to keep offline, and
                     the control plane runs with the intermediate alone; --keep-root-key stores it
                     encrypted in the keyring (needed for unattended root rotation).
                     Refuses a DIR/ca that already holds anything.
  inspect FILE [--bundle BUNDLE --trust-domain TD]
                     show each certificate of a PEM file (an SVID chain, a bundle, root.pem):
                     subject, issuer, serial, SANs and SPIFFE ID, validity, key type, CA or leaf,
                     key usage, SHA-256 fingerprint; with --bundle, verify FILE as an X.509-SVID
                     chain against the bundle's roots (exit 1 when it is not valid)
`;

export const caFlagsHelp = `  --trust-domain TD          the trust domain, e.g. example.org (init-root; inspect with --bundle)
  --state-dir DIR            the control plane's state directory (init-root, new-intermediate)  (default ${DEFAULT_STATE_DIR})
  --root-key-out FILE        write the root private key here, mode 0600; never overwrites (init-root)
  --keep-root-key            keep the root key in the keyring instead (init-root)
  --key-type TYPE            ${KEY_TYPES.join(', ')}, for root and intermediate  (default ${DEFAULT_KEY_TYPE}; new-intermediate: the root's)
  --root-ttl DURATION        root lifetime; units ms, s, m, h (no d): 87600h = 10 years  (default ${DEFAULT_ROOT_TTL})
  --intermediate-ttl DURATION  intermediate lifetime, never past the root's notAfter  (default ${DEFAULT_INTERMEDIATE_TTL})
  --bundle BUNDLE            trust bundle (PEM roots) to verify an inspected chain against
`;

// ---------------------------------------------------------------------------------------------
// Describing certificates

/** What `inspect` and `init-root` say about one certificate. */
export interface CertificateSummary {
  subject: string;
  issuer: string;
  serialNumber: string;
  /** `leaf`, or a CA: `root` when self-signed, else `intermediate`. */
  kind: 'root' | 'intermediate' | 'leaf';
  /** basicConstraints pathLenConstraint of a CA, null when unlimited or a leaf. */
  pathLength: number | null;
  /** The URI SAN that is a valid SPIFFE ID (the first), or null. */
  spiffeId: string | null;
  /** Every SAN as `type:value` (`uri:spiffe://…`, `dns:…`). */
  subjectAltNames: string[];
  notBefore: string;
  notAfter: string;
  /** `valid`, `expired` or `not yet valid`, at the time of the run. */
  status: 'valid' | 'expired' | 'not yet valid';
  keyType: string;
  keyUsage: string[];
  extKeyUsage: string[];
  /** SHA-256 of the DER, upper-case hex pairs joined by `:` (as `openssl x509 -fingerprint -sha256`). */
  fingerprintSha256: string;
}

const KEY_USAGE_NAMES = ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement', 'keyCertSign', 'cRLSign', 'encipherOnly', 'decipherOnly'] as const;
const EKU_NAMES: ReadonlyMap<string, string> = new Map(Object.entries(x509.ExtendedKeyUsage).map(([name, oid]) => [String(oid), name]));

function fingerprint(cert: x509.X509Certificate): string {
  return createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex').toUpperCase().replace(/(..)(?!$)/g, '$1:');
}

function keyTypeName(cert: x509.X509Certificate): string {
  try {
    const key = createPublicKey({ key: Buffer.from(cert.publicKey.rawData), format: 'der', type: 'spki' });
    const kind = keyTypeOfKeyObject(key);
    if ('type' in kind) return kind.type;
    const d = key.asymmetricKeyDetails ?? {};
    return [key.asymmetricKeyType ?? 'unknown', d.namedCurve ?? (d.modulusLength === undefined ? undefined : String(d.modulusLength))].filter((x) => x !== undefined).join('-');
  } catch {
    return 'unknown';
  }
}

/** Summarises `cert` at `now`. */
export async function summarize(cert: x509.X509Certificate, now: Date = new Date()): Promise<CertificateSummary> {
  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  const isCa = basic?.ca === true;
  let selfSigned = false;
  if (isCa && cert.subject === cert.issuer) {
    try {
      selfSigned = await cert.verify({ publicKey: cert.publicKey, signatureOnly: true });
    } catch {
      selfSigned = false;
    }
  }
  const names = cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
  const spiffe = names.find((n) => n.type === 'url' && parseSpiffeId(n.value).valid);
  const ku = cert.getExtension(x509.KeyUsagesExtension)?.usages ?? 0;
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages.map(String) ?? [];
  const t = now.getTime();
  return {
    subject: cert.subject,
    issuer: cert.issuer,
    serialNumber: cert.serialNumber,
    kind: !isCa ? 'leaf' : selfSigned ? 'root' : 'intermediate',
    pathLength: isCa ? (basic?.pathLength ?? null) : null,
    spiffeId: spiffe?.value ?? null,
    subjectAltNames: names.map((n) => `${n.type === 'url' ? 'uri' : n.type}:${n.value}`),
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    status: t < cert.notBefore.getTime() ? 'not yet valid' : t > cert.notAfter.getTime() ? 'expired' : 'valid',
    keyType: keyTypeName(cert),
    keyUsage: KEY_USAGE_NAMES.filter((_, i) => (ku & (1 << i)) !== 0),
    extKeyUsage: eku.map((oid) => EKU_NAMES.get(oid) ?? oid),
    fingerprintSha256: fingerprint(cert),
  };
}

/** `364d 23h`, `23h 59m`, `4m 10s`, `12s`. */
export function humanDuration(ms: number): string {
  const s = Math.floor(Math.abs(ms) / 1000);
  const [d, h, m] = [Math.floor(s / 86_400), Math.floor((s % 86_400) / 3600), Math.floor((s % 3600) / 60)];
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

export function validityLine(c: CertificateSummary, now: Date): string {
  const before = Date.parse(c.notBefore);
  const after = Date.parse(c.notAfter);
  const state =
    c.status === 'expired'
      ? `expired ${humanDuration(now.getTime() - after)} ago`
      : c.status === 'not yet valid'
        ? `not yet valid, starts in ${humanDuration(before - now.getTime())}`
        : `valid for ${humanDuration(after - now.getTime())}`;
  return `${c.notBefore} .. ${c.notAfter} (${state})`;
}

function kindLine(c: CertificateSummary): string {
  if (c.kind === 'leaf') return 'leaf (not a CA)';
  const notes = [...(c.kind === 'root' ? ['self-signed'] : []), ...(c.pathLength === null ? [] : [`pathLen ${c.pathLength}`])];
  return `CA, ${c.kind}${notes.length === 0 ? '' : ` (${notes.join(', ')})`}`;
}

function certificateText(c: CertificateSummary, now: Date): string {
  const rows: Array<[string, string]> = [
    ['SPIFFE ID', c.spiffeId ?? '(none)'],
    ['Kind', kindLine(c)],
    ['Subject', c.subject || '(empty)'],
    ['Issuer', c.issuer || '(empty)'],
    ['Serial', c.serialNumber],
    ['SANs', c.subjectAltNames.length === 0 ? '(none)' : c.subjectAltNames.join(', ')],
    ['Validity', validityLine(c, now)],
    ['Key type', c.keyType],
    ['Key usage', c.keyUsage.length === 0 ? '(none)' : c.keyUsage.join(', ')],
    ['Ext key usage', c.extKeyUsage.length === 0 ? '(none)' : c.extKeyUsage.join(', ')],
    ['SHA-256', c.fingerprintSha256],
  ];
  return rows.map(([k, v]) => `  ${`${k}:`.padEnd(15)}${v}`).join('\n');
}

/** Reads a PEM file of certificates; throws (exit 1) naming the file when unreadable, not PEM, or malformed. */
export async function readCertificates(file: string, what: string): Promise<x509.X509Certificate[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${what} ${file}: ${(err as Error).message}`, { cause: err });
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`${what} ${file} holds no PEM certificate (want -----BEGIN CERTIFICATE----- blocks)`);
  return blocks.map((b, i) => {
    try {
      return new x509.X509Certificate(b);
    } catch (err) {
      throw new Error(`${what} ${file}: certificate ${i + 1} of ${blocks.length} cannot be parsed: ${(err as Error).message}`, { cause: err });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// init-root

function checkTrustDomainFlag(value: string | undefined): string {
  if (value === undefined) throw new UsageError('--trust-domain is required');
  const problems = trustDomainProblems(value);
  if (problems.length > 0) throw new UsageError(`--trust-domain is invalid: ${problems.join('; ')}, got ${JSON.stringify(value)}`);
  return value;
}

export function checkTtlFlag(flag: string, value: string): number {
  let ms: number;
  try {
    ms = Math.round(parseDuration(value));
  } catch {
    throw new UsageError(`${flag} must be a duration like 8760h or 90m (units ms, s, m, h), got ${JSON.stringify(value)}`);
  }
  if (ms < MINUTE || ms > MAX_CA_TTL_MS) throw new UsageError(`${flag} must be between 1m and ${MAX_CA_TTL_MS / HOUR}h (100 years), got ${JSON.stringify(value)}`);
  return ms;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/** `palisade certs init-root`. */
export async function initRoot(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    'trust-domain': { type: 'string' },
    'state-dir': { type: 'string', default: DEFAULT_STATE_DIR },
    'key-type': { type: 'string', default: DEFAULT_KEY_TYPE },
    'root-ttl': { type: 'string', default: DEFAULT_ROOT_TTL },
    'intermediate-ttl': { type: 'string', default: DEFAULT_INTERMEDIATE_TTL },
    'root-key-out': { type: 'string' },
    'keep-root-key': { type: 'boolean', default: false },
    output: { type: 'string', short: 'o', default: 'table' },
  });
  const output = checkOutput(flags.output);
  const trustDomain = checkTrustDomainFlag(flags['trust-domain']);
  const keyType = flags['key-type'];
  if (!isKeyType(keyType)) throw new UsageError(`--key-type must be one of ${KEY_TYPES.join(', ')}, got ${JSON.stringify(keyType)}`);
  const rootTtlMs = checkTtlFlag('--root-ttl', flags['root-ttl']);
  const intermediateTtlMs = checkTtlFlag('--intermediate-ttl', flags['intermediate-ttl']);
  if (intermediateTtlMs > rootTtlMs) {
    throw new UsageError(`--intermediate-ttl (${flags['intermediate-ttl']}) must not be longer than --root-ttl (${flags['root-ttl']})`);
  }
  const keyOut = flags['root-key-out'];
  const keep = flags['keep-root-key'];
  if (keyOut === undefined && !keep) {
    throw new UsageError(
      'say where the root private key goes: --root-key-out FILE writes it to a file (mode 0600) to keep offline, ' +
        'so the control plane runs with the intermediate alone; --keep-root-key stores it encrypted in the keyring, ' +
        'which unattended root rotation needs',
    );
  }
  if (keyOut !== undefined && keep) throw new UsageError('--root-key-out and --keep-root-key exclude each other: choose one');
  if (keyOut === '') throw new UsageError('--root-key-out must be a file path, got ""');
  if (flags['state-dir'] === '') throw new UsageError('--state-dir must be a directory path, got ""');

  const stateDir = resolve(flags['state-dir']);
  const caDir = join(stateDir, CA_DIR);
  const kekPath = join(stateDir, KEK_FILE);
  const keyPath = keyOut === undefined ? undefined : resolve(keyOut);

  // Refuse before generating anything: an existing CA is never replaced by accident.
  let present: string[] = [];
  try {
    present = (await readdir(caDir)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read ${caDir}: ${(err as Error).message}`, { cause: err });
  }
  if (present.length > 0) {
    throw new Error(`${caDir} already holds a CA (${present.join(', ')}); init-root never replaces one: remove that directory deliberately to start over`);
  }
  if (keyPath !== undefined && (await exists(keyPath))) throw new Error(`--root-key-out ${keyPath} already exists; init-root never overwrites a key file`);

  const root = await CertificateAuthority.initRoot({ trustDomain, keyType, ttlMs: rootTtlMs });
  const intermediate = await CertificateAuthority.createIntermediate(root, { ttlMs: intermediateTtlMs });

  // The KEK first (the likeliest refusal: a KEK file group or others can read), then the root
  // key with O_EXCL, then the state: if writing the state fails, the root key is not lost.
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const kek = await FileKek.open(kekPath);
  if (keyPath !== undefined) {
    const pem = await exportPrivateKeyPem(root.keys!.privateKey);
    let fh;
    try {
      fh = await open(keyPath, 'wx', 0o600);
    } catch (err) {
      throw new Error(`cannot create --root-key-out ${keyPath}: ${(err as Error).message}`, { cause: err });
    }
    try {
      await fh.chmod(0o600);
      await fh.writeFile(pem);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
  await CertificateAuthority.writeState(caDir, kek, { root, intermediate, keepRootKey: keep });

  const result = {
    trustDomain,
    stateDir,
    caDir,
    kek: kekPath,
    root: await summarize(root.cert),
    intermediate: await summarize(intermediate.cert),
    rootKey: keyPath !== undefined ? { location: 'file', path: keyPath } : { location: 'keyring', path: join(caDir, 'keys', `${ROOT_KEY_NAME}.key.json`) },
    intermediateKey: join(caDir, 'keys', `${INTERMEDIATE_KEY_NAME}.key.json`),
    bundle: join(caDir, 'bundle.pem'),
  };
  if (output === 'json') {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  }
  const line = (label: string, c: CertificateSummary) =>
    `${label}\n  Subject:       ${c.subject}\n  SHA-256:       ${c.fingerprintSha256}\n  Key type:      ${c.keyType}\n  Validity:      ${validityLine(c, new Date())}\n`;
  process.stdout.write(
    `Created the CA for trust domain ${trustDomain} (spiffe://${trustDomain}) in ${caDir}\n\n` +
      line('Root CA', result.root) +
      '\n' +
      line('Intermediate CA (online, signs SVIDs)', result.intermediate) +
      '\n' +
      (keyPath !== undefined
        ? `Root key:         written to ${keyPath} (mode 0600): move it offline; the control plane does not need it\n`
        : `Root key:         kept in the keyring, ${result.rootKey.path} (encrypted under ${kekPath})\n`) +
      `Intermediate key: ${result.intermediateKey} (encrypted under ${kekPath})\n` +
      `Trust bundle:     ${result.bundle}\n`,
  );
  return 0;
}

// ---------------------------------------------------------------------------------------------
// inspect

/** `palisade certs inspect FILE`. */
export async function inspectFile(file: string | undefined, argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    bundle: { type: 'string' },
    'trust-domain': { type: 'string' },
    output: { type: 'string', short: 'o', default: 'table' },
  });
  const output: Output = checkOutput(flags.output);
  if (file === undefined || file === '') throw new UsageError('inspect needs the PEM file to read, e.g. palisade certs inspect svid.pem');
  const bundle = flags.bundle;
  if (bundle !== undefined && flags['trust-domain'] === undefined) throw new UsageError('--bundle needs --trust-domain: the trust domain the SVID must belong to');
  if (bundle === undefined && flags['trust-domain'] !== undefined) throw new UsageError('--trust-domain is used only with --bundle BUNDLE (to verify the chain)');
  const trustDomain = bundle === undefined ? undefined : checkTrustDomainFlag(flags['trust-domain']);

  const now = new Date();
  const certs = await readCertificates(file, 'file');
  const summaries = await Promise.all(certs.map((c) => summarize(c, now)));
  let verification: { valid: true; spiffeId: string; path: string[] } | { valid: false; code: string; errors: string[] } | undefined;
  if (bundle !== undefined && trustDomain !== undefined) {
    await readCertificates(bundle, 'bundle');
    const [chainPem, bundlePem] = [await readFile(file, 'utf8'), await readFile(bundle, 'utf8')];
    const verdict = await verifySvid(chainPem, bundlePem, { trustDomain, now });
    verification = verdict.valid
      ? { valid: true, spiffeId: verdict.result.spiffeId.uri, path: verdict.result.path.map((c) => c.subject || '(empty subject)') }
      : { valid: false, code: verdict.code, errors: verdict.errors };
  }

  if (output === 'json') {
    process.stdout.write(`${JSON.stringify({ file, certificates: summaries, ...(verification === undefined ? {} : { verification }) }, null, 2)}\n`);
  } else {
    const parts = summaries.map((s, i) => `Certificate ${i + 1} of ${summaries.length}\n${certificateText(s, now)}\n`);
    let text = parts.join('\n');
    if (verification !== undefined) {
      text += verification.valid
        ? `\nX.509-SVID: valid for trust domain ${trustDomain}: ${verification.spiffeId} (path: ${verification.path.join(' -> ')})\n`
        : `\nX.509-SVID: NOT valid for trust domain ${trustDomain} (${verification.code}):\n${verification.errors.map((e) => `  - ${e}\n`).join('')}`;
    }
    process.stdout.write(text);
  }
  return verification === undefined || verification.valid ? 0 : 1;
}
