/**
 * The control plane's own SVID on its TLS ports (xDS, CA endpoint), renewed at half-life
 * without a restart: the xDS server takes it through a grpc-js certificate provider (new
 * handshakes get the new certificate, established streams keep theirs), the CA endpoint
 * through setSecureContext.
 */
import { experimental, type ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { renewalDelayMs, retryDelayMs } from '../../certs/renewal.ts';
import type { CertsService, ServerIdentity } from './certs-service.ts';

type CaListener = (update: { caCertificate: Buffer } | null) => void;
type IdentityListener = (update: { certificate: Buffer; privateKey: Buffer } | null) => void;

/** A grpc-js CertificateProvider whose certificates are replaced in memory. */
export class IdentityProvider {
  #identity: ServerIdentity;
  readonly #ca = new Set<CaListener>();
  readonly #id = new Set<IdentityListener>();

  constructor(identity: ServerIdentity) {
    this.#identity = identity;
  }

  get identity(): ServerIdentity {
    return this.#identity;
  }

  /** mTLS server credentials that follow this provider; clients must present a certificate chained to the bundle. */
  serverCredentials(): ServerCredentials {
    return experimental.createCertificateProviderServerCredentials(this, this, true);
  }

  update(identity: ServerIdentity): void {
    this.#identity = identity;
    for (const l of this.#ca) l(this.#caUpdate());
    for (const l of this.#id) l(this.#idUpdate());
  }

  // grpc-js registers its own watcher only after adding these listeners: deliver the
  // current certificates on the next tick, as its file-watcher provider does.
  addCaCertificateListener(l: CaListener): void {
    this.#ca.add(l);
    process.nextTick(() => {
      if (this.#ca.has(l)) l(this.#caUpdate());
    });
  }

  removeCaCertificateListener(l: CaListener): void {
    this.#ca.delete(l);
  }

  addIdentityCertificateListener(l: IdentityListener): void {
    this.#id.add(l);
    process.nextTick(() => {
      if (this.#id.has(l)) l(this.#idUpdate());
    });
  }

  removeIdentityCertificateListener(l: IdentityListener): void {
    this.#id.delete(l);
  }

  #caUpdate() {
    return { caCertificate: Buffer.from(this.#identity.bundle) };
  }

  #idUpdate() {
    return { certificate: Buffer.from(this.#identity.chain), privateKey: Buffer.from(this.#identity.key) };
  }
}

/**
 * Renews the control plane's SVID at half-life, hands it to `provider` and to `onRenewed`,
 * retries on failure (every 30 s, sooner near expiry). renewNow() renews at once (after a
 * root-rotation phase: the SVID must come from the new intermediate and carry the new
 * bundle) and resolves when done. stop() cancels.
 */
export function keepIdentityFresh(
  certs: CertsService,
  provider: IdentityProvider,
  log: Logger,
  onRenewed: (identity: ServerIdentity) => void,
): { stop(): void; renewNow(): Promise<void> } {
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  const schedule = (delay: number) => {
    if (stopped) return;
    timer = setTimeout(() => void renew(), delay);
    timer.unref();
  };
  const renew = async () => {
    try {
      const next = await certs.serverIdentity();
      if (stopped) return;
      provider.update(next);
      onRenewed(next);
      log.info({ spiffeId: next.spiffeId, renewAt: next.renewAt.toISOString() }, 'control plane certificate renewed');
      schedule(renewalDelayMs(next.renewAt, Date.now()));
    } catch (err) {
      log.error({ err }, 'renewing the control plane certificate failed; retrying');
      schedule(retryDelayMs(provider.identity.notAfter, Date.now()));
    }
  };
  schedule(renewalDelayMs(provider.identity.renewAt, Date.now()));
  return {
    stop: () => {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
    },
    renewNow: () => {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      return renew();
    },
  };
}
