/** Quota resources for the quota tests. */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { QuotaSchema, Quota_FailureMode, Quota_Scope, type Quota } from '../../../xds/gen/palisade/v1/quota_pb.js';

export { Quota_FailureMode, Quota_Scope };

/** A Quota `default/<name>`: descriptor `tenant` from header x-tenant, one limit `per-tenant` of `tokens` per `interval` s. */
export function quota(name: string, o: { tokens?: number; interval?: number; burst?: number; fallback?: number } = {}, extra: MessageInitShape<typeof QuotaSchema> = {}): Quota {
  return create(QuotaSchema, {
    name: `default/${name}`,
    descriptors: [{ key: 'tenant', value: { source: { case: 'header', value: 'x-tenant' } } }],
    limits: [{
      name: 'per-tenant', tokens: BigInt(o.tokens ?? 5), interval: { seconds: BigInt(o.interval ?? 60) },
      burst: BigInt(o.burst ?? 0), fallbackTokens: BigInt(o.fallback ?? 0),
    }],
    ...extra,
  });
}
