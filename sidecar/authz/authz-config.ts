/**
 * The authorization configuration a sidecar enforces: the Policies that select its Service,
 * each with its loaded wasm engine and decision cache, in name order. Immutable once built;
 * an update builds a new one (engines of unchanged bundles are taken over, new ones are
 * loaded first) and the caller swaps one reference, so a request is judged entirely by the
 * old set or entirely by the new one, never by a half-loaded policy.
 */
import { createHash } from 'node:crypto';
import type { Policy } from '../../xds/gen/palisade/v1/policy_pb.js';
import { Policy_Mode } from '../../xds/gen/palisade/v1/policy_pb.js';
import { readBundle } from '../../policies/bundle.ts';
import { DecisionCache } from '../../policies/decision-cache.ts';
import { PolicyEngine } from '../../policies/evaluator.ts';
import { descriptionKeys, type DescriptionKey } from './description-keys.ts';

export type PolicyModeName = 'enforce' | 'dry-run' | 'audit';

export interface CompiledPolicy {
  /** `<namespace>/<name>`. */
  readonly name: string;
  readonly mode: PolicyModeName;
  readonly revision: string;
  readonly engine: PolicyEngine;
  /** Null when the Policy declares no cache keys. */
  readonly cache: DecisionCache | null;
  /** The cache keys read from the request description (no input built on a hit); null: from the input. */
  readonly descriptionKeys: readonly DescriptionKey[] | null;
  /** The Services the Policy selects; empty: every Service. Read by the ext_authz server (the inbound path has already selected). */
  readonly services: readonly string[];
  /** Path prefixes the policy judges; empty: every path. */
  readonly pathPrefixes: readonly string[];
  /** Share of decisions logged, 0..100 (audit logs all). */
  readonly decisionLogPercent: number;
  /** Identifies the loaded engine: bundle digest and entrypoint. */
  readonly engineKey: string;
}

export interface AuthzConfig {
  readonly policies: readonly CompiledPolicy[];
}

export const EMPTY_AUTHZ: AuthzConfig = Object.freeze({ policies: Object.freeze([]) });

const MODES: Record<Policy_Mode, PolicyModeName> = { [Policy_Mode.ENFORCE]: 'enforce', [Policy_Mode.DRY_RUN]: 'dry-run', [Policy_Mode.AUDIT]: 'audit' };

/** Whether a Policy selects the workload of `service`. */
export function selects(policy: Policy, service: string): boolean {
  return policy.services.length === 0 || policy.services.includes(service);
}

/**
 * Builds the configuration for `service` from the accepted Policy resources (already
 * validated: signed, entrypoint present); `service` null: every Policy, whatever it selects
 * (the ext_authz server's set, which judges for Envoys of the whole namespace). Reuses `previous` engines whose bundle and
 * entrypoint are unchanged; returns the engines no longer used, for the caller to close
 * after the swap.
 */
export async function buildAuthzConfig(resources: Iterable<Policy>, service: string | null, previous: AuthzConfig): Promise<{ config: AuthzConfig; retired: PolicyEngine[] }> {
  const reuse = new Map(previous.policies.map((p) => [p.engineKey, p]));
  const used = new Set<string>();
  const out: CompiledPolicy[] = [];
  try {
    for (const p of [...resources].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (service !== null && !selects(p, service)) continue;
      const engineKey = `${createHash('sha256').update(p.bundle).digest('hex')}|${p.entrypoint}|${p.cacheKeys.join(',')}`;
      const old = reuse.get(engineKey);
      let engine: PolicyEngine;
      let cache: DecisionCache | null;
      let revision: string;
      if (old !== undefined) {
        ({ engine, cache, revision } = old);
      } else {
        const bundle = readBundle(p.bundle);
        engine = await PolicyEngine.create(bundle, { entrypoint: p.entrypoint });
        cache = p.cacheKeys.length === 0 ? null : DecisionCache.create({ cacheKeys: p.cacheKeys });
        revision = bundle.revision;
      }
      used.add(engineKey);
      out.push(Object.freeze({
        name: p.name, mode: MODES[p.mode], revision, engine, cache, engineKey,
        descriptionKeys: cache === null ? null : descriptionKeys(p.cacheKeys),
        services: Object.freeze([...p.services]), pathPrefixes: Object.freeze([...p.pathPrefixes]), decisionLogPercent: p.decisionLogPercent,
      }));
    }
  } catch (err) {
    // Engines loaded for this attempt are not kept anywhere: close them.
    for (const p of out) if (!reuse.has(p.engineKey)) p.engine.close();
    throw err;
  }
  const retired = previous.policies.filter((p) => !used.has(p.engineKey)).map((p) => p.engine);
  return { config: Object.freeze({ policies: Object.freeze(out) }), retired };
}
