import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../../sidecar/upstream/circuit-breaker.ts';
import type { CircuitBreakerThresholds } from '../../../sidecar/upstream/cluster-config.ts';

const T: CircuitBreakerThresholds = { maxConnections: 1024, maxPendingRequests: 2, maxRequests: 3, maxRetries: 1, retryBudget: null, perHostMaxConnections: null };

describe('CircuitBreaker', () => {
  it('grants requests up to max_requests, refuses and counts the rest, and grants again after a release', () => {
    const cb = new CircuitBreaker(T);
    expect([cb.tryAcquireRequest(), cb.tryAcquireRequest(), cb.tryAcquireRequest(), cb.tryAcquireRequest()]).toEqual([true, true, true, false]);
    expect(cb.requestOverflows).toBe(1);
    cb.releaseRequest();
    expect(cb.tryAcquireRequest()).toBe(true);
    expect(cb.stats().remaining.requests).toBe(0);
  });

  it('limits pending requests and retries on their own', () => {
    const cb = new CircuitBreaker(T);
    expect([cb.tryAcquirePending(), cb.tryAcquirePending(), cb.tryAcquirePending()]).toEqual([true, true, false]);
    expect([cb.tryAcquireRetry(), cb.tryAcquireRetry()]).toEqual([true, false]);
    cb.releaseRetry();
    cb.releasePending();
    expect([cb.tryAcquireRetry(), cb.tryAcquirePending()]).toEqual([true, true]);
    expect(cb.stats()).toMatchObject({ pendingRequests: 2, activeRetries: 1, pendingOverflows: 1, retryOverflows: 1 });
  });

  it('with a retry budget allows budget_percent of active plus pending requests, at least min_retry_concurrency', () => {
    const cb = new CircuitBreaker({ ...T, maxRequests: 100, maxPendingRequests: 100, retryBudget: { budgetPercent: 25, minRetryConcurrency: 2 } });
    expect(cb.retryLimit()).toBe(2);
    for (let i = 0; i < 16; i++) cb.tryAcquireRequest();
    for (let i = 0; i < 4; i++) cb.tryAcquirePending();
    expect(cb.retryLimit()).toBe(5);
    expect(Array.from({ length: 6 }, () => cb.tryAcquireRetry())).toEqual([true, true, true, true, true, false]);
  });

  it('never counts below zero on an extra release', () => {
    const cb = new CircuitBreaker(T);
    cb.releaseRequest();
    cb.releasePending();
    cb.releaseRetry();
    expect(cb.stats()).toMatchObject({ activeRequests: 0, pendingRequests: 0, activeRetries: 0 });
  });
});
