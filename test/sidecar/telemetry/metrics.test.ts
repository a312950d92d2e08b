import { describe, expect, it } from 'vitest';
import { aggregateMetrics, SidecarMetrics, type MetricsSource } from '../../../sidecar/telemetry/metrics.ts';
import type { RequestFacts, ResponseFlag } from '../../../sidecar/telemetry/request-facts.ts';
import type { RequestRecord } from '../../../sidecar/telemetry/request-record.ts';
import type { ListenerStats } from '../../../sidecar/listeners/http-listener.ts';
import type { ClusterStats } from '../../../sidecar/upstream/upstream-cluster.ts';
import { parseExposition, sumOf, valueOf } from './prometheus-text.ts';

function facts(o: Partial<RequestFacts> = {}): RequestFacts {
  return { route: null, cluster: null, upstreamHost: null, attempts: 0, flags: [], principal: null, policy: null, quota: null, tenant: null, ...o } as RequestFacts;
}

function record(o: Partial<RequestRecord> & { facts?: RequestFacts } = {}): RequestRecord {
  return {
    listener: 'outbound', method: 'GET', path: '/', authority: 'api', protocol: 'HTTP/1.1', status: 200, startTime: Date.now(), durationMs: 2,
    bytesIn: 0, bytesOut: 10, requestId: null, userAgent: null, remoteAddress: '127.0.0.1', forwardedFor: null, traceId: null, facts: facts(), ...o,
  };
}

const listener = (o: Partial<ListenerStats> = {}): ListenerStats => ({ requests: 0, responses: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0, reset: 0 }, inFlight: 0, rejected: 0, tls: null, ...o });

const cluster = (name: string): ClusterStats => ({
  name, discoveryType: 'EDS', lbPolicy: 'ROUND_ROBIN', protocol: 'http1', activePriority: 0, retryOrShadowAbandoned: 0,
  circuitBreakers: {
    thresholds: { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 2, maxRetries: 3, retryBudget: null, trackRemaining: false },
    activeRequests: 2, pendingRequests: 0, activeRetries: 0, connections: 3, requestOverflows: 7, pendingOverflows: 1, retryOverflows: 2,
    remaining: { requests: 0, pending: 1024, retries: 3 },
  },
  outlierDetection: { ejectionsActive: 1, ejectionsEnforcedTotal: 4, ejectionsDetected: { consecutive_5xx: 4, consecutive_gateway_failure: 0, consecutive_local_origin_failure: 0 }, ejectionsOverflow: 0 },
  hosts: [],
} as unknown as ClusterStats);

const EMPTY_SOURCE: MetricsSource = {
  listeners: () => ({}), connections: () => ({}), clusters: () => [], policies: () => null, certificateNotAfter: () => null, xds: () => null, lastConfigUpdate: () => null,
};

describe('SidecarMetrics', () => {
  it('counts requests per listener, route, cluster, code class and method, with durations, sizes, upstream errors and retries, but not quota decisions (read on scrape)', async () => {
    const m = new SidecarMetrics({ source: EMPTY_SOURCE });
    for (let i = 0; i < 3; i++) m.observe(record({ facts: facts({ route: 'r1', cluster: 'c1', attempts: 1 }), bytesIn: 100, durationMs: 0.3 }));
    const uf: ResponseFlag[] = ['UF', 'URX'];
    for (let i = 0; i < 2; i++) m.observe(record({ listener: 'inbound', method: 'POST', status: 503, facts: facts({ route: '', cluster: 'c2', attempts: 3, flags: [...uf] }) }));
    m.observe(record({ method: 'BREW', status: 404, facts: facts({ flags: ['NR'] }) }));
    m.observe(record({ listener: 'inbound', status: 429, facts: facts({ quota: { name: 'per-tenant', limit: '10/s', result: 'over', remaining: 0 } }) }));
    const f = parseExposition(await m.text());

    expect(valueOf(f, 'palisade_requests_total', { listener: 'outbound', route: 'r1', cluster: 'c1', code_class: '2xx', method: 'GET' })).toBe(3);
    expect(valueOf(f, 'palisade_requests_total', { listener: 'inbound', cluster: 'c2', code_class: '5xx', method: 'POST' })).toBe(2);
    expect(valueOf(f, 'palisade_requests_total', { listener: 'outbound', code_class: '4xx', method: 'other' })).toBe(1);
    expect(sumOf(f, 'palisade_requests_total')).toBe(7);
    expect(valueOf(f, 'palisade_request_duration_seconds', { listener: 'outbound', route: 'r1', cluster: 'c1', code_class: '2xx' })).toBe(3);
    const d = f.get('palisade_request_duration_seconds')!.metrics.find((s) => s.labels?.route === 'r1')!;
    // 0.3 ms lands in the 0.0005 s bucket, not in 0.00025.
    expect(d.buckets!['0.00025']).toBe('0');
    expect(d.buckets!['0.0005']).toBe('3');
    expect(valueOf(f, 'palisade_request_size_bytes', { listener: 'outbound' })).toBe(4);
    expect(Number(f.get('palisade_request_size_bytes')!.metrics.find((s) => s.labels?.listener === 'outbound')!.sum)).toBe(300);
    expect(valueOf(f, 'palisade_upstream_errors_total', { listener: 'inbound', cluster: 'c2', reason: 'connect_failure' })).toBe(2);
    expect(valueOf(f, 'palisade_upstream_errors_total', { listener: 'inbound', cluster: 'c2', reason: 'retry_limit_exceeded' })).toBe(2);
    expect(valueOf(f, 'palisade_upstream_retries_total', { cluster: 'c2' })).toBe(4);
    expect(valueOf(f, 'palisade_upstream_retries_total', { cluster: 'c1' })).toBeUndefined();
    // The request facts' deciding quota goes to the access log; decisions are read from the gate on scrape.
    expect(valueOf(f, 'palisade_quota_decisions_total', { quota: 'per-tenant', result: 'over' })).toBeUndefined();
    expect(sumOf(f, 'palisade_metric_label_overflow_total')).toBe(0);
  });

  it('reads listener, cluster, authz, identity, xDS and quota state on scrape', async () => {
    const notAfter = new Date(Date.now() + 3600_000);
    const m = new SidecarMetrics({
      source: {
        listeners: () => ({ inbound: listener({ inFlight: 2, rejected: 1, tls: { handshakes: 5, resumed: 2, refused: 1, plaintext: 0, plaintextRefused: 3 } }), outbound: listener() }),
        connections: () => ({ inbound: 4, outbound: 0 }),
        clusters: () => [cluster('c1')],
        policies: () => ({ 'allow-get': { allowed: 9, denied: 3, errors: 0, dryRunDenied: 1, cache: { hits: 8, misses: 4, size: 2 } } }),
        certificateNotAfter: () => notAfter,
        xds: () => ({ connected: true, updates: { 'type.googleapis.com/envoy.config.cluster.v3.Cluster': 2 }, nacks: { 'type.googleapis.com/envoy.config.cluster.v3.Cluster': 1 } }),
        lastConfigUpdate: () => 1_700_000_000_000,
        quotaDecisions: () => new Map([['default/api', { ok: 5, over: 2 }], ['default/roomy', { ok: 7 }]]),
      },
    });
    const f = parseExposition(await m.text());
    expect(valueOf(f, 'palisade_active_requests', { listener: 'inbound' })).toBe(2);
    expect(valueOf(f, 'palisade_active_connections', { listener: 'inbound' })).toBe(4);
    expect(valueOf(f, 'palisade_listener_rejected_total', { listener: 'inbound' })).toBe(1);
    expect(valueOf(f, 'palisade_tls_handshakes_total', { listener: 'inbound' })).toBe(5);
    expect(valueOf(f, 'palisade_tls_handshakes_total', { listener: 'outbound' })).toBeUndefined();
    expect(valueOf(f, 'palisade_tls_sessions_resumed_total', { listener: 'inbound' })).toBe(2);
    expect(valueOf(f, 'palisade_tls_refused_total', { listener: 'inbound', reason: 'plaintext' })).toBe(3);
    const expiry = valueOf(f, 'palisade_certificate_expiry_seconds')!;
    expect(expiry).toBeGreaterThan(3500);
    expect(expiry).toBeLessThanOrEqual(3600);
    expect(valueOf(f, 'palisade_upstream_active_requests', { cluster: 'c1' })).toBe(2);
    expect(valueOf(f, 'palisade_upstream_connections', { cluster: 'c1' })).toBe(3);
    expect(valueOf(f, 'palisade_circuit_breaker_overflows_total', { cluster: 'c1', limit: 'requests' })).toBe(7);
    expect(valueOf(f, 'palisade_circuit_breaker_overflows_total', { cluster: 'c1', limit: 'retries' })).toBe(2);
    expect(valueOf(f, 'palisade_circuit_breaker_open', { cluster: 'c1', limit: 'requests' })).toBe(1);
    expect(valueOf(f, 'palisade_circuit_breaker_open', { cluster: 'c1', limit: 'pending' })).toBe(0);
    expect(valueOf(f, 'palisade_outlier_ejections_total', { cluster: 'c1' })).toBe(4);
    expect(valueOf(f, 'palisade_outlier_ejections_active', { cluster: 'c1' })).toBe(1);
    expect(valueOf(f, 'palisade_policy_decisions_total', { policy: 'allow-get', decision: 'allow' })).toBe(9);
    expect(valueOf(f, 'palisade_policy_decisions_total', { policy: 'allow-get', decision: 'deny' })).toBe(3);
    expect(valueOf(f, 'palisade_policy_decisions_total', { policy: 'allow-get', decision: 'dry_run_deny' })).toBe(1);
    expect(valueOf(f, 'palisade_policy_decision_cache_hits_total', { policy: 'allow-get' })).toBe(8);
    expect(valueOf(f, 'palisade_policy_decision_cache_misses_total', { policy: 'allow-get' })).toBe(4);
    expect(valueOf(f, 'palisade_xds_connected')).toBe(1);
    expect(valueOf(f, 'palisade_xds_updates_total', { type_url: 'type.googleapis.com/envoy.config.cluster.v3.Cluster' })).toBe(2);
    expect(valueOf(f, 'palisade_xds_nacks_total', { type_url: 'type.googleapis.com/envoy.config.cluster.v3.Cluster' })).toBe(1);
    expect(valueOf(f, 'palisade_xds_last_update_timestamp_seconds')).toBe(1_700_000_000);
    expect(valueOf(f, 'palisade_quota_decisions_total', { quota: 'default/api', result: 'over' })).toBe(2);
    expect(sumOf(f, 'palisade_quota_decisions_total')).toBe(14);
  });

  it('keeps each family under its label budget with 10 000 distinct paths and route names, counting the overflow', async () => {
    const m = new SidecarMetrics({ source: EMPTY_SOURCE, maxSeriesPerMetric: 100 });
    for (let i = 0; i < 10_000; i++) m.observe(record({ path: `/item/${i}`, facts: facts({ route: `route-${i}`, cluster: 'c1' }) }));
    const f = parseExposition(await m.text());
    const requests = f.get('palisade_requests_total')!.metrics;
    // 100 own label sets, and one collapsed set for everything past the budget.
    expect(requests.length).toBe(101);
    expect(requests.filter((s) => s.labels?.route === 'other')).toEqual([expect.objectContaining({ value: '9900', labels: expect.objectContaining({ cluster: 'other' }) })]);
    expect(requests.every((s) => !Object.values(s.labels ?? {}).some((v) => v.startsWith('/item/')))).toBe(true);
    expect(f.get('palisade_request_duration_seconds')!.metrics.length).toBe(101);
    expect(sumOf(f, 'palisade_requests_total')).toBe(10_000);
    expect(valueOf(f, 'palisade_metric_label_overflow_total', { metric: 'palisade_requests_total' })).toBe(9900);
    expect(valueOf(f, 'palisade_metric_label_overflow_total', { metric: 'palisade_request_duration_seconds' })).toBe(9900);
  });

  it('sums the registries of several processes into one exposition (a --workers N primary)', async () => {
    const a = new SidecarMetrics({ source: { ...EMPTY_SOURCE, listeners: () => ({ inbound: listener({ inFlight: 1 }) }) } });
    const b = new SidecarMetrics({ source: { ...EMPTY_SOURCE, listeners: () => ({ inbound: listener({ inFlight: 2 }) }) } });
    const primary = new SidecarMetrics({ source: { ...EMPTY_SOURCE, xds: () => ({ connected: true, updates: {}, nacks: {} }), lastConfigUpdate: () => 5000 } });
    for (let i = 0; i < 3; i++) a.observe(record());
    for (let i = 0; i < 4; i++) b.observe(record());
    const f = parseExposition(await aggregateMetrics([await primary.json(), await a.json(), await b.json()]));
    expect(valueOf(f, 'palisade_requests_total', { listener: 'outbound', code_class: '2xx', method: 'GET' })).toBe(7);
    expect(valueOf(f, 'palisade_request_duration_seconds', { listener: 'outbound' })).toBe(7);
    expect(valueOf(f, 'palisade_active_requests', { listener: 'inbound' })).toBe(3);
    expect(valueOf(f, 'palisade_xds_connected')).toBe(1);
    expect(valueOf(f, 'palisade_xds_last_update_timestamp_seconds')).toBe(5);
  });

  it('keeps one series per code class and method under the same listener, route and cluster', async () => {
    const m = new SidecarMetrics({ source: EMPTY_SOURCE });
    const rc = () => facts({ route: 'r', cluster: 'c' });
    for (const [method, status] of [['GET', 200], ['GET', 200], ['POST', 200], ['GET', 503], ['BREW', 0], ['PATCH', 101]] as const) m.observe(record({ method, status, facts: rc() }));
    const f = parseExposition(await m.text());
    const v = (method: string, code_class: string) => valueOf(f, 'palisade_requests_total', { listener: 'outbound', route: 'r', cluster: 'c', code_class, method });
    expect([v('GET', '2xx'), v('POST', '2xx'), v('GET', '5xx'), v('other', '0xx'), v('PATCH', '1xx')]).toEqual([2, 1, 1, 1, 1]);
    expect(f.get('palisade_requests_total')!.metrics).toHaveLength(5);
  });

  it('forgets clusters no longer configured: their series leave the exposition and their budget room comes back', async () => {
    const m = new SidecarMetrics({ source: EMPTY_SOURCE, maxSeriesPerMetric: 2 });
    m.observe(record({ facts: facts({ route: 'r', cluster: 'old', attempts: 2, flags: ['UF'] }) }));
    m.observe(record({ facts: facts({ route: 'r', cluster: 'kept' }) }));
    // The budget (2) is spent: a third cluster collapses into `other`.
    m.observe(record({ facts: facts({ route: 'r', cluster: 'renamed' }) }));
    let f = parseExposition(await m.text());
    expect(valueOf(f, 'palisade_requests_total', { route: 'other', cluster: 'other' })).toBe(1);
    // Configuration swap: `old` is gone, `renamed` replaced it.
    m.retainClusters((c) => c === 'kept' || c === 'renamed');
    m.observe(record({ facts: facts({ route: 'r', cluster: 'renamed' }) }));
    f = parseExposition(await m.text());
    expect(valueOf(f, 'palisade_requests_total', { cluster: 'old' })).toBeUndefined();
    expect(valueOf(f, 'palisade_request_duration_seconds', { cluster: 'old' })).toBeUndefined();
    expect(valueOf(f, 'palisade_upstream_errors_total', { cluster: 'old' })).toBeUndefined();
    expect(valueOf(f, 'palisade_upstream_retries_total', { cluster: 'old' })).toBeUndefined();
    expect(valueOf(f, 'palisade_requests_total', { route: 'r', cluster: 'kept' })).toBe(1);
    expect(valueOf(f, 'palisade_requests_total', { route: 'r', cluster: 'renamed' })).toBe(1);
    expect(valueOf(f, 'palisade_requests_total', { route: 'other', cluster: 'other' })).toBe(1);
  });
});
