import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { NodeSchema } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import { ClusterStatsSchema, type ClusterStats } from '../../../xds/gen/envoy/config/endpoint/v3/load_report_pb.js';
import { checkQuery, parseUsageMetric, UsageStore } from '../../../control/metering/usage-store.ts';

const node = create(NodeSchema, { id: 'web-1' });
const dirs: string[] = [];
const stores: UsageStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'palisade-usage-'));
  dirs.push(d);
  return d;
}

function open(dir: string, onError?: (err: Error) => void): UsageStore {
  const s = new UsageStore({ dir, flushMs: 60_000, ...(onError ? { onError } : {}) });
  stores.push(s);
  return s;
}

function stats(cluster: string, metrics: Record<string, number>): ClusterStats {
  return create(ClusterStatsSchema, {
    clusterName: cluster,
    upstreamLocalityStats: [{ loadMetricStats: Object.entries(metrics).map(([metricName, totalMetricValue]) => ({ metricName, totalMetricValue, numRequestsFinishedWithMetric: 1n })) }],
  });
}

const DAY = new Date('2026-11-27T12:00:00Z');

describe('UsageStore', () => {
  it('sums usage metrics per tenant, route and direction, with totals per tenant', async () => {
    const store = open(await tempDir());
    store.ingest(node, [stats('inbound|8080||web', { 'palisade.usage/a/api/requests': 3, 'palisade.usage/a/api/bytes_in': 30, 'palisade.usage/a/api/denied': 1 })], DAY);
    store.ingest(node, [stats('inbound|8080||web', { 'palisade.usage/a/api/requests': 2, 'palisade.usage/a/api/errors': 1 })], DAY);
    store.ingest(node, [stats('api.default', { 'palisade.usage/a/api/requests': 1, 'palisade.usage/a/api/bytes_out': 9 }), stats('x', { 'palisade.usage/b%20c/%2F/requests': 4 })], DAY);
    expect(store.query({ day: '2026-11-27' })).toEqual({
      day: '2026-11-27',
      tenants: [
        {
          tenant: 'a',
          routes: [
            { tenant: 'a', route: 'api', direction: 'inbound', requests: 5, bytesIn: 30, bytesOut: 0, denied: 1, errors: 1 },
            { tenant: 'a', route: 'api', direction: 'outbound', requests: 1, bytesIn: 0, bytesOut: 9, denied: 0, errors: 0 },
          ],
          totals: { requests: 6, bytesIn: 30, bytesOut: 9, denied: 1, errors: 1 },
        },
        { tenant: 'b c', routes: [{ tenant: 'b c', route: '/', direction: 'outbound', requests: 4, bytesIn: 0, bytesOut: 0, denied: 0, errors: 0 }], totals: { requests: 4, bytesIn: 0, bytesOut: 0, denied: 0, errors: 0 } },
      ],
    });
    expect(store.query({ day: '2026-11-27', tenant: 'b c' }).tenants.map((t) => t.tenant)).toEqual(['b c']);
  });

  it('skips metrics that are not usage metrics of the expected form', async () => {
    const store = open(await tempDir());
    store.ingest(node, [stats('c', { 'palisade.slo/api/total': 5, 'palisade.usage/a/requests': 1, 'palisade.usage/a/api/nope': 1, 'palisade.usage/%E0/api/requests': 1, 'palisade.usage/a/api/requests': -1 })], DAY);
    expect(store.query({ day: '2026-11-27' }).tenants).toEqual([]);
    expect(store.ignoredMetrics).toBe(4);
  });

  it('counts each report on the UTC day it arrived', async () => {
    const store = open(await tempDir());
    store.ingest(node, [stats('c', { 'palisade.usage/a/api/requests': 1 })], new Date('2026-11-27T23:59:59.999Z'));
    store.ingest(node, [stats('c', { 'palisade.usage/a/api/requests': 2 })], new Date('2026-11-28T00:00:00Z'));
    expect(store.query({ day: '2026-11-27' }).tenants[0]!.totals.requests).toBe(1);
    expect(store.query({ day: '2026-11-28' }).tenants[0]!.totals.requests).toBe(2);
  });

  it('writes each day to <dir>/<day>.json on close and reads it back after a restart', async () => {
    const dir = await tempDir();
    const first = open(dir);
    first.ingest(node, [stats('c', { 'palisade.usage/a/api/requests': 7 })], DAY);
    await first.close();
    expect(await readdir(dir)).toEqual(['2026-11-27.json']);
    expect(JSON.parse(await readFile(join(dir, '2026-11-27.json'), 'utf8'))).toMatchObject({ version: 1, day: '2026-11-27', rows: [{ tenant: 'a', route: 'api', requests: 7 }] });
    const second = open(dir);
    second.ingest(node, [stats('c', { 'palisade.usage/a/api/requests': 1 })], DAY);
    expect(second.query({ day: '2026-11-27' }).tenants[0]!.totals.requests).toBe(8);
  });

  it('lets written days before yesterday leave memory and reads them back from their file', async () => {
    const dir = await tempDir();
    const store = open(dir);
    store.ingest(node, [stats('c', { 'palisade.usage/a/api/requests': 2 })], new Date('2020-01-01T10:00:00Z'));
    await store.flush();
    await writeFile(join(dir, '2020-01-01.json'), JSON.stringify({ version: 1, day: '2020-01-01', updatedAt: '', rows: [{ tenant: 'a', route: 'api', direction: 'inbound', requests: 9, bytesIn: 0, bytesOut: 0, denied: 0, errors: 0 }] }));
    // Read from the file again (the file's 9, not the 2 held before the flush).
    expect(store.query({ day: '2020-01-01' }).tenants[0]!.totals.requests).toBe(9);
  });

  it('sets a corrupt day file aside and starts that day empty', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, '2026-11-27.json'), '{not json');
    const errors: string[] = [];
    const store = open(dir, (err) => errors.push((err as Error & { code: string }).code));
    expect(store.query({ day: '2026-11-27' }).tenants).toEqual([]);
    expect(errors).toEqual(['PAL_ERR_METERING_CORRUPT_FILE']);
    expect((await readdir(dir)).some((f) => f.startsWith('2026-11-27.json.corrupt-'))).toBe(true);
  });
});

describe('checkQuery', () => {
  it('defaults the day to today (UTC)', () => {
    expect(checkQuery({}, new Date('2026-03-01T00:30:00Z'))).toEqual({ tenant: null, day: '2026-03-01' });
  });

  it.each([
    ['day', { day: '2026-02-30' }, 'day must be a date YYYY-MM-DD, got "2026-02-30"'],
    ['day', { day: '2026-1-1' }, 'day must be a date YYYY-MM-DD, got "2026-1-1"'],
    ['day', { day: 'yesterday' }, 'day must be a date YYYY-MM-DD, got "yesterday"'],
    ['tenant', { tenant: '' }, 'tenant must be 1 to 512 characters, got ""'],
  ])('refuses a bad %s: %j', (parameter, q, message) => {
    expect(() => checkQuery(q)).toThrow(expect.objectContaining({ code: 'PAL_ERR_METERING_INVALID_QUERY', parameter, message }));
  });
});

describe('parseUsageMetric', () => {
  it('decodes percent-encoded tenant and route', () => {
    expect(parseUsageMetric('palisade.usage/a%2Fb/r%25/bytes_out')).toEqual({ tenant: 'a/b', route: 'r%', counter: 'bytes_out' });
  });
});
