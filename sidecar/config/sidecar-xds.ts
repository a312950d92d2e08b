/**
 * A sidecar's one xDS stream (ADS, SotW): CDS and LDS by wildcard, EDS and RDS as they follow
 * (DependentSubscriptions), the node re-sent when readiness changes, counters for /stats.
 * Shared by the single-process Sidecar and the primary of a `--workers N` sidecar; what an
 * update does to the configuration is the owner's `apply`.
 */
import type { ChannelCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { AdsClient } from '../../xds/client/ads-client.ts';
import { CLUSTER_TYPE_URL, LISTENER_TYPE_URL } from '../../xds/resources/type-urls.ts';
import type { SidecarBootstrap } from '../bootstrap/bootstrap.ts';
import { sidecarNode } from '../bootstrap/node.ts';
import { DependentSubscriptions } from './dependent-subscriptions.ts';
import type { WorkloadIdentity } from '../identity/enroll.ts';
import { renewWorkload } from '../identity/enroll.ts';
import { renewalDelayMs, retryDelayMs } from '../../certs/renewal.ts';
import { enrollForXds, xdsChannelCredentials } from '../identity/xds-credentials.ts';

/** What an update led to: applied, or refused with reasons (the last good configuration stays). */
export type ApplyOutcome = { readonly valid: true } | { readonly valid: false; readonly errors: readonly string[] };

export interface SidecarXdsOptions {
  readonly bootstrap: SidecarBootstrap;
  /** The inbound port advertised in the node metadata (the endpoint the control plane registers). */
  readonly inboundPort: number;
  readonly version: string;
  readonly logger: Logger;
  /** Channel credentials (mTLS with the sidecar's SVID); plaintext by default. */
  readonly credentials?: ChannelCredentials;
  /** Builds and applies a configuration from the client's state after every accepted update. */
  readonly apply: (client: AdsClient) => ApplyOutcome;
}

export class SidecarXds {
  readonly client: AdsClient;
  /** The workload's SVID when the bootstrap enrolls (identity section); null otherwise. */
  identity: WorkloadIdentity | null = null;

  /**
   * Enrolls first when the bootstrap has an identity section (the stream then runs over mTLS
   * with the SVID), then connects. Throws PAL_ERR_SIDECAR_ENROLL.
   */
  static async connect(options: Omit<SidecarXdsOptions, 'credentials'>): Promise<SidecarXds> {
    const enrolled = await enrollForXds(options.bootstrap, options.logger);
    const xds = new SidecarXds({ ...options, ...(enrolled !== null ? { credentials: enrolled.credentials } : {}) });
    if (enrolled !== null) {
      xds.identity = enrolled.identity;
      xds.#ca = { address: enrolled.caAddress, trustDomain: enrolled.trustDomain };
      xds.#scheduleRenewal();
    }
    return xds;
  }

  #ca: { address: string; trustDomain: string } | null = null;
  #renewTimer: NodeJS.Timeout | null = null;
  #closed = false;

  /** At half-life (renewAt), a fresh key and certificate for the same identity; the next xDS connection uses it. */
  #scheduleRenewal(delayMs?: number): void {
    const id = this.identity;
    if (id === null || this.#closed) return;
    this.#renewTimer = setTimeout(() => void this.#renew(), delayMs ?? renewalDelayMs(id.renewAt, Date.now()));
    this.#renewTimer.unref();
  }

  async #renew(): Promise<void> {
    const current = this.identity;
    const ca = this.#ca;
    if (current === null || ca === null || this.#closed) return;
    try {
      const next = await renewWorkload(current, { caAddress: ca.address, trustDomain: ca.trustDomain });
      if (this.#closed) return;
      this.identity = next;
      this.client.setCredentials(xdsChannelCredentials(next, ca.trustDomain));
      this.#o.logger.info({ spiffeId: next.spiffeId, notAfter: next.notAfter.toISOString(), renewAt: next.renewAt.toISOString() }, 'workload certificate renewed');
      this.#scheduleRenewal();
    } catch (err) {
      this.#o.logger.error({ err, notAfter: current.notAfter.toISOString() }, 'renewing the workload certificate failed; retrying');
      this.#scheduleRenewal(retryDelayMs(current.notAfter, Date.now()));
    }
  }

  readonly #o: SidecarXdsOptions;
  readonly #subscriptions = new DependentSubscriptions();
  readonly #counts = { updates: {} as Record<string, number>, nacks: {} as Record<string, number>, snapshotErrors: 0, connects: 0, disconnects: 0 };

  /** Connects at once: CDS and LDS subscribed, the node not ready yet. */
  constructor(options: SidecarXdsOptions) {
    this.#o = options;
    const b = options.bootstrap;
    const log = options.logger;
    const c = this.#counts;
    const client = new AdsClient({
      address: b.controlPlane.address, protocol: 'sotw', node: sidecarNode(b, options.inboundPort, false, options.version),
      ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
    });
    this.client = client;
    client.on('update', (typeUrl) => this.#onUpdate(typeUrl));
    client.on('nack', (typeUrl, error) => {
      c.nacks[typeUrl] = (c.nacks[typeUrl] ?? 0) + 1;
      log.warn({ typeUrl, error }, 'xDS update rejected (NACK)');
    });
    client.on('connected', () => {
      c.connects++;
      log.info({ controlPlane: b.controlPlane.address }, 'connected to the control plane');
    });
    client.on('disconnected', (reason) => {
      c.disconnects++;
      log.warn({ reason }, 'disconnected from the control plane');
    });
    client.subscribe(CLUSTER_TYPE_URL, '*');
    client.subscribe(LISTENER_TYPE_URL, '*');
    client.start();
  }

  /** Tells the control plane whether this sidecar serves (it registers the workload as an endpoint only when ready). */
  setReady(ready: boolean): void {
    try {
      this.client.setNode(sidecarNode(this.#o.bootstrap, this.#o.inboundPort, ready, this.#o.version));
    } catch (err) {
      this.#o.logger.error({ err, ready }, 'reporting readiness to the control plane failed');
    }
  }

  close(): void {
    this.#closed = true;
    if (this.#renewTimer !== null) clearTimeout(this.#renewTimer);
    this.client.close();
  }

  /** The `xds` part of /stats. */
  stats(snapshotVersion: string | null): unknown {
    const c = this.#counts;
    return {
      connected: this.client.connected,
      connects: c.connects,
      disconnects: c.disconnects,
      updates: { ...c.updates },
      nacks: { ...c.nacks },
      snapshotErrors: c.snapshotErrors,
      snapshotVersion,
    };
  }

  #onUpdate(typeUrl: string): void {
    const c = this.#counts;
    c.updates[typeUrl] = (c.updates[typeUrl] ?? 0) + 1;
    try {
      this.#subscriptions.sync(this.client);
      const r = this.#o.apply(this.client);
      if (!r.valid) {
        c.snapshotErrors++;
        this.#o.logger.warn({ errors: r.errors }, 'configuration refused; the last good one stays');
      }
    } catch (err) {
      this.#o.logger.error({ err }, 'applying an xDS update failed');
    }
  }
}
