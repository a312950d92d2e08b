/**
 * Judges one inbound request by the AuthzConfig in force: every Policy whose path prefixes
 * match, in name order, on one OPA-Envoy input built once. Per mode:
 *
 *   enforce  deny → the policy's http_status (default 403) and body; evaluation error → 500 (fail closed)
 *   audit    as enforce, and every decision is logged
 *   dry-run  the request is served whatever the decision; a would-be denial (or error) is logged
 *
 * The first denial answers; allowed decisions contribute OPA-Envoy `headers` (added to the
 * upstream request) and `request_headers_to_remove`. A decision is looked up in the policy's
 * cache first (bundle revision + its declared input keys); error decisions are never cached.
 * Decision logs carry the policy, its bundle revision, the decision and the request's
 * identity, sampled by decisionLogPercent (audit and dry-run denials: always).
 */
import type { Logger } from 'pino';
import type { Decision, HeaderEntry } from '../../policies/decision.ts';
import { buildInput, type EnvoyAuthzInput, type RequestDescription } from '../../policies/input.ts';
import type { AuthzConfig, CompiledPolicy } from './authz-config.ts';
import type { KeySource } from './description-keys.ts';
import type { PolicyDecision, RequestFacts } from '../telemetry/request-facts.ts';

export type AuthzOutcome =
  | { readonly allowed: true; readonly addHeaders: readonly HeaderEntry[]; readonly removeHeaders: readonly string[] }
  | { readonly allowed: false; readonly status: number; readonly body: string; readonly headers: readonly HeaderEntry[] };

/** Counters per policy, for /stats. */
export interface PolicyStats {
  allowed: number;
  denied: number;
  errors: number;
  /** Denials (and errors) dry-run served anyway. */
  dryRunDenied: number;
}

/** What one request's judgement has built so far. */
interface Facts {
  /** What cache keys read, when the caller can give it without a description (else the description is read). */
  readonly keysOf: (() => KeySource) | null;
  keys: KeySource | null;
  readonly describe: () => RequestDescription;
  readonly build: (d: RequestDescription) => EnvoyAuthzInput;
  desc: RequestDescription | null;
  input: EnvoyAuthzInput | null;
}

function descOf(f: Facts): RequestDescription {
  return (f.desc ??= f.describe());
}

/** The key source: the caller's when it gave one (made once), else the description. */
function keysOf(f: Facts): KeySource {
  if (f.keysOf === null) return descOf(f);
  return (f.keys ??= f.keysOf());
}

function inputOf(f: Facts): EnvoyAuthzInput {
  return (f.input ??= f.build(descOf(f)));
}

/** One frozen { name, decision } per policy and decision, made once: telemetry facts share them. */
const decided = new WeakMap<CompiledPolicy, Map<PolicyDecision, { readonly name: string; readonly decision: PolicyDecision }>>();

function decidedBy(p: CompiledPolicy, decision: PolicyDecision): { readonly name: string; readonly decision: PolicyDecision } {
  let byDecision = decided.get(p);
  if (byDecision === undefined) decided.set(p, (byDecision = new Map()));
  let d = byDecision.get(decision);
  if (d === undefined) byDecision.set(decision, (d = Object.freeze({ name: p.name, decision })));
  return d;
}

export const ALLOW_NOTHING: AuthzOutcome = Object.freeze({ allowed: true, addHeaders: Object.freeze([]), removeHeaders: Object.freeze([]) });

export class Authorizer {
  readonly #log: Logger;
  readonly #stats = new Map<string, PolicyStats>();
  readonly #random: () => number;

  constructor(log: Logger, random: () => number = Math.random) {
    this.#log = log;
    this.#random = random;
  }

  /**
   * The outcome for a request: `describe` is called only when some policy applies (a
   * request no policy judges costs one prefix scan). `build` makes the input from the
   * description (default buildInput; the ext_authz server adds the CheckRequest's other attributes).
   * With `requestFacts` (the request's telemetry facts), its `policy` gets the first deciding policy:
   * the denying (or failing) one, else the first that judged it. With `keysOf` (giving the same
   * values `describe` would), cache keys are read from what it returns, and a hit builds no
   * description; like `describe`, it is called only when a policy with a cache applies.
   */
  authorize(config: AuthzConfig, pathOnly: string, describe: () => RequestDescription, build: (d: RequestDescription) => EnvoyAuthzInput = buildInput, requestFacts?: RequestFacts, keysOf?: () => KeySource): AuthzOutcome {
    if (config.policies.length === 0) return ALLOW_NOTHING;
    // Built at most once each, and only when needed: a cache hit read from the key source needs neither.
    const facts: Facts = { keysOf: keysOf ?? null, keys: null, describe, build, desc: null, input: null };
    let add: HeaderEntry[] | null = null;
    let remove: string[] | null = null;
    for (const p of config.policies) {
      if (p.pathPrefixes.length > 0 && !p.pathPrefixes.some((prefix) => pathOnly.startsWith(prefix))) continue;
      const decision = this.#decide(p, facts);
      const st = this.#statsOf(p.name);
      const denied = decision.error || !decision.allowed;
      if (p.mode === 'dry-run') {
        if (denied) {
          st.dryRunDenied++;
          if (requestFacts !== undefined && requestFacts.policy === null) requestFacts.policy = decidedBy(p, 'dry-run-deny');
          this.#logDecision(p, facts, decision, 'would deny (dry-run: served)');
        } else {
          st.allowed++;
          this.#sampled(p, facts, decision);
        }
        continue;
      }
      if (decision.error) {
        st.errors++;
        if (requestFacts !== undefined) requestFacts.policy = decidedBy(p, 'error');
        this.#logDecision(p, facts, decision, 'error: denied (fail closed)');
        return { allowed: false, status: 500, body: `policy ${p.name} could not decide`, headers: [] };
      }
      if (!decision.allowed) {
        st.denied++;
        if (requestFacts !== undefined) requestFacts.policy = decidedBy(p, 'deny');
        this.#logDecision(p, facts, decision, 'deny');
        const reason = decision.body ?? `denied by policy ${p.name}${decision.reason !== null ? `: ${decision.reason}` : ''}`;
        return { allowed: false, status: decision.httpStatus ?? 403, body: reason, headers: decision.headers ?? [] };
      }
      st.allowed++;
      if (requestFacts !== undefined && requestFacts.policy === null) requestFacts.policy = decidedBy(p, 'allow');
      if (p.mode === 'audit') this.#logDecision(p, facts, decision, 'allow');
      else this.#sampled(p, facts, decision);
      if (decision.headers !== null) (add ??= []).push(...decision.headers);
      if (decision.requestHeadersToRemove !== null) (remove ??= []).push(...decision.requestHeadersToRemove);
    }
    return add === null && remove === null ? ALLOW_NOTHING : { allowed: true, addHeaders: add ?? [], removeHeaders: remove ?? [] };
  }

  /** Per policy: decisions and cache figures. */
  stats(config: AuthzConfig): Record<string, PolicyStats & { revision: string; mode: string; cache: { hits: number; misses: number; size: number } | null }> {
    const out: Record<string, PolicyStats & { revision: string; mode: string; cache: { hits: number; misses: number; size: number } | null }> = {};
    for (const p of config.policies) {
      out[p.name] = {
        ...this.#statsOf(p.name), revision: p.revision, mode: p.mode,
        cache: p.cache === null ? null : { hits: p.cache.hits, misses: p.cache.misses, size: p.cache.size },
      };
    }
    return out;
  }

  #decide(p: CompiledPolicy, facts: Facts): Decision {
    const cache = p.cache;
    if (cache === null) return p.engine.evaluate(inputOf(facts));
    const readers = p.descriptionKeys;
    let key: string;
    if (readers !== null) {
      key = cache.keyFrom(p.revision, readers, keysOf(facts));
    } else {
      key = cache.keyFor(p.revision, inputOf(facts));
    }
    const hit = cache.get(key);
    if (hit !== undefined) return hit;
    const decision = p.engine.evaluate(inputOf(facts));
    if (!decision.error) cache.set(key, decision);
    return decision;
  }

  #statsOf(name: string): PolicyStats {
    let st = this.#stats.get(name);
    if (st === undefined) this.#stats.set(name, (st = { allowed: 0, denied: 0, errors: 0, dryRunDenied: 0 }));
    return st;
  }

  #sampled(p: CompiledPolicy, facts: Facts, decision: Decision): void {
    if (p.decisionLogPercent > 0 && this.#random() * 100 < p.decisionLogPercent) this.#logDecision(p, facts, decision, decision.allowed ? 'allow' : 'deny');
  }

  #logDecision(p: CompiledPolicy, facts: Facts, decision: Decision, result: string): void {
    const d = descOf(facts);
    this.#log.info({
      policy: p.name, revision: p.revision, mode: p.mode, decision: result,
      reason: decision.reason ?? decision.body ?? undefined,
      principal: d.sourcePrincipal, method: d.method, path: d.path, requestId: d.requestId,
    }, 'policy decision');
  }
}
