/**
 * A Quota file in the config directory reaches the sidecar group of its namespace over real
 * xDS (a real control plane on loopback, a raw ADS stream): as palisade.v1.Quota named
 * "<namespace>/<name>", updated when the file changes and withdrawn when it is deleted; an
 * invalid edit is refused and the last good Quota stays.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { NodeSchema } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { QuotaSchema, Quota_Scope, type Quota } from '../../xds/gen/palisade/v1/quota_pb.js';
import { QUOTA_TYPE_URL } from '../../xds/resources/type-urls.ts';
import { RawSotwStream, unpackAll } from '../helpers/raw-ads-client.ts';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.ts';
import { until } from '../helpers/until.ts';

const SERVICE = 'apiVersion: palisade.dev/v1\nkind: Service\nmetadata: { name: backend, namespace: shop }\nspec: { port: 8080 }\n';

const quota = (tokens: number, scope = 'local') => `apiVersion: palisade.dev/v1
kind: Quota
metadata: { name: per-tenant, namespace: shop }
spec:
  selector: { services: [backend] }
  descriptors: [{ key: tenant, from: { header: X-Tenant }, default: anonymous }]
  limits: [{ name: all, tokens: ${tokens}, interval: 1m }]
  scope: ${scope}
`;

const sidecarNode = (namespace: string) => create(NodeSchema, {
  id: `sidecar-${namespace}`, cluster: 'test', userAgentName: 'palisade-sidecar', metadata: { NAMESPACE: namespace },
});

let tcp: TestControlPlane;
const streams: RawSotwStream[] = [];

beforeEach(async () => {
  tcp = await startControlPlane({ 'services.yaml': SERVICE, 'quota.yaml': quota(100) });
});

afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  await tcp.close();
});

function open(namespace: string): RawSotwStream {
  const s = new RawSotwStream(tcp.address);
  streams.push(s);
  s.send({ node: sidecarNode(namespace), typeUrl: QUOTA_TYPE_URL });
  return s;
}

/** Reads (and ACKs) responses until one satisfies `ok`. */
async function nextUntil(s: RawSotwStream, ok: (quotas: Quota[]) => boolean): Promise<Quota[]> {
  for (let i = 0; i < 20; i++) {
    const res = await s.next(10_000);
    expect(res.typeUrl).toBe(QUOTA_TYPE_URL);
    s.ack(res);
    const quotas = unpackAll(res, QuotaSchema);
    if (ok(quotas)) return quotas;
  }
  throw new Error('no matching Quota response in 20 responses');
}

describe('Quota over xDS', () => {
  it('sends the Quota of a config file to the sidecar group of its namespace', async () => {
    const s = open('shop');
    const [q] = await nextUntil(s, (qs) => qs.length === 1);
    expect(q!.name).toBe('shop/per-tenant');
    expect(q!.services).toEqual(['backend']);
    expect(q!.descriptors.map((d) => [d.key, d.value?.source.case, d.value?.source.value, d.defaultValue])).toEqual([['tenant', 'header', 'x-tenant', 'anonymous']]);
    expect(q!.limits.map((l) => [l.name, l.tokens, l.interval?.seconds])).toEqual([['all', 100n, 60n]]);
    expect(q!.scope).toBe(Quota_Scope.LOCAL);
  });

  it('sends no Quota to a sidecar group of another namespace', async () => {
    const s = open('other');
    const res = await s.next(10_000);
    expect(res.typeUrl).toBe(QUOTA_TYPE_URL);
    expect(res.resources).toEqual([]);
  });

  it('pushes an edited Quota, keeps it through an invalid edit, and withdraws it when the file is deleted', async () => {
    const s = open('shop');
    await nextUntil(s, (qs) => qs.length === 1);
    await tcp.write('quota.yaml', quota(250, 'global'));
    const [edited] = await nextUntil(s, (qs) => qs[0]?.limits[0]?.tokens === 250n);
    expect(edited!.scope).toBe(Quota_Scope.GLOBAL);

    const rejections = tcp.cp.status.rejections;
    await tcp.write('quota.yaml', quota(0));
    await until('the rejection', () => tcp.cp.status.rejections > rejections);
    expect(tcp.cp.status.lastRejection!.errors).toEqual([`${join(tcp.dir, 'quota.yaml')}#0 /spec/limits/0/tokens: must be >= 1, got 0`]);
    expect(tcp.cp.state!.quotas.get('shop/per-tenant')!.spec.limits[0]!.tokens).toBe(250);

    await rm(join(tcp.dir, 'quota.yaml'));
    const last = await nextUntil(s, (qs) => qs.length === 0 || qs[0]?.limits[0]?.tokens !== 250n);
    expect(last).toEqual([]);
  });
});
