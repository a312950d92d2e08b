/**
 * A `--workers N` sidecar (SidecarPrimary, real worker processes) and Quotas: one selecting
 * the workload is NACKed with the reason (per-process buckets would multiply the limit), one
 * selecting another Service is accepted, and requests keep flowing to the workload.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Server } from 'node:http';
import pino from 'pino';
import { parseBootstrap } from '../../../sidecar/bootstrap/bootstrap.ts';
import { SidecarPrimary } from '../../../sidecar/workers/sidecar-primary.ts';
import { QUOTA_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { httpRequest } from '../../helpers/http.ts';
import { until } from '../../helpers/until.ts';
import { quota } from '../quota/fixtures.ts';
import { closeServer, QuotaXds, SERVICE, startWorkload } from '../quota/quota-mesh.ts';

let xds: QuotaXds;
let workload: { server: Server; port: number; hits: () => number };
let primary: SidecarPrimary;
let inbound: string;
const nacks: string[] = [];

beforeAll(async () => {
  workload = await startWorkload();
  xds = await QuotaXds.start();
  xds.push([quota('billing-only', { tokens: 1 }, { services: ['billing'] })]);
  const parsed = parseBootstrap({
    node: { id: 'web-workers', service: SERVICE },
    inbound: { address: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1' },
    workload: { address: `127.0.0.1:${workload.port}` },
    outbound: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    controlPlane: { address: xds.address },
  });
  if (!parsed.valid) throw new Error(parsed.errors.join('\n'));
  const logger = pino({ level: 'warn' }, { write: (line: string) => void nacks.push(line) });
  primary = new SidecarPrimary({ bootstrap: parsed.result, logger, workers: 2, logLevel: 'warn', drainTimeoutMs: 500 });
  inbound = (await primary.start()).inbound;
  await until('the primary ready', () => primary.ready, 60_000, 50);
}, 90_000);

afterAll(async () => {
  await primary?.close();
  await xds?.close();
  if (workload !== undefined) await closeServer(workload.server);
});

describe('quotas on a --workers N sidecar', () => {
  it('NACKs a quota selecting the workload, saying why, and keeps serving', async () => {
    const count = () => ((primary.stats() as Promise<{ xds: { nacks: Record<string, number> } }>).then((s) => s.xds.nacks[QUOTA_TYPE_URL] ?? 0));
    expect(await count()).toBe(0);
    xds.push([quota('billing-only', { tokens: 1 }, { services: ['billing'] }), quota('web-limit', { tokens: 1 })]);
    await until('the NACK', async () => (await count()) > 0, 15_000, 20);
    const line = nacks.map((l) => JSON.parse(l) as { msg: string; error?: string }).find((l) => l.msg === 'xDS update rejected (NACK)');
    expect(line?.error).toContain('default/web-limit selects this workload, but a sidecar with --workers 2 does not enforce quotas');
    for (let i = 0; i < 3; i++) expect((await httpRequest(inbound, { method: 'GET', path: '/', headers: { 'x-tenant': 'acme' } })).status).toBe(200);
  });
});
