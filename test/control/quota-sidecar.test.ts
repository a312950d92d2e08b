/**
 * A Quota written into the config directory is enforced by a real sidecar (in process, every
 * port on 127.0.0.1) in front of a real HTTP workload, through a real control plane: the
 * first limit whose match holds applies, other descriptor values get buckets of their own,
 * and an edit of the file (a higher limit, then shadow mode) is in force once pushed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { Sidecar, SidecarAddresses } from '../../sidecar/sidecar.ts';
import { httpRequest } from '../helpers/http.ts';
import { startTestSidecar } from '../helpers/sidecar.ts';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.ts';
import { until } from '../helpers/until.ts';

const SERVICE = 'apiVersion: palisade.dev/v1\nkind: Service\nmetadata: { name: web }\nspec: { port: 8080 }\n';

const quota = (name: string, acme: number, shadow = false) => `apiVersion: palisade.dev/v1
kind: Quota
metadata: { name: ${name} }
spec:
  selector: { services: [web] }
  routes: [{ name: api, pathPrefix: /api/ }]
  descriptors: [{ key: tenant, from: { header: x-tenant-id }, default: anonymous }]
  limits:
    - { name: acme, match: { tenant: acme }, tokens: ${acme}, interval: 1h }
    - { name: per-tenant, tokens: 2, interval: 1h }
  shadow: ${shadow}
`;

let tcp: TestControlPlane;
let workload: Server;
let sc: { sidecar: Sidecar; addresses: SidecarAddresses };
let workloadRequests = 0;

beforeAll(async () => {
  workload = createServer((_req, res) => {
    workloadRequests++;
    res.end('ok');
  });
  await new Promise<void>((resolve) => workload.listen(0, '127.0.0.1', resolve));
  const port = (workload.address() as { port: number }).port;
  tcp = await startControlPlane({ 'web.yaml': SERVICE, 'quota.yaml': quota('tenants', 3) });
  sc = await startTestSidecar(tcp.address, port);
}, 60_000);

afterAll(async () => {
  await sc?.sidecar.close();
  await tcp?.close();
  await new Promise<void>((resolve) => workload.close(() => resolve()));
});

async function statuses(path: string, tenant: string | null, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await httpRequest(sc.addresses.inbound, { method: 'GET', path, headers: tenant === null ? {} : { 'x-tenant-id': tenant } });
    out.push(r.status);
  }
  return out;
}

describe('a Quota from the config directory on a real sidecar', () => {
  it('refuses with 429 past the limit, per tenant, and only on the quota routes', async () => {
    const before = workloadRequests;
    expect(await statuses('/api/a', 'acme', 4)).toEqual([200, 200, 200, 429]);
    expect(await statuses('/api/a', 'other', 3)).toEqual([200, 200, 429]);
    // No header: the default "anonymous", a tenant of its own.
    expect(await statuses('/api/a', null, 3)).toEqual([200, 200, 429]);
    // Outside the quota's routes nothing is counted.
    expect(await statuses('/health', 'acme', 3)).toEqual([200, 200, 200]);
    expect(workloadRequests - before).toBe(3 + 2 + 2 + 3);
  });

  it('applies an edited Quota once pushed: a new name starts new buckets, shadow mode refuses nothing', async () => {
    // acme's bucket of "tenants" is empty for the hour: a 200 for acme means "tenants-v2" is in force.
    await tcp.write('quota.yaml', quota('tenants-v2', 5));
    await until('the edited quota', async () => (await statuses('/api/b', 'acme', 1))[0] === 200);

    // Under "tenants-v2" a tenant's third request is refused; under the shadow "tenants-v3" none is.
    await tcp.write('quota.yaml', quota('tenants-v3', 1, true));
    let probe = 0;
    await until('the shadow quota', async () => (await statuses('/api/c', `probe-${probe++}`, 3)).every((s) => s === 200));
    expect(await statuses('/api/c', 'acme', 3)).toEqual([200, 200, 200]);
  });
});
