import { describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { MeteringSchema } from '../../../xds/gen/palisade/v1/mesh_pb.js';
import { isDenied, NO_ROUTE, UsageMeter, type UsageRecord } from '../../../sidecar/telemetry/usage-meter.ts';
import { boundTenant, claimTenant, headerTenant, MAX_TENANT_BYTES, tenantSettings } from '../../../sidecar/telemetry/tenant.ts';

type Facts = UsageRecord['facts'];

function record(over: Partial<Omit<UsageRecord, 'facts'>> & { facts?: Partial<Facts> } = {}): UsageRecord {
  const { facts, ...rest } = over;
  return {
    listener: 'inbound', status: 200, bytesIn: 10, bytesOut: 100, headers: null,
    ...rest,
    facts: { route: 'api', cluster: 'inbound|8080||web', policy: null, quota: null, tenant: null, jwt: null, ...facts },
  };
}

describe('UsageMeter', () => {
  it('counts requests, bytes, denials and errors per tenant, route and listener', () => {
    const m = new UsageMeter();
    m.record(record({ headers: { 'x-tenant-id': 'a' } }));
    m.record(record({ headers: { 'x-tenant-id': 'a' }, bytesIn: 5, bytesOut: 7 }));
    m.record(record({ headers: { 'x-tenant-id': 'a' }, status: 403, facts: { policy: { decision: 'deny' } } }));
    m.record(record({ headers: { 'x-tenant-id': 'a' }, status: 503 }));
    m.record(record({ headers: { 'x-tenant-id': 'b' }, status: 429, facts: { quota: { result: 'over' } } }));
    m.record(record({ listener: 'outbound', headers: { 'x-tenant-id': 'a' }, facts: { cluster: 'api.default' } }));
    const taken = m.take().sort((x, y) => `${x.listener}${x.tenant}`.localeCompare(`${y.listener}${y.tenant}`));
    expect(taken).toEqual([
      { listener: 'inbound', cluster: 'inbound|8080||web', tenant: 'a', route: 'api', requests: 4, bytesIn: 35, bytesOut: 307, denied: 1, errors: 1 },
      { listener: 'inbound', cluster: 'inbound|8080||web', tenant: 'b', route: 'api', requests: 1, bytesIn: 10, bytesOut: 100, denied: 1, errors: 0 },
      { listener: 'outbound', cluster: 'api.default', tenant: 'a', route: 'api', requests: 1, bytesIn: 10, bytesOut: 100, denied: 0, errors: 0 },
    ]);
  });

  it('takes deltas: a second take holds only what came after the first', () => {
    const m = new UsageMeter();
    m.record(record({ facts: { tenant: 'a' } }));
    expect(m.take()).toHaveLength(1);
    expect(m.take()).toEqual([]);
    m.record(record({ facts: { tenant: 'a' } }));
    expect(m.take().map((c) => c.requests)).toEqual([1]);
  });

  it('prefers facts.tenant, and counts requests without a tenant as "unknown" and without a route as "-"', () => {
    const m = new UsageMeter();
    m.record(record({ headers: { 'x-tenant-id': 'from-header' }, facts: { tenant: 'from-facts' } }));
    m.record(record({ facts: { route: null, cluster: null } }));
    expect(m.take().map((c) => [c.tenant, c.route, c.cluster])).toEqual([['from-facts', 'api', 'inbound|8080||web'], ['unknown', NO_ROUTE, 'inbound']]);
  });

  it('stamps the header tenant on the facts at request start', () => {
    const m = new UsageMeter();
    const facts = { tenant: null as string | null };
    m.stamp({ 'x-tenant-id': 'acme' }, facts);
    expect(facts.tenant).toBe('acme');
    const claim = new UsageMeter(tenantSettings(create(MeteringSchema, { tenant: { source: { case: 'jwtClaim', value: 'kc.org' } }, maxTenants: 5 })));
    const other = { tenant: null as string | null };
    claim.stamp({ 'x-tenant-id': 'acme' }, other);
    expect(other.tenant).toBeNull();
  });

  it('counts tenants past the interval budget as "other", and starts a new budget after take', () => {
    const m = new UsageMeter(tenantSettings(create(MeteringSchema, { tenant: { source: { case: 'header', value: 'x-t' } }, maxTenants: 2 })));
    for (const t of ['a', 'b', 'c', 'd', 'a']) m.record(record({ headers: { 'x-t': t } }));
    expect(Object.fromEntries(m.take().map((c) => [c.tenant, c.requests]))).toEqual({ a: 2, b: 1, other: 2 });
    expect(m.stats().overflowed).toBe(2);
    m.record(record({ headers: { 'x-t': 'c' } }));
    expect(m.take().map((c) => c.tenant)).toEqual(['c']);
  });

  it.each([
    [403, { policy: { decision: 'deny' } }, true],
    [401, { policy: { decision: 'unauthenticated' } }, true],
    [429, { quota: { result: 'over' } }, true],
    [503, { quota: { result: 'shed' } }, true],
    [200, { policy: { decision: 'dry-run-deny' } }, false],
    [200, { quota: { result: 'shadow-over' } }, false],
    [403, {}, false],
    [503, { quota: { result: 'store-error-open' } }, false],
  ] as const)('status %i with %j is a denial: %s', (status, facts, denied) => {
    expect(isDenied(record({ status, facts }))).toBe(denied);
  });
});

describe('tenant sources', () => {
  it('reads the first value of a repeated header', () => {
    expect(headerTenant('X-Tenant').tenantOf({ 'x-tenant': ['one', 'two'] as unknown as string }, null)).toBe('one');
  });

  it('reads a nested claim of the named provider, and "unknown" when absent or not a string', () => {
    const src = claimTenant('kc.org.id');
    expect(src.tenantOf(null, { kc: { org: { id: 'acme' } } })).toBe('acme');
    expect(src.tenantOf(null, { kc: { org: { id: 42 } } })).toBe('42');
    expect(src.tenantOf(null, { other: { org: { id: 'acme' } } })).toBe('unknown');
    expect(src.tenantOf(null, { kc: { org: { id: { x: 1 } } } })).toBe('unknown');
    expect(src.tenantOf(null, null)).toBe('unknown');
  });

  it('cuts tenants to 128 bytes without splitting a character', () => {
    expect(boundTenant('a'.repeat(200))).toBe('a'.repeat(MAX_TENANT_BYTES));
    const cut = boundTenant(`${'a'.repeat(127)}é`);
    expect(cut).toBe('a'.repeat(127));
    expect(Buffer.byteLength(boundTenant('€'.repeat(100)))).toBe(126);
    expect(boundTenant('')).toBe('unknown');
  });

  it('defaults to the x-tenant-id header and 10 000 tenants without metering settings', () => {
    const s = tenantSettings(undefined);
    expect([s.source.description, s.maxTenants]).toEqual(['header:x-tenant-id', 10_000]);
  });
});
