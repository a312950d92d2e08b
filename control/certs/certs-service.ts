/**
 * The control plane's certificate services, over one state directory it owns (single
 * writer): join tokens (`join-tokens.json`), the audit log (`audit.jsonl`) and, once
 * `palisade certs init-root` has made one, the CA (`ca/`, its keys encrypted under `kek`).
 * Nothing is created on disk until the first change. With a CA, the control plane gets its
 * own SVID (`spiffe://<td>/ns/palisade-system/sa/control-plane`) for the endpoints
 * workloads reach over TLS.
 *
 * Trust: `trust()` is what Envoy and the sidecars must trust right now, the bundle (one root,
 * two during a root rotation) and a CRL of the revoked, unexpired workload certificates (null
 * when there are none). `onTrustChange` listeners hear it after each revocation, each
 * root-rotation phase and each CRL re-signing (at half its validity), so the control plane
 * can push it (ControlPlane.setTrust) within one xDS update.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAtomic } from '../../certs/atomic-file.ts';
import { JsonLinesAuditSink, type AuditSink } from '../../certs/audit.ts';
import { CertificateAuthority, type CaCertificate } from '../../certs/ca.ts';
import { crlNumberOf, DEFAULT_CRL_VALIDITY_MS, generateCrl } from '../../certs/crl.ts';
import { createCsr } from '../../certs/csr.ts';
import { RotationInProgressError, RotationNotStartedError, RotationOldCertsLiveError } from '../../certs/errors.ts';
import { IssuedCertStore, type IssuedCert, type RevokeCertResult } from '../../certs/issued-store.ts';
import { JoinTokenStore } from '../../certs/join-token.ts';
import { exportPrivateKeyPem, generateKeyPair } from '../../certs/keys.ts';
import { FileKek } from '../../certs/keyring.ts';
import {
  certFingerprint,
  commitCaState,
  oldRootOf,
  recoverCaDir,
  startMaterial,
  type RotationPhase,
  type StartRotationOptions,
} from '../../certs/root-rotation.ts';
import { workloadId } from '../../certs/spiffe.ts';
import { x509 } from '../../certs/x509.ts';
import { enroll, renew, type EnrollResult } from './enrollment.ts';

export const JOIN_TOKENS_FILE = 'join-tokens.json';
/** The record of issued workload certificates (palisade certs list / revoke). */
export const ISSUED_FILE = 'issued.json';
export const AUDIT_FILE = 'audit.jsonl';
/** The CA's state directory (CertificateAuthority.writeState / load) under the state dir. */
export const CA_DIR = 'ca';
/** The key-encryption key file (FileKek) that protects the CA keyring. */
export const KEK_FILE = 'kek';
/** The control plane's own identity: namespace and service account. */
export const CONTROL_PLANE_NAMESPACE = 'palisade-system';
export const CONTROL_PLANE_SERVICE_ACCOUNT = 'control-plane';

/** The CRL state (`{version, number, pem}`): the last cRLNumber, so numbers keep increasing across restarts. */
export const CRL_FILE = 'crl.json';

/** What peers must trust now: the roots, and the CRLs (PEM, one per live intermediate) or null when nothing is revoked. */
export interface Trust {
  readonly bundle: string;
  readonly crl: string | null;
}

/** Why the trust changed. */
export type TrustChangeCause = 'revocation' | 'rotation-started' | 'rotation-finished' | 'crl-refresh';

export type TrustListener = (trust: Trust, cause: TrustChangeCause) => void;

/** A root as `rotate-root status` shows it. */
export interface RootInfo {
  readonly subject: string;
  /** SHA-256 of the DER, upper-case hex pairs joined by `:` (as openssl prints it). */
  readonly fingerprintSha256: string;
  readonly notAfter: string;
}

/** Where a root rotation stands. */
export interface RotationStatus {
  readonly phase: RotationPhase;
  /** The root new certificates chain to (the new one during a rotation). */
  readonly root: RootInfo;
  /** During a rotation, the old root still in the bundle; else null. */
  readonly oldRoot: RootInfo | null;
  /** Live (unexpired, unrevoked, not renewed) workload certificates by the root they chain to; `retired`: to no trusted root. */
  readonly liveCerts: { readonly root: number; readonly oldRoot: number; readonly retired: number };
}

function rootInfo(cert: x509.X509Certificate): RootInfo {
  return { subject: cert.subject, fingerprintSha256: certFingerprint(cert).toUpperCase().replace(/(..)(?!$)/g, '$1:'), notAfter: cert.notAfter.toISOString() };
}

/** A certificate and key for a TLS endpoint, PEM. */
export interface ServerIdentity {
  readonly spiffeId: string;
  readonly key: string;
  /** Leaf then intermediate. */
  readonly chain: string;
  readonly bundle: string;
  readonly renewAt: Date;
  readonly notAfter: Date;
}

export class CertsService {
  readonly stateDir: string;
  readonly tokens: JoinTokenStore;
  readonly audit: AuditSink & { close(): Promise<void> };
  readonly issued: IssuedCertStore;
  #ca: CertificateAuthority | null;
  #trust: Trust | null = null;
  #crlNumber: bigint;
  readonly #listeners = new Set<TrustListener>();
  /** Serializes trust and rotation changes. */
  #tail: Promise<unknown> = Promise.resolve();
  #refreshTimer: NodeJS.Timeout | null = null;
  #closed = false;

  private constructor(stateDir: string, tokens: JoinTokenStore, audit: JsonLinesAuditSink, ca: CertificateAuthority | null, issued: IssuedCertStore, crlNumber: bigint) {
    this.stateDir = stateDir;
    this.tokens = tokens;
    this.audit = audit;
    this.#ca = ca;
    this.issued = issued;
    this.#crlNumber = crlNumber;
  }

  /** Null until `palisade certs init-root` has written a CA under the state dir; replaced at each root-rotation phase. */
  get ca(): CertificateAuthority | null {
    return this.#ca;
  }

  /**
   * Opens (or prepares) the services under `stateDir`; loads the CA when there is one.
   * Throws PAL_ERR_CERTS_TOKEN_STATE_INVALID for a corrupt token file and
   * PAL_ERR_CERTS_CA_STATE / PAL_ERR_CERTS_KEY_DECRYPT for an unusable CA.
   */
  static async open(stateDir: string): Promise<CertsService> {
    const audit = new JsonLinesAuditSink(join(stateDir, AUDIT_FILE));
    const tokens = await JoinTokenStore.open({ file: join(stateDir, JOIN_TOKENS_FILE), audit });
    const caDir = join(stateDir, CA_DIR);
    await recoverCaDir(caDir);
    const ca = existsSync(join(caDir, 'root.pem')) ? await CertificateAuthority.load(caDir, await FileKek.open(join(stateDir, KEK_FILE))) : null;
    const service = new CertsService(stateDir, tokens, audit, ca, await IssuedCertStore.open(join(stateDir, ISSUED_FILE)), await readCrlNumber(join(stateDir, CRL_FILE)));
    if (ca !== null) await service.#refreshTrust(null);
    return service;
  }

  /** What peers must trust now (bundle and CRL). Throws without a CA. */
  trust(): Trust {
    this.requireCa();
    return this.#trust!;
  }

  /** Calls `listener` after every trust change (revocation, rotation phase, CRL re-signing); returns the unsubscribe. */
  onTrustChange(listener: TrustListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #serialize<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(op);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** Recomputes the trust (re-signing the CRL), persists the CRL number, tells listeners `cause` (none when null). */
  async #refreshTrust(cause: TrustChangeCause | null): Promise<void> {
    const ca = this.requireCa();
    const now = new Date();
    const revoked = this.issued.revokedUnexpired(now);
    let crl: string | null = null;
    if (revoked.length > 0) {
      this.#crlNumber += 1n;
      const number = this.#crlNumber;
      const issuers = [ca.intermediate, ...(ca.previousIntermediate === null ? [] : [ca.previousIntermediate])].filter((i) => i.keys !== null);
      const known = new Set(issuers.map((i) => certFingerprint(i.cert)));
      const pems: string[] = [];
      for (const issuer of issuers) {
        const fp = certFingerprint(issuer.cert);
        // A record without a known issuer (written before rotation existed) is listed by every CRL: harmless, and never missed.
        const entries = revoked.filter((r) => r.issuer === fp || r.issuer === undefined || !known.has(r.issuer));
        pems.push((await generateCrl(issuer, entries.map(entryOf), { number, now })).pem);
      }
      crl = pems.join('');
      await writeAtomic(join(this.stateDir, CRL_FILE), `${JSON.stringify({ version: 1, number: number.toString(), pem: crl }, null, 2)}\n`);
    }
    this.#trust = Object.freeze({ bundle: ca.trustBundle(), crl });
    this.#scheduleRefresh(crl !== null);
    if (cause === null) return;
    for (const listener of this.#listeners) {
      try {
        listener(this.#trust, cause);
      } catch (err) {
        process.emitWarning(`a trust-change listener threw: ${(err as Error).message}`);
      }
    }
  }

  /** Re-signs the CRL at half its validity, so peers never hold an expired one. */
  #scheduleRefresh(on: boolean): void {
    if (this.#refreshTimer !== null) clearTimeout(this.#refreshTimer);
    this.#refreshTimer = null;
    if (!on || this.#closed) return;
    this.#refreshTimer = setTimeout(() => void this.#serialize(() => this.#refreshTrust('crl-refresh')).catch((err: Error) => process.emitWarning(`re-signing the CRL failed: ${err.message}`)), DEFAULT_CRL_VALIDITY_MS / 2);
    this.#refreshTimer.unref();
  }

  /** Where a root rotation stands (phase, roots, live certificates per root). */
  rotationStatus(now = new Date()): RotationStatus {
    const ca = this.requireCa();
    const oldRoot = oldRootOf(ca);
    const current = certFingerprint(ca.intermediate.cert);
    const previous = ca.previousIntermediate === null ? null : certFingerprint(ca.previousIntermediate.cert);
    const liveCerts = { root: 0, oldRoot: 0, retired: 0 };
    for (const c of this.issued.live(now)) {
      if (c.issuer === current) liveCerts.root += 1;
      else if (c.issuer !== undefined && c.issuer === previous) liveCerts.oldRoot += 1;
      // Records written before rotation existed carry no issuer: count them against the old root while rotating.
      else if (c.issuer === undefined) liveCerts[oldRoot === null ? 'root' : 'oldRoot'] += 1;
      else liveCerts.retired += 1;
    }
    return { phase: oldRoot === null ? 'none' : 'rotating', root: rootInfo(ca.root.cert), oldRoot: oldRoot === null ? null : rootInfo(oldRoot), liveCerts };
  }

  /**
   * Starts a root rotation: a new root (the current key type unless `keyType`) and an
   * intermediate signed by it; the bundle becomes old + new root and new SVIDs come from the
   * new intermediate. The new root key goes to the keyring (`rootKey: 'keyring'`) or is returned
   * once as PEM (`'return'`), for the operator to keep offline; default: where the current one is.
   * Audited as `root.rotation` phase `published-both`. Throws PAL_ERR_CERTS_ROTATION_IN_PROGRESS.
   */
  startRotation(options: StartRotationOptions & { rootKey?: 'keyring' | 'return'; actor: string }): Promise<{ status: RotationStatus; rootKeyPem: string | null; archive: string }> {
    return this.#serialize(async () => {
      const ca = this.requireCa();
      if (ca.rotating) {
        throw new RotationInProgressError(`a root rotation is already under way (old root ${rootInfo(oldRootOf(ca)!).fingerprintSha256}): finish it first (palisade certs rotate-root finish)`);
      }
      const rootKey = options.rootKey ?? (ca.rootKeyOnline ? 'keyring' : 'return');
      const { root, intermediate, oldRoot } = await startMaterial(ca, options);
      const kek = await FileKek.open(join(this.stateDir, KEK_FILE));
      const archive = await commitCaState(
        join(this.stateDir, CA_DIR), kek,
        { root, intermediate, bundle: [oldRoot, root], keepRootKey: rootKey === 'keyring', previousIntermediate: ca.intermediate },
        'before-rotation-start',
      );
      this.#ca = await CertificateAuthority.load(join(this.stateDir, CA_DIR), kek, { svidTtlMs: ca.svidTtlMs });
      await this.audit.emit({
        type: 'root.rotation', time: new Date().toISOString(), actor: options.actor, phase: 'published-both',
        oldRootFingerprint: certFingerprint(oldRoot.cert), newRootFingerprint: certFingerprint(root.cert),
      });
      await this.#refreshTrust('rotation-started');
      return { status: this.rotationStatus(), rootKeyPem: rootKey === 'return' ? await exportPrivateKeyPem(root.keys!.privateKey) : null, archive };
    });
  }

  /**
   * Finishes a root rotation: the bundle becomes the new root alone; the old root and its
   * intermediate are retired (the replaced CA directory is archived). Refuses with
   * PAL_ERR_CERTS_ROTATION_OLD_CERTS_LIVE while live certificates chain to the old root,
   * unless `force`. Audited as `root.rotation` phase `retired`.
   */
  finishRotation(options: { force?: boolean; actor: string }): Promise<{ status: RotationStatus; archive: string; stranded: number }> {
    return this.#serialize(async () => {
      const ca = this.requireCa();
      const oldRoot = oldRootOf(ca);
      if (oldRoot === null) throw new RotationNotStartedError('no root rotation is under way: start one with palisade certs rotate-root start');
      const before = this.rotationStatus();
      if (before.liveCerts.oldRoot > 0 && options.force !== true) {
        throw new RotationOldCertsLiveError(
          `${before.liveCerts.oldRoot} live certificate(s) still chain to the old root ${before.oldRoot!.fingerprintSha256}: ` +
            'wait until their workloads renew (palisade certs rotate-root status), or pass --force to cut them off',
        );
      }
      const kek = await FileKek.open(join(this.stateDir, KEK_FILE));
      const current: CaCertificate = ca.root;
      const archive = await commitCaState(
        join(this.stateDir, CA_DIR), kek,
        { root: current, intermediate: ca.intermediate, bundle: [current], keepRootKey: ca.rootKeyOnline, previousIntermediate: null },
        'retired-root',
      );
      this.#ca = await CertificateAuthority.load(join(this.stateDir, CA_DIR), kek, { svidTtlMs: ca.svidTtlMs });
      await this.audit.emit({
        type: 'root.rotation', time: new Date().toISOString(), actor: options.actor, phase: 'retired',
        oldRootFingerprint: certFingerprint(oldRoot), newRootFingerprint: certFingerprint(current.cert),
      });
      await this.#refreshTrust('rotation-finished');
      return { status: this.rotationStatus(), archive, stranded: before.liveCerts.oldRoot };
    });
  }

  /** Issues the control plane an SVID for its TLS endpoints (a fresh key, never stored). */
  async serverIdentity(): Promise<ServerIdentity> {
    const ca = this.requireCa();
    const id = workloadId(ca.trustDomain, CONTROL_PLANE_NAMESPACE, CONTROL_PLANE_SERVICE_ACCOUNT);
    if (!id.valid) throw new Error(id.errors.join('; '));
    const keys = await generateKeyPair();
    const signed = await ca.signCsr(await createCsr(keys, id.result.uri), { namespace: CONTROL_PLANE_NAMESPACE, serviceAccount: CONTROL_PLANE_SERVICE_ACCOUNT });
    if (!signed.valid) throw new Error(`issuing the control plane's certificate: ${signed.errors.join('; ')}`);
    return { spiffeId: id.result.uri, key: await exportPrivateKeyPem(keys.privateKey), chain: signed.result.chainPem, bundle: ca.trustBundle(), renewAt: signed.result.renewAt, notAfter: signed.result.notAfter };
  }

  /**
   * A key pair and SVID for a proxy that cannot send a CSR (an Envoy, served its `default`
   * Secret over its authenticated SDS stream). Recorded as issued (listed, revocable) and
   * audited as cert.issued like an enrollment; the key is returned, never stored.
   */
  async issueForProxy(namespace: string, serviceAccount: string): Promise<{ keyPem: string; chainPem: string; renewAt: Date; notAfter: Date; serial: string }> {
    const ca = this.requireCa();
    const id = workloadId(ca.trustDomain, namespace, serviceAccount);
    if (!id.valid) throw new Error(id.errors.join('; '));
    const keys = await generateKeyPair();
    const signed = await ca.signCsr(await createCsr(keys, id.result.uri), { namespace, serviceAccount });
    if (!signed.valid) throw new Error(`issuing ${id.result.uri}: ${signed.code}: ${signed.errors.join('; ')}`);
    const svid = signed.result;
    await this.issued.record({ serial: svid.serialNumber, spiffeId: svid.spiffeId, notAfter: svid.notAfter, issuer: certFingerprint(ca.intermediate.cert) });
    await this.audit.emit({
      type: 'cert.issued', time: new Date().toISOString(), actor: 'control-plane',
      serial: svid.serialNumber, spiffeId: svid.spiffeId, notAfter: svid.notAfter.toISOString(), keyType: (svid.cert.publicKey.algorithm as { name: string }).name,
    });
    return { keyPem: await exportPrivateKeyPem(keys.privateKey), chainPem: svid.chainPem, renewAt: svid.renewAt, notAfter: svid.notAfter, serial: svid.serialNumber };
  }

  /** A workload's enrollment: join token + CSR → its SVID (see enrollment.ts). */
  enroll(csrPem: string, token: string): Promise<EnrollResult> {
    return enroll(this.requireCa(), this.tokens, this.audit, this.issued, csrPem, token);
  }

  /** A renewal authenticated by the presented (TLS-verified) SVID; see enrollment.ts. */
  renew(csrPem: string, presentedId: string, previousSerial: string): Promise<EnrollResult> {
    return renew(this.requireCa(), this.audit, this.issued, csrPem, presentedId, previousSerial);
  }

  /** Revokes an issued workload certificate: it can no longer renew, and the next trust (CRL) lists it; audited as cert.revoked. */
  async revokeCert(serial: string, reason: string, actor: string): Promise<RevokeCertResult> {
    const r = await this.issued.revoke(serial, reason);
    if (r.ok) {
      await this.audit.emit({ type: 'cert.revoked', time: new Date().toISOString(), actor, serial: r.cert.serial, reason });
      if (this.#ca !== null) await this.#serialize(() => this.#refreshTrust('revocation'));
    }
    return r;
  }

  requireCa(): CertificateAuthority {
    if (this.#ca === null) throw new Error(`no CA under ${join(this.stateDir, CA_DIR)}: run palisade certs init-root --state-dir ${this.stateDir}`);
    return this.#ca;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#scheduleRefresh(false);
    await this.#tail;
    await this.audit.close();
  }
}

function entryOf(c: IssuedCert): { serial: string; revokedAt: Date; reason: string | null } {
  return { serial: c.serial, revokedAt: new Date(c.revokedAt!), reason: c.revokeReason };
}

async function readCrlNumber(file: string): Promise<bigint> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0n;
    throw err;
  }
  const doc = JSON.parse(text) as { number?: unknown; pem?: unknown };
  if (typeof doc.number === 'string' && /^\d+$/.test(doc.number)) return BigInt(doc.number);
  // Fall back to the number inside the stored CRL.
  return typeof doc.pem === 'string' ? (crlNumberOf(new x509.X509Crl(doc.pem.split(/(?<=-----END X509 CRL-----)/)[0]!)) ?? 0n) : 0n;
}
