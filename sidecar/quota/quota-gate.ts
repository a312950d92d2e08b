/**
 * Quota enforcement on the sidecar's inbound listener, after authz and before the forwarder
 * (and WebSocket upgrades):
 *
 *   request → for each quota in force (compile-quotas.ts) whose routes match:
 *     1. priority shedding: the request's class (priority_attribute → class, else the default
 *        class) sheds when 0 < shed_at_percent <= pressure() → 503 `overloaded: shedding
 *        priority class <name>`, flag OM, no token taken;
 *     2. descriptor: every entry read (default_value when empty; still empty: not counted by
 *        this quota); the first limit whose match entries all equal → its bucket
 *        (`<quota>|<limit>|<key>=<value>|...`);
 *   → one token from every such bucket (in parallel; LOCAL buckets past the limit's live
 *   bucket cap: its overflow bucket, see bucketWithRoom) → any over (and not shadow) → 429
 *   with the Retry-After of the refusing limit that resets last and the rate-limit headers,
 *   never reaching the workload; else the headers are added to the response
 *   (proxy/added-headers.ts: whoever writes its head merges them) and the request goes on
 *   (a forwarder that throws gets the request answered 500).
 *
 * Every check's result is counted per quota (decisions(): palisade_quota_decisions_total, read
 * at scrape time); the request facts name the deciding one (access log).
 *
 * GLOBAL buckets whose store does not answer: FAIL_OPEN takes a token from the limit's local
 * fallback bucket (counted `fallbackUsed`), FAIL_CLOSED refuses 429 with flag RLSE. Shadow
 * quotas count and log (at most one line per limit per SHADOW_LOG_INTERVAL_MS) what they would
 * refuse, and neither refuse nor add headers.
 *
 * No quota selecting this workload: one length check per request ("off is free").
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { Quota } from '../../xds/gen/palisade/v1/quota_pb.js';
import type { DownstreamRequest, DownstreamResponse } from '../listeners/http-listener.ts';
import { addResponseHeaders, withAddedHeaders } from '../proxy/added-headers.ts';
import { refuseUpgrade } from '../proxy/upgrade.ts';
import { factsOf, flag, type QuotaResult } from '../telemetry/request-facts.ts';
import { bucketWithRoom, compileQuotas, EMPTY_QUOTAS, matchLimit, matchRoute, type CompiledLimit, type CompiledQuota, type QuotaConfig } from './compile-quotas.ts';
import type { BucketOutcome } from './limit-buckets.ts';
import { rateLimitHeaders, type HeaderFacts } from './rate-limit-headers.ts';
import type { RedisStore } from './redis-store.ts';
import { quotaSelects } from './quota-validator.ts';
import { bucketKey } from './request-attribute.ts';

/** At most one "would refuse" log line per shadow limit per this many ms. */
export const SHADOW_LOG_INTERVAL_MS = 10_000;

export type QuotaGateEvents = { applied: [config: QuotaConfig] };

export interface QuotaGateOptions {
  readonly service: string;
  readonly namespace: string;
  readonly logger: Logger;
  /** The store of GLOBAL quotas (bootstrap quota.redis); null: none. Settable later with useStore(). */
  readonly store?: RedisStore | null;
  /** The overload pressure, 0..100 (the overload manager); default: always 0 (nothing shed). */
  readonly pressure?: () => number;
  /**
   * True: also keep every pushed Quota of the namespace compiled, selecting this workload or
   * not (namespaceConfig), for the rate limit service (rls-server.ts). The quotas in force
   * are then the selecting subset of it: the gate and the service share buckets and counters.
   */
  readonly namespaceQuotas?: boolean;
  /** Live LOCAL buckets per limit before new descriptor values share the overflow bucket; default MAX_LOCAL_BUCKETS_PER_LIMIT. */
  readonly maxLocalBuckets?: number;
}

/** One bucket a request takes a token from. */
interface Check {
  readonly quota: CompiledQuota;
  readonly limit: CompiledLimit;
  readonly route: string;
  readonly key: string;
}

/** What the gate decided for one check. */
interface Decided {
  readonly check: Check;
  readonly result: QuotaResult;
  readonly refused: boolean;
  readonly remaining: number;
  readonly resetSeconds: number;
}

/** A refusal's answer: status, body, headers. */
export interface QuotaRefusal {
  readonly status: number;
  readonly body: string;
  readonly headers: readonly (readonly [string, string])[];
}

export class QuotaGate extends EventEmitter<QuotaGateEvents> {
  readonly #service: string;
  readonly #namespace: string;
  readonly #log: Logger;
  readonly #pressure: () => number;
  #store: RedisStore | null;
  #config: QuotaConfig = EMPTY_QUOTAS;
  /** Every pushed Quota of the namespace (namespaceQuotas); null when not kept. */
  #namespaceConfig: QuotaConfig | null;
  readonly #maxLocalBuckets: number | undefined;
  #ready = false;
  #closed = false;
  #applies = 0;
  #failures = 0;
  /** Requests shed, by quota then class. */
  readonly #shed = new Map<string, Map<string, number>>();
  /** Requests a shadow quota would have shed, by quota then class. */
  readonly #shadowShed = new Map<string, Map<string, number>>();
  /** Last shadow log time per limit counters object. */
  readonly #shadowLogged = new WeakMap<object, number>();
  /**
   * Check results by quota name then result: every check of a request (not only the one
   * deciding it), sheds included; read at scrape time for palisade_quota_decisions_total.
   */
  readonly #decisions = new Map<string, Partial<Record<QuotaResult, number>>>();

  constructor(options: QuotaGateOptions) {
    super();
    this.#service = options.service;
    this.#namespace = options.namespace;
    this.#log = options.logger;
    this.#pressure = options.pressure ?? (() => 0);
    this.#store = options.store ?? null;
    this.#namespaceConfig = options.namespaceQuotas === true ? EMPTY_QUOTAS : null;
    this.#maxLocalBuckets = options.maxLocalBuckets;
  }

  /** Sets the quota store before the first push (the sidecar connects it in start()). */
  useStore(store: RedisStore | null): void {
    this.#store = store;
  }

  /** True once the first pushed Quota state (possibly empty) is in force. */
  get ready(): boolean {
    return this.#ready;
  }

  get config(): QuotaConfig {
    return this.#config;
  }

  /** Every pushed Quota of the namespace, compiled (constructed with namespaceQuotas); else null. */
  get namespaceConfig(): QuotaConfig | null {
    return this.#namespaceConfig;
  }

  /** A new accepted Quota state (every Quota of the namespace): those selecting this workload are in force for the next request. */
  apply(quotas: readonly Quota[]): void {
    if (this.#closed) return;
    try {
      if (this.#namespaceConfig !== null) {
        const all = compileQuotas(quotas, { service: this.#service, namespace: this.#namespace, store: this.#store, previous: this.#namespaceConfig, all: true, maxLocalBuckets: this.#maxLocalBuckets });
        const selected = new Set(quotas.filter((q) => quotaSelects(q, this.#service, this.#namespace)).map((q) => q.name));
        this.#namespaceConfig = all;
        this.#config = Object.freeze({ quotas: Object.freeze(all.quotas.filter((q) => selected.has(q.name))) });
      } else this.#config = compileQuotas(quotas, { service: this.#service, namespace: this.#namespace, store: this.#store, previous: this.#config, maxLocalBuckets: this.#maxLocalBuckets });
      this.#applies++;
      this.#log.info({ quotas: this.#config.quotas.map((q) => q.name) }, 'quotas in force');
    } catch (err) {
      this.#failures++;
      this.#log.error({ err }, 'loading the pushed quotas failed; the previous ones stay in force');
    }
    this.#ready = true;
    this.emit('applied', this.#config);
  }

  /** Counts and judges a request: calls `next` when admitted (rate-limit headers set on `res`), else answers 429 or 503. */
  gate(req: DownstreamRequest, res: DownstreamResponse, next: () => void): void {
    if (this.#config.quotas.length === 0) {
      next();
      return;
    }
    this.#judge(req, (refusal, headers) => {
      if (refusal !== null) {
        if (!res.headersSent) reply(res, refusal);
        return;
      }
      addResponseHeaders(res, headers);
      try {
        next();
      } catch (err) {
        // The forwarder threw: a bug downstream of the gate, not a quota decision. The request still gets an answer.
        this.#log.error({ err }, 'forwarding a request after its quota check threw');
        if (!res.headersSent) reply(res, { status: 500, body: 'internal error', headers: [] });
      }
    });
  }

  /** The same for a WebSocket upgrade: refused with the refusal's status and body. */
  gateUpgrade(req: IncomingMessage, socket: Duplex, respond: (status: number) => void, next: () => void): void {
    if (this.#config.quotas.length === 0) {
      next();
      return;
    }
    this.#judge(req, (refusal) => {
      if (refusal !== null) refuseUpgrade(socket, respond, refusal.status, refusal.body);
      else if (!socket.destroyed) {
        try {
          next();
        } catch (err) {
          this.#log.error({ err }, 'upgrading a request after its quota check threw');
          socket.destroy();
        }
      }
    });
  }

  /**
   * Decides for `req`: `done(refusal, headers)` with refusal null when admitted; called
   * synchronously when no bucket counts the request or every bucket answers at once (LOCAL
   * without burst), else once the buckets answered (not at all when the client went away
   * meanwhile).
   */
  #judge(req: DownstreamRequest, done: (refusal: QuotaRefusal | null, headers: readonly (readonly [string, string])[]) => void): void {
    const facts = factsOf(req);
    const ctx: { route: string; jwt: Readonly<Record<string, unknown>> | null } = { route: '', jwt: facts?.jwt ?? null };
    let pressure = -1;
    const checks: Check[] = [];
    for (const q of this.#config.quotas) {
      const route = matchRoute(q, req);
      if (route === null) continue;
      ctx.route = route;
      if (q.priority !== null) {
        if (pressure === -1) pressure = this.#pressure();
        if (pressure > 0) {
          const v = q.priority.read(req, ctx);
          const cls = q.priority.byValue.get(v) ?? q.priority.fallback;
          // A shadow quota never refuses: it only counts what it would shed, and goes on counting tokens.
          if (cls !== null && cls.shedAt > 0 && cls.shedAt <= pressure && q.shadow) this.#countShed(this.#shadowShed, q.name, cls.name);
          else if (cls !== null && cls.shedAt > 0 && cls.shedAt <= pressure) {
            this.#countShed(this.#shed, q.name, cls.name);
            this.#countDecision(q.name, 'shed');
            flag(req, 'OM');
            if (facts !== undefined) {
              facts.route = route;
              facts.quota = { name: q.name, limit: cls.name, result: 'shed', remaining: 0 };
            }
            done({ status: 503, body: `overloaded: shedding priority class ${cls.name}`, headers: [] }, []);
            return;
          }
        }
      }
      const values: string[] = [];
      let counted = true;
      for (let i = 0; i < q.readers.length; i++) {
        let v = q.readers[i]!(req, ctx);
        if (v === '') v = q.defaults[i]!;
        if (v === '') {
          counted = false;
          break;
        }
        values.push(v);
      }
      if (!counted) continue;
      const limit = matchLimit(q, values);
      if (limit === null) continue;
      checks.push({ quota: q, limit, route, key: bucketKey(q.name, limit.name, q.keys, values) });
    }
    if (checks.length === 0) {
      done(null, []);
      return;
    }
    // LOCAL buckets without burst answer synchronously: the common single check then costs no promise (nor closures).
    if (checks.length === 1) {
      const now = this.#takeNow(checks[0]!);
      if (now !== null) {
        this.#decideSync(req, facts, [now], done);
        return;
      }
    }
    let answered = false;
    const decide = (decided: readonly Decided[]) => {
      if (req.destroyed) return;
      answered = true;
      this.#decide(req, facts, decided, done);
    };
    const decideNow = (decided: readonly Decided[]) => {
      try {
        decide(decided);
      } catch (err) {
        failed(err);
      }
    };
    const failed = (err: unknown) => {
      // A bug, not a bucket's answer (buckets never reject): logged, and the request answered 500 if it was not yet.
      this.#log.error({ err }, 'quota check failed unexpectedly');
      if (!answered && !req.destroyed) done({ status: 500, body: 'quota check failed', headers: [] }, []);
    };
    if (checks.length === 1) {
      this.#take(checks[0]!).then((d) => decide([d])).catch(failed);
      return;
    }
    const decided: (Decided | Promise<Decided>)[] = [];
    let pending = false;
    for (const c of checks) {
      const now = this.#takeNow(c);
      if (now === null) pending = true;
      decided.push(now ?? this.#take(c));
    }
    if (!pending) decideNow(decided as Decided[]);
    else Promise.all(decided).then(decide).catch(failed);
  }

  /** #decide for results taken synchronously. A throw there is a bug: logged, and no 500 is attempted (the asynchronous paths do the same once answered). */
  #decideSync(req: DownstreamRequest, facts: ReturnType<typeof factsOf>, decided: readonly Decided[], done: (refusal: QuotaRefusal | null, headers: readonly (readonly [string, string])[]) => void): void {
    if (req.destroyed) return;
    try {
      this.#decide(req, facts, decided, done);
    } catch (err) {
      this.#log.error({ err }, 'quota check failed unexpectedly');
    }
  }

  /**
   * The answer from every check's result. Refused: the refused check whose bucket resets last
   * decides (status, body, Retry-After, x-ratelimit-*), so a client retrying after Retry-After
   * is not refused by the same limits again; admitted: the last check (facts.quota).
   */
  #decide(req: DownstreamRequest, facts: ReturnType<typeof factsOf>, decided: readonly Decided[], done: (refusal: QuotaRefusal | null, headers: readonly (readonly [string, string])[]) => void): void {
    let deciding = decided[decided.length - 1]!;
    const shown: HeaderFacts[] = [];
    let describe: HeaderFacts | null = null;
    for (const d of decided) {
      const refusesLater = d.refused && (!deciding.refused || d.resetSeconds > deciding.resetSeconds);
      if (refusesLater) deciding = d;
      if (!d.check.quota.shadow) {
        const l = d.check.limit;
        const f: HeaderFacts = { limit: l.label, policy: l.policy, tokens: l.windowQuota, remaining: d.remaining, resetSeconds: d.resetSeconds };
        shown.push(f);
        if (refusesLater) describe = f;
      }
    }
    if (facts !== undefined) {
      facts.route = deciding.check.route;
      facts.quota = { name: deciding.check.quota.name, limit: deciding.check.limit.name, result: deciding.result, remaining: deciding.remaining };
    }
    if (!deciding.refused) {
      done(null, shown.length > 0 ? rateLimitHeaders(shown) : []);
      return;
    }
    const headers = shown.length > 0 ? rateLimitHeaders(shown, describe) : [];
    const { quota, limit } = deciding.check;
    const storeDown = deciding.result === 'store-error-closed';
    flag(req, storeDown ? 'RLSE' : 'RL');
    const body = storeDown
      ? `quota ${quota.name} (limit ${limit.name}) cannot be checked: its store is unreachable`
      : `rate limited: quota ${quota.name}, limit ${limit.name}`;
    done({ status: 429, body, headers: [['retry-after', String(Math.max(1, deciding.resetSeconds))], ...headers] }, headers);
  }

  /** #take answered synchronously, for buckets that can (LimitBuckets.takeNow: LOCAL without burst); else null, nothing taken. */
  #takeNow(check: Check): Decided | null {
    const { quota, limit } = check;
    if (quota.global || !limit.buckets.answersNow) return null;
    const o = limit.buckets.takeNow(bucketWithRoom(quota, limit, check.key, this.#log))!;
    return this.#settle(check, o, 'ok');
  }

  /** One token from a check's bucket, with the failure mode and shadow applied; counts it and its result. */
  async #take(check: Check): Promise<Decided> {
    const { quota, limit } = check;
    const c = limit.counters;
    let o: BucketOutcome = await (quota.global ? limit.buckets.consumeLeased(check.key) : limit.buckets.consume(bucketWithRoom(quota, limit, check.key, this.#log)));
    let result: QuotaResult = 'ok';
    if (o.kind === 'store-error') {
      c.storeErrors++;
      if (quota.failClosed) {
        this.#countDecision(quota.name, 'store-error-closed');
        if (quota.shadow) {
          c.shadowLimited++;
          return { check, result: 'store-error-closed', refused: false, remaining: 0, resetSeconds: 1 };
        }
        c.limited++;
        return { check, result: 'store-error-closed', refused: true, remaining: 0, resetSeconds: 1 };
      }
      c.fallbackUsed++;
      o = await limit.buckets.consumeFallback(bucketWithRoom(quota, limit, check.key, this.#log));
      result = 'store-error-open';
    }
    // A local fallback bucket has no store to lose; were it to fail, admit.
    return this.#settle(check, o.kind === 'store-error' ? { kind: 'ok', remaining: 0, resetSeconds: limit.intervalSeconds, fallback: true } : o, result);
  }

  /** The decision from a bucket's ok/over answer (`result` when admitted); counts it in the limit's counters and decisions(). */
  #settle(check: Check, o: Exclude<BucketOutcome, { kind: 'store-error' }>, result: QuotaResult): Decided {
    const d = this.#judgeOutcome(check, o, result);
    this.#countDecision(check.quota.name, d.result);
    return d;
  }

  #judgeOutcome(check: Check, o: Exclude<BucketOutcome, { kind: 'store-error' }>, result: QuotaResult): Decided {
    const { quota } = check;
    const c = check.limit.counters;
    if (o.kind === 'ok') {
      c.allowed++;
      return { check, result, refused: false, remaining: o.remaining, resetSeconds: o.resetSeconds };
    }
    if (quota.shadow) {
      c.shadowLimited++;
      this.#logShadow(check);
      return { check, result: 'shadow-over', refused: false, remaining: 0, resetSeconds: o.resetSeconds };
    }
    c.limited++;
    return { check, result: 'over', refused: true, remaining: 0, resetSeconds: o.resetSeconds };
  }

  #logShadow(check: Check): void {
    const c = check.limit.counters;
    const now = Date.now();
    const last = this.#shadowLogged.get(c);
    if (last !== undefined && now - last < SHADOW_LOG_INTERVAL_MS) return;
    this.#shadowLogged.set(c, now);
    this.#log.info({ quota: check.quota.name, limit: check.limit.name, bucket: check.key, shadowLimited: c.shadowLimited }, 'shadow quota would refuse (not enforced)');
  }

  #countDecision(quota: string, result: QuotaResult): void {
    let m = this.#decisions.get(quota);
    if (m === undefined) this.#decisions.set(quota, (m = {}));
    m[result] = (m[result] ?? 0) + 1;
  }

  /** Check results so far by quota name then result (every check, every quota ever in force): palisade_quota_decisions_total. */
  decisions(): ReadonlyMap<string, Readonly<Partial<Record<QuotaResult, number>>>> {
    return this.#decisions;
  }

  #countShed(counts: Map<string, Map<string, number>>, quota: string, cls: string): void {
    let m = counts.get(quota);
    if (m === undefined) counts.set(quota, (m = new Map()));
    m.set(cls, (m.get(cls) ?? 0) + 1);
  }

  /** The `quota` part of /stats. */
  stats(): unknown {
    const quotas: Record<string, unknown> = {};
    for (const q of this.#config.quotas) {
      const limits: Record<string, unknown> = {};
      for (const l of q.limits) limits[l.name] = { ...l.counters };
      quotas[q.name] = {
        scope: q.global ? 'GLOBAL' : 'LOCAL', shadow: q.shadow, failureMode: q.failClosed ? 'FAIL_CLOSED' : 'FAIL_OPEN', limits,
        shed: Object.fromEntries(this.#shed.get(q.name) ?? []),
        ...(q.shadow ? { shadowShed: Object.fromEntries(this.#shadowShed.get(q.name) ?? []) } : {}),
      };
    }
    return { ready: this.#ready, applies: this.#applies, failures: this.#failures, redis: this.#store?.stats() ?? null, quotas };
  }

  close(): void {
    this.#closed = true;
    this.#config = EMPTY_QUOTAS;
    if (this.#namespaceConfig !== null) this.#namespaceConfig = EMPTY_QUOTAS;
  }
}

function reply(res: DownstreamResponse, r: QuotaRefusal): void {
  const headers: Record<string, string> = {};
  for (const [k, v] of r.headers) headers[k] = v;
  res.writeHead(r.status, withAddedHeaders(res, { ...headers, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(r.body) }));
  res.end(r.body);
}
