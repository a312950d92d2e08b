/**
 * Authorization: the demo's Rego policy (cli/demo/policy/backend_authz.rego, compiled to wasm
 * by opa into backend-authz.tar.gz) is signed with the demo's policy key and published as a
 * Policy for the backend. The control plane pushes it over xDS; the backend's sidecar verifies
 * the signature, loads the wasm and judges every inbound request by the caller's SPIFFE ID,
 * method and path: frontend's GET /hello is allowed, its DELETE /hello denied with the reason.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { call, writeAtomic } from '../demo-io.ts';
import { signBundle } from '../../../policies/sign.ts';
import type { DemoStep } from '../step.ts';
import { sleep } from '../wait.ts';
import { sidecarsSkip } from './start-workloads.ts';

const BUNDLE = join(import.meta.dirname, '..', 'policy', 'backend-authz.tar.gz');
const POLICY_NAME = 'default/backend-authz';
const IN_FORCE_WITHIN_MS = 10_000;
const BACKEND_HOST = { host: 'backend:9090' };

const POLICY_YAML = `# Authorization for the backend: a signed OPA bundle (Rego compiled to wasm), judged by its sidecar.
apiVersion: palisade.dev/v1
kind: Policy
metadata:
  name: backend-authz
spec:
  entrypoint: envoy/authz/allow
  bundle: { file: backend-authz.tar.gz }
  mode: enforce
  selector: { services: [backend] }
  cacheKeys: [attributes.source.principal, attributes.request.http.method, parsed_path]
`;

interface PolicyStats { revision: string; allowed: number; denied: number; cache: { hits: number; misses: number } | null }

async function policyStats(admin: string, signal: AbortSignal): Promise<PolicyStats | undefined> {
  const res = await fetch(`http://${admin}/stats`, { signal });
  const body = (await res.json()) as { authz?: { policies?: Record<string, PolicyStats> } };
  return body.authz?.policies?.[POLICY_NAME];
}

export const authorizeWithPolicy: DemoStep = {
  title: 'authorize requests with a signed OPA policy',
  timeoutMs: IN_FORCE_WITHIN_MS + 10_000,
  skip: sidecarsSkip,
  async run(ctx, signal) {
    const dir = ctx.need(ctx.configDir, 'config directory');
    const key = ctx.need(ctx.policyKey, 'policy signing key');
    const frontend = ctx.sidecars.find((s) => s.name === 'frontend');
    const backend = ctx.sidecars.find((s) => s.name === 'backend');
    if (!frontend || !backend) throw new Error('no frontend and backend sidecars: the step that starts them did not run');
    // Bundle first, each file whole (temp + rename): the watcher never reads half of one.
    await writeAtomic(join(dir, 'backend-authz.tar.gz'), signBundle(new Uint8Array(await readFile(BUNDLE)), key.privatePem));
    await writeAtomic(join(dir, 'policy.yaml'), POLICY_YAML);
    const started = performance.now();
    let stats: PolicyStats | undefined;
    while ((stats = await policyStats(backend.addresses.admin, signal)) === undefined) {
      if (performance.now() - started > IN_FORCE_WITHIN_MS) throw new Error(`the backend sidecar did not put ${POLICY_NAME} in force within ${IN_FORCE_WITHIN_MS / 1000} s (a NACK? see GET http://${ctx.adminAddress}/api/v1/proxies)`);
      await sleep(50, undefined, { signal });
    }
    const inForceMs = Math.round(performance.now() - started);
    const outbound = frontend.addresses.outbound;
    const allowed = await call(outbound, 'GET', '/hello', BACKEND_HOST, signal);
    if (allowed.status !== 200) throw new Error(`GET /hello from frontend: expected 200 (allowed by the policy), got ${allowed.status} ${allowed.body.slice(0, 120)}`);
    const denied = await call(outbound, 'DELETE', '/hello', BACKEND_HOST, signal);
    if (denied.status !== 403) throw new Error(`DELETE /hello from frontend: expected 403 (denied by the policy), got ${denied.status} ${denied.body.slice(0, 120)}`);
    const after = await policyStats(backend.addresses.admin, signal);
    ctx.lookAround.push(`policy: ${join(dir, 'policy.yaml')} and cli/demo/policy/backend_authz.rego (palisade policy build|test|verify)`);
    return [
      `Policy ${POLICY_NAME} (revision ${stats.revision}, signed, verified by the backend sidecar) in force ${inForceMs} ms after it was written`,
      `GET /hello    from frontend → ${allowed.status} (allowed: caller spiffe://${ctx.mesh?.trustDomain ?? ''}/ns/default/sa/frontend, method GET, path /hello)`,
      `DELETE /hello from frontend → ${denied.status} ${denied.body}`,
      `backend sidecar /stats authz: allowed ${after?.allowed ?? 0}, denied ${after?.denied ?? 0}`,
    ];
  },
};
