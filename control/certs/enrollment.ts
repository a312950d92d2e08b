/**
 * Enrollment: a workload trades a one-time join token and a CSR for its X.509-SVID. The
 * private key never leaves the workload; the control plane checks, in this order:
 *
 *   1. the CSR names a workload SPIFFE ID in this trust domain  (else 400, CSR refused)
 *   2. the CA would sign it for that identity (proof of possession, key type, profile)
 *      — signing has no side effect, so nothing is spent yet     (else 400, CSR refused)
 *   3. the token redeems for exactly that namespace + account     (else 401 used/expired/…,
 *      403 scope mismatch; the token is consumed only on success)
 *   4. the chain and the trust bundle go back; `cert.issued` is audited
 *
 * A certificate signed in step 2 for a request that fails step 3 is discarded unseen.
 *
 * Renewal (at half-life) needs no token: the workload presents its current SVID as TLS
 * client certificate (verified against the bundle by the TLS layer) and asks for the same
 * identity with a fresh key; `cert.renewed` is audited with the previous serial.
 */
import type { AuditSink } from '../../certs/audit.ts';
import type { CertificateAuthority, IssuedSvid } from '../../certs/ca.ts';
import { requestedSpiffeId } from '../../certs/csr.ts';
import { normalizeSerial, type IssuedCertStore } from '../../certs/issued-store.ts';
import type { JoinTokenStore } from '../../certs/join-token.ts';
import { certFingerprint } from '../../certs/root-rotation.ts';
import { parseWorkloadId } from '../../certs/spiffe.ts';

/** What a successful enrollment returns to the workload. */
export interface Enrolled {
  readonly spiffeId: string;
  /** Leaf then intermediate, PEM. */
  readonly chain: string;
  /** The trust bundle (root certificates), PEM. */
  readonly bundle: string;
  readonly serial: string;
  readonly notAfter: string;
  readonly renewAt: string;
}

export type EnrollResult =
  | { readonly ok: true; readonly enrolled: Enrolled }
  | { readonly ok: false; readonly status: 400 | 401 | 403; readonly code: string; readonly errors: readonly string[] };

export const CSR_REFUSED = 'PAL_ERR_CERTS_CSR_REFUSED';

/** What goes back to the workload for an issued SVID. */
function enrolledOf(svid: IssuedSvid, ca: CertificateAuthority): Enrolled {
  return {
    spiffeId: svid.spiffeId, chain: svid.chainPem, bundle: ca.trustBundle(), serial: svid.serialNumber,
    notAfter: svid.notAfter.toISOString(), renewAt: svid.renewAt.toISOString(),
  };
}

/** The audited name of an SVID's key algorithm, e.g. `ECDSA`. */
function keyTypeOf(svid: IssuedSvid): string {
  return (svid.cert.publicKey.algorithm as { name: string }).name;
}
/** A renewal without a valid current SVID of this trust domain as client certificate. */
export const RENEW_UNAUTHENTICATED = 'PAL_ERR_CERTS_RENEW_UNAUTHENTICATED';

export async function enroll(ca: CertificateAuthority, tokens: JoinTokenStore, audit: AuditSink, issued: IssuedCertStore, csrPem: string, token: string): Promise<EnrollResult> {
  const asked = requestedSpiffeId(csrPem);
  if (asked === null) return { ok: false, status: 400, code: CSR_REFUSED, errors: ['the CSR must be a PEM PKCS#10 request naming its SPIFFE ID as a URI SAN'] };
  const id = parseWorkloadId(asked);
  if (!id.valid) return { ok: false, status: 400, code: CSR_REFUSED, errors: id.errors.map((e) => `requested SPIFFE ID ${asked}: ${e}`) };
  const { namespace, serviceAccount } = id.result;
  const signed = await ca.signCsr(csrPem, { namespace, serviceAccount });
  if (!signed.valid) return { ok: false, status: 400, code: signed.code, errors: signed.errors };
  const redeemed = await tokens.redeem(token, { namespace, serviceAccount, actor: asked });
  if (!redeemed.ok) return { ok: false, status: redeemed.reason === 'scope-mismatch' ? 403 : 401, code: redeemed.code, errors: [redeemed.message] };
  const svid = signed.result;
  await issued.record({ serial: svid.serialNumber, spiffeId: svid.spiffeId, notAfter: svid.notAfter, issuer: certFingerprint(ca.intermediate.cert) });
  await audit.emit({
    type: 'cert.issued', time: new Date().toISOString(), actor: 'control-plane',
    serial: svid.serialNumber, spiffeId: svid.spiffeId, notAfter: svid.notAfter.toISOString(), keyType: keyTypeOf(svid),
  });
  return { ok: true, enrolled: enrolledOf(svid, ca) };
}

/** A workload's renewal: authenticated by its current SVID (`presentedId`), for the same identity. */
export async function renew(ca: CertificateAuthority, audit: AuditSink, issued: IssuedCertStore, csrPem: string, presentedId: string, previousSerial: string): Promise<EnrollResult> {
  if (issued.isRevoked(previousSerial)) {
    return { ok: false, status: 401, code: RENEW_UNAUTHENTICATED, errors: [`the client certificate ${normalizeSerial(previousSerial)} is revoked: enroll again with a new join token`] };
  }
  const id = parseWorkloadId(presentedId);
  if (!id.valid || id.result.trustDomain !== ca.trustDomain) {
    return { ok: false, status: 401, code: RENEW_UNAUTHENTICATED, errors: [`the client certificate's ${presentedId} is not a workload identity of ${ca.trustDomain}`] };
  }
  const asked = requestedSpiffeId(csrPem);
  if (asked !== presentedId) {
    return { ok: false, status: 400, code: CSR_REFUSED, errors: [`a renewal must ask for the presented identity ${presentedId}, the CSR asks for ${asked ?? 'none'}`] };
  }
  const signed = await ca.signCsr(csrPem, { namespace: id.result.namespace, serviceAccount: id.result.serviceAccount });
  if (!signed.valid) return { ok: false, status: 400, code: signed.code, errors: signed.errors };
  const svid = signed.result;
  await issued.record({ serial: svid.serialNumber, spiffeId: svid.spiffeId, notAfter: svid.notAfter, previousSerial, issuer: certFingerprint(ca.intermediate.cert) });
  await audit.emit({
    type: 'cert.renewed', time: new Date().toISOString(), actor: presentedId,
    serial: svid.serialNumber, previousSerial, spiffeId: svid.spiffeId, notAfter: svid.notAfter.toISOString(), keyType: keyTypeOf(svid),
  });
  return { ok: true, enrolled: enrolledOf(svid, ca) };
}
