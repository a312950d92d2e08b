/**
 * The control plane process: a desired-state source feeds the translator, whose output
 * per node group goes into the snapshot cache the ADS server serves; the inventory tracks
 * every proxy; the admin HTTP endpoint shows both.
 *
 * A state is published only whole: every group is translated and validated first, and if
 * any resource fails Envoy's validation rules nothing changes (the last good snapshots
 * stay) and the failure is logged and shown on /api/v1/state.
 *
 * Envoys cannot enroll with a CSR. One that authenticates its stream with a client
 * certificate (its bootstrap SVID) joins a group of its own identity
 * (`envoy@td:ns:sa/<namespace>`, node-kind.ts); the control plane issues that identity a key
 * and SVID (`issueCertificate`), serves them only in that group as the SDS Secret `default`,
 * and re-issues at renewAt while a stream of the identity is open.
 *
 * With admission control (control/admission) every state from the source (and the first)
 * is reviewed by signed OPA bundles before it is translated: mutations apply, a denial
 * refuses the change as an invalid config does. Re-applies of the state in force (new
 * registered endpoints, new trust) are not reviewed again.
 */
import { ServerCredentials } from '@grpc/grpc-js';
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
import type { AdmissionController, AdmissionReview } from './admission/admission-controller.ts';
import { AdmissionDeniedError } from './admission/errors.ts';
import { Inventory } from './inventory/inventory.ts';
import { EndpointRegistry, parseRegistration } from './registry/endpoint-registry.ts';
import { withRegisteredEndpoints } from './registry/merge.ts';
import type { StreamInfo } from '../xds/server/callbacks.ts';
import type { Logger } from './log.ts';
import { clientKind, groupKey, nodeTarget, parseGroupKey, type NodeTarget } from './translate/node-kind.ts';
import { DEFAULT_CERTIFICATE_SECRET, ROOT_CA_SECRET } from './translate/mtls.ts';
import { translate } from './translate/translator.ts';
import { peerSpiffeId } from './security/stream-authorizer.ts';
import { parseWorkloadId } from '../certs/spiffe.ts';
import { SECRET_TYPE_URL } from '../xds/resources/type-urls.ts';
import { join } from 'node:path';
import { LRS_SERVICE, LrsServer } from './metering/lrs-server.ts';
import { reportIntervalMs } from './metering/mesh-metering.ts';
import { UsageStore } from './metering/usage-store.ts';
import { SloEngine } from './slo/slo-engine.ts';

export interface ControlPlaneOptions {
  source: ResourceSource;
  /** host:port for ADS; port 0 picks one. */
  xdsAddress: string;
  /**
   * A second ADS port without TLS (Istio's 15010), for proxyless gRPC clients whose xDS
   * library cannot present a certificate. Its streams have no peer certificate: the stream
   * authorizer decides what they may do. Off by default.
   */
  xdsPlaintextAddress?: string;
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
  /**
   * Issues a fresh key pair and SVID for `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`.
   * Set: an Envoy whose stream presents a client certificate gets its identity's certificate
   * as the SDS Secret `default`, cached per identity and re-issued at renewAt. Unset: Envoys
   * get no `default`.
   */
  issueCertificate?: IssueCertificate;
  /**
   * Admission control: every incoming state is reviewed (mutated, then validated) by these
   * bundles before it is applied; a denial refuses it. None: states apply as read.
   */
  admission?: AdmissionController;
  /** With `admission`: review, log and report (status.admission) but enforce nothing; states apply as read. Default false. */
  admissionDryRun?: boolean;
  /**
   * The control plane's state dir: usage metering aggregates the sidecars' LRS reports per
   * tenant per day into `<stateDir>/usage/` (control/metering/usage-store.ts). None: reports
   * are still received (`loadReports`), nothing is aggregated.
   */
  stateDir?: string;
  /**
   * SLO engine time scale (control/slo/): every burn-rate window and the budget window are
   * divided by it (60: an hour passes in a minute). A test and demo aid; default 1.
   */
  sloTimeScale?: number;
}

/** A key and certificate the CA issued to an identity the control plane holds for an Envoy. */
export interface IssuedWorkloadCertificate {
  /** PKCS#8 PEM private key. */
  readonly keyPem: string;
  /** PEM chain: the SVID, then its intermediates. */
  readonly chainPem: string;
  readonly renewAt: Date;
  readonly notAfter: Date;
  readonly serial: string;
}

export type IssueCertificate = (namespace: string, serviceAccount: string) => Promise<IssuedWorkloadCertificate>;

/** A failed issue is retried after this long, ms. */
const ISSUE_RETRY_MS = 30_000;
/** Renewal never comes sooner than this after an issue, ms (a renewAt in the past must not spin). */
const MIN_RENEW_DELAY_MS = 1_000;
/** setTimeout's limit (~24.8 days); a later renewAt is reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface IdentityEntry {
  readonly namespace: string;
  readonly serviceAccount: string;
  certificate: IssuedWorkloadCertificate | null;
  /** Streams of this identity's groups now open. */
  streams: number;
  issuing: boolean;
  timer: NodeJS.Timeout | null;
}

export interface StateStatus {
  /** Time of the last applied state, ISO 8601. */
  appliedAt: string | null;
  /** Errors of the last refused change (config or translation), null once a later one applied. */
  lastRejection: { at: string; errors: string[] } | null;
  publishes: number;
  rejections: number;
  /** The last admission review; null without admission control. */
  admission: AdmissionStatus | null;
}

/** What admission control decided about the last incoming state. */
export interface AdmissionStatus {
  /** When it was reviewed, ISO 8601. */
  at: string;
  /** Dry run: reported, not enforced. */
  dryRun: boolean;
  /** Whether the state was (or, in a dry run, would have been) accepted. */
  allowed: boolean;
  /** `FILE#INDEX Kind ns/name: denied by BUNDLE: REASON`, one per reason, and reference errors the mutations caused. */
  denied: string[];
  /** Each patch a bundle applied (or, in a dry run, would have applied). */
  mutated: Array<{ resource: string; source: string; bundle: string; patch: unknown[] }>;
}

export class ControlPlane {
  readonly cache = new SnapshotCache();
  readonly inventory = new Inventory();
  readonly registry: EndpointRegistry;
  readonly #source: ResourceSource;
  readonly #log: Logger;
  readonly #xdsAddress: string;
  readonly #xdsPlaintextAddress: string | null;
  #xdsPlaintextPort = 0;
  readonly #ads: AdsServer;
  /** The state from the source, before sidecar-registered endpoints are merged in. */
  #base: DesiredState | undefined;
  /** What is being served: #base plus registered endpoints. */
  #state: DesiredState | undefined;
  #trustBundle: string | null;
  #crl: string | null;
  #registryApply: NodeJS.Immediate | undefined;
  readonly #issue: IssueCertificate | null;
  /** Envoy identities with open streams, by SPIFFE ID. */
  readonly #identities = new Map<string, IdentityEntry>();
  #closed = false;
  #xdsPort = 0;
  readonly #admission: AdmissionController | null;
  readonly #admissionDryRun: boolean;
  /** The source state admission last refused: a 'recovered' to it is no recovery. */
  #refused: DesiredState | null = null;
  readonly status: StateStatus = { appliedAt: null, lastRejection: null, publishes: 0, rejections: 0, admission: null };
  /**
   * The LRS endpoint on the xDS server: subscribe to `loadReports.on('report', (node, stats,
   * receivedAt) => …)` for every load report a proxy sends.
   */
  readonly loadReports: LrsServer;
  /** Usage per tenant per day (with `stateDir`); null without one. */
  readonly usage: UsageStore | null;
  /** The Routes' SLOs, judged from the sidecars' load reports: burn rates, alerts, budgets (control/slo/). */
  readonly slo: SloEngine;

  constructor(options: ControlPlaneOptions) {
    this.#source = options.source;
    this.#log = options.logger;
    this.#xdsAddress = options.xdsAddress;
    this.#xdsPlaintextAddress = options.xdsPlaintextAddress ?? null;
    this.#trustBundle = options.trustBundle ?? null;
    this.#crl = options.crl ?? null;
    this.#issue = options.issueCertificate ?? null;
    this.#admission = options.admission ?? null;
    this.#admissionDryRun = options.admissionDryRun ?? false;
    const inventory = this.inventory;
    const log = this.#log;
    this.registry = new EndpointRegistry({
      graceMs: options.endpointGraceMs ?? 10_000,
      onChange: () => this.#scheduleRegistryApply(),
    });
    const register = (info: StreamInfo) => {
      if (!info.node || clientKind(info.node) !== 'sidecar') return;
      const r = parseRegistration(info.node, peerSpiffeId(info.peerCertificate));
      if (!r.valid) {
        log.warn({ stream: info.id, node: info.node.id, errors: r.errors }, 'sidecar registration refused');
        return;
      }
      if (r.result) this.registry.update(info.id, r.result);
    };
    this.loadReports = new LrsServer({
      intervalMs: () => reportIntervalMs(this.#state?.mesh?.spec.metering),
      ...(options.authorizeStream !== undefined ? { authorize: options.authorizeStream } : {}),
      onRefused: (peer, reason) => log.warn({ peer, reason }, 'load report stream refused'),
    });
    this.usage = options.stateDir === undefined ? null : new UsageStore({
      dir: join(options.stateDir, 'usage'),
      onError: (err) => log.error({ err: err.message, code: (err as { code?: string }).code }, 'usage store'),
    });
    const usage = this.usage;
    if (usage !== null) this.loadReports.on('report', (node, stats, receivedAt) => usage.ingest(node, stats, receivedAt));
    this.slo = new SloEngine({ state: () => this.#state, logger: log, ...(options.sloTimeScale !== undefined ? { timeScale: options.sloTimeScale } : {}) });
    this.loadReports.on('report', (_node, stats, receivedAt) => this.slo.ingest(stats, receivedAt));
    this.#ads = new AdsServer({
      cache: this.cache,
      nodeGroup: (node: Node, info: StreamInfo) => groupKey(this.#targetOf(node, info)),
      ensureGroup: (group) => this.#ensureGroup(group),
      ...(options.xdsCredentials !== undefined ? { credentials: options.xdsCredentials } : {}),
      ...(options.authorizeStream !== undefined ? { authorize: options.authorizeStream } : {}),
      callbacks: {
        onStreamNode: (info) => {
          inventory.onStreamNode(info);
          this.#identityStreamOpened(info);
          register(info);
          log.info({ stream: info.id, node: info.node?.id, group: info.group, protocol: info.protocol }, 'proxy connected');
        },
        onStreamNodeUpdate: (info) => register(info),
        onStreamClosed: (info, reason) => {
          inventory.onStreamClosed(info);
          this.#identityStreamClosed(info);
          if (info.node) this.registry.remove(info.id, info.node.id);
          if (info.node) log.info({ stream: info.id, node: info.node.id, reason }, 'proxy disconnected');
        },
        onResponse: (info, typeUrl, version, nonce) => inventory.onResponse(info, typeUrl, version, nonce),
        onAck: (info, typeUrl, version, nonce) => inventory.onAck(info, typeUrl, version, nonce),
        onNack: (info, typeUrl, version, nonce, error) => {
          inventory.onNack(info, typeUrl, version, nonce, error);
          log.warn({ stream: info.id, node: info.node?.id, type: typeUrl, version, error }, 'proxy NACKed a response');
        },
        onResourceNames: (info, typeUrl, names) => this.#checkSecretNames(info, typeUrl, names),
        onIgnoredRequest: (info, typeUrl, reason) => log.debug({ stream: info.id, type: typeUrl, reason }, 'request ignored'),
      },
    });
    this.#ads.addService(LRS_SERVICE, this.loadReports.implementation);
  }

  /** Loads the first state (rejects if it is invalid), then serves ADS. Resolves with the bound port. */
  async start(): Promise<number> {
    await this.#source.start();
    const admitted = this.#admit(this.#source.current());
    if (Array.isArray(admitted)) {
      await this.#source.close(); // its watchers would keep a refused process alive
      throw new AdmissionDeniedError(admitted);
    }
    const first = admitted;
    const problems = this.#check(first);
    if (problems.length > 0) throw new InvalidTranslationError(problems);
    this.#base = first;
    this.#state = first;
    this.status.appliedAt = new Date().toISOString();
    this.#source.on('update', (state) => this.apply(state));
    this.#source.on('rejected', (errors) => this.#reject(errors.map(formatConfigError)));
    this.#source.on('recovered', () => {
      if (this.#refused !== null && this.#source.current() === this.#refused) return; // valid again, but still denied
      this.status.lastRejection = null;
      this.#log.info('configuration valid again; unchanged from the configuration in force');
    });
    this.#xdsPort = await this.#ads.listen(this.#xdsAddress);
    if (this.#xdsPlaintextAddress !== null) this.#xdsPlaintextPort = await this.#ads.listen(this.#xdsPlaintextAddress, ServerCredentials.createInsecure());
    this.#log.info({ xds: this.xdsAddress, xdsPlaintext: this.xdsPlaintextAddress }, 'xDS server listening');
    this.slo.start();
    return this.#xdsPort;
  }

  /** The plaintext ADS address (host:port) when one was asked for, else null. */
  get xdsPlaintextAddress(): string | null {
    const a = this.#xdsPlaintextAddress;
    return a === null ? null : `${a.slice(0, a.lastIndexOf(':'))}:${this.#xdsPlaintextPort}`;
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
   * Reviews a new state with admission control (when configured), then translates it (plus
   * the endpoints sidecars registered) for every known group and publishes it; or refuses it
   * whole (a denial, a translation problem). False when refused.
   */
  apply(base: DesiredState): boolean {
    const admitted = this.#admit(base);
    if (Array.isArray(admitted)) {
      this.#refused = base;
      this.#reject(admitted);
      return false;
    }
    this.#refused = null;
    return this.#publish(admitted);
  }

  /**
   * The state to apply after admission (mutated, or as read in a dry run), or the denials.
   * Records the review in status.admission and logs what it denied or changed.
   */
  #admit(state: DesiredState): DesiredState | string[] {
    if (this.#admission === null) return state;
    const review: AdmissionReview = this.#admission.review(state, this.#base ?? null);
    const dryRun = this.#admissionDryRun;
    this.status.admission = {
      at: new Date().toISOString(),
      dryRun,
      allowed: review.allowed,
      denied: [...review.errors],
      mutated: review.mutations.map((m) => ({ resource: m.resource, source: `${m.source.file}#${m.source.index}`, bundle: m.bundle, patch: [...m.patch] })),
    };
    if (review.mutations.length > 0) {
      this.#log.info({ dryRun, mutated: this.status.admission.mutated }, dryRun ? 'admission would mutate resources (dry run: not applied)' : 'admission mutated resources');
    }
    if (dryRun) {
      if (!review.allowed) this.#log.warn({ errors: review.errors }, 'admission would deny this configuration (dry run: applied anyway)');
      return state;
    }
    return review.allowed ? review.state : [...review.errors];
  }

  /** Translates an admitted state for every known group and publishes it, or refuses it whole. */
  #publish(base: DesiredState): boolean {
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
    this.loadReports.refreshInterval();
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
    if (this.#publish(this.#base)) return true;
    this.#trustBundle = previous.bundle;
    this.#crl = previous.crl;
    return false;
  }

  /** Many sidecars (dis)connecting at once make one rebuild, not one each. */
  #scheduleRegistryApply(): void {
    if (this.#registryApply || !this.#base) return;
    this.#registryApply = setImmediate(() => {
      this.#registryApply = undefined;
      if (this.#base) this.#publish(this.#base);
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

  /**
   * The node's target: an Envoy whose stream presents a client certificate (already checked
   * by the authorizer and TLS) gets a group of its own identity when certificates are issued.
   */
  #targetOf(node: Node, info: StreamInfo): NodeTarget {
    const target = nodeTarget(node);
    if (this.#issue === null || target.kind !== 'envoy') return target;
    const id = peerSpiffeId(info.peerCertificate);
    if (id === null || !parseWorkloadId(id).valid) return target;
    return { ...target, identity: id };
  }

  #identityStreamOpened(info: StreamInfo): void {
    if (info.group === undefined) return;
    const id = parseGroupKey(info.group).identity;
    if (id === undefined) return;
    let entry = this.#identities.get(id);
    if (!entry) {
      const w = parseWorkloadId(id);
      if (!w.valid) return;
      entry = { namespace: w.result.namespace, serviceAccount: w.result.serviceAccount, certificate: null, streams: 0, issuing: false, timer: null };
      this.#identities.set(id, entry);
    }
    entry.streams++;
    if (entry.certificate === null && !entry.issuing && entry.timer === null) void this.#issueFor(id, entry);
  }

  /** The last stream of an identity gone: its key is forgotten and its groups dropped. */
  #identityStreamClosed(info: StreamInfo): void {
    if (info.group === undefined) return;
    const id = parseGroupKey(info.group).identity;
    const entry = id === undefined ? undefined : this.#identities.get(id);
    if (id === undefined || !entry) return;
    entry.streams--;
    if (entry.streams > 0) return;
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = null;
    this.#identities.delete(id);
    for (const group of this.#groupsOf(id)) if (this.cache.watcherCount(group) === 0) this.cache.clearSnapshot(group);
  }

  /** Issues (or renews) an identity's certificate, publishes it, and schedules the next. */
  async #issueFor(id: string, entry: IdentityEntry): Promise<void> {
    entry.issuing = true;
    entry.timer = null;
    let delay: number;
    try {
      const issued = await this.#issue!(entry.namespace, entry.serviceAccount);
      if (this.#closed || this.#identities.get(id) !== entry) return;
      const previous = entry.certificate;
      entry.certificate = issued;
      this.#log.info({ identity: id, serial: issued.serial, previousSerial: previous?.serial ?? null, renewAt: issued.renewAt.toISOString(), notAfter: issued.notAfter.toISOString() },
        previous === null ? 'Envoy identity certificate issued' : 'Envoy identity certificate renewed');
      this.#publishIdentity(id);
      delay = Math.max(MIN_RENEW_DELAY_MS, issued.renewAt.getTime() - Date.now());
    } catch (err) {
      if (this.#closed || this.#identities.get(id) !== entry) return;
      this.#log.error({ identity: id, err: (err as Error).message, retryInMs: ISSUE_RETRY_MS }, 'cannot issue the Envoy identity certificate');
      delay = ISSUE_RETRY_MS;
    } finally {
      entry.issuing = false;
    }
    entry.timer = setTimeout(() => void this.#issueFor(id, entry), Math.min(delay, MAX_TIMER_MS));
    entry.timer.unref();
  }

  /** Rebuilds the groups of one identity with its current certificate. */
  #publishIdentity(id: string): void {
    if (!this.#state) return;
    for (const group of this.#groupsOf(id)) {
      const result = this.#build(this.#state, group);
      if (Array.isArray(result)) {
        this.#log.error({ group, errors: result }, 'cannot build snapshot with the renewed identity certificate');
        continue;
      }
      if (!this.cache.getSnapshot(group)?.sameContent(result)) this.cache.setSnapshot(group, result);
    }
  }

  #groupsOf(id: string): string[] {
    return this.cache.groups().filter((g) => g.includes('@') && parseGroupKey(g).identity === id);
  }

  /** A node gets only its own identity's secrets; asking for others is logged (and answered with nothing). */
  #checkSecretNames(info: StreamInfo, typeUrl: string, names: readonly string[]): void {
    if (typeUrl !== SECRET_TYPE_URL || info.group === undefined) return;
    const target = parseGroupKey(info.group);
    const allowed = target.identity !== undefined && target.kind === 'envoy' && this.#identities.has(target.identity)
      ? [ROOT_CA_SECRET, DEFAULT_CERTIFICATE_SECRET]
      : [ROOT_CA_SECRET];
    const refused = names.filter((n) => !allowed.includes(n));
    if (refused.length === 0) return;
    this.#log.warn({ stream: info.id, node: info.node?.id, group: info.group, identity: target.identity ?? null, secrets: refused },
      'SDS request for secrets this node may not have; they are not sent');
  }

  /** A group's snapshot, or the list of problems that stop it. */
  #build(state: DesiredState, group: string): Snapshot | string[] {
    const target = parseGroupKey(group);
    const own = target.identity === undefined ? null : (this.#identities.get(target.identity)?.certificate ?? null);
    const resources = translate(state, target, {
      trustBundle: this.#trustBundle,
      crl: this.#crl,
      workloadCertificate: own === null ? null : { chainPem: own.chainPem, keyPem: own.keyPem },
    });
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
    this.#closed = true;
    if (this.#registryApply) clearImmediate(this.#registryApply);
    for (const entry of this.#identities.values()) if (entry.timer) clearTimeout(entry.timer);
    this.#identities.clear();
    this.registry.close();
    this.loadReports.close();
    this.slo.close();
    await this.#ads.close();
    await this.usage?.close();
    await this.#source.close();
  }
}

export type { ConfigError };
