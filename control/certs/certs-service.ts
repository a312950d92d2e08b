/**
 * The control plane's certificate services, over one state directory it owns (single
 * writer): join tokens (`join-tokens.json`), the audit log (`audit.jsonl`) and, once
 * `palisade certs init-root` has made one, the CA (`ca/`, its keys encrypted under `kek`).
 * Nothing is created on disk until the first change. With a CA, the control plane gets its
 * own SVID (`spiffe://<td>/ns/palisade-system/sa/control-plane`) for the endpoints
 * workloads reach over TLS.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { JsonLinesAuditSink, type AuditSink } from '../../certs/audit.ts';
import { CertificateAuthority } from '../../certs/ca.ts';
import { createCsr } from '../../certs/csr.ts';
import { IssuedCertStore, type RevokeCertResult } from '../../certs/issued-store.ts';
import { JoinTokenStore } from '../../certs/join-token.ts';
import { exportPrivateKeyPem, generateKeyPair } from '../../certs/keys.ts';
import { FileKek } from '../../certs/keyring.ts';
import { workloadId } from '../../certs/spiffe.ts';
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
  /** Null until `palisade certs init-root` has written a CA under the state dir. */
  readonly ca: CertificateAuthority | null;
  readonly issued: IssuedCertStore;

  private constructor(stateDir: string, tokens: JoinTokenStore, audit: JsonLinesAuditSink, ca: CertificateAuthority | null, issued: IssuedCertStore) {
    this.stateDir = stateDir;
    this.tokens = tokens;
    this.audit = audit;
    this.ca = ca;
    this.issued = issued;
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
    const ca = existsSync(join(caDir, 'root.pem')) ? await CertificateAuthority.load(caDir, await FileKek.open(join(stateDir, KEK_FILE))) : null;
    return new CertsService(stateDir, tokens, audit, ca, await IssuedCertStore.open(join(stateDir, ISSUED_FILE)));
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

  /** A workload's enrollment: join token + CSR → its SVID (see enrollment.ts). */
  enroll(csrPem: string, token: string): Promise<EnrollResult> {
    return enroll(this.requireCa(), this.tokens, this.audit, this.issued, csrPem, token);
  }

  /** A renewal authenticated by the presented (TLS-verified) SVID; see enrollment.ts. */
  renew(csrPem: string, presentedId: string, previousSerial: string): Promise<EnrollResult> {
    return renew(this.requireCa(), this.audit, this.issued, csrPem, presentedId, previousSerial);
  }

  /** Revokes an issued workload certificate (it can no longer renew); audited as cert.revoked. */
  async revokeCert(serial: string, reason: string, actor: string): Promise<RevokeCertResult> {
    const r = await this.issued.revoke(serial, reason);
    if (r.ok) await this.audit.emit({ type: 'cert.revoked', time: new Date().toISOString(), actor, serial: r.cert.serial, reason });
    return r;
  }

  requireCa(): CertificateAuthority {
    if (this.ca === null) throw new Error(`no CA under ${join(this.stateDir, CA_DIR)}: run palisade certs init-root --state-dir ${this.stateDir}`);
    return this.ca;
  }

  close(): Promise<void> {
    return this.audit.close();
  }
}
