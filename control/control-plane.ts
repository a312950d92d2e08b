/**
 * The control plane process: a desired-state source feeds the translator, whose output
 * per node group goes into the snapshot cache the ADS server serves; the inventory tracks
 * every proxy; the admin HTTP endpoint shows both.
 *
 * A state is published only whole: every group is translated and validated first, and if
 * any resource fails Envoy's validation rules nothing changes (the last good snapshots
 * stay) and the failure is logged and shown on /api/v1/state.
 */
import type { ServerCredentials } from '@grpc/grpc-js';
import type { StreamAuthorizer } from '../xds/server/callbacks.ts';
import type { Node } from '../xds/gen/envoy/config/core/v3/base_pb.js';
import { Snapshot } from '../xds/cache/snapshot.ts';
import { SnapshotCache } from '../xds/cache/snapshot-cache.ts';
import { AdsServer } from '../xds/server/ads-server.ts';
import { getResourceType, TYPE_REGISTRY } from '../xds/resources/registry.ts';
import { validateMessage } from '../xds/validate/pgv.ts';
import type { ConfigError } from './config/config-error.ts';
import { formatConfigError } from './config/config-error.ts';
import type { ResourceSource } from './config/source.ts';
import type { DesiredState } from './config/state.ts';
import { InvalidTranslationError } from './errors.ts';
import { Inventory } from './inventory/inventory.ts';
import { EndpointRegistry, parseRegistration } from './registry/endpoint-registry.ts';
import { withRegisteredEndpoints } from './registry/merge.ts';
import type { StreamInfo } from '../xds/server/callbacks.ts';
import type { Logger } from './log.ts';
import { clientKind, groupKey, nodeTarget, parseGroupKey } from './translate/node-kind.ts';
import { translate } from './translate/translator.ts';

export interface ControlPlaneOptions {
  source: ResourceSource;
  /** host:port for ADS; port 0 picks one. */
  xdsAddress: string;
  logger: Logger;
  /** How long a disconnected or unready sidecar stays an endpoint of its Service, ms. Default 10 000. */
  endpointGraceMs?: number;
  /** ADS transport credentials (TLS with the control plane's SVID); plaintext by default. */
  xdsCredentials?: ServerCredentials;
  /** Who may hold a stream for which node (control/security/stream-authorizer.ts); none: every stream. */
  authorizeStream?: StreamAuthorizer;
  /** The mesh CA's roots, published to Envoy and sidecar groups as the SDS Secret ROOTCA. */
  trustBundle?: string;
  /** PEM CRL of revoked workload certificates, published in ROOTCA with the roots. */
  crl?: string | null;
}

export interface StateStatus {
  /** Time of the last applied state, ISO 8601. */
  appliedAt: string | null;
  /** Errors of the last refused change (config or translation), null once a later one applied. */
  lastRejection: { at: string; errors: string[] } | null;
  publishes: number;
  rejections: number;
}

export class ControlPlane {
  readonly cache = new SnapshotCache();
  readonly inventory = new Inventory();
  readonly registry: EndpointRegistry;
  readonly #source: ResourceSource;
  readonly #log: Logger;
  readonly #xdsAddress: string;
  readonly #ads: AdsServer;
  /** The state from the source, before sidecar-registered endpoints are merged in. */
  #base: DesiredState | undefined;
  /** What is being served: #base plus registered endpoints. */
  #state: DesiredState | undefined;
  #trustBundle: string | null;
  #crl: string | null;
  #registryApply: NodeJS.Immediate | undefined;
  #xdsPort = 0;
  readonly status: StateStatus = { appliedAt: null, lastRejection: null, publishes: 0, rejections: 0 };

  constructor(options: ControlPlaneOptions) {
    this.#source = options.source;
    this.#log = options.logger;
    this.#xdsAddress = options.xdsAddress;
    this.#trustBundle = options.trustBundle ?? null;
    this.#crl = options.crl ?? null;
    const inventory = this.inventory;
    const log = this.#log;
    this.registry = new EndpointRegistry({
      graceMs: options.endpointGraceMs ?? 10_000,
      onChange: () => this.#scheduleRegistryApply(),
    });
    const register = (info: StreamInfo) => {
      if (!info.node || clientKind(info.node) !== 'sidecar') return;
      const r = parseRegistration(info.node);
      if (!r.valid) {
        log.warn({ stream: info.id, node: info.node.id, errors: r.errors }, 'sidecar registration refused');
        return;
      }
      if (r.result) this.registry.update(info.id, r.result);
    };
    this.#ads = new AdsServer({
      cache: this.cache,
      nodeGroup: (node: Node) => groupKey(nodeTarget(node)),
      ensureGroup: (group) => this.#ensureGroup(group),
      ...(options.xdsCredentials !== undefined ? { credentials: options.xdsCredentials } : {}),
      ...(options.authorizeStream !== undefined ? { authorize: options.authorizeStream } : {}),
      callbacks: {
        onStreamNode: (info) => {
          inventory.onStreamNode(info);
          register(info);
          log.info({ stream: info.id, node: info.node?.id, group: info.group, protocol: info.protocol }, 'proxy connected');
        },
        onStreamNodeUpdate: (info) => register(info),
        onStreamClosed: (info, reason) => {
          inventory.onStreamClosed(info);
          if (info.node) this.registry.remove(info.id, info.node.id);
          if (info.node) log.info({ stream: info.id, node: info.node.id, reason }, 'proxy disconnected');
        },
        onResponse: (info, typeUrl, version, nonce) => inventory.onResponse(info, typeUrl, version, nonce),
        onAck: (info, typeUrl, version, nonce) => inventory.onAck(info, typeUrl, version, nonce),
        onNack: (info, typeUrl, version, nonce, error) => {
          inventory.onNack(info, typeUrl, version, nonce, error);
          log.warn({ stream: info.id, node: info.node?.id, type: typeUrl, version, error }, 'proxy NACKed a response');
        },
        onIgnoredRequest: (info, typeUrl, reason) => log.debug({ stream: info.id, type: typeUrl, reason }, 'request ignored'),
      },
    });
  }

  /** Loads the first state (rejects if it is invalid), then serves ADS. Resolves with the bound port. */
  async start(): Promise<number> {
    await this.#source.start();
    const first = this.#source.current();
    const problems = this.#check(first);
    if (problems.length > 0) throw new InvalidTranslationError(problems);
    this.#base = first;
    this.#state = first;
    this.status.appliedAt = new Date().toISOString();
    this.#source.on('update', (state) => this.apply(state));
    this.#source.on('rejected', (errors) => this.#reject(errors.map(formatConfigError)));
    this.#source.on('recovered', () => {
      this.status.lastRejection = null;
      this.#log.info('configuration valid again; unchanged from the configuration in force');
    });
    this.#xdsPort = await this.#ads.listen(this.#xdsAddress);
    this.#log.info({ xds: this.xdsAddress }, 'xDS server listening');
    return this.#xdsPort;
  }

  get xdsAddress(): string {
    const host = this.#xdsAddress.slice(0, this.#xdsAddress.lastIndexOf(':'));
    return `${host}:${this.#xdsPort}`;
  }

  get state(): DesiredState | undefined {
    return this.#state;
  }

  get streamCount(): number {
    return this.#ads.streamCount;
  }

  /**
   * Translates a new state (plus the endpoints sidecars registered) for every known group
   * and publishes it, or refuses it whole.
   */
  apply(base: DesiredState): boolean {
    const state = withRegisteredEndpoints(base, this.registry.endpoints());
    const groups = this.cache.groups();
    const built = new Map<string, Snapshot>();
    const problems: string[] = [];
    for (const group of groups) {
      const result = this.#build(state, group);
      if (Array.isArray(result)) problems.push(...result);
      else built.set(group, result);
    }
    if (problems.length > 0) {
      this.#reject(problems);
      return false;
    }
    this.#base = base;
    this.#state = state;
    let changed = 0;
    for (const [group, snap] of built) {
      // Unaffected groups keep their snapshot: their streams are not even woken.
      if (this.cache.getSnapshot(group)?.sameContent(snap)) continue;
      this.cache.setSnapshot(group, snap);
      changed++;
    }
    this.status.appliedAt = new Date().toISOString();
    this.status.lastRejection = null;
    this.status.publishes++;
    this.#log.info({ groups: groups.length, changed }, 'configuration applied');
    return true;
  }

  /**
   * New trust material (a root rotation's bundle, a CRL after a revocation): every group's
   * ROOTCA Secret is rebuilt and pushed. False when the control plane has no state yet or
   * the rebuild was refused (the previous trust stays published).
   */
  setTrust(trust: { readonly bundle: string; readonly crl: string | null }): boolean {
    const previous = { bundle: this.#trustBundle, crl: this.#crl };
    this.#trustBundle = trust.bundle;
    this.#crl = trust.crl;
    if (!this.#base) return false;
    if (this.apply(this.#base)) return true;
    this.#trustBundle = previous.bundle;
    this.#crl = previous.crl;
    return false;
  }

  /** Many sidecars (dis)connecting at once make one rebuild, not one each. */
  #scheduleRegistryApply(): void {
    if (this.#registryApply || !this.#base) return;
    this.#registryApply = setImmediate(() => {
      this.#registryApply = undefined;
      if (this.#base) this.apply(this.#base);
    });
  }

  #reject(errors: string[]): void {
    this.status.rejections++;
    this.status.lastRejection = { at: new Date().toISOString(), errors };
    this.#log.error({ errors }, 'configuration change refused; the last good configuration stays in force');
  }

  #ensureGroup(group: string): void {
    if (this.cache.getSnapshot(group) || !this.#state) return;
    const result = this.#build(this.#state, group);
    if (Array.isArray(result)) {
      this.#log.error({ group, errors: result }, 'cannot build snapshot for new node group');
      return;
    }
    this.cache.setSnapshot(group, result);
  }

  /** A group's snapshot, or the list of problems that stop it. */
  #build(state: DesiredState, group: string): Snapshot | string[] {
    const resources = translate(state, parseGroupKey(group), { trustBundle: this.#trustBundle, crl: this.#crl });
    const problems: string[] = [];
    for (const [typeUrl, list] of Object.entries(resources)) {
      const type = getResourceType(typeUrl);
      for (const r of list) {
        const v = validateMessage(type.schema, r, { registry: TYPE_REGISTRY });
        if (!v.valid) problems.push(...v.errors.map((e) => `${group} ${type.shortName} ${JSON.stringify(type.nameOf(r))}: ${e}`));
      }
    }
    if (problems.length > 0) return problems;
    const prev = this.cache.getSnapshot(group);
    return Snapshot.fromResources(resources, prev);
  }

  /** Validation problems of a state for every kind of client, so a bad first config fails fast. */
  #check(state: DesiredState): string[] {
    const out: string[] = [];
    for (const group of ['envoy/default', 'grpc/default', 'sidecar/default']) {
      const r = this.#build(state, group);
      if (Array.isArray(r)) out.push(...r);
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.#registryApply) clearImmediate(this.#registryApply);
    this.registry.close();
    await this.#ads.close();
    await this.#source.close();
  }
}

export type { ConfigError };
