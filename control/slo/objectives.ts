/**
 * The SLOs a desired state declares (Route rules with `slo`), flattened to one objective per
 * (SLO, kind): availability or latency. The same SLO name keys the RDS route metadata the
 * sidecars count by (`palisade.slo`), the load they report (`palisade.slo/<name>/...`) and the
 * engine's state, so the three meet without a lookup table.
 */
import type { JsonObject } from '@bufbuild/protobuf';
import type { DesiredState } from '../config/state.ts';
import { parseDuration } from '../config/schema/common.ts';
import { parseSloWindow } from '../config/schema/route.ts';
import type { HttpRule, RouteResource } from '../config/schema/route.ts';

/** The RDS route `metadata.filter_metadata` key the sidecar reads an SLO from. */
export const SLO_METADATA_KEY = 'palisade.slo';

export type ObjectiveKind = 'availability' | 'latency';

/** One objective of one SLO, as the engine evaluates it. */
export interface SloObjective {
  /** The SLO name: `<namespace>/<route>.<rule name or index>`. */
  readonly route: string;
  readonly objective: ObjectiveKind;
  /** Target as a fraction of good requests, 0 < target < 1 (99.9 % → 0.999). */
  readonly target: number;
  /** The target as written, in percent (99.9). */
  readonly percent: number;
  /** Latency only: slower than this is bad, ms; null for availability. */
  readonly thresholdMs: number | null;
  /** The error-budget window, ms (unscaled: 30d = 2 592 000 000). */
  readonly windowMs: number;
}

/** The SLO name of a rule: namespaced, one per rule (every match entry of the rule shares it). */
export function sloName(route: RouteResource, rule: HttpRule, index: number): string {
  return `${route.metadata.namespace}/${route.metadata.name}.${rule.name ?? index}`;
}

/** What the translator puts in the RDS route's `filter_metadata["palisade.slo"]`; null without an SLO. */
export function sloMetadata(route: RouteResource, rule: HttpRule, index: number): JsonObject | null {
  const slo = rule.slo;
  if (slo === undefined) return null;
  const md: JsonObject = { name: sloName(route, rule, index) };
  if (slo.availability !== undefined) md.availability = slo.availability;
  if (slo.latency !== undefined) {
    md.latency_threshold_ms = parseDuration(slo.latency.threshold);
    md.latency_percent = slo.latency.percent;
  }
  return md;
}

/** Every objective of a state, in route then rule order. */
export function sloObjectives(state: DesiredState): SloObjective[] {
  const out: SloObjective[] = [];
  for (const route of state.routes.values()) {
    route.spec.http.forEach((rule, i) => {
      const slo = rule.slo;
      if (slo === undefined) return;
      const name = sloName(route, rule, i);
      const windowMs = parseSloWindow(slo.window);
      if (slo.availability !== undefined) {
        out.push(Object.freeze({ route: name, objective: 'availability', target: fraction(slo.availability), percent: slo.availability, thresholdMs: null, windowMs }));
      }
      if (slo.latency !== undefined) {
        out.push(Object.freeze({ route: name, objective: 'latency', target: fraction(slo.latency.percent), percent: slo.latency.percent, thresholdMs: parseDuration(slo.latency.threshold), windowMs }));
      }
    });
  }
  return out;
}

/** percent / 100 without binary noise in the last digits (99.9 → 0.999, not 0.9990000000000001). */
function fraction(percent: number): number {
  return Number((percent / 100).toPrecision(12));
}
