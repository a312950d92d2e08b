/**
 * The SLO engine fed synthetic LRS ClusterStats on a manual clock: steady traffic inside the
 * objective fires nothing; an error (or slow) burst fires the page alert once and resolves it
 * once the short window is clean; low traffic never pages; budgets, metrics and the time
 * scale behave as documented.
 */
import { describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { ClusterStatsSchema, type ClusterStats } from '../../../xds/gen/envoy/config/endpoint/v3/load_report_pb.js';
import { SloEngine } from '../../../control/slo/slo-engine.ts';
import { ruleThreshold, DEFAULT_RULES } from '../../../control/slo/burn-rate.ts';
import { stateFrom } from '../../helpers/desired-state.ts';
import type { DesiredState } from '../../../control/config/state.ts';

const SERVICE = `apiVersion: palisade.dev/v1
kind: Service
metadata: { name: web }
spec: { port: 8080 }
`;

function routeYaml(slo: string): string {
  return `apiVersion: palisade.dev/v1
kind: Route
metadata: { name: web }
spec:
  hosts: [web.local]
  http:
    - name: api
      backends: [{ service: web }]
      slo: ${slo}
`;
}

const SLO = 'default/web.api';
const MINUTE = 60_000;
const T0 = Date.UTC(2026, 0, 1);

interface Harness {
  engine: SloEngine;
  logs: Array<Record<string, unknown>>;
  clock: { now: number };
  /** One report of `total` requests, `errors` failed and `slow` slow, at the clock's time. */
  report(total: number, errors: number, slow?: number, name?: string): void;
  /** `minutes` one-minute reports, each followed by an evaluation (as the engine's tick does); the clock advancing a minute after each. */
  run(minutes: number, perMinute: { total: number; errors: number; slow?: number }): void;
}

function stats(name: string, total: number, errors: number, slow: number): ClusterStats {
  const metric = (counter: string, n: number) => ({ metricName: `palisade.slo/${encodeURIComponent(name)}/${counter}`, numRequestsFinishedWithMetric: BigInt(n), totalMetricValue: n });
  return create(ClusterStatsSchema, {
    clusterName: 'outbound|8080||web.default.svc',
    upstreamLocalityStats: [{ loadMetricStats: [metric('total', total), metric('errors', errors), metric('slow', slow)].filter((m) => m.totalMetricValue > 0) }],
  });
}

function harness(slo: string, options: { timeScale?: number; minRequests?: number; state?: () => DesiredState } = {}): Harness {
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const state = stateFrom({ 'services.yaml': SERVICE, 'routes.yaml': routeYaml(slo) });
  const clock = { now: T0 };
  const engine = new SloEngine({
    state: options.state ?? (() => state), logger, now: () => clock.now,
    ...(options.timeScale !== undefined ? { timeScale: options.timeScale } : {}),
    ...(options.minRequests !== undefined ? { minRequests: options.minRequests } : {}),
  });
  const step = MINUTE / (options.timeScale ?? 1);
  const report = (total: number, errors: number, slow = 0, name = SLO) => engine.ingest([stats(name, total, errors, slow)], new Date(clock.now));
  return {
    engine, logs, clock, report,
    run(minutes, m) {
      for (let i = 0; i < minutes; i++) {
        report(m.total, m.errors, m.slow ?? 0);
        engine.evaluate();
        clock.now += step;
      }
    },
  };
}

const messages = (logs: Array<Record<string, unknown>>) => logs.map((l) => [l.msg, l.objective, l.severity]);

describe('burn-rate thresholds', () => {
  it('are the workbook\'s 14.4, 6 and 1 for a 30-day window', () => {
    expect(DEFAULT_RULES.map((r) => [r.severity, r.long, r.short, ruleThreshold(r, 30 * 86_400_000)])).toEqual([
      ['page', '1h', '5m', expect.closeTo(14.4, 9)],
      ['page', '6h', '30m', expect.closeTo(6, 9)],
      ['ticket', '3d', '6h', expect.closeTo(1, 9)],
    ]);
  });
});

describe('SloEngine', () => {
  it('fires nothing on steady traffic at 0.05% errors against a 99.9% objective', () => {
    const h = harness('{ availability: 99.9 }');
    h.run(8 * 60, { total: 2000, errors: 1 });
    const status = h.engine.evaluate();
    expect(status.objectives).toHaveLength(1);
    const o = status.objectives[0]!;
    expect(o).toMatchObject({ route: SLO, objective: 'availability', target: 99.9, requests: 8 * 60 * 2000, bad: 8 * 60 });
    expect(o.alerts.map((a) => [a.severity, a.firing])).toEqual([['page', false], ['ticket', false]]);
    expect(o.burnRates['1h']).toBeCloseTo(0.5, 9);
    expect(o.budgetRemaining).toBeCloseTo(0.5, 9);
    expect(h.logs).toEqual([]);
  });

  it('fires the page alert on a 20% error burst, logs it once, and resolves it once the short windows are clean', () => {
    const h = harness('{ availability: 99.9 }');
    h.run(60, { total: 2000, errors: 1 });
    h.run(5, { total: 2000, errors: 400 });
    const firing = h.engine.evaluate().objectives[0]!;
    expect(firing.alerts.find((a) => a.severity === 'page')).toMatchObject({ firing: true, rule: '1h/5m' });
    expect(firing.burnRates['5m']).toBeGreaterThan(14.4);
    expect(firing.burnRates['1h']).toBeGreaterThan(14.4);
    h.run(6, { total: 2000, errors: 1 });
    // 1h/5m is clean again; 6h/30m still sees the burst in its 30m window.
    expect(h.engine.evaluate().objectives[0]!.alerts.find((a) => a.severity === 'page')!.firing).toBe(true);
    h.run(25, { total: 2000, errors: 1 });
    const after = h.engine.evaluate().objectives[0]!;
    expect(after.alerts.find((a) => a.severity === 'page')).toMatchObject({ firing: false, since: null });
    const page = h.logs.filter((l) => l.severity === 'page');
    expect(messages(page)).toEqual([
      ['SLO burn-rate alert firing', 'availability', 'page'],
      ['SLO burn-rate alert resolved', 'availability', 'page'],
    ]);
    // 6h/30m (threshold 6) trips two minutes into the burst, before 1h/5m (14.4) does.
    expect(page[0]).toMatchObject({ level: 40, route: SLO, rule: '6h/30m', target: 99.9, threshold: expect.closeTo(6, 9) });
    expect(page[1]).toMatchObject({ level: 30, route: SLO });
  });

  it('does not page on a single error in low traffic', () => {
    const h = harness('{ availability: 99.9 }');
    h.run(60, { total: 2, errors: 0 });
    h.run(1, { total: 2, errors: 1 });
    const o = h.engine.evaluate().objectives[0]!;
    expect(o.burnRates['30m']).toBeGreaterThan(6);
    expect(o.burnRates['6h']).toBeGreaterThan(6);
    h.run(40, { total: 2, errors: 0 });
    expect(h.logs).toEqual([]);
  });

  it('pages in low traffic once errors repeat, though the 5m window is below minRequests', () => {
    const h = harness('{ availability: 99.9 }');
    h.run(60, { total: 2, errors: 0 });
    h.run(5, { total: 2, errors: 1 });
    const page = h.engine.evaluate().objectives[0]!.alerts.find((a) => a.severity === 'page')!;
    expect(page).toMatchObject({ firing: true, rule: '6h/30m' });
  });

  it('does not fire while the short window holds fewer than minRequests requests', () => {
    const h = harness('{ availability: 99.9 }', { minRequests: 1000 });
    h.run(60, { total: 10, errors: 0 });
    h.run(5, { total: 10, errors: 5 });
    expect(h.engine.evaluate().objectives[0]!.alerts.every((a) => !a.firing)).toBe(true);
  });

  it('fires and resolves the latency objective on a burst of slow requests, leaving availability quiet', () => {
    const h = harness('{ latency: { threshold: 250ms, percent: 99 }, availability: 99.9 }');
    h.run(60, { total: 1000, errors: 0, slow: 2 });
    expect(h.engine.evaluate().objectives.flatMap((o) => o.alerts.filter((a) => a.firing))).toEqual([]);
    h.run(15, { total: 1000, errors: 0, slow: 800 });
    const status = h.engine.evaluate().objectives;
    expect(status.map((o) => [o.objective, o.thresholdMs, o.alerts.find((a) => a.severity === 'page')!.firing])).toEqual([
      ['availability', null, false],
      ['latency', 250, true],
    ]);
    h.run(31, { total: 1000, errors: 0, slow: 2 });
    expect(h.engine.evaluate().objectives[1]!.alerts.find((a) => a.severity === 'page')!.firing).toBe(false);
    expect(messages(h.logs.filter((l) => l.severity === 'page'))).toEqual([
      ['SLO burn-rate alert firing', 'latency', 'page'],
      ['SLO burn-rate alert resolved', 'latency', 'page'],
    ]);
  });

  it('fires the ticket alert on a slow steady burn above 1x over 3d and 6h', () => {
    const h = harness('{ availability: 99.9 }');
    h.run(7 * 60, { total: 1000, errors: 2 });
    const o = h.engine.evaluate().objectives[0]!;
    expect(o.alerts.map((a) => [a.severity, a.firing])).toEqual([['page', false], ['ticket', true]]);
    expect(o.budgetRemaining).toBeCloseTo(-1, 9);
  });

  it('exposes burn rates, alert states and budget as Prometheus gauges', async () => {
    const h = harness('{ availability: 99.9 }');
    h.run(60, { total: 2000, errors: 1 });
    h.run(5, { total: 2000, errors: 400 });
    const text = await h.engine.registry.metrics();
    expect(text).toContain(`palisade_slo_alert_firing{route="${SLO}",objective="availability",severity="page"} 1`);
    expect(text).toContain(`palisade_slo_alert_firing{route="${SLO}",objective="availability",severity="ticket"} 1`);
    const burn5m = new RegExp(`palisade_slo_burn_rate\\{route="${SLO}",objective="availability",window="5m"\\} ([0-9.e+-]+)`).exec(text);
    expect(Number(burn5m?.[1])).toBeCloseTo(200, 6);
    expect(text).toMatch(new RegExp(`palisade_slo_error_budget_remaining_ratio\\{route="${SLO}",objective="availability"\\} -?[0-9.]+`));
  });

  it('ignores load of SLOs the configuration does not declare and metrics that are not SLO counters', () => {
    const h = harness('{ availability: 99.9 }');
    h.report(100, 100, 0, 'default/other.0');
    h.engine.ingest([create(ClusterStatsSchema, { clusterName: 'c', upstreamLocalityStats: [{ loadMetricStats: [{ metricName: 'cpu', numRequestsFinishedWithMetric: 5n, totalMetricValue: 1 }] }] })]);
    const status = h.engine.evaluate();
    expect(status.objectives.map((o) => [o.route, o.requests])).toEqual([[SLO, 0]]);
    expect(h.engine.registry.getSingleMetric('palisade_slo_burn_rate')).toBeDefined();
  });

  it('adds SLO counters reported per endpoint as well as per locality', () => {
    const h = harness('{ availability: 99.9 }');
    const metric = (counter: string, n: number) => ({ metricName: `palisade.slo/${encodeURIComponent(SLO)}/${counter}`, numRequestsFinishedWithMetric: BigInt(n), totalMetricValue: n });
    h.engine.ingest([create(ClusterStatsSchema, {
      clusterName: 'c',
      upstreamLocalityStats: [{ loadMetricStats: [metric('total', 10)], upstreamEndpointStats: [{ loadMetricStats: [metric('total', 5), metric('errors', 1)] }] }],
    })]);
    expect(h.engine.evaluate().objectives[0]).toMatchObject({ requests: 15, bad: 1 });
  });

  it('shrinks every window by the time scale: with 60 a 5-second burst after a minute of traffic pages', () => {
    const h = harness('{ availability: 99.9 }', { timeScale: 60 });
    h.run(60, { total: 40, errors: 0 }); // a second per step: one scaled hour
    h.run(5, { total: 40, errors: 10 });
    const o = h.engine.evaluate();
    expect(o.timeScale).toBe(60);
    expect(o.objectives[0]!.alerts.find((a) => a.severity === 'page')!.firing).toBe(true);
    h.run(31, { total: 40, errors: 0 });
    expect(h.engine.evaluate().objectives[0]!.alerts.find((a) => a.severity === 'page')!.firing).toBe(false);
  });

  it('drops the objectives of a Route that loses its slo, and starts new ones empty', () => {
    let state = stateFrom({ 'services.yaml': SERVICE, 'routes.yaml': routeYaml('{ availability: 99.9 }') });
    const h = harness('{ availability: 99.9 }', { state: () => state });
    h.run(3, { total: 10, errors: 0 });
    expect(h.engine.evaluate().objectives.map((o) => [o.objective, o.requests])).toEqual([['availability', 30]]);
    state = stateFrom({ 'services.yaml': SERVICE, 'routes.yaml': routeYaml('{ latency: { threshold: 1s, percent: 95 } }') });
    expect(h.engine.evaluate().objectives.map((o) => [o.objective, o.target, o.requests])).toEqual([['latency', 95, 30]]);
    state = stateFrom({ 'services.yaml': SERVICE, 'routes.yaml': routeYaml('{ availability: 99 }').replace(/ {6}slo: .*\n/, '') });
    expect(h.engine.evaluate().objectives).toEqual([]);
  });

  it('logs a firing alert of an objective removed from the configuration as resolved, once', () => {
    let state = stateFrom({ 'services.yaml': SERVICE, 'routes.yaml': routeYaml('{ availability: 99.9 }') });
    const h = harness('{ availability: 99.9 }', { state: () => state });
    h.run(10, { total: 100, errors: 50 });
    expect(h.engine.evaluate().objectives[0]!.alerts.map((a) => a.firing)).toEqual([true, true]);
    state = stateFrom({ 'services.yaml': SERVICE, 'routes.yaml': routeYaml('{ latency: { threshold: 1s, percent: 95 } }') });
    h.engine.evaluate();
    h.engine.evaluate();
    expect(h.logs.filter((l) => l.msg === 'SLO burn-rate alert resolved').map((l) => [l.objective, l.severity, l.reason])).toEqual([
      ['availability', 'page', 'objective removed from the configuration'],
      ['availability', 'ticket', 'objective removed from the configuration'],
    ]);
  });

  it.each([
    [{ timeScale: 0.5 }, 'timeScale must be a number >= 1, got 0.5'],
    [{ timeScale: Number.NaN }, 'timeScale must be a number >= 1, got NaN'],
    [{ resolutionMs: 10 }, 'resolutionMs must be between 1000 and 300000, got 10'],
    [{ minRequests: 0 }, 'minRequests must be an integer >= 1, got 0'],
    [{ minRequests: 1.5 }, 'minRequests must be an integer >= 1, got 1.5'],
  ])('refuses %j with PAL_ERR_SLO_INVALID_OPTION', (options, message) => {
    expect(() => new SloEngine({ state: () => undefined, logger: pino({ level: 'silent' }), ...options })).toThrow(expect.objectContaining({ code: 'PAL_ERR_SLO_INVALID_OPTION', message }));
  });
});
