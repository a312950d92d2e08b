import { describe, expect, it } from 'vitest';
import { createQuotaValidator, quotaProblems, quotaSelects } from '../../../sidecar/quota/quota-validator.ts';
import { quota, Quota_Scope } from './fixtures.ts';

const header = (h: string) => ({ source: { case: 'header' as const, value: h } });

describe('quota validation', () => {
  it('accepts a complete quota (routes, descriptors, limits with match, priority classes)', () => {
    const q = quota('api', {}, {
      routes: [{ name: 'api', pathPrefix: '/api/', methods: ['GET', 'POST'] }],
      descriptors: [
        { key: 'tenant', value: { source: { case: 'jwtClaim', value: 'idp.org.id' } } },
        { key: 'route', value: { source: { case: 'route', value: true } } },
      ],
      limits: [
        { name: 'gold', match: { tenant: 'gold' }, tokens: 100n, interval: { seconds: 1n } },
        { name: 'rest', tokens: 10n, interval: { seconds: 1n } },
      ],
      priorityAttribute: header('x-priority'),
      priorityClasses: [{ name: 'low', values: ['low'], shedAtPercent: 50 }, { name: 'high', values: ['high'], shedAtPercent: 95 }],
      defaultPriorityClass: 'low',
    });
    expect(quotaProblems(q)).toEqual([]);
  });

  it.each([
    ['a name without namespace', { name: 'api' }, 'name: must be <namespace>/<name>, got "api"'],
    ['duplicate descriptor keys', { descriptors: [{ key: 'a', value: header('x-a') }, { key: 'a', value: header('x-b') }] }, 'descriptors[1].key: duplicate descriptor key "a"'],
    ['a jwt claim without a path', { descriptors: [{ key: 'a', value: { source: { case: 'jwtClaim' as const, value: 'idp' } } }] }, 'descriptors[0].value.jwt_claim: must be "<provider>.<claim path>" (e.g. "keycloak.tenant"), got "idp"'],
    ['an upper-case header', { descriptors: [{ key: 'a', value: header('X-Tenant') }] }, 'descriptors[0].value.header: must be lower case, got "X-Tenant"'],
    ['a false boolean source', { descriptors: [{ key: 'a', value: { source: { case: 'principal' as const, value: false } } }] }, 'descriptors[0].value.principal: must be true when set, got false'],
    ['a match key that is not a descriptor key', { limits: [{ name: 'l', match: { tier: 'gold' }, tokens: 1n, interval: { seconds: 1n } }] }, 'limits[0].match["tier"]: not a descriptor key of the quota (descriptors: tenant)'],
    ['duplicate limit names', { limits: [{ name: 'l', tokens: 1n, interval: { seconds: 1n } }, { name: 'l', tokens: 2n, interval: { seconds: 1n } }] }, 'limits[1].name: duplicate limit name "l"'],
    ['an interval with a fraction', { limits: [{ name: 'l', tokens: 1n, interval: { seconds: 1n, nanos: 500_000_000 } }] }, 'limits[0].interval: must be whole seconds, got 1.5s'],
    ['duplicate route names', { routes: [{ name: 'r', pathPrefix: '/a' }, { name: 'r', pathPrefix: '/b' }] }, 'routes[1].name: duplicate route name "r"'],
    ['a lower-case method', { routes: [{ name: 'r', pathPrefix: '/a', methods: ['get'] }] }, 'routes[0].methods[0]: must be an HTTP method in upper case, got "get"'],
    ['a default class that does not exist', { priorityAttribute: header('x-p'), priorityClasses: [{ name: 'low', values: ['l'] }], defaultPriorityClass: 'mid' }, 'default_priority_class: "mid" is not a priority class (classes: low)'],
    ['classes without an attribute', { priorityClasses: [{ name: 'low', values: ['l'] }] }, 'priority_attribute: must be set when priority_classes are defined (it chooses the class)'],
    ['an attribute without classes', { priorityAttribute: header('x-p') }, 'priority_classes: priority_attribute is set but no priority class is defined'],
    ['a value in two classes', { priorityAttribute: header('x-p'), priorityClasses: [{ name: 'a', values: ['v'] }, { name: 'b', values: ['v'] }] }, 'priority_classes[1].values[0]: "v" already selects class "a"'],
    ['duplicate class names', { priorityAttribute: header('x-p'), priorityClasses: [{ name: 'a', values: ['v'] }, { name: 'a', values: ['w'] }] }, 'priority_classes[1].name: duplicate priority class "a"'],
  ])('refuses %s', (_what, patch, error) => {
    const q = quota('api', {}, patch);
    expect(quotaProblems(q)).toEqual([error]);
  });

  it('collects every problem of a quota, not only the first', () => {
    const q = quota('api', {}, {
      name: 'api',
      descriptors: [{ key: 'a', value: header('x-a') }, { key: 'a', value: header('X-B') }],
    });
    expect(quotaProblems(q)).toEqual([
      'name: must be <namespace>/<name>, got "api"',
      'descriptors[1].key: duplicate descriptor key "a"',
      'descriptors[1].value.header: must be lower case, got "X-B"',
    ]);
  });

  it('NACKs a GLOBAL quota that selects this sidecar when the bootstrap has no quota.redis, naming what to configure', () => {
    const v = createQuotaValidator({ service: 'web', namespace: 'default', redis: false });
    const errors = v(quota('api', {}, { scope: Quota_Scope.GLOBAL }));
    expect(errors).toEqual(['scope: default/api is GLOBAL but this sidecar has no quota store: configure quota.redis (address: host:port, or nodes with cluster: true) in the sidecar bootstrap, or make the quota LOCAL']);
    expect(createQuotaValidator({ service: 'web', namespace: 'default', redis: true })(quota('api', {}, { scope: Quota_Scope.GLOBAL }))).toEqual([]);
    // Another Service's GLOBAL quota is not this sidecar's to enforce.
    expect(v(quota('api', {}, { scope: Quota_Scope.GLOBAL, services: ['billing'] }))).toEqual([]);
  });

  it('NACKs a quota that selects a --workers N sidecar, saying the limit would be multiplied', () => {
    const v = createQuotaValidator({ service: 'web', namespace: 'default', redis: false, workers: 4 });
    const [error] = v(quota('api'));
    expect(error).toContain('default/api selects this workload, but a sidecar with --workers 4 does not enforce quotas');
    expect(error).toContain('up to 4 times the limit');
    expect(v(quota('api', {}, { services: ['billing'] }))).toEqual([]);
  });

  it.each([
    [[], 'web', 'default', true],
    [['web', 'api'], 'web', 'default', true],
    [['api'], 'web', 'default', false],
    [[], 'web', 'other', false],
  ])('selects by services %j: service %s in namespace %s → %s', (services, service, namespace, selected) => {
    expect(quotaSelects(quota('api', {}, { services }), service, namespace)).toBe(selected);
  });
});
