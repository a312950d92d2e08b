/**
 * Quotas: a local Quota for the backend (3 requests a minute per tenant, the tenant read from
 * the x-tenant-id header) is written to the config directory; the control plane pushes it, the
 * backend's sidecar enforces it. Frontend calls the backend four times as tenant "acme": three
 * pass with the rate-limit headers, the fourth is refused 429 with Retry-After, and tenant
 * "globex" still passes (its own bucket).
 */
import { join } from 'node:path';
import type { DemoStep } from '../step.ts';
import { sleep } from '../wait.ts';
import { call, writeAtomic, type DemoResponse } from '../demo-io.ts';
import { sidecarsSkip } from './start-workloads.ts';

const QUOTA_NAME = 'default/backend-per-tenant';
const TOKENS = 3;
const IN_FORCE_WITHIN_MS = 10_000;

const QUOTA_YAML = `# A rate limit for the backend: ${TOKENS} requests a minute per tenant, enforced by its sidecar.
apiVersion: palisade.dev/v1
kind: Quota
metadata:
  name: backend-per-tenant
spec:
  selector: { services: [backend] }
  descriptors:
    - key: tenant
      from: { header: x-tenant-id }
      default: anonymous
  limits:
    - { name: per-tenant, tokens: ${TOKENS}, interval: 1m }
  scope: local
`;

const SHOWN_HEADERS = ['ratelimit-policy', 'ratelimit', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'retry-after'] as const;

function headerLine(r: DemoResponse): string {
  return SHOWN_HEADERS.filter((h) => r.headers[h] !== undefined).map((h) => `${h}: ${String(r.headers[h])}`).join(' | ');
}

async function quotaInForce(admin: string, signal: AbortSignal): Promise<boolean> {
  const res = await fetch(`http://${admin}/stats`, { signal });
  const body = (await res.json()) as { quota?: { quotas?: Record<string, unknown> } };
  return body.quota?.quotas?.[QUOTA_NAME] !== undefined;
}

export const limitWithQuota: DemoStep = {
  title: 'refuse a request over its quota with 429 and rate-limit headers',
  timeoutMs: IN_FORCE_WITHIN_MS + 10_000,
  skip: sidecarsSkip,
  async run(ctx, signal) {
    const dir = ctx.need(ctx.configDir, 'config directory');
    const frontend = ctx.sidecars.find((s) => s.name === 'frontend');
    const backend = ctx.sidecars.find((s) => s.name === 'backend');
    if (!frontend || !backend) throw new Error('no frontend and backend sidecars: the step that starts them did not run');
    await writeAtomic(join(dir, 'quota.yaml'), QUOTA_YAML);
    const started = performance.now();
    while (!(await quotaInForce(backend.addresses.admin, signal))) {
      if (performance.now() - started > IN_FORCE_WITHIN_MS) throw new Error(`the backend sidecar did not put ${QUOTA_NAME} in force within ${IN_FORCE_WITHIN_MS / 1000} s (a NACK? see GET http://${ctx.adminAddress}/api/v1/proxies)`);
      await sleep(50, undefined, { signal });
    }
    const inForceMs = Math.round(performance.now() - started);
    const outbound = frontend.addresses.outbound;
    const acme = { host: 'backend:9090', 'x-tenant-id': 'acme' };
    const lines = [`Quota ${QUOTA_NAME} (${TOKENS} requests a minute per tenant, local) in force ${inForceMs} ms after it was written`];
    for (let i = 1; i <= TOKENS; i++) {
      const r = await call(outbound, 'GET', '/hello', acme, signal);
      if (r.status !== 200) throw new Error(`request ${i} of tenant acme: expected 200 (within the quota), got ${r.status} ${r.body.slice(0, 120)}`);
      lines.push(`acme   GET /hello #${i} → ${r.status}  ${headerLine(r)}`);
    }
    const over = await call(outbound, 'GET', '/hello', acme, signal);
    if (over.status !== 429) throw new Error(`request ${TOKENS + 1} of tenant acme: expected 429 (over the quota), got ${over.status} ${over.body.slice(0, 120)}`);
    if (over.headers['retry-after'] === undefined) throw new Error('the 429 has no Retry-After header');
    lines.push(`acme   GET /hello #${TOKENS + 1} → ${over.status} ${over.body}`, `       ${headerLine(over)}`);
    const other = await call(outbound, 'GET', '/hello', { host: 'backend:9090', 'x-tenant-id': 'globex' }, signal);
    if (other.status !== 200) throw new Error(`tenant globex: expected 200 (its own bucket), got ${other.status} ${other.body.slice(0, 120)}`);
    lines.push(`globex GET /hello #1 → ${other.status}  (its own bucket)`);
    ctx.lookAround.push(`quota: ${join(dir, 'quota.yaml')} (docs/quotas.md; the backend sidecar's /stats "quota" section)`);
    return lines;
  },
};
