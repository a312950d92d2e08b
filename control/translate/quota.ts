/**
 * Quota → palisade.v1.Quota for the sidecar groups of its namespace (each sidecar keeps those
 * that select its Service), field for field: descriptors, limits (match keys sorted, so the
 * same state always gives the same bytes), routes, scope, shadow, failure mode, priority.
 * Envoy nodes get Envoy's rate limit filters instead (envoy-ratelimit.ts).
 */
import type { Message } from '@bufbuild/protobuf';
import { create } from '@bufbuild/protobuf';
import type { DesiredState } from '../config/state.ts';
import { parseDuration } from '../config/schema.ts';
import type { QuotaAttribute, QuotaResource } from '../config/schema.ts';
import {
  QuotaSchema, Quota_FailureMode, Quota_Scope, RequestAttributeSchema, type Quota, type RequestAttribute,
} from '../../xds/gen/palisade/v1/quota_pb.js';

/** The Quotas of a sidecar group's namespace, in key order. */
export function sidecarQuotas(state: DesiredState, namespace: string): Message[] {
  const out: Message[] = [];
  for (const [key, q] of state.quotas) {
    if (q.metadata.namespace === namespace) out.push(quotaMessage(key, q));
  }
  return out;
}

/** One Quota as the palisade.v1.Quota resource named `key` ("<namespace>/<name>"). */
export function quotaMessage(key: string, q: QuotaResource): Quota {
  const spec = q.spec;
  return create(QuotaSchema, {
    name: key,
    services: [...(spec.selector.services ?? [])],
    routes: (spec.routes ?? []).map((r) => ({ name: r.name, pathPrefix: r.pathPrefix, methods: [...(r.methods ?? [])] })),
    descriptors: spec.descriptors.map((d) => ({ key: d.key, value: requestAttribute(d.from), defaultValue: d.default ?? '' })),
    limits: spec.limits.map((l) => {
      const match: Record<string, string> = {};
      for (const k of Object.keys(l.match ?? {}).sort()) match[k] = l.match![k]!;
      return {
        name: l.name,
        match,
        tokens: BigInt(l.tokens),
        interval: { seconds: BigInt(parseDuration(l.interval) / 1000), nanos: 0 },
        burst: BigInt(l.burst),
        fallbackTokens: BigInt(l.fallbackTokens ?? 0),
      };
    }),
    scope: spec.scope === 'global' ? Quota_Scope.GLOBAL : Quota_Scope.LOCAL,
    shadow: spec.shadow,
    failureMode: spec.failureMode === 'closed' ? Quota_FailureMode.FAIL_CLOSED : Quota_FailureMode.FAIL_OPEN,
    ...(spec.priority !== undefined
      ? {
        priorityAttribute: requestAttribute(spec.priority.from),
        priorityClasses: spec.priority.classes.map((c) => ({ name: c.name, values: [...c.values], shedAtPercent: c.shedAt })),
        defaultPriorityClass: spec.priority.default,
      }
      : {}),
  });
}

function requestAttribute(a: QuotaAttribute): RequestAttribute {
  const source: RequestAttribute['source'] = a.header !== undefined ? { case: 'header', value: a.header.toLowerCase() }
    : a.jwtClaim !== undefined ? { case: 'jwtClaim', value: a.jwtClaim }
    : a.principal === true ? { case: 'principal', value: true }
    : a.route === true ? { case: 'route', value: true }
    : a.remoteAddress === true ? { case: 'remoteAddress', value: true }
    : { case: 'method', value: true };
  return create(RequestAttributeSchema, { source });
}
