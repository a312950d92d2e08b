/**
 * The sidecar's SLO counters: requests of routes with an SLO are counted as total, errors (5xx
 * or a proxy-side failure flag) and slow (over the latency threshold), and handed to the LRS
 * reporter as deltas named palisade.slo/<encoded SLO>/<counter>, which the control plane's
 * engine reads back.
 */
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { isSloError, SloCounters, type SloRequestRecord } from '../../../sidecar/telemetry/slo-counters.ts';
import type { SloRoute } from '../../../sidecar/routing/route-action.ts';
import { SloEngine } from '../../../control/slo/slo-engine.ts';
import { stateFrom } from '../../helpers/desired-state.ts';

const API: SloRoute = Object.freeze({ name: 'default/web.api', latencyThresholdMs: 250, cluster: 'outbound|8080||web.default' });
const STATIC: SloRoute = Object.freeze({ name: 'default/web.1', latencyThresholdMs: null, cluster: 'outbound|8080||web.default' });
const ROUTES: Record<string, SloRoute> = { 'web.api.0': API, 'web.api.1': API, 'web.1': STATIC };

function rec(route: string | null, status: number, durationMs: number, cluster: string | null = 'outbound|8080||web.default', flags: string[] = [], listener = 'outbound'): SloRequestRecord {
  return { listener, status, durationMs, facts: { route, cluster, flags } };
}

function counters(): SloCounters {
  return new SloCounters((name) => ROUTES[name] ?? null);
}

describe('isSloError', () => {
  it.each([
    [200, [], false], [404, [], false], [499, ['DC'], false], [500, [], true], [503, ['UH'], true], [0, ['UC'], true],
    [200, ['UF'], true], [429, ['RL'], false], [403, ['UAEX'], false], [504, ['UT'], true], [200, ['URX'], true],
  ] as Array<[number, string[], boolean]>)('status %i with flags %j → %s', (status, flags, expected) => {
    expect(isSloError(status, flags)).toBe(expected);
  });
});

describe('SloCounters', () => {
  it('counts total, errors and slow per SLO name across the routes of a rule, as deltas', () => {
    const c = counters();
    c.record(rec('web.api.0', 200, 10));
    c.record(rec('web.api.1', 200, 300));
    c.record(rec('web.api.0', 503, 5));
    c.record(rec('web.1', 500, 10_000));
    c.record(rec('web.2', 500, 1)); // no SLO
    c.record(rec(null, 404, 1)); // no route
    c.record(rec('web.1', 500, 1, null, [], 'inbound')); // inbound: route names are not RDS routes
    expect(c.loads()).toEqual([
      { cluster: 'outbound|8080||web.default', metric: 'palisade.slo/default%2Fweb.api/total', count: 3, value: 3 },
      { cluster: 'outbound|8080||web.default', metric: 'palisade.slo/default%2Fweb.api/errors', count: 1, value: 1 },
      { cluster: 'outbound|8080||web.default', metric: 'palisade.slo/default%2Fweb.api/slow', count: 1, value: 1 },
      { cluster: 'outbound|8080||web.default', metric: 'palisade.slo/default%2Fweb.1/total', count: 1, value: 1 },
      { cluster: 'outbound|8080||web.default', metric: 'palisade.slo/default%2Fweb.1/errors', count: 1, value: 1 },
    ]);
    expect(c.loads()).toEqual([]);
    c.record(rec('web.api.0', 200, 250));
    expect(c.loads()).toEqual([{ cluster: 'outbound|8080||web.default', metric: 'palisade.slo/default%2Fweb.api/total', count: 1, value: 1 }]);
  });

  it('reports per cluster, and a request that never picked one under the route\'s cluster', () => {
    const c = counters();
    c.record(rec('web.1', 200, 1, 'outbound|8080|v2|web.default'));
    c.record(rec('web.1', 503, 1, null, ['FI']));
    expect(c.loads().map((l) => [l.cluster, l.metric, l.count])).toEqual([
      ['outbound|8080|v2|web.default', 'palisade.slo/default%2Fweb.1/total', 1],
      ['outbound|8080||web.default', 'palisade.slo/default%2Fweb.1/total', 1],
      ['outbound|8080||web.default', 'palisade.slo/default%2Fweb.1/errors', 1],
    ]);
  });

  it('hands the control plane\'s SLO engine counts it reads back exactly', () => {
    const state = stateFrom({
      'services.yaml': 'apiVersion: palisade.dev/v1\nkind: Service\nmetadata: { name: web }\nspec: { port: 8080 }\n',
      'routes.yaml': `apiVersion: palisade.dev/v1
kind: Route
metadata: { name: web }
spec:
  hosts: [web.local]
  http:
    - name: api
      backends: [{ service: web }]
      slo: { availability: 99.9, latency: { threshold: 250ms, percent: 99 } }
`,
    });
    const engine = new SloEngine({ state: () => state, logger: pino({ level: 'silent' }) });
    const c = counters();
    for (let i = 0; i < 50; i++) c.record(rec('web.api.0', i % 10 === 0 ? 500 : 200, i % 5 === 0 ? 400 : 20));
    // The LRS reporter's shape: one ClusterStats per cluster, the loads as load_metric_stats.
    const loads = c.loads();
    engine.ingest([{ upstreamLocalityStats: [{ loadMetricStats: loads.map((l) => ({ metricName: l.metric, numRequestsFinishedWithMetric: BigInt(l.count), totalMetricValue: l.value })) }] }]);
    expect(engine.evaluate().objectives.map((o) => [o.objective, o.requests, o.bad])).toEqual([['availability', 50, 5], ['latency', 50, 10]]);
  });
});
