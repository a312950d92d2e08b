/**
 * The quota configuration in force: the accepted Quotas that select this sidecar's Service,
 * compiled once per push and swapped whole (QuotaGate.apply). Per request the gate walks
 * `quotas` in order; each compiled quota has its route matcher, its descriptor readers, its
 * limits with their match tables and buckets, and its priority classes, all built here.
 *
 * Buckets survive a push: a limit whose quota name, limit name and counting rules (scope,
 * tokens, interval, burst, fallback) are unchanged keeps its LimitBuckets instance, and with it
 * every counter; a changed limit starts with fresh buckets (LOCAL) or the same Redis keys
 * under its new rules (GLOBAL).
 */
import { Quota_FailureMode, Quota_Scope, type Quota, type RequestAttribute } from '../../xds/gen/palisade/v1/quota_pb.js';
import { pathOnly } from '../authz/request-description.ts';
import type { DownstreamRequest } from '../listeners/http-listener.ts';
import type { Logger } from 'pino';
import { LimitBuckets, limitSignature, MAX_LOCAL_BUCKETS_PER_LIMIT, type LimitSpec } from './limit-buckets.ts';
import { policyItem } from './rate-limit-headers.ts';
import { quotaSelects } from './quota-validator.ts';
import { compileAttribute, overflowKey, type AttributeReader } from './request-attribute.ts';
import type { RedisStore } from './redis-store.ts';

/** Counters of one limit, for /stats (kept across pushes with its buckets). */
export interface LimitCounters {
  allowed: number;
  limited: number;
  shadowLimited: number;
  storeErrors: number;
  fallbackUsed: number;
  /** Requests counted in the overflow bucket: their descriptor value found the limit at MAX_LOCAL_BUCKETS_PER_LIMIT live buckets. */
  overflowed: number;
}

export interface CompiledLimit {
  readonly name: string;
  /** `<quota short name>.<limit>`: the limit's item name in RateLimit-Policy / RateLimit (unique on a sidecar, stable). */
  readonly label: string;
  /** The bucket of requests whose new descriptor value finds no room (LimitBuckets.hasRoom). */
  readonly overflowKey: string;
  /** (descriptor index, required value) pairs: all must hold for the limit to apply. */
  readonly match: readonly (readonly [number, string])[];
  readonly tokens: number;
  /** What one window can admit, `tokens + burst`: the policy's `q` and x-ratelimit-limit. */
  readonly windowQuota: number;
  readonly intervalSeconds: number;
  /** The RateLimit-Policy item, built once. */
  readonly policy: string;
  readonly buckets: LimitBuckets;
  readonly counters: LimitCounters;
}

export interface CompiledPriorityClass {
  readonly name: string;
  /** 0: never shed. */
  readonly shedAt: number;
}

export interface CompiledQuota {
  readonly name: string;
  readonly global: boolean;
  readonly shadow: boolean;
  readonly failClosed: boolean;
  /** Route matchers in order; null: the quota names no routes (every request is route "default"). */
  readonly routes: readonly { readonly name: string; readonly prefix: string; readonly methods: ReadonlySet<string> | null }[] | null;
  readonly keys: readonly string[];
  /** Per descriptor, where its value is read (the attribute's source), e.g. 'header', 'remoteAddress'. */
  readonly sources: readonly NonNullable<RequestAttribute['source']['case']>[];
  readonly readers: readonly AttributeReader[];
  readonly defaults: readonly string[];
  readonly limits: readonly CompiledLimit[];
  /** Null: no priority shedding by this quota. */
  readonly priority: {
    readonly read: AttributeReader;
    readonly byValue: ReadonlyMap<string, CompiledPriorityClass>;
    readonly fallback: CompiledPriorityClass | null;
  } | null;
}

export interface QuotaConfig {
  /** The quotas selecting this sidecar, in name order; empty: the gate passes every request at once. */
  readonly quotas: readonly CompiledQuota[];
}

export const EMPTY_QUOTAS: QuotaConfig = Object.freeze({ quotas: Object.freeze([]) });

/** The quota route `req` matches, or null when `q` does not apply to it. */
export function matchRoute(q: CompiledQuota, req: DownstreamRequest): string | null {
  if (q.routes === null) return 'default';
  const path = pathOnly(req.url);
  const method = req.method ?? 'GET';
  for (const r of q.routes) {
    if (path.startsWith(r.prefix) && (r.methods === null || r.methods.has(method))) return r.name;
  }
  return null;
}

/** The first limit whose match entries all equal the descriptor's values; null: not limited by this quota. */
export function matchLimit(q: CompiledQuota, values: readonly string[]): CompiledLimit | null {
  for (const l of q.limits) {
    let ok = true;
    for (const [i, v] of l.match) {
      if (values[i] !== v) {
        ok = false;
        break;
      }
    }
    if (ok) return l;
  }
  return null;
}

/**
 * Compiles the validated Quotas that select `service` in `namespace` (with `all`: every Quota
 * of `namespace`, selecting it or not, as the rate limit service needs). `previous` lends its
 * buckets (and counters) to unchanged limits. Throws for a GLOBAL quota without a store (the
 * validator NACKs those first).
 */
export function compileQuotas(resources: Iterable<Quota>, o: { service: string; namespace: string; store: RedisStore | null; previous: QuotaConfig; all?: boolean; maxLocalBuckets?: number }): QuotaConfig {
  const kept = new Map<string, CompiledLimit>();
  for (const q of o.previous.quotas) for (const l of q.limits) kept.set(`${q.name}\u0000${l.name}\u0000${l.buckets.signature}`, l);
  const quotas: CompiledQuota[] = [];
  for (const q of [...resources].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (o.all === true ? !q.name.startsWith(`${o.namespace}/`) : !quotaSelects(q, o.service, o.namespace)) continue;
    const global = q.scope === Quota_Scope.GLOBAL;
    const keys = q.descriptors.map((d) => d.key);
    const limits = q.limits.map((l): CompiledLimit => {
      const tokens = Number(l.tokens);
      const spec: LimitSpec = {
        tokens, intervalSeconds: Number(l.interval?.seconds ?? 1n), burst: Number(l.burst),
        fallbackTokens: l.fallbackTokens === 0n ? tokens : Number(l.fallbackTokens), scope: global ? 'GLOBAL' : 'LOCAL',
      };
      const prev = kept.get(`${q.name}\u0000${l.name}\u0000${limitSignature(spec)}`);
      const buckets = prev?.buckets ?? new LimitBuckets(spec, o.store, o.maxLocalBuckets ?? MAX_LOCAL_BUCKETS_PER_LIMIT);
      const counters = prev?.counters ?? { allowed: 0, limited: 0, shadowLimited: 0, storeErrors: 0, fallbackUsed: 0, overflowed: 0 };
      const match = Object.freeze(Object.entries(l.match).map(([k, v]) => Object.freeze([keys.indexOf(k), v] as const)));
      // Frozen but for its counters, which count.
      const label = `${q.name.slice(q.name.indexOf('/') + 1)}.${l.name}`;
      return Object.freeze({
        name: l.name, label, overflowKey: overflowKey(q.name, l.name, keys), match, tokens, windowQuota: tokens + spec.burst, intervalSeconds: spec.intervalSeconds,
        policy: policyItem(label, tokens + spec.burst, spec.intervalSeconds), buckets, counters,
      });
    });
    let priority: CompiledQuota['priority'] = null;
    if (q.priorityAttribute !== undefined && q.priorityClasses.length > 0) {
      const byValue = new Map<string, CompiledPriorityClass>();
      let fallback: CompiledPriorityClass | null = null;
      for (const c of q.priorityClasses) {
        const compiled = Object.freeze({ name: c.name, shedAt: c.shedAtPercent });
        for (const v of c.values) if (!byValue.has(v)) byValue.set(v, compiled);
        if (c.name === q.defaultPriorityClass) fallback = compiled;
      }
      priority = Object.freeze({ read: compileAttribute(q.priorityAttribute), byValue, fallback });
    }
    quotas.push(Object.freeze({
      name: q.name, global, shadow: q.shadow, failClosed: q.failureMode === Quota_FailureMode.FAIL_CLOSED,
      routes: q.routes.length === 0 ? null : q.routes.map((r) => Object.freeze({ name: r.name, prefix: r.pathPrefix, methods: r.methods.length === 0 ? null : new Set(r.methods) })),
      keys: Object.freeze(keys), sources: Object.freeze(q.descriptors.map((d) => d.value!.source.case!)), readers: Object.freeze(q.descriptors.map((d) => compileAttribute(d.value!))), defaults: Object.freeze(q.descriptors.map((d) => d.defaultValue)),
      limits: Object.freeze(limits), priority,
    }));
  }
  return Object.freeze({ quotas: Object.freeze(quotas) });
}

/** At most one "buckets full" log line per limit per this many ms. */
export const OVERFLOW_LOG_INTERVAL_MS = 10_000;

const overflowLogged = new WeakMap<LimitCounters, number>();

/**
 * The bucket a request takes from: `key`, or the limit's overflow bucket when `key` has no
 * live in-process bucket and the limit has no room for another (LimitBuckets.hasRoom; asked
 * for LOCAL buckets and GLOBAL fallback buckets). An overflow is counted (`overflowed`) and
 * logged at most once per limit per OVERFLOW_LOG_INTERVAL_MS.
 */
export function bucketWithRoom(quota: CompiledQuota, limit: CompiledLimit, key: string, log: Logger): string {
  if (limit.buckets.hasRoom(key)) return key;
  const c = limit.counters;
  c.overflowed++;
  const now = Date.now();
  const last = overflowLogged.get(c);
  if (last === undefined || now - last >= OVERFLOW_LOG_INTERVAL_MS) {
    overflowLogged.set(c, now);
    log.warn({ quota: quota.name, limit: limit.name, buckets: limit.buckets.size, overflowed: c.overflowed }, 'quota limit has too many live buckets: requests with new descriptor values share its overflow bucket');
  }
  return limit.overflowKey;
}
