/** Errors of quota enforcement (docs/errors.md, section Sidecar). */
import { PalisadeError } from '../../xds/errors.ts';

/**
 * The quota store (bootstrap quota.redis) did not answer a bucket update: not connected, the
 * command timed out (quota.redis.timeout) or Redis answered an error. GLOBAL quotas then fail
 * open (local fallback buckets) or closed (429), as each Quota's failure_mode says. Logged once
 * per outage, when the store goes down, not per request.
 */
export class QuotaStoreError extends PalisadeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PAL_ERR_SIDECAR_QUOTA_STORE', message, options);
  }
}

/**
 * A ShouldRateLimit call to the sidecar's rate limit service (bootstrap rateLimitService) was
 * malformed: no domain, no descriptors, a descriptor without entries, or a hits_addend over
 * 10^9. The call fails INVALID_ARGUMENT with this message (field and value named).
 */
export class RateLimitRequestError extends PalisadeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PAL_ERR_SIDECAR_RLS_INVALID_REQUEST', message, options);
  }
}
