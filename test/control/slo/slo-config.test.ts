/**
 * A Route rule's `slo`: validated at its field with its value, defaulted (window 30d), carried
 * to the sidecars in the RDS route's `metadata.filter_metadata["palisade.slo"]`, compiled by
 * the sidecar's route table into `sloRoute`, and read back as the engine's objectives.
 */
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { formatConfigError, parseConfig } from '../../../control/config/parse.ts';
import { serializeConfig } from '../../../control/config/serialize.ts';
import type { RouteResource } from '../../../control/config/schema/route.ts';
import { translate } from '../../../control/translate/translator.ts';
import { sloObjectives } from '../../../control/slo/objectives.ts';
import { ROUTE_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import type { RouteConfiguration } from '../../../xds/gen/envoy/config/route/v3/route_pb.js';
import { compileRouteTable } from '../../../sidecar/routing/route-table.ts';
import { stateFrom } from '../../helpers/desired-state.ts';

const V = 'palisade.dev/v1';

function route(slo: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: V, kind: 'Route', metadata: { name: 'web' },
    spec: { hosts: ['web.local'], http: [{ name: 'api', backends: [{ service: 'web' }], slo, ...extra }] },
  };
}

const SERVICE = `apiVersion: ${V}\nkind: Service\nmetadata: { name: web }\nspec: { port: 8080 }\n`;

function parsedSlo(slo: unknown): unknown {
  const r = parseConfig(stringify(route(slo)), 'f.yaml');
  if (!r.valid) throw new Error(r.errors.map(formatConfigError).join('; '));
  return (r.result[0] as RouteResource).spec.http[0]!.slo;
}

describe('Route slo: valid', () => {
  it.each([
    ['availability only, window defaulted', { availability: 99.9 }, { availability: 99.9, window: '30d' }],
    ['latency only', { latency: { threshold: '250ms', percent: 99 } }, { latency: { threshold: '250ms', percent: 99 }, window: '30d' }],
    ['both, a 28-day window', { availability: 99.5, latency: { threshold: '1.5s', percent: 95 }, window: '28d' }, { availability: 99.5, latency: { threshold: '1.5s', percent: 95 }, window: '28d' }],
    ['a window in hours', { availability: 99, window: '168h' }, { availability: 99, window: '168h' }],
    ['fractions close to the bounds', { availability: 99.999, latency: { threshold: '1ms', percent: 0.5 }, window: '1d' }, { availability: 99.999, latency: { threshold: '1ms', percent: 0.5 }, window: '1d' }],
    ['the longest window', { availability: 90, window: '90d' }, { availability: 90, window: '90d' }],
  ])('accepts %s', (_title, slo, expected) => {
    expect(parsedSlo(slo)).toEqual(expected);
  });

  it('round-trips through serializeConfig with the default window spelled out', () => {
    const first = parseConfig(stringify(route({ availability: 99.9, latency: { threshold: '250ms', percent: 99 } })), 'f.yaml');
    if (!first.valid) throw new Error('invalid');
    const text = serializeConfig(first.result);
    expect(text).toContain('slo:\n');
    expect(text).toContain('window: 30d');
    const again = parseConfig(text, 'g.yaml');
    if (!again.valid) throw new Error('invalid');
    expect(again.result.map(({ source: _s, ...r }) => r)).toEqual(first.result.map(({ source: _s, ...r }) => r));
  });
});

describe('Route slo: invalid', () => {
  it.each([
    ['neither objective', {}, '/spec/http/0/slo', 'at least one of availability, latency must be set'],
    ['only a window', { window: '30d' }, '/spec/http/0/slo', 'at least one of availability, latency must be set'],
    ['availability 100', { availability: 100 }, '/spec/http/0/slo/availability', 'must be above 0 and below 100 (100 leaves no error budget), got 100'],
    ['availability 0', { availability: 0 }, '/spec/http/0/slo/availability', 'must be above 0 and below 100 (100 leaves no error budget), got 0'],
    ['availability 101', { availability: 101 }, '/spec/http/0/slo/availability', 'must be <= 100, got 101'],
    ['availability as a string', { availability: '99.9%' }, '/spec/http/0/slo/availability', 'must be a number, got "99.9%"'],
    ['latency percent 100', { latency: { threshold: '1s', percent: 100 } }, '/spec/http/0/slo/latency/percent', 'must be above 0 and below 100 (100 leaves no error budget), got 100'],
    ['latency without threshold', { latency: { percent: 99 } }, '/spec/http/0/slo/latency/threshold', 'missing required field "threshold"'],
    ['latency without percent', { latency: { threshold: '1s' } }, '/spec/http/0/slo/latency/percent', 'missing required field "percent"'],
    ['a zero threshold', { latency: { threshold: '0ms', percent: 99 } }, '/spec/http/0/slo/latency/threshold', 'must be a positive duration, got "0ms"'],
    ['a threshold without unit', { latency: { threshold: '250', percent: 99 } }, '/spec/http/0/slo/latency/threshold', 'must be a duration like 250ms, 1.5s, 2m or 1h, got "250"'],
    ['a window in minutes', { availability: 99, window: '30m' }, '/spec/http/0/slo/window', 'must be whole days or hours like 30d or 720h, got "30m"'],
    ['a window with a fraction', { availability: 99, window: '1.5d' }, '/spec/http/0/slo/window', 'must be whole days or hours like 30d or 720h, got "1.5d"'],
    ['an empty window', { availability: 99, window: '' }, '/spec/http/0/slo/window', 'must not be empty'],
    ['a window under a day', { availability: 99, window: '12h' }, '/spec/http/0/slo/window', 'must be between 1d and 90d, got "12h"'],
    ['a window over 90 days', { availability: 99, window: '91d' }, '/spec/http/0/slo/window', 'must be between 1d and 90d, got "91d"'],
    ['an unknown field', { availability: 99, target: 99 }, '/spec/http/0/slo/target', 'unknown field "target"; known fields: availability, latency, window'],
    ['a misspelt field', { availabilty: 99 }, '/spec/http/0/slo/availabilty', 'unknown field "availabilty" (did you mean "availability"?)'],
  ])('rejects %s', (_title, slo, path, message) => {
    expect(parseConfig(stringify(route(slo)), 'f.yaml')).toEqual({ valid: false, errors: [{ file: 'f.yaml', index: 0, path, message }] });
  });

  it('reports every problem of an slo at once', () => {
    const r = parseConfig(stringify(route({ availability: 100, latency: { threshold: '1s', percent: 0 }, window: '100d' })), 'f.yaml');
    expect(r.valid ? [] : r.errors.map((e) => e.path)).toEqual(['/spec/http/0/slo/availability', '/spec/http/0/slo/latency/percent', '/spec/http/0/slo/window']);
  });
});

describe('Route slo: translation and the sidecar route table', () => {
  const ROUTES = `apiVersion: ${V}
kind: Route
metadata: { name: web }
spec:
  hosts: [web.local]
  http:
    - name: api
      match: [{ prefix: /api }, { prefix: /v2/api }]
      backends: [{ service: web }]
      slo: { availability: 99.9, latency: { threshold: 250ms, percent: 99 } }
    - match: [{ prefix: /static }]
      backends: [{ service: web }]
      slo: { availability: 99 }
    - backends: [{ service: web }]
`;

  function outbound(): RouteConfiguration {
    const state = stateFrom({ 'services.yaml': SERVICE, 'routes.yaml': ROUTES });
    return (translate(state, { kind: 'sidecar', namespace: 'default' })[ROUTE_TYPE_URL] as RouteConfiguration[])[0]!;
  }

  it('puts the rule\'s SLO on each of its RDS routes, and nothing on routes without one', () => {
    const vh = outbound().virtualHosts.find((v) => v.name === 'default/web')!;
    expect(vh.routes.map((r) => [r.name, r.metadata?.filterMetadata['palisade.slo'] ?? null])).toEqual([
      ['web.api.0', { name: 'default/web.api', availability: 99.9, latency_threshold_ms: 250, latency_percent: 99 }],
      ['web.api.1', { name: 'default/web.api', availability: 99.9, latency_threshold_ms: 250, latency_percent: 99 }],
      ['web.1', { name: 'default/web.1', availability: 99 }],
      ['web.2', null],
    ]);
  });

  it('compiles the SLO into the matched route and the table\'s by-name lookup', () => {
    const table = compileRouteTable(outbound());
    if (!table.valid) throw new Error(table.errors.join('; '));
    const headers = () => undefined;
    const cluster = (table.result.match('web.local', '/api/x', 'GET', headers)!.action as { cluster: string }).cluster;
    expect(table.result.match('web.local', '/v2/api/x', 'GET', headers)!.sloRoute).toEqual({ name: 'default/web.api', latencyThresholdMs: 250, cluster });
    expect(table.result.match('web.local', '/static/a.css', 'GET', headers)!.sloRoute).toEqual({ name: 'default/web.1', latencyThresholdMs: null, cluster });
    expect(table.result.match('web.local', '/other', 'GET', headers)!.sloRoute).toBeNull();
    expect(table.result.sloRoute('web.api.1')).toEqual({ name: 'default/web.api', latencyThresholdMs: 250, cluster });
    expect(table.result.sloRoute('web.2')).toBeNull();
    expect(Object.isFrozen(table.result.sloRoute('web.1'))).toBe(true);
  });

  it.each([
    [{ availability: 99 }, 'virtual_hosts[0].routes[0].metadata.filter_metadata["palisade.slo"].name: must be a non-empty string, got null'],
    [{ name: 'x', latency_threshold_ms: -1 }, 'virtual_hosts[0].routes[0].metadata.filter_metadata["palisade.slo"].latency_threshold_ms: must be a positive number, got -1'],
    [{ name: 'x', latency_threshold_ms: '250' }, 'virtual_hosts[0].routes[0].metadata.filter_metadata["palisade.slo"].latency_threshold_ms: must be a positive number, got "250"'],
  ])('NACKs a route whose palisade.slo metadata is %j', (md, error) => {
    const rc = outbound();
    rc.virtualHosts = rc.virtualHosts.filter((v) => v.name === 'default/web');
    rc.virtualHosts[0]!.routes[0]!.metadata = { $typeName: 'envoy.config.core.v3.Metadata', filterMetadata: { 'palisade.slo': md }, typedFilterMetadata: {} };
    expect(compileRouteTable(rc)).toEqual({ valid: false, errors: [error] });
  });

  it('lists one objective per SLO and kind for the engine', () => {
    const state = stateFrom({ 'services.yaml': SERVICE, 'routes.yaml': ROUTES });
    expect(sloObjectives(state)).toEqual([
      { route: 'default/web.api', objective: 'availability', target: 0.999, percent: 99.9, thresholdMs: null, windowMs: 30 * 86_400_000 },
      { route: 'default/web.api', objective: 'latency', target: 0.99, percent: 99, thresholdMs: 250, windowMs: 30 * 86_400_000 },
      { route: 'default/web.1', objective: 'availability', target: 0.99, percent: 99, thresholdMs: null, windowMs: 30 * 86_400_000 },
    ]);
  });
});
