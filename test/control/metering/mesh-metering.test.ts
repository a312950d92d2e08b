import { describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { parseConfig } from '../../../control/config/parse.ts';
import type { MeshResource } from '../../../control/config/schema.ts';
import { meteringConfig, reportIntervalMs } from '../../../control/metering/mesh-metering.ts';
import { MeshConfigSchema } from '../../../xds/gen/palisade/v1/mesh_pb.js';
import { TYPE_REGISTRY } from '../../../xds/resources/registry.ts';
import { validateMessage } from '../../../xds/validate/pgv.ts';

function mesh(metering: string): MeshResource {
  const r = parseConfig(`apiVersion: palisade.dev/v1\nkind: Mesh\nmetadata: { name: m }\nspec: { trustDomain: cluster.local${metering === '' ? '' : `, metering: ${metering}`} }\n`, 'mesh.yaml');
  if (!r.valid) throw new Error(JSON.stringify(r.errors));
  return r.result[0] as MeshResource;
}

function meshConfigProblems(metering: string): string[] {
  const m = mesh(metering);
  const v = validateMessage(MeshConfigSchema, create(MeshConfigSchema, { name: 'm', trustDomain: 'cluster.local', metering: meteringConfig(m.spec.metering) }), { registry: TYPE_REGISTRY });
  return v.valid ? [] : v.errors;
}

describe('Mesh spec.metering', () => {
  it('defaults to the x-tenant-id header, 10s and 10 000 tenants', () => {
    const m = mesh('');
    expect(m.spec.metering).toBeUndefined();
    const c = meteringConfig(m.spec.metering);
    expect([c.tenant?.source, c.reportInterval?.seconds, c.reportInterval?.nanos, c.maxTenants]).toEqual([{ case: 'header', value: 'x-tenant-id' }, 10n, 0, 10_000]);
    expect(reportIntervalMs(undefined)).toBe(10_000);
  });

  it('carries a claim tenant, a sub-second interval and a tenant budget to MeshConfig', () => {
    const c = meteringConfig(mesh('{ tenant: { jwtClaim: kc.org.id }, reportInterval: 1.5s, maxTenants: 50 }').spec.metering);
    expect([c.tenant?.source, c.reportInterval?.seconds, c.reportInterval?.nanos, c.maxTenants]).toEqual([{ case: 'jwtClaim', value: 'kc.org.id' }, 1n, 500_000_000, 50]);
  });

  it('lower-cases a header name', () => {
    expect(meteringConfig(mesh('{ tenant: { header: X-Org } }').spec.metering).tenant?.source).toEqual({ case: 'header', value: 'x-org' });
  });

  it.each([
    ['{ tenant: { header: x, jwtClaim: a.b } }', '/spec/metering/tenant'],
    ['{ reportInterval: soon }', '/spec/metering/reportInterval'],
    ['{ maxTenants: 0 }', '/spec/metering/maxTenants'],
    ['{ extra: 1 }', '/spec/metering/extra'],
  ])('refuses %s at %s', (metering, path) => {
    const r = parseConfig(`apiVersion: palisade.dev/v1\nkind: Mesh\nmetadata: { name: m }\nspec: { trustDomain: cluster.local, metering: ${metering} }\n`, 'mesh.yaml');
    expect(r.valid).toBe(false);
    if (!r.valid) expect(r.errors.map((e) => e.path)).toContain(path);
  });

  it('is refused by the MeshConfig rules outside 100ms..1h', () => {
    expect(meshConfigProblems('{ reportInterval: 50ms }').join()).toMatch(/metering\.report_interval/);
    expect(meshConfigProblems('{ reportInterval: 2h }').join()).toMatch(/metering\.report_interval/);
    expect(meshConfigProblems('{ reportInterval: 100ms }')).toEqual([]);
  });
});
