/**
 * Certificate revocation lists (RFC 5280 §5): what tells Envoy and the sidecars that a
 * workload certificate is revoked, pushed with the trust bundle (SDS `ROOTCA`).
 *
 * One CRL v2 per issuing intermediate, signed by that intermediate's key, listing every
 * revoked certificate it issued that has not expired (an expired certificate is refused
 * anyway, RFC 5280 §3.3). Each carries thisUpdate/nextUpdate, a cRLNumber and an
 * authorityKeyIdentifier; each entry its serial, revocation date and, when the operator's
 * reason maps to one, a reasonCode (`unspecified` is left out, as §5.3.1 recommends).
 *
 * Why one per intermediate and always all of them once any is published: Envoy with
 * `only_verify_leaf_cert_crl` (OpenSSL `X509_V_FLAG_CRL_CHECK`) refuses a leaf whose
 * issuer has no CRL in the set, so during a root rotation the old intermediate's CRL must
 * be there (empty or not) next to the new one's.
 */
import { x509 } from './x509.ts';
import type { CaCertificate } from './ca.ts';
import { CertsInvalidOptionError } from './errors.ts';
import { signingAlgorithm } from './keys.ts';

/** How long a CRL is valid (nextUpdate − thisUpdate): 24 h. The control plane re-signs it at half that. */
export const DEFAULT_CRL_VALIDITY_MS = 24 * 60 * 60_000;

/** A certificate to list: serial (hex), when it was revoked, the operator's reason in words. */
export interface RevokedEntry {
  readonly serial: string;
  readonly revokedAt: Date;
  readonly reason: string | null;
}

/** Options of {@link generateCrl}. */
export interface GenerateCrlOptions {
  /** The cRLNumber, a non-negative integer that increases with every CRL of this issuer (RFC 5280 §5.2.3). */
  number: bigint;
  /** thisUpdate; default now. */
  now?: Date;
  /** nextUpdate − thisUpdate in ms; default 24 h. */
  validityMs?: number;
}

const REASONS: ReadonlyMap<string, x509.X509CrlReason> = new Map([
  ['keycompromise', x509.X509CrlReason.keyCompromise],
  ['cacompromise', x509.X509CrlReason.cACompromise],
  ['affiliationchanged', x509.X509CrlReason.affiliationChanged],
  ['superseded', x509.X509CrlReason.superseded],
  ['cessationofoperation', x509.X509CrlReason.cessationOfOperation],
  ['certificatehold', x509.X509CrlReason.certificateHold],
  ['privilegewithdrawn', x509.X509CrlReason.privilegeWithdrawn],
  ['aacompromise', x509.X509CrlReason.aACompromise],
]);

/**
 * The RFC 5280 reasonCode for an operator's reason, matched ignoring case, spaces, `-` and
 * `_` (`key compromise`, `keyCompromise`, `key-compromise`); undefined for `unspecified`
 * and free text (the entry then has no reasonCode).
 */
export function crlReasonOf(reason: string | null): x509.X509CrlReason | undefined {
  if (reason === null) return undefined;
  return REASONS.get(reason.toLowerCase().replace(/[\s_-]/g, ''));
}

/** DER of a cRLNumber extension value (an INTEGER). */
function crlNumberExtension(n: bigint): x509.Extension {
  if (n < 0n) throw new CertsInvalidOptionError(`number must be a non-negative integer, got ${n}`);
  let hex = n.toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  let body = Buffer.from(hex, 'hex');
  if ((body[0]! & 0x80) !== 0) body = Buffer.concat([Buffer.from([0]), body]);
  if (body.length > 20) throw new CertsInvalidOptionError(`number must fit in 20 octets (RFC 5280 §5.2.3), got ${n}`);
  return new x509.Extension('2.5.29.20', false, Buffer.concat([Buffer.from([0x02, body.length]), body]));
}

/** Reads the cRLNumber of a CRL, or null when it has none. */
export function crlNumberOf(crl: x509.X509Crl): bigint | null {
  const ext = crl.extensions.find((e) => e.type === '2.5.29.20');
  if (ext === undefined) return null;
  const der = Buffer.from(ext.value);
  if (der[0] !== 0x02 || der.length < 3) return null;
  return BigInt(`0x${der.subarray(2, 2 + der[1]!).toString('hex')}`);
}

/**
 * Signs a CRL v2 for certificates `issuer` issued. Throws PAL_ERR_CERTS_INVALID_OPTION when
 * the issuer's key is absent or an option is out of range. Returns the parsed CRL and its PEM
 * (ending with a newline, so CRLs concatenate).
 */
export async function generateCrl(issuer: CaCertificate, revoked: readonly RevokedEntry[], options: GenerateCrlOptions): Promise<{ crl: x509.X509Crl; pem: string }> {
  if (issuer.keys === null) throw new CertsInvalidOptionError(`issuer ${issuer.cert.subject} has no private key to sign a CRL with`);
  const validityMs = options.validityMs ?? DEFAULT_CRL_VALIDITY_MS;
  if (!Number.isInteger(validityMs) || validityMs < 60_000) throw new CertsInvalidOptionError(`validityMs must be an integer of at least 60000, got ${validityMs}`);
  const now = options.now ?? new Date();
  const ski = issuer.cert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski === null) throw new CertsInvalidOptionError(`issuer ${issuer.cert.subject} has no subjectKeyIdentifier`);
  const crl = await x509.X509CrlGenerator.create({
    issuer: issuer.cert.subjectName,
    thisUpdate: now,
    nextUpdate: new Date(now.getTime() + validityMs),
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: signingAlgorithm(issuer.keys.type),
    extensions: [new x509.AuthorityKeyIdentifierExtension(ski.keyId, false), crlNumberExtension(options.number)],
    entries: revoked.map((r) => {
      const reason = crlReasonOf(r.reason);
      return { serialNumber: r.serial, revocationDate: r.revokedAt, ...(reason === undefined ? {} : { reason }) };
    }),
  });
  return { crl, pem: crlPem(crl) };
}

/**
 * PEM of a CRL under the RFC 7468 label `X509 CRL`, which OpenSSL (and so Envoy) reads;
 * @peculiar/x509 writes `CRL`, which they refuse.
 */
export function crlPem(crl: x509.X509Crl): string {
  const b64 = Buffer.from(crl.rawData).toString('base64').replace(/.{64}(?=.)/g, '$&\n');
  return `-----BEGIN X509 CRL-----\n${b64}\n-----END X509 CRL-----\n`;
}
