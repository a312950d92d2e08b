/**
 * Envoy's rate limit service (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`,
 * gRPC) served by a sidecar, so Envoy nodes enforce GLOBAL Quotas with the same buckets as the
 * sidecars (docs/envoy-ratelimit.md). The control plane gives each such Envoy one
 * `envoy.filters.http.ratelimit` filter per Quota, domain "<namespace>/<name>", and route
 * `rate_limits` whose actions build the descriptors (control/translate/envoy-ratelimit.ts):
 *
 *   ShouldRateLimit(domain, descriptors[], hits_addend)
 *     → the Quota named `domain` among the loaded ones (every Quota of the sidecar's namespace:
 *       QuotaGate namespaceConfig); none → OK, nothing counted (as Envoy's reference service
 *       answers a domain it has no configuration for)
 *     → per descriptor: its entries back to the Quota's descriptor values (entry key = the
 *       descriptor key; `remote_address` for a remoteAddress descriptor; `palisade_quota` =
 *       domain, the route gate, required when the Quota names routes); an empty or missing
 *       value takes the descriptor's default, still empty → not counted; the first limit
 *       whose match entries all equal → its bucket, the key the inbound gate uses
 *       (`<quota>|<limit>|<key>=<value>|...`), `hits_addend` tokens (0: one)
 *     → statuses (one per descriptor: code, current_limit, limit_remaining,
 *       duration_until_reset), overall OVER_LIMIT when any is, and the RateLimit-Policy /
 *       RateLimit headers (+ Retry-After when over) in response_headers_to_add
 *
 * The bucket outcome is decided as in the inbound gate (quota-gate.ts #take): a store error
 * with FAIL_OPEN takes from the limit's local fallback bucket; with FAIL_CLOSED the call fails
 * UNAVAILABLE, and Envoy's failure_mode_deny (true for such Quotas) refuses the request. A
 * shadow Quota answers OK and counts `shadowLimited`. Counts go to the limits' counters, shared
 * with the inbound gate (/stats `quota`), and to this server's own (/stats `rateLimitService`).
 *
 * Per config swap the domains are indexed once (WeakMap); a call allocates its descriptor
 * values, its checks and the response.
 */
import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { Server, ServerCredentials, status as GrpcStatus, type sendUnaryData, type ServerUnaryCall, type ServiceDefinition } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  RateLimitRequestSchema, RateLimitResponseSchema, RateLimitResponse_Code, RateLimitResponse_RateLimit_Unit, type RateLimitRequest, type RateLimitResponse,
  type RateLimitResponse_DescriptorStatusSchema, type RateLimitResponse_RateLimitSchema,
} from '../../xds/gen/envoy/service/ratelimit/v3/rls_pb.js';
import type { RateLimitDescriptor } from '../../xds/gen/envoy/extensions/common/ratelimit/v3/ratelimit_pb.js';
import { shutdownGracefully } from '../../xds/server/shutdown.ts';
import { bucketWithRoom, matchLimit, type CompiledLimit, type CompiledQuota, type QuotaConfig } from './compile-quotas.ts';
import { RateLimitRequestError } from './errors.ts';
import type { BucketOutcome } from './limit-buckets.ts';
import { rateLimitHeaders, type HeaderFacts } from './rate-limit-headers.ts';
import { bucketKey } from './request-attribute.ts';

/** Entry key of a remote_address action (Envoy's, it takes no descriptor_key); control/translate/envoy-ratelimit.ts yields it. */
export const REMOTE_ADDRESS_ENTRY_KEY = 'remote_address';
/** Entry key of the route gate (control/translate/envoy-ratelimit.ts ROUTE_GATE_KEY): its value is the domain. */
export const ROUTE_GATE_ENTRY_KEY = 'palisade_quota';
/** Largest hits_addend honoured; more is an invalid request. */
export const MAX_HITS_ADDEND = 1_000_000_000;
/** At most one "would refuse" log line per shadow limit per this many ms (as the inbound gate). */
export const RLS_SHADOW_LOG_INTERVAL_MS = 10_000;
/** Headers of the inbound gate's set that go into response_headers_to_add: the ratelimit filter adds x-ratelimit-* itself from the statuses. */
const FORWARDED_HEADERS: ReadonlySet<string> = new Set(['ratelimit-policy', 'ratelimit']);
const UINT32_MAX = 4_294_967_295;

const bytes = (u: Uint8Array): Buffer => (Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength));

/** grpc-js definition of envoy.service.ratelimit.v3.RateLimitService, with protobuf-es (de)serializers. */
export const RATE_LIMIT_SERVICE = {
  shouldRateLimit: {
    path: '/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit',
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: RateLimitRequest) => bytes(toBinary(RateLimitRequestSchema, m)),
    requestDeserialize: (b: Buffer) => fromBinary(RateLimitRequestSchema, b),
    responseSerialize: (m: RateLimitResponse) => bytes(toBinary(RateLimitResponseSchema, m)),
    responseDeserialize: (b: Buffer) => fromBinary(RateLimitResponseSchema, b),
  },
} satisfies ServiceDefinition;

export interface RateLimitServerOptions {
  /** The loaded Quotas a domain may name, read per call (QuotaGate namespaceConfig). */
  config: () => QuotaConfig;
  /**
   * False until the first pushed Quota state is in force (QuotaGate ready): calls fail
   * UNAVAILABLE meanwhile, so Envoy applies each Quota's failure mode. Default: always ready.
   */
  ready?: () => boolean;
  logger: Logger;
  /** Insecure (plaintext) by default: the server is meant for loopback, next to the Envoy. */
  credentials?: ServerCredentials;
}

export interface RateLimitServiceStats {
  requests: number;
  /** Answered OK (unknown domains included). */
  ok: number;
  overLimit: number;
  /** Failed calls: invalid requests (INVALID_ARGUMENT), FAIL_CLOSED store errors (UNAVAILABLE), bugs (INTERNAL). */
  errors: number;
  /** Answered OK because no loaded Quota is named by the domain. */
  unknownDomains: number;
}

/** A failed call's gRPC status and details. */
export interface RateLimitFailure {
  readonly code: GrpcStatus;
  readonly details: string;
}

/** ShouldRateLimit's outcome: the response, or the gRPC error to fail the call with. */
export type RateLimitOutcome = { readonly ok: true; readonly response: RateLimitResponse } | { readonly ok: false; readonly failure: RateLimitFailure };

/** A loaded Quota as the service reads it: entry key → descriptor index, and each limit's current_limit. */
interface DomainEntry {
  readonly quota: CompiledQuota;
  readonly entryIndex: ReadonlyMap<string, number>;
  readonly currentLimits: ReadonlyMap<CompiledLimit, MessageInitShape<typeof RateLimitResponse_RateLimitSchema>>;
}

interface Check {
  readonly limit: CompiledLimit;
  readonly key: string;
}

interface Decided {
  readonly check: Check;
  readonly refused: boolean;
  /** FAIL_CLOSED and the store did not answer. */
  readonly unavailable: boolean;
  readonly remaining: number;
  readonly resetSeconds: number;
}

const UNITS: readonly (readonly [number, RateLimitResponse_RateLimit_Unit])[] = [
  [1, RateLimitResponse_RateLimit_Unit.SECOND],
  [60, RateLimitResponse_RateLimit_Unit.MINUTE],
  [3600, RateLimitResponse_RateLimit_Unit.HOUR],
  [86_400, RateLimitResponse_RateLimit_Unit.DAY],
];

/**
 * A limit of `tokens` per `intervalSeconds` as Envoy's current_limit: the unit that is the
 * interval when there is one (SECOND, MINUTE, HOUR, DAY); otherwise the smallest unit longer
 * than the interval with the same rate, rounded down (5 per 10s → 30 per MINUTE), at most
 * 2^32-1. The response has no field for other windows.
 */
export function currentLimit(tokens: number, intervalSeconds: number): { requestsPerUnit: number; unit: RateLimitResponse_RateLimit_Unit } {
  for (const [seconds, unit] of UNITS) {
    if (seconds === intervalSeconds) return { requestsPerUnit: Math.min(tokens, UINT32_MAX), unit };
  }
  const [seconds, unit] = UNITS.find(([s]) => s > intervalSeconds) ?? UNITS[UNITS.length - 1]!;
  return { requestsPerUnit: Math.min(UINT32_MAX, Math.floor((tokens * seconds) / intervalSeconds)), unit };
}

/** The entry key a compiled quota's descriptor `i` arrives under. */
function entryKeyOf(q: CompiledQuota, i: number): string {
  return q.sources[i] === 'remoteAddress' ? REMOTE_ADDRESS_ENTRY_KEY : q.keys[i]!;
}

/** Why `req` is not a valid ShouldRateLimit request (field and value named), or null. */
export function requestProblem(req: RateLimitRequest): string | null {
  if (req.domain === '') return 'domain: must name a Quota ("<namespace>/<name>"), got ""';
  if (req.descriptors.length === 0) return `descriptors: must list at least one descriptor, got none (domain ${JSON.stringify(req.domain)})`;
  for (const [i, d] of req.descriptors.entries()) {
    if (d.entries.length === 0) return `descriptors[${i}].entries: must list at least one entry, got none`;
  }
  if (req.hitsAddend > MAX_HITS_ADDEND) return `hits_addend: must be at most ${MAX_HITS_ADDEND}, got ${req.hitsAddend}`;
  return null;
}

export class RateLimitServer {
  readonly #config: () => QuotaConfig;
  readonly #ready: () => boolean;
  readonly #log: Logger;
  readonly #server: Server;
  readonly #credentials: ServerCredentials;
  /** Per config in force: the loaded Quotas by domain (built once per swap, not per call). */
  readonly #index = new WeakMap<QuotaConfig, Map<string, DomainEntry>>();
  readonly #stats: RateLimitServiceStats = { requests: 0, ok: 0, overLimit: 0, errors: 0, unknownDomains: 0 };
  /** Last shadow log time per limit counters object. */
  readonly #shadowLogged = new WeakMap<object, number>();

  constructor(options: RateLimitServerOptions) {
    this.#config = options.config;
    this.#ready = options.ready ?? (() => true);
    this.#log = options.logger;
    this.#credentials = options.credentials ?? ServerCredentials.createInsecure();
    this.#server = new Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
    this.#server.addService(RATE_LIMIT_SERVICE, {
      shouldRateLimit: (call: ServerUnaryCall<RateLimitRequest, RateLimitResponse>, callback: sendUnaryData<RateLimitResponse>) => {
        this.shouldRateLimit(call.request).then((o) => {
          if (o.ok) callback(null, o.response);
          else callback({ code: o.failure.code, details: o.failure.details });
        }, (err: unknown) => {
          this.#stats.errors++;
          this.#log.error({ err }, 'rate limit check failed');
          callback({ code: GrpcStatus.INTERNAL, details: 'rate limit check failed' });
        });
      },
    });
  }

  /** Binds `address:port` (port 0 picks one); resolves with the bound port. */
  listen(address: string, port: number): Promise<number> {
    const target = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
    return new Promise((resolve, reject) => {
      this.#server.bindAsync(target, this.#credentials, (err, bound) => (err ? reject(err) : resolve(bound)));
    });
  }

  /** Judges one request by the Quota its domain names; never rejects but for a bug. */
  async shouldRateLimit(req: RateLimitRequest): Promise<RateLimitOutcome> {
    this.#stats.requests++;
    const problem = requestProblem(req);
    if (problem !== null) {
      this.#stats.errors++;
      const err = new RateLimitRequestError(problem);
      this.#log.warn({ err, domain: req.domain }, 'invalid rate limit request');
      return { ok: false, failure: { code: GrpcStatus.INVALID_ARGUMENT, details: err.message } };
    }
    if (!this.#ready()) {
      this.#stats.errors++;
      return { ok: false, failure: { code: GrpcStatus.UNAVAILABLE, details: 'no Quotas loaded yet: the sidecar has not received its first Quota configuration' } };
    }
    const entry = this.#lookup(this.#config(), req.domain);
    if (entry === undefined) {
      this.#stats.unknownDomains++;
      this.#stats.ok++;
      return { ok: true, response: create(RateLimitResponseSchema, { overallCode: RateLimitResponse_Code.OK, statuses: req.descriptors.map(() => ({ code: RateLimitResponse_Code.OK })) }) };
    }
    const q = entry.quota;
    const hits = req.hitsAddend === 0 ? 1 : req.hitsAddend;
    const checks = req.descriptors.map((d) => this.#resolve(entry, d));
    const decided = await Promise.all(checks.map((c) => (c === null ? null : this.#take(q, c, hits))));

    const closed = decided.find((d) => d?.unavailable === true && !q.shadow);
    if (closed !== undefined && closed !== null) {
      this.#stats.errors++;
      return { ok: false, failure: { code: GrpcStatus.UNAVAILABLE, details: `quota ${q.name} (limit ${closed.check.limit.name}) cannot be checked: its store is unreachable` } };
    }
    let over = false;
    let resetSeconds = 0;
    const shown: HeaderFacts[] = [];
    const statuses = decided.map((d): MessageInitShape<typeof RateLimitResponse_DescriptorStatusSchema> => {
      // Not limited by the Quota, and shadow: OK without a limit, so Envoy adds no x-ratelimit-* for it (as the gate adds no headers).
      if (d === null || q.shadow) return { code: RateLimitResponse_Code.OK };
      const l = d.check.limit;
      shown.push({ limit: l.label, policy: l.policy, tokens: l.windowQuota, remaining: d.remaining, resetSeconds: d.resetSeconds });
      if (d.refused) {
        over = true;
        resetSeconds = Math.max(resetSeconds, d.resetSeconds);
      }
      return {
        code: d.refused ? RateLimitResponse_Code.OVER_LIMIT : RateLimitResponse_Code.OK,
        currentLimit: entry.currentLimits.get(l)!,
        limitRemaining: Math.min(d.remaining, UINT32_MAX),
        durationUntilReset: { seconds: BigInt(d.resetSeconds) },
      };
    });
    const headers: { key: string; value: string }[] = [];
    if (over) headers.push({ key: 'retry-after', value: String(Math.max(1, resetSeconds)) });
    if (shown.length > 0) for (const [key, value] of rateLimitHeaders(shown)) if (FORWARDED_HEADERS.has(key)) headers.push({ key, value });
    if (over) this.#stats.overLimit++;
    else this.#stats.ok++;
    return {
      ok: true,
      response: create(RateLimitResponseSchema, { overallCode: over ? RateLimitResponse_Code.OVER_LIMIT : RateLimitResponse_Code.OK, statuses, responseHeadersToAdd: headers }),
    };
  }

  /** Calls answered, and per loaded Quota its limits' counters (shared with the inbound gate for Quotas selecting this workload). */
  stats(): RateLimitServiceStats & { quotas: Record<string, Record<string, unknown>> } {
    const quotas: Record<string, Record<string, unknown>> = {};
    for (const q of this.#config().quotas) quotas[q.name] = Object.fromEntries(q.limits.map((l) => [l.name, { ...l.counters }]));
    return { ...this.#stats, quotas };
  }

  /** Stops accepting; calls in flight get up to `graceMs`, then the server is cut. */
  close(graceMs = 1000): Promise<void> {
    return shutdownGracefully(this.#server, graceMs);
  }

  /** The bucket one descriptor takes from, or null: not counted by the Quota (no limit applies). */
  #resolve(entry: DomainEntry, d: RateLimitDescriptor): Check | null {
    const q = entry.quota;
    const values: string[] = new Array<string>(q.keys.length).fill('');
    let gated = q.routes === null;
    for (const e of d.entries) {
      if (e.key === ROUTE_GATE_ENTRY_KEY) {
        if (e.value !== q.name) return null;
        gated = true;
        continue;
      }
      const i = entry.entryIndex.get(e.key);
      // An entry the Quota has no descriptor for: this descriptor is not the Quota's, no limit.
      if (i === undefined) return null;
      values[i] = e.value;
    }
    if (!gated) return null;
    for (let i = 0; i < values.length; i++) {
      if (values[i] === '') values[i] = q.defaults[i]!;
      if (values[i] === '') return null;
    }
    const limit = matchLimit(q, values);
    return limit === null ? null : { limit, key: bucketKey(q.name, limit.name, q.keys, values) };
  }

  /** `hits` tokens from a check's bucket, with the failure mode and shadow applied; counted in the limit's counters. */
  async #take(q: CompiledQuota, check: Check, hits: number): Promise<Decided> {
    const { limit } = check;
    const c = limit.counters;
    let o: BucketOutcome = await limit.buckets.consume(q.global ? check.key : bucketWithRoom(q, limit, check.key, this.#log), hits);
    if (o.kind === 'store-error') {
      c.storeErrors++;
      if (q.failClosed) {
        if (q.shadow) c.shadowLimited++;
        else c.limited++;
        return { check, refused: !q.shadow, unavailable: true, remaining: 0, resetSeconds: 1 };
      }
      c.fallbackUsed++;
      o = await limit.buckets.consumeFallback(bucketWithRoom(q, limit, check.key, this.#log), hits);
      // A local fallback bucket has no store to lose; were it to fail, admit.
      if (o.kind === 'store-error') o = { kind: 'ok', remaining: 0, resetSeconds: limit.intervalSeconds, fallback: true };
    }
    if (o.kind === 'ok') {
      c.allowed++;
      return { check, refused: false, unavailable: false, remaining: o.remaining, resetSeconds: o.resetSeconds };
    }
    if (q.shadow) {
      c.shadowLimited++;
      this.#logShadow(q, check);
      return { check, refused: false, unavailable: false, remaining: 0, resetSeconds: o.resetSeconds };
    }
    c.limited++;
    return { check, refused: true, unavailable: false, remaining: 0, resetSeconds: o.resetSeconds };
  }

  #logShadow(q: CompiledQuota, check: Check): void {
    const c = check.limit.counters;
    const now = Date.now();
    const last = this.#shadowLogged.get(c);
    if (last !== undefined && now - last < RLS_SHADOW_LOG_INTERVAL_MS) return;
    this.#shadowLogged.set(c, now);
    this.#log.info({ quota: q.name, limit: check.limit.name, bucket: check.key, shadowLimited: c.shadowLimited }, 'shadow quota would refuse (not enforced), rate limit service');
  }

  #lookup(config: QuotaConfig, domain: string): DomainEntry | undefined {
    let index = this.#index.get(config);
    if (index === undefined) {
      index = new Map();
      for (const q of config.quotas) {
        const entryIndex = new Map<string, number>();
        for (let i = 0; i < q.keys.length; i++) entryIndex.set(entryKeyOf(q, i), i);
        const currentLimits = new Map(q.limits.map((l) => [l, { name: l.name, ...currentLimit(l.tokens, l.intervalSeconds) }] as const));
        index.set(q.name, Object.freeze({ quota: q, entryIndex, currentLimits }));
      }
      this.#index.set(config, index);
    }
    return index.get(domain);
  }
}
