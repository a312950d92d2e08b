/**
 * A cluster's circuit breakers, Envoy's DEFAULT-priority thresholds: plain counters that
 * the router takes before it acts and gives back after, refusing (and counting an overflow)
 * when a limit is reached. Nothing here waits or allocates.
 *
 *   request:  tryAcquireRequest() before sending upstream     → releaseRequest() when done
 *   pending:  tryAcquirePending() while queued for a connection → releasePending() once sent
 *   retry:    tryAcquireRetry() before a retry attempt         → releaseRetry() when it ends
 *
 * With a retry budget the retry limit is max(min_retry_concurrency,
 * budget_percent% × (active + pending requests)) and max_retries is ignored, as in Envoy
 * (`ResourceManagerImpl::RetryBudgetImpl`: the product truncated, checked before a retry
 * starts). The forwarder holds a request slot for each downstream request from before its first
 * attempt to the end of its exchange, queued in an undici pool or not, so `activeRequests`
 * already counts what Envoy splits into active and pending; a request in back-off counts too,
 * where Envoy has no upstream request for it then.
 * max_connections is not counted here: each endpoint's undici Pool is capped instead
 * (`UpstreamCluster`); `connections` only reports how many are open.
 */
import type { CircuitBreakerThresholds } from './cluster-config.ts';

export interface CircuitBreakerStats {
  readonly thresholds: CircuitBreakerThresholds;
  readonly activeRequests: number;
  readonly pendingRequests: number;
  readonly activeRetries: number;
  /** Open upstream connections over all endpoint pools. */
  readonly connections: number;
  /** Refusals: Envoy's upstream_rq_pending_overflow, upstream_rq_retry_overflow, and requests over max_requests. */
  readonly requestOverflows: number;
  readonly pendingOverflows: number;
  readonly retryOverflows: number;
  /** What each limit still allows (Envoy's track_remaining gauges). */
  readonly remaining: { readonly requests: number; readonly pending: number; readonly retries: number };
}

export class CircuitBreaker {
  thresholds: CircuitBreakerThresholds;
  activeRequests = 0;
  pendingRequests = 0;
  activeRetries = 0;
  connections = 0;
  requestOverflows = 0;
  pendingOverflows = 0;
  retryOverflows = 0;

  constructor(thresholds: CircuitBreakerThresholds) {
    this.thresholds = thresholds;
  }

  /** Takes a request slot; false (and an overflow counted) at max_requests. */
  tryAcquireRequest(): boolean {
    if (this.activeRequests >= this.thresholds.maxRequests) {
      this.requestOverflows++;
      return false;
    }
    this.activeRequests++;
    return true;
  }

  releaseRequest(): void {
    if (this.activeRequests > 0) this.activeRequests--;
  }

  /** Takes a pending slot; false (and an overflow counted) at max_pending_requests. */
  tryAcquirePending(): boolean {
    if (this.pendingRequests >= this.thresholds.maxPendingRequests) {
      this.pendingOverflows++;
      return false;
    }
    this.pendingRequests++;
    return true;
  }

  releasePending(): void {
    if (this.pendingRequests > 0) this.pendingRequests--;
  }

  /** Takes a retry slot; false (and an overflow counted) at the retry limit. */
  tryAcquireRetry(): boolean {
    if (this.activeRetries >= this.retryLimit()) {
      this.retryOverflows++;
      return false;
    }
    this.activeRetries++;
    return true;
  }

  releaseRetry(): void {
    if (this.activeRetries > 0) this.activeRetries--;
  }

  /** Concurrent retries allowed now. */
  retryLimit(): number {
    const b = this.thresholds.retryBudget;
    if (b === null) return this.thresholds.maxRetries;
    return Math.max(b.minRetryConcurrency, Math.floor((b.budgetPercent / 100) * (this.activeRequests + this.pendingRequests)));
  }

  stats(): CircuitBreakerStats {
    const t = this.thresholds;
    return {
      thresholds: t,
      activeRequests: this.activeRequests,
      pendingRequests: this.pendingRequests,
      activeRetries: this.activeRetries,
      connections: this.connections,
      requestOverflows: this.requestOverflows,
      pendingOverflows: this.pendingOverflows,
      retryOverflows: this.retryOverflows,
      remaining: {
        requests: Math.max(0, t.maxRequests - this.activeRequests),
        pending: Math.max(0, t.maxPendingRequests - this.pendingRequests),
        retries: Math.max(0, this.retryLimit() - this.activeRetries),
      },
    };
  }
}
