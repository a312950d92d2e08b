/**
 * Palisade's certificate authority: an offline-able root, an online intermediate, and
 * X.509-SVID issuance from CSRs (SPIFFE X509-SVID spec; see docs/certs.md for the profile).
 *
 *   root (self-signed, CA, keyCertSign+cRLSign, URI SAN spiffe://<td>)      key may be offline
 *     └─ intermediate (CA, pathLen 0, keyCertSign+cRLSign, URI SAN spiffe://<td>)  key in keyring
 *          └─ leaf SVID (not CA, digitalSignature, serverAuth+clientAuth,
 *                        one URI SAN spiffe://<td>/ns/<ns>/sa/<sa>, empty subject, TTL 24 h)
 *
 * State directory:
 *   root.pem          the current root certificate
 *   intermediate.pem  the online intermediate certificate
 *   bundle.pem        the trust bundle: every root currently trusted (two during a rotation)
 *   keys/             a Keyring: intermediate.key.json, and root.key.json only when the root is online
 *
 * The workload's private key never reaches the CA: it signs the public key of a CSR whose
 * self-signature proves possession, after checking the requested SPIFFE ID.
 */
import { createPublicKey, randomBytes } from 'node:crypto';
import { writeAtomic } from './atomic-file.ts';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { x509, webcrypto, OID_SAN, parseCertificates, pemOf } from './x509.ts';
import {
  CaStateError,
  CertsInvalidOptionError,
  CSR_REFUSED,
  RootKeyOfflineError,
  type CodedResult,
} from './errors.ts';
import { DEFAULT_KEY_TYPE, generateKeyPair, isKeyType, KEY_TYPES, keyTypeOfKeyObject, signingAlgorithm, type KeyPair, type KeyType } from './keys.ts';
import { Keyring, type Kek } from './keyring.ts';
import { parseSpiffeId, trustDomainId, trustDomainProblems, workloadId } from './spiffe.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Default lifetime of a root certificate: 10 years. */
export const DEFAULT_ROOT_TTL_MS = 3650 * DAY;
/** Default lifetime of an intermediate certificate: 1 year. */
export const DEFAULT_INTERMEDIATE_TTL_MS = 365 * DAY;
/** Default lifetime of a workload SVID: 24 hours. */
export const DEFAULT_SVID_TTL_MS = DAY;
/** Longest SVID lifetime accepted: 30 days (SVIDs are meant to be short-lived). */
export const MAX_SVID_TTL_MS = 30 * DAY;
/** notBefore is set this far in the past to tolerate clock skew between CA and peers: 1 minute. */
export const CLOCK_SKEW_MS = MINUTE;

/** Keyring names of the CA keys. */
export const ROOT_KEY_NAME = 'root';
export const INTERMEDIATE_KEY_NAME = 'intermediate';
/** Keyring name of the previous intermediate's key during a root rotation (it still signs CRLs for its certificates). */
export const PREVIOUS_INTERMEDIATE_KEY_NAME = 'previous-intermediate';
/** File of the previous intermediate certificate during a root rotation. */
export const PREVIOUS_INTERMEDIATE_FILE = 'previous-intermediate.pem';

/** A CA certificate with its key pair, or `keys: null` when the key is offline. */
export interface CaCertificate {
  readonly trustDomain: string;
  readonly cert: x509.X509Certificate;
  /** PEM of `cert`. */
  readonly pem: string;
  readonly keys: KeyPair | null;
}

/** Options of {@link CertificateAuthority.initRoot}. */
export interface InitRootOptions {
  trustDomain: string;
  /** Default `ecdsa-p256`. */
  keyType?: KeyType;
  /** Lifetime in ms; default 10 years. */
  ttlMs?: number;
  /** Adds a critical URI name constraint permitting only `spiffe://<trustDomain>` names below the root (X509-SVID 4.2). Default false. */
  nameConstraints?: boolean;
  /** Issue time (tests); default now. */
  now?: Date;
}

/** Options of {@link CertificateAuthority.createIntermediate}. */
export interface CreateIntermediateOptions {
  /** Default: the root's key type. */
  keyType?: KeyType;
  /** Lifetime in ms; default 1 year, never past the root's notAfter. */
  ttlMs?: number;
  now?: Date;
}

/** Options of {@link CertificateAuthority.signCsr}. */
export interface SignCsrOptions {
  /** The namespace the caller is entitled to (from its verified join token), one path segment. */
  namespace: string;
  /** The service account the caller is entitled to, one path segment. */
  serviceAccount: string;
  /** SVID lifetime in ms, 1 minute .. 30 days; default the CA's `svidTtlMs` (24 h). */
  ttlMs?: number;
  /** Issue time (tests); default now. */
  now?: Date;
}

/** An issued X.509-SVID. */
export interface IssuedSvid {
  readonly spiffeId: string;
  readonly cert: x509.X509Certificate;
  /** PEM of the leaf alone. */
  readonly certPem: string;
  /** PEM of leaf then intermediate (what the workload presents in TLS). */
  readonly chainPem: string;
  /** Hex serial number. */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** When to renew: half-way through the validity period. */
  readonly renewAt: Date;
}

/** Options of {@link CertificateAuthority.load} and {@link CertificateAuthority.fromMaterial}. */
export interface CaOptions {
  /** Default SVID lifetime in ms; default 24 h. */
  svidTtlMs?: number;
}

/** Half-life of a certificate: the instant to renew it (notBefore + (notAfter - notBefore) / 2). */
export function renewAt(cert: x509.X509Certificate | string): Date {
  const c = typeof cert === 'string' ? new x509.X509Certificate(cert) : cert;
  const start = c.notBefore.getTime();
  return new Date(start + Math.floor((c.notAfter.getTime() - start) / 2));
}

/** The issuing certificate authority. Construct with `load` (state directory) or `fromMaterial` (in memory). */
export class CertificateAuthority {
  readonly trustDomain: string;
  readonly root: CaCertificate;
  readonly intermediate: CaCertificate;
  readonly svidTtlMs: number;
  /**
   * During a root rotation, the intermediate of the old root: it no longer issues, but its
   * SVIDs are still live and it signs their CRL (`keys` null when its key is not in the keyring).
   */
  readonly previousIntermediate: CaCertificate | null;
  readonly #bundle: readonly x509.X509Certificate[];

  private constructor(root: CaCertificate, intermediate: CaCertificate, bundle: readonly x509.X509Certificate[], svidTtlMs: number, previous: CaCertificate | null) {
    this.trustDomain = root.trustDomain;
    this.root = root;
    this.intermediate = intermediate;
    this.#bundle = bundle;
    this.svidTtlMs = svidTtlMs;
    this.previousIntermediate = previous;
  }

  /** Creates a self-signed root: CA:true (critical), keyUsage keyCertSign+cRLSign (critical), SKI, URI SAN `spiffe://<td>`. */
  static async initRoot(options: InitRootOptions): Promise<CaCertificate> {
    const trustDomain = checkTrustDomain(options.trustDomain);
    const keyType = checkKeyType(options.keyType ?? DEFAULT_KEY_TYPE);
    const ttlMs = checkTtl('ttlMs', options.ttlMs ?? DEFAULT_ROOT_TTL_MS, MINUTE, 100 * 365 * DAY);
    const now = options.now ?? new Date();
    const keys = await generateKeyPair(keyType);
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: tdUri(trustDomain) }], false),
    ];
    if (options.nameConstraints === true) extensions.push(uriNameConstraint(trustDomain));
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: `CN=Palisade Root CA ${randomBytes(4).toString('hex')}, O=Palisade, OU=${trustDomain}`,
      keys: { privateKey: keys.privateKey, publicKey: keys.publicKey },
      notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
      notAfter: new Date(now.getTime() + ttlMs),
      signingAlgorithm: signingAlgorithm(keyType),
      extensions,
    });
    return Object.freeze({ trustDomain, cert, pem: pemOf(cert), keys });
  }

  /** Creates an intermediate signed by `root` (whose key must be present): CA:true pathLen 0, keyCertSign+cRLSign, SKI/AKI, URI SAN `spiffe://<td>`. */
  static async createIntermediate(root: CaCertificate, options: CreateIntermediateOptions = {}): Promise<CaCertificate> {
    if (root.keys === null) throw new RootKeyOfflineError('creating an intermediate');
    const keyType = checkKeyType(options.keyType ?? root.keys.type);
    const ttlMs = checkTtl('ttlMs', options.ttlMs ?? DEFAULT_INTERMEDIATE_TTL_MS, MINUTE, 100 * 365 * DAY);
    const now = options.now ?? new Date();
    const keys = await generateKeyPair(keyType);
    const notAfter = new Date(Math.min(now.getTime() + ttlMs, root.cert.notAfter.getTime()));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: `CN=Palisade Intermediate CA ${randomBytes(4).toString('hex')}, O=Palisade, OU=${root.trustDomain}`,
      issuer: root.cert.subjectName,
      publicKey: keys.publicKey,
      signingKey: root.keys.privateKey,
      notBefore: new Date(Math.max(now.getTime() - CLOCK_SKEW_MS, root.cert.notBefore.getTime())),
      notAfter,
      signingAlgorithm: signingAlgorithm(root.keys.type),
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        akiOf(root.cert),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: tdUri(root.trustDomain) }], false),
      ],
    });
    return Object.freeze({ trustDomain: root.trustDomain, cert, pem: pemOf(cert), keys });
  }

  /**
   * Writes a CA state directory. The root key is stored (encrypted) only when `keepRootKey` is
   * true; otherwise the caller keeps it offline (e.g. `exportPrivateKeyPem(root.keys.privateKey)`).
   * `bundle` defaults to `[root]`; pass two roots during a rotation.
   */
  static async writeState(
    stateDir: string,
    kek: Kek,
    material: {
      root: CaCertificate;
      intermediate: CaCertificate;
      bundle?: readonly CaCertificate[];
      keepRootKey?: boolean;
      /** During a root rotation: the old root's intermediate (certificate, and key when present). */
      previousIntermediate?: CaCertificate | null;
    },
  ): Promise<void> {
    if (material.intermediate.keys === null) throw new CaStateError('the intermediate key is required to write CA state');
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const keyring = await Keyring.open(join(stateDir, 'keys'), kek);
    await keyring.put(INTERMEDIATE_KEY_NAME, material.intermediate.keys.privateKey);
    if (material.keepRootKey === true && material.root.keys !== null) await keyring.put(ROOT_KEY_NAME, material.root.keys.privateKey);
    else await keyring.delete(ROOT_KEY_NAME);
    const previous = material.previousIntermediate ?? null;
    if (previous?.keys != null) await keyring.put(PREVIOUS_INTERMEDIATE_KEY_NAME, previous.keys.privateKey);
    else await keyring.delete(PREVIOUS_INTERMEDIATE_KEY_NAME);
    if (previous !== null) await writeAtomic(join(stateDir, PREVIOUS_INTERMEDIATE_FILE), previous.pem);
    else await rm(join(stateDir, PREVIOUS_INTERMEDIATE_FILE), { force: true });
    const bundle = material.bundle ?? [material.root];
    await writeAtomic(join(stateDir, 'root.pem'), material.root.pem);
    await writeAtomic(join(stateDir, 'intermediate.pem'), material.intermediate.pem);
    await writeAtomic(join(stateDir, 'bundle.pem'), bundle.map((r) => r.pem).join(''));
  }

  /**
   * Loads a CA from a state directory. The intermediate key must be in the keyring; the root
   * key may be absent (offline), in which case `root.keys` is null. Throws `PAL_ERR_CERTS_CA_STATE`.
   */
  static async load(stateDir: string, kek: Kek, options: CaOptions = {}): Promise<CertificateAuthority> {
    const read = async (file: string): Promise<string> => {
      try {
        return await readFile(join(stateDir, file), 'utf8');
      } catch (cause) {
        throw new CaStateError(`CA state ${join(stateDir, file)} cannot be read`, { cause });
      }
    };
    const [rootPem, intermediatePem, bundlePem] = [await read('root.pem'), await read('intermediate.pem'), await read('bundle.pem')];
    const keyring = await Keyring.open(join(stateDir, 'keys'), kek);
    if (!(await keyring.has(INTERMEDIATE_KEY_NAME))) throw new CaStateError(`CA state ${stateDir} has no intermediate key in its keyring`);
    const intermediateKeys = await keyring.get(INTERMEDIATE_KEY_NAME);
    const rootKeys = (await keyring.has(ROOT_KEY_NAME)) ? await keyring.get(ROOT_KEY_NAME) : null;
    const rootCert = parseOne(rootPem, 'root.pem');
    const trustDomain = trustDomainOf(rootCert, 'root.pem');
    let previous: CaCertificate | null = null;
    if (existsSync(join(stateDir, PREVIOUS_INTERMEDIATE_FILE))) {
      const cert = parseOne(await read(PREVIOUS_INTERMEDIATE_FILE), PREVIOUS_INTERMEDIATE_FILE);
      const keys = (await keyring.has(PREVIOUS_INTERMEDIATE_KEY_NAME)) ? await keyring.get(PREVIOUS_INTERMEDIATE_KEY_NAME) : null;
      if (keys !== null && !(await samePublicKey(cert, keys))) throw new CaStateError(`the previous intermediate key in the keyring does not match ${PREVIOUS_INTERMEDIATE_FILE}`);
      previous = Object.freeze({ trustDomain, cert, pem: pemOf(cert), keys });
    }
    return CertificateAuthority.#assemble(
      { trustDomain, cert: rootCert, pem: pemOf(rootCert), keys: rootKeys },
      intermediatePem,
      intermediateKeys,
      bundlePem,
      options,
      previous,
    );
  }

  /** Builds a CA in memory from a root (key optional) and an intermediate with its key. */
  static async fromMaterial(
    material: { root: CaCertificate; intermediate: CaCertificate; bundle?: readonly CaCertificate[]; previousIntermediate?: CaCertificate | null },
    options: CaOptions = {},
  ): Promise<CertificateAuthority> {
    if (material.intermediate.keys === null) throw new CaStateError('the intermediate key is required to issue certificates');
    const bundlePem = (material.bundle ?? [material.root]).map((r) => r.pem).join('');
    return CertificateAuthority.#assemble(material.root, material.intermediate.pem, material.intermediate.keys, bundlePem, options, material.previousIntermediate ?? null);
  }

  static async #assemble(
    root: CaCertificate,
    intermediatePem: string,
    intermediateKeys: KeyPair,
    bundlePem: string,
    options: CaOptions,
    previous: CaCertificate | null,
  ): Promise<CertificateAuthority> {
    const svidTtlMs = checkTtl('svidTtlMs', options.svidTtlMs ?? DEFAULT_SVID_TTL_MS, MINUTE, MAX_SVID_TTL_MS);
    const intermediate = parseOne(intermediatePem, 'intermediate.pem');
    const bundle = parseCertificates(bundlePem);
    if (bundle.length === 0) throw new CaStateError('the trust bundle holds no certificate');
    if (!bundle.some((c) => c.equal(root.cert))) throw new CaStateError('the trust bundle does not contain the current root');
    if (trustDomainOf(intermediate, 'intermediate.pem') !== root.trustDomain) {
      throw new CaStateError(`the intermediate's trust domain is not the root's (${root.trustDomain})`);
    }
    if (!(await intermediate.verify({ publicKey: root.cert.publicKey, signatureOnly: true }))) {
      throw new CaStateError('the intermediate certificate is not signed by the root');
    }
    if (!(await samePublicKey(intermediate, intermediateKeys))) throw new CaStateError('the intermediate key in the keyring does not match intermediate.pem');
    if (root.keys !== null && !(await samePublicKey(root.cert, root.keys))) throw new CaStateError('the root key in the keyring does not match root.pem');
    const inter: CaCertificate = Object.freeze({ trustDomain: root.trustDomain, cert: intermediate, pem: pemOf(intermediate), keys: intermediateKeys });
    if (previous !== null && !bundle.some((c) => c.subject === previous.cert.issuer && !c.equal(root.cert))) {
      throw new CaStateError(`${PREVIOUS_INTERMEDIATE_FILE} is not issued by a root of the trust bundle other than the current one`);
    }
    return new CertificateAuthority(root, inter, Object.freeze([...bundle]), svidTtlMs, previous);
  }

  /** Every root of the trust bundle, in bundle order (the old root first during a rotation). */
  get bundleRoots(): readonly x509.X509Certificate[] {
    return this.#bundle;
  }

  /** True during a root rotation: the bundle trusts more than the current root. */
  get rotating(): boolean {
    return this.#bundle.length > 1;
  }

  /** True when the root private key is loaded (not kept offline). */
  get rootKeyOnline(): boolean {
    return this.root.keys !== null;
  }

  /** The trust bundle as PEM: every trusted root (two during a root rotation). */
  trustBundle(): string {
    return this.#bundle.map(pemOf).join('');
  }

  /** Half-life of `cert`; see {@link renewAt}. */
  renewAt(cert: x509.X509Certificate | string): Date {
    return renewAt(cert);
  }

  /**
   * Verifies a PKCS#10 CSR and issues an X.509-SVID for `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`.
   * Refusals are values with code `PAL_ERR_CERTS_CSR_REFUSED` and every reason. The CSR's subject and
   * any extension requests other than its SAN are ignored: the CA sets the whole profile.
   */
  async signCsr(csrPem: string, options: SignCsrOptions): Promise<CodedResult<IssuedSvid>> {
    const ttlMs = checkTtl('ttlMs', options.ttlMs ?? this.svidTtlMs, MINUTE, MAX_SVID_TTL_MS);
    const now = options.now ?? new Date();
    const refuse = (errors: string[]): CodedResult<IssuedSvid> => ({ valid: false, code: CSR_REFUSED, errors });

    const expected = workloadId(this.trustDomain, options.namespace, options.serviceAccount);
    if (!expected.valid) return refuse(expected.errors.map((e) => `entitled identity: ${e}`));

    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch {
      return refuse(['CSR is not a valid PEM PKCS#10 certificate request']);
    }
    let signed: boolean;
    try {
      signed = await csr.verify();
    } catch {
      signed = false;
    }
    if (!signed) return refuse(['CSR signature does not verify with its own public key (proof of possession failed)']);

    const errors: string[] = [];
    const hash = (csr.signatureAlgorithm as { hash?: { name?: string } }).hash?.name;
    if (hash !== undefined && hash !== 'SHA-256' && hash !== 'SHA-384' && hash !== 'SHA-512') {
      errors.push(`CSR is signed with ${hash}, which is not accepted (want SHA-256 or stronger, or Ed25519)`);
    }
    let leafKeyType: KeyType | undefined;
    try {
      const kind = keyTypeOfKeyObject(createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' }));
      if ('error' in kind) errors.push(`CSR public key: ${kind.error}`);
      else leafKeyType = kind.type;
    } catch {
      errors.push('CSR public key cannot be parsed');
    }

    const sans = csr.extensions.filter((e) => e.type === OID_SAN);
    if (sans.length > 1) errors.push('CSR has more than one subjectAltName extension');
    const san = sans[0];
    if (san !== undefined) {
      let names: readonly x509.GeneralName[] = [];
      try {
        names = new x509.SubjectAlternativeNameExtension(san.rawData).names.items;
      } catch {
        errors.push('CSR subjectAltName cannot be parsed');
      }
      const uris = names.filter((n) => n.type === 'url').map((n) => n.value);
      const others = names.filter((n) => n.type !== 'url').map((n) => `${n.type}:${n.value}`);
      if (others.length > 0) errors.push(`CSR requests names other than its SPIFFE ID (${others.join(', ')}); an SVID carries only the SPIFFE ID`);
      if (uris.length > 1) errors.push(`CSR requests ${uris.length} URI SANs; an X.509-SVID has exactly one`);
      const requested = uris[0];
      if (uris.length === 1 && requested !== undefined && requested !== expected.result.uri) {
        const parsed = parseSpiffeId(requested);
        if (!parsed.valid) errors.push(`CSR requests ${JSON.stringify(requested)}, which is not a valid SPIFFE ID: ${parsed.errors.join('; ')}`);
        else if (parsed.result.trustDomain !== this.trustDomain) {
          errors.push(`CSR requests trust domain ${JSON.stringify(parsed.result.trustDomain)}, but this CA issues for ${JSON.stringify(this.trustDomain)}`);
        } else {
          errors.push(`CSR requests SPIFFE ID ${requested}, but the caller is entitled only to ${expected.result.uri}`);
        }
      }
    }

    const inter = this.intermediate.cert;
    if (now.getTime() < inter.notBefore.getTime() || now.getTime() >= inter.notAfter.getTime()) {
      errors.push(`the intermediate CA certificate is not valid at ${now.toISOString()} (valid ${inter.notBefore.toISOString()} .. ${inter.notAfter.toISOString()})`);
    }
    if (errors.length > 0 || leafKeyType === undefined) return refuse(errors);

    const signer = this.intermediate.keys!;
    const notBefore = new Date(Math.max(now.getTime() - CLOCK_SKEW_MS, inter.notBefore.getTime()));
    const notAfter = new Date(Math.min(now.getTime() + ttlMs, inter.notAfter.getTime()));
    let usages = x509.KeyUsageFlags.digitalSignature;
    if (leafKeyType === 'rsa-3072') usages |= x509.KeyUsageFlags.keyEncipherment;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: '',
      issuer: inter.subjectName,
      publicKey: csr.publicKey,
      signingKey: signer.privateKey,
      notBefore,
      notAfter,
      signingAlgorithm: signingAlgorithm(signer.type),
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(usages, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
        await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
        akiOf(inter),
        // Critical: the subject is empty (X509-SVID 3.1, RFC 5280 4.1.2.6).
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: expected.result.uri }], true),
      ],
    });
    const certPem = pemOf(cert);
    return {
      valid: true,
      result: Object.freeze({
        spiffeId: expected.result.uri,
        cert,
        certPem,
        chainPem: certPem + pemOf(inter),
        serialNumber: cert.serialNumber,
        notBefore: cert.notBefore,
        notAfter: cert.notAfter,
        renewAt: renewAt(cert),
      }),
    };
  }

  /** A summary without key material (what logs see). */
  toJSON(): Record<string, unknown> {
    return { trustDomain: this.trustDomain, root: this.root.cert.subject, intermediate: this.intermediate.cert.subject, rootKeyOnline: this.rootKeyOnline };
  }

  [inspect.custom](): string {
    return `CertificateAuthority ${JSON.stringify(this.toJSON())}`;
  }
}

function tdUri(trustDomain: string): string {
  const id = trustDomainId(trustDomain);
  if (!id.valid) throw new CertsInvalidOptionError(`trustDomain is invalid: ${id.errors.join('; ')}`);
  return id.result.uri;
}

function checkTrustDomain(trustDomain: unknown): string {
  if (typeof trustDomain !== 'string') throw new CertsInvalidOptionError(`trustDomain must be a string, got ${JSON.stringify(trustDomain)}`);
  const problems = trustDomainProblems(trustDomain);
  if (problems.length > 0) throw new CertsInvalidOptionError(`trustDomain is invalid: ${problems.join('; ')}, got ${JSON.stringify(trustDomain)}`);
  return trustDomain;
}

function checkKeyType(keyType: unknown): KeyType {
  if (!isKeyType(keyType)) throw new CertsInvalidOptionError(`keyType must be one of ${KEY_TYPES.join(', ')}, got ${JSON.stringify(keyType)}`);
  return keyType;
}

function checkTtl(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new CertsInvalidOptionError(`${name} must be an integer number of ms in ${min}..${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** 16 random bytes, top bit clear and second-highest set: a positive 128-bit serial with 126 bits of entropy. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes.toString('hex');
}

function akiOf(issuer: x509.X509Certificate): x509.AuthorityKeyIdentifierExtension {
  const ski = issuer.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski === null) throw new CaStateError(`issuer ${issuer.subject} has no subjectKeyIdentifier`);
  return new x509.AuthorityKeyIdentifierExtension(ski.keyId, false);
}

/** A critical nameConstraints extension permitting URI names in host `trustDomain` (RFC 5280 4.2.1.10). */
function uriNameConstraint(trustDomain: string): x509.Extension {
  const uri = der(0x86, Buffer.from(trustDomain, 'ascii')); // GeneralName uniformResourceIdentifier [6] IA5String
  const subtree = der(0x30, uri); // GeneralSubtree { base }
  const permitted = der(0xa0, subtree); // permittedSubtrees [0] GeneralSubtrees
  return new x509.Extension('2.5.29.30', true, der(0x30, permitted));
}

function der(tag: number, body: Buffer): Buffer {
  const n = body.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}

function parseOne(pem: string, what: string): x509.X509Certificate {
  let certs: x509.X509Certificate[];
  try {
    certs = parseCertificates(pem);
  } catch (cause) {
    throw new CaStateError(`${what} is not a valid PEM certificate`, { cause });
  }
  if (certs.length !== 1) throw new CaStateError(`${what} must hold exactly one certificate, holds ${certs.length}`);
  return certs[0]!;
}

function trustDomainOf(cert: x509.X509Certificate, what: string): string {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const uris = san?.names.items.filter((n) => n.type === 'url') ?? [];
  const id = uris.length === 1 ? parseSpiffeId(uris[0]!.value) : undefined;
  if (id === undefined || !id.valid || id.result.path !== '') throw new CaStateError(`${what} has no single URI SAN spiffe://<trust-domain>`);
  return id.result.trustDomain;
}

async function samePublicKey(cert: x509.X509Certificate, keys: KeyPair): Promise<boolean> {
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  return spki.equals(Buffer.from(cert.publicKey.rawData));
}
