/**
 * The sidecar's TLS identity over its life: the enrolled SVID and the mesh trust, kept in
 * one TlsSecrets holder (`default`, `ROOTCA`) that the inbound listener and the upstream
 * connectors read at each new handshake.
 *
 *   enroll (bootstrap) ──► default + ROOTCA(bootstrap bundle)
 *   renewAt (half-life) ──► renew (fresh key, CSR) ──► default          ─┐
 *   SDS ROOTCA pushed  ──► ROOTCA (roots + revoked serials from the CRL)  ├─► 'change' → listener setTls,
 *     └ roots changed (a root rotation) ──► renew soon, from the new CA  ─┘   xDS credentials
 *
 * A root rotation publishes a bundle with both roots and then issues from the new
 * intermediate; a sidecar that sees its bundle change renews within a few seconds (jittered,
 * so a fleet does not renew in one instant), which moves it to the new root before the old
 * one is retired.
 */
import { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { PeerCertificate } from 'node:tls';
import type { Logger } from 'pino';
import { uriSans } from '../../certs/peer-identity.ts';
import { parseSpiffeId } from '../../certs/spiffe.ts';
import { renewalDelayMs, retryDelayMs } from '../../certs/renewal.ts';
import { x509 } from '../../certs/x509.ts';
import type { Secret } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import type { DataSource } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { DEFAULT_CERTIFICATE_SECRET, normalizeSerial, ROOT_CA_SECRET, TlsSecrets } from '../tls/secrets.ts';
import { renewWorkload, type WorkloadIdentity } from './enroll.ts';

/**
 * After the roots changed, renew after ROOTS_CHANGED_RENEW_MIN_MS plus up to
 * ROOTS_CHANGED_RENEW_JITTER_MS: the floor gives every peer time to apply the same push
 * (and so trust the new root) before anyone presents a certificate from it; the jitter
 * spreads a fleet's renewals.
 */
export const ROOTS_CHANGED_RENEW_MIN_MS = 1000;
export const ROOTS_CHANGED_RENEW_JITTER_MS = 3000;

export interface WorkloadTlsOptions {
  readonly identity: WorkloadIdentity;
  readonly caAddress: string;
  readonly trustDomain: string;
  readonly logger: Logger;
  /** The holder to keep current; a new one by default. */
  readonly secrets?: TlsSecrets;
}

export type WorkloadTlsEvents = {
  /** A new SVID is in `default`. */
  renewed: [identity: WorkloadIdentity];
  /** The trust (roots or revoked serials) in `ROOTCA` changed. */
  trust: [];
};

/** The serial of a PEM certificate's leaf, normalized (tls/secrets.ts normalizeSerial). */
function leafSerial(chainPem: string): string {
  return normalizeSerial(new X509Certificate(chainPem).serialNumber);
}

/** The PEM certificates of a bundle, each trimmed, in order. */
export function pemCertificates(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Whether the last certificate of a chain was issued by one of the bundle's roots. */
export function chainsTo(chainPem: string, bundlePem: string): boolean {
  const chain = pemCertificates(chainPem).map((p) => new X509Certificate(p));
  const top = chain[chain.length - 1];
  if (top === undefined) return false;
  return pemCertificates(bundlePem).some((p) => {
    const root = new X509Certificate(p);
    return top.fingerprint256 === root.fingerprint256 || (top.checkIssued(root) && top.verify(root.publicKey));
  });
}

/** Roots as a set of fingerprints, to tell whether a new bundle holds other roots. */
function rootSet(bundle: string): string {
  return pemCertificates(bundle).map((p) => new X509Certificate(p).fingerprint256).sort().join(',');
}

function dataSourceText(d: DataSource | undefined, field: string): string | null {
  const s = d?.specifier;
  if (s === undefined || s.case === undefined) return null;
  if (s.case === 'inlineString') return s.value;
  if (s.case === 'inlineBytes') return Buffer.from(s.value).toString('utf8');
  throw new Error(`${field}: only inline_string and inline_bytes are supported, got ${s.case}`);
}

/**
 * Reads an SDS `ROOTCA` validation_context: the roots (trusted_ca) and the serials of the
 * CRL(s) in `crl`. Throws, naming the field, for anything the sidecar cannot apply: the
 * caller NACKs nothing (the AdsClient has accepted the proto) but keeps the previous trust.
 */
export function parseRootCaSecret(secret: Secret): { bundlePem: string; revokedSerials: Set<string> } {
  if (secret.type.case !== 'validationContext') throw new Error(`Secret ${JSON.stringify(secret.name)}: expected a validation_context, got ${secret.type.case ?? 'nothing'}`);
  const vc = secret.type.value;
  const bundlePem = dataSourceText(vc.trustedCa, 'validation_context.trusted_ca');
  if (bundlePem === null || pemCertificates(bundlePem).length === 0) throw new Error(`Secret ${JSON.stringify(secret.name)}: validation_context.trusted_ca holds no PEM certificate`);
  for (const pem of pemCertificates(bundlePem)) new X509Certificate(pem);
  const revokedSerials = new Set<string>();
  const crlText = dataSourceText(vc.crl, 'validation_context.crl');
  if (crlText !== null) {
    const crls = crlText.match(/-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g) ?? [];
    if (crls.length === 0) throw new Error(`Secret ${JSON.stringify(secret.name)}: validation_context.crl holds no PEM CRL`);
    for (const pem of crls) {
      const crl = new x509.X509Crl(pem);
      for (const entry of crl.entries) revokedSerials.add(normalizeSerial(entry.serialNumber));
    }
  }
  return { bundlePem, revokedSerials };
}

export class WorkloadTls extends EventEmitter<WorkloadTlsEvents> {
  readonly secrets: TlsSecrets;
  readonly trustDomain: string;
  #identity: WorkloadIdentity;
  readonly #o: WorkloadTlsOptions;
  #timer: NodeJS.Timeout | null = null;
  #renewing: Promise<void> | null = null;
  #closed = false;
  /** The root set the current SVID was issued under; a bundle with other roots makes it renew. */
  #issuedUnder: string;

  constructor(options: WorkloadTlsOptions) {
    super();
    this.#o = options;
    this.secrets = options.secrets ?? new TlsSecrets();
    this.trustDomain = options.trustDomain.toLowerCase();
    this.#identity = options.identity;
    this.#issuedUnder = rootSet(options.identity.bundlePem);
    this.#setDefault(options.identity);
    this.secrets.setValidation(ROOT_CA_SECRET, { bundlePem: options.identity.bundlePem, revokedSerials: new Set() });
  }

  get identity(): WorkloadIdentity {
    return this.#identity;
  }

  /** The current trust bundle (ROOTCA's roots). */
  get bundlePem(): string {
    return this.secrets.validation(ROOT_CA_SECRET)!.bundlePem;
  }

  /** Arms the renewal timer at the SVID's renewAt. */
  start(): void {
    this.#schedule(renewalDelayMs(this.#identity.renewAt, Date.now()));
  }

  /**
   * A pushed SDS ROOTCA: new roots and revoked serials for new handshakes. Throws (the
   * previous trust stays) when the secret cannot be read.
   */
  applyRootCa(secret: Secret): void {
    const next = parseRootCaSecret(secret);
    const current = this.secrets.validation(ROOT_CA_SECRET)!;
    const sameRoots = rootSet(next.bundlePem) === rootSet(current.bundlePem);
    const sameRevoked = next.revokedSerials.size === current.revokedSerials.size && [...next.revokedSerials].every((s) => current.revokedSerials.has(s));
    if (sameRoots && sameRevoked) return;
    this.secrets.setValidation(ROOT_CA_SECRET, next);
    this.#o.logger.info({ roots: pemCertificates(next.bundlePem).length, revoked: next.revokedSerials.size }, 'mesh trust updated (SDS ROOTCA)');
    this.emit('trust');
    if (this.secrets.isRevoked(leafSerial(this.#identity.chainPem))) {
      this.#o.logger.error({ spiffeId: this.#identity.spiffeId }, 'this workload\'s own certificate is revoked: it cannot renew and peers refuse it');
    }
    const added = rootSet(next.bundlePem).split(',').some((r) => !this.#issuedUnder.split(',').includes(r));
    if (added || !chainsTo(this.#identity.chainPem, next.bundlePem)) {
      // A root rotation (a new root published, or ours retired): move to the new CA soon, not at the next half-life.
      const delay = ROOTS_CHANGED_RENEW_MIN_MS + Math.floor(Math.random() * ROOTS_CHANGED_RENEW_JITTER_MS);
      this.#o.logger.info({ delayMs: delay }, 'the mesh roots changed: renewing the workload certificate');
      this.#schedule(delay);
    }
  }

  /**
   * The inbound check after a verified handshake: the peer's one spiffe:// URI SAN must be in
   * this trust domain and its serial not revoked. Null accepts; a string is the reason.
   */
  verifyPeer(cert: PeerCertificate): string | null {
    const uris = uriSans(cert.subjectaltname).filter((u) => u.startsWith('spiffe://'));
    if (uris.length !== 1) return `the client certificate must carry exactly one spiffe:// URI SAN, got ${uris.length}`;
    const id = parseSpiffeId(uris[0]!);
    if (!id.valid) return `the client certificate's URI SAN ${uris[0]} is not a SPIFFE ID: ${id.errors.join('; ')}`;
    if (id.result.trustDomain !== this.trustDomain) return `${uris[0]} is not in the trust domain ${this.trustDomain}`;
    if (this.secrets.isRevoked(cert.serialNumber)) return `${uris[0]} presented a revoked certificate (serial ${cert.serialNumber})`;
    return null;
  }

  /** Options for the inbound HttpListener: this SVID, the current roots, verifyPeer. */
  listenerTls(): { key: string; cert: string; ca: string; verifyPeer: (cert: PeerCertificate) => string | null } {
    return { key: this.#identity.keyPem, cert: this.#identity.chainPem, ca: this.bundlePem, verifyPeer: (cert) => this.verifyPeer(cert) };
  }

  /** Renews now (a no-op while a renewal runs). */
  renewNow(): Promise<void> {
    this.#renewing ??= this.#renew().finally(() => {
      this.#renewing = null;
    });
    return this.#renewing;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.renewNow();
    }, delayMs);
    this.#timer.unref();
  }

  async #renew(): Promise<void> {
    const current = this.#identity;
    const bundle = this.bundlePem;
    try {
      // The bundle from SDS, not the one at enrollment: after a root rotation started, the
      // CA endpoint's certificate chains to the new root.
      const next = await renewWorkload({ ...current, bundlePem: bundle }, { caAddress: this.#o.caAddress, trustDomain: this.trustDomain });
      if (this.#closed) return;
      this.#identity = next;
      this.#issuedUnder = rootSet(bundle);
      this.#setDefault(next);
      this.#o.logger.info({ spiffeId: next.spiffeId, notAfter: next.notAfter.toISOString(), renewAt: next.renewAt.toISOString() }, 'workload certificate renewed');
      this.emit('renewed', next);
      this.#schedule(renewalDelayMs(next.renewAt, Date.now()));
    } catch (err) {
      if (this.#closed) return;
      this.#o.logger.error({ err, notAfter: current.notAfter.toISOString() }, 'renewing the workload certificate failed; retrying');
      this.#schedule(retryDelayMs(current.notAfter, Date.now()));
    }
  }

  #setDefault(identity: WorkloadIdentity): void {
    this.secrets.setCertificate(DEFAULT_CERTIFICATE_SECRET, {
      spiffeId: identity.spiffeId, keyPem: identity.keyPem, chainPem: identity.chainPem,
      serial: leafSerial(identity.chainPem), notAfter: identity.notAfter,
    });
  }
}
