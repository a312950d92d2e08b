/**
 * The TLS material a sidecar holds, by SDS secret name, as Envoy's secret manager does:
 * `default` is the workload's own certificate (its SVID; a sidecar enrolls and renews it
 * itself, it never comes over xDS), `ROOTCA` the mesh trust bundle and the revoked serials
 * (SDS from the control plane, the bootstrap's bundle until the first push).
 *
 * Listeners and upstream connectors read the current value at each new handshake, so a
 * renewal or a bundle change reaches new connections only; live ones are left alone.
 * `generation` grows with every change, for callers that cache derived objects (secure
 * contexts) and rebuild them when it moves.
 */
import { EventEmitter } from 'node:events';

/** The SDS name of the workload's own certificate (Istio's and Envoy's convention). */
export const DEFAULT_CERTIFICATE_SECRET = 'default';
/** The SDS name of the mesh trust bundle (control/translate/translator.ts ROOT_CA_SECRET). */
export const ROOT_CA_SECRET = 'ROOTCA';

export interface CertificateSecret {
  /** The URI SAN of the leaf. */
  readonly spiffeId: string;
  /** PKCS#8 PEM. */
  readonly keyPem: string;
  /** Leaf then intermediate(s), PEM. */
  readonly chainPem: string;
  /** The leaf's serial, uppercase hex without separators. */
  readonly serial: string;
  readonly notAfter: Date;
}

export interface ValidationSecret {
  /** PEM roots (two during a root rotation). */
  readonly bundlePem: string;
  /** Revoked certificate serials, uppercase hex without separators or leading zeros. */
  readonly revokedSerials: ReadonlySet<string>;
}

/** Serial as this module compares them: uppercase hex, no `:`, no leading zeros. */
export function normalizeSerial(serial: string): string {
  const hex = serial.replace(/:/g, '').toUpperCase().replace(/^0+(?=.)/, '');
  return hex;
}

export type TlsSecretsEvents = { change: [name: string] };

export class TlsSecrets extends EventEmitter<TlsSecretsEvents> {
  readonly #certificates = new Map<string, CertificateSecret>();
  readonly #validations = new Map<string, ValidationSecret>();
  #generation = 0;

  /** Grows by one at every change. */
  get generation(): number {
    return this.#generation;
  }

  certificate(name: string = DEFAULT_CERTIFICATE_SECRET): CertificateSecret | null {
    return this.#certificates.get(name) ?? null;
  }

  validation(name: string = ROOT_CA_SECRET): ValidationSecret | null {
    return this.#validations.get(name) ?? null;
  }

  setCertificate(name: string, secret: CertificateSecret): void {
    this.#certificates.set(name, secret);
    this.#changed(name);
  }

  setValidation(name: string, secret: ValidationSecret): void {
    this.#validations.set(name, secret);
    this.#changed(name);
  }

  /** Whether a serial (any notation) is revoked in the named validation secret. */
  isRevoked(serial: string, name: string = ROOT_CA_SECRET): boolean {
    return this.#validations.get(name)?.revokedSerials.has(normalizeSerial(serial)) ?? false;
  }

  #changed(name: string): void {
    this.#generation++;
    this.emit('change', name);
  }
}
