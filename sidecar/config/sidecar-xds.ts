/**
 * A sidecar's one xDS stream (ADS, SotW): CDS and LDS by wildcard, EDS and RDS as they follow
 * (DependentSubscriptions), the node re-sent when readiness changes, counters for /stats.
 * Shared by the single-process Sidecar and the primary of a `--workers N` sidecar; what an
 * update does to the configuration is the owner's `apply`.
 */
import type { Logger } from 'pino';
import { AdsClient } from '../../xds/client/ads-client.ts';
import { CLUSTER_TYPE_URL, LISTENER_TYPE_URL, MESH_CONFIG_TYPE_URL, POLICY_TYPE_URL, QUOTA_TYPE_URL, REQUEST_AUTHENTICATION_TYPE_URL, SECRET_TYPE_URL } from '../../xds/resources/type-urls.ts';
import type { Policy } from '../../xds/gen/palisade/v1/policy_pb.js';
import type { RequestAuthentication } from '../../xds/gen/palisade/v1/request_authentication_pb.js';
import type { Quota } from '../../xds/gen/palisade/v1/quota_pb.js';
import type { ResourceValidator } from '../../xds/client/options.ts';
import type { SidecarBootstrap } from '../bootstrap/bootstrap.ts';
import { sidecarNode } from '../bootstrap/node.ts';
import { DependentSubscriptions } from './dependent-subscriptions.ts';
import { MeshConfig_MtlsMode, type MeshConfig, type Metering } from '../../xds/gen/palisade/v1/mesh_pb.js';
import type { Secret } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import type { WorkloadTls } from '../identity/workload-tls.ts';
import { ROOT_CA_SECRET } from '../tls/secrets.ts';
import { xdsChannelCredentials } from '../identity/xds-credentials.ts';

/** What the mesh asks of inbound: mTLS only, or mTLS and plaintext. */
export type MeshMtlsMode = 'STRICT' | 'PERMISSIVE';

/** What an update led to: applied, or refused with reasons (the last good configuration stays). */
export type ApplyOutcome = { readonly valid: true } | { readonly valid: false; readonly errors: readonly string[] };

export interface SidecarXdsOptions {
  readonly bootstrap: SidecarBootstrap;
  /** The inbound port advertised in the node metadata (the endpoint the control plane registers). */
  readonly inboundPort: number;
  readonly version: string;
  readonly logger: Logger;
  /**
   * The enrolled identity: the stream runs over mTLS with its SVID (credentials follow its
   * renewals and trust changes), and subscribes the SDS Secret ROOTCA to keep its trust current.
   * Null: plaintext xDS.
   */
  readonly tls?: WorkloadTls | null;
  /** Builds and applies a configuration from the client's state after every accepted update. */
  readonly apply: (client: AdsClient) => ApplyOutcome;
  /** The mesh mTLS mode from the MeshConfig resource, at each change (STRICT until one arrives). */
  readonly onMeshMode?: (mode: MeshMtlsMode) => void;
  /** MeshConfig.metering at every MeshConfig update; undefined when the mesh sets none (the defaults apply). */
  readonly onMetering?: (metering: Metering | undefined) => void;
  /** Extra ACK/NACK checks per type URL (the AdsClient's resource validators). */
  readonly validators?: Partial<Record<string, ResourceValidator>>;
  /**
   * Subscribes palisade.v1.Policy and hands over every accepted state of it (all Policies of
   * the namespace; empty when there are none).
   */
  readonly onPolicies?: (policies: Policy[]) => void;
  /**
   * Subscribes palisade.v1.RequestAuthentication and hands over every accepted state of it
   * (all of the namespace; empty when there are none).
   */
  readonly onRequestAuthentications?: (resources: RequestAuthentication[]) => void;
  /**
   * Subscribes palisade.v1.Quota and hands over every accepted state of it (all Quotas of the
   * namespace; empty when there are none).
   */
  readonly onQuotas?: (quotas: Quota[]) => void;
}

export class SidecarXds {
  readonly client: AdsClient;
  readonly #tls: WorkloadTls | null;
  #meshMode: MeshMtlsMode = 'STRICT';
  #rootCaVersion = '';

  readonly #o: SidecarXdsOptions;
  readonly #subscriptions = new DependentSubscriptions();
  readonly #counts = { updates: {} as Record<string, number>, nacks: {} as Record<string, number>, snapshotErrors: 0, connects: 0, disconnects: 0 };

  /** Connects at once: CDS and LDS subscribed, the node not ready yet. */
  constructor(options: SidecarXdsOptions) {
    this.#o = options;
    const b = options.bootstrap;
    const log = options.logger;
    const c = this.#counts;
    const tls = options.tls ?? null;
    this.#tls = tls;
    const client = new AdsClient({
      address: b.controlPlane.address, protocol: 'sotw', node: sidecarNode(b, options.inboundPort, false, options.version),
      ...(tls !== null ? { credentials: this.#credentials(tls) } : {}),
      ...(options.validators !== undefined ? { validators: options.validators } : {}),
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
    client.subscribe(MESH_CONFIG_TYPE_URL, '*');
    if (options.onPolicies !== undefined) client.subscribe(POLICY_TYPE_URL, '*');
    if (options.onRequestAuthentications !== undefined) client.subscribe(REQUEST_AUTHENTICATION_TYPE_URL, '*');
    if (options.onQuotas !== undefined) client.subscribe(QUOTA_TYPE_URL, '*');
    if (tls !== null) {
      client.subscribe(SECRET_TYPE_URL, [ROOT_CA_SECRET]);
      // New connections to the control plane present the renewed SVID and trust the current roots.
      const refresh = () => client.setCredentials(this.#credentials(tls));
      tls.on('renewed', refresh);
      tls.on('trust', refresh);
    }
    client.start();
  }

  /** The mesh mTLS mode last received (STRICT before any MeshConfig). */
  get meshMode(): MeshMtlsMode {
    return this.#meshMode;
  }

  #credentials(tls: WorkloadTls) {
    return xdsChannelCredentials({ ...tls.identity, bundlePem: tls.bundlePem }, tls.trustDomain);
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
    if (typeUrl === MESH_CONFIG_TYPE_URL) {
      this.#onMeshConfig();
      return;
    }
    if (typeUrl === SECRET_TYPE_URL) {
      this.#onSecret();
      return;
    }
    if (typeUrl === POLICY_TYPE_URL) {
      this.#handOver(POLICY_TYPE_URL, this.#o.onPolicies, 'the policies');
      return;
    }
    if (typeUrl === REQUEST_AUTHENTICATION_TYPE_URL) {
      this.#handOver(REQUEST_AUTHENTICATION_TYPE_URL, this.#o.onRequestAuthentications, 'the request authentication');
      return;
    }
    if (typeUrl === QUOTA_TYPE_URL) {
      this.#handOver(QUOTA_TYPE_URL, this.#o.onQuotas, 'the quotas');
      return;
    }
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

  /** Every accepted resource of a Palisade type, to the owner's handler; a handler's failure is logged. */
  #handOver<T>(typeUrl: string, handler: ((resources: T[]) => void) | undefined, what: string): void {
    try {
      handler?.([...this.client.state(typeUrl).resources.values()].map((r) => r.message as T));
    } catch (err) {
      this.#o.logger.error({ err }, `applying ${what} failed`);
    }
  }

  #onMeshConfig(): void {
    const first = this.client.state(MESH_CONFIG_TYPE_URL).resources.values().next().value;
    // No Mesh resource: the safe default, STRICT (Mesh spec.mtls.mode's default too).
    const mode: MeshMtlsMode = first !== undefined && (first.message as MeshConfig).mtlsMode === MeshConfig_MtlsMode.PERMISSIVE ? 'PERMISSIVE' : 'STRICT';
    try {
      this.#o.onMetering?.(first === undefined ? undefined : (first.message as MeshConfig).metering);
    } catch (err) {
      this.#o.logger.error({ err }, 'applying the mesh metering settings failed');
    }
    if (mode === this.#meshMode) return;
    this.#meshMode = mode;
    this.#o.logger.info({ mode }, 'mesh mTLS mode');
    try {
      this.#o.onMeshMode?.(mode);
    } catch (err) {
      this.#o.logger.error({ err, mode }, 'applying the mesh mTLS mode failed');
    }
  }

  #onSecret(): void {
    const tls = this.#tls;
    const r = this.client.state(SECRET_TYPE_URL).resources.get(ROOT_CA_SECRET);
    if (tls === null || r === undefined || r.version === this.#rootCaVersion) return;
    try {
      tls.applyRootCa(r.message as Secret);
      this.#rootCaVersion = r.version;
    } catch (err) {
      this.#counts.snapshotErrors++;
      this.#o.logger.error({ err, version: r.version }, 'the SDS Secret ROOTCA cannot be applied; the previous trust stays');
    }
  }
}
