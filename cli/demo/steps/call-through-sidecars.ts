/**
 * The data plane: the frontend calls http://backend:9090/hello the way a workload does, by
 * sending it to its own sidecar's outbound listener. The frontend sidecar routes it by Host
 * to the Service backend, whose endpoint is the backend sidecar's inbound listener (learnt
 * over EDS); that sidecar forwards it to the backend workload. The sidecars add an
 * x-request-id, which the backend sees. The hop between the sidecars is mTLS: the backend
 * sidecar verifies the frontend's SVID and tells the backend who called
 * (x-forwarded-client-cert, URI=<frontend's SPIFFE ID>); a plaintext client is refused.
 */
import { request } from 'node:http';
import type { WorkloadReply } from '../http-workload.ts';
import type { DemoStep } from '../step.ts';
import { sleep } from '../wait.ts';
import { sidecarsSkip } from './start-workloads.ts';

const TARGET_HOST = 'backend:9090';
const TARGET_PATH = '/hello';
const REQUESTS = 3;
/** How long the frontend sidecar may take to learn the backend's endpoint, ms. */
const ROUTABLE_WITHIN_MS = 10_000;
const REQUEST_TIMEOUT_MS = 5000;

interface Reply {
  status: number;
  body: string;
}

/** One GET on a fresh connection to `address` (host:port) with Host `host`. */
function get(address: string, host: string, path: string, signal: AbortSignal): Promise<Reply> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = request({
      host: address.slice(0, i), port: Number(address.slice(i + 1)), path, headers: { host }, agent: false, signal, timeout: REQUEST_TIMEOUT_MS,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)));
    req.on('error', reject);
    req.end();
  });
}

function parseReply(r: Reply): WorkloadReply | null {
  if (r.status !== 200) return null;
  try {
    const v = JSON.parse(r.body) as WorkloadReply;
    return v.from === 'backend' ? v : null;
  } catch {
    return null;
  }
}

export const callThroughSidecars: DemoStep = {
  title: 'call backend from frontend through the sidecars',
  timeoutMs: ROUTABLE_WITHIN_MS + REQUESTS * REQUEST_TIMEOUT_MS + 5000,
  skip: sidecarsSkip,
  async run(ctx, signal) {
    const frontend = ctx.sidecars.find((s) => s.name === 'frontend');
    const backend = ctx.sidecars.find((s) => s.name === 'backend');
    const backendWorkload = ctx.workloads.find((w) => w.name === 'backend');
    if (!frontend || !backend || !backendWorkload) throw new Error('no frontend and backend sidecars: the step that starts them did not run');
    const outbound = frontend.addresses.outbound;

    // The backend's endpoint reaches the frontend sidecar over EDS shortly after it registers.
    const started = performance.now();
    let last: string;
    for (;;) {
      try {
        const r = await get(outbound, TARGET_HOST, TARGET_PATH, signal);
        if (parseReply(r)) break;
        last = `${r.status} ${r.body.trim().slice(0, 80)}`;
      } catch (err) {
        signal.throwIfAborted();
        last = (err as Error).message;
      }
      if (performance.now() - started > ROUTABLE_WITHIN_MS) {
        throw new Error(`http://${TARGET_HOST}${TARGET_PATH} via ${outbound} did not reach the backend within ${ROUTABLE_WITHIN_MS / 1000} s; last answer: ${last}`);
      }
      await sleep(100, undefined, { signal });
    }

    const inboundBefore = backendStats(await adminJson(backend.addresses.admin, signal));
    const servedBefore = backendWorkload.requests;
    const lines = [`GET ${TARGET_PATH} with Host: ${TARGET_HOST} to the frontend sidecar's outbound ${outbound}:`];
    const ids = new Set<string>();
    for (let n = 1; n <= REQUESTS; n++) {
      const r = await get(outbound, TARGET_HOST, TARGET_PATH, signal);
      const reply = parseReply(r);
      if (!reply) throw new Error(`request ${n} of ${REQUESTS}: expected 200 from backend, got ${r.status} ${r.body.trim().slice(0, 120)}`);
      const id = reply.request['x-request-id'];
      if (!id) throw new Error(`request ${n} of ${REQUESTS}: the backend got no x-request-id`);
      ids.add(id);
      lines.push(`${n}. ${r.status} ${JSON.stringify(reply)}`);
    }
    if (ids.size !== REQUESTS) throw new Error(`the ${REQUESTS} requests did not get distinct x-request-ids`);
    // The peer identity the request arrived with, as the backend sidecar verified it.
    const expected = frontend.sidecar.identity?.spiffeId;
    if (expected === undefined) throw new Error('the frontend sidecar has no identity: it did not enroll');
    const probe = parseReply(await get(outbound, TARGET_HOST, TARGET_PATH, signal));
    const xfcc = probe?.request['x-forwarded-client-cert'] ?? null;
    const peer = /(?:^|;)URI=([^;,]+)/.exec(xfcc ?? '')?.[1] ?? null;
    if (peer !== expected) throw new Error(`the backend saw peer identity ${peer ?? 'none'} (x-forwarded-client-cert ${JSON.stringify(xfcc)}), expected ${expected}: the hop was not mTLS`);
    // STRICT: the backend sidecar's inbound takes no plaintext.
    const plaintext = await get(backend.addresses.inbound, TARGET_HOST, TARGET_PATH, signal).then((r) => `answered ${r.status}`, (err: Error) => `refused (${err.message})`);
    if (!plaintext.startsWith('refused')) throw new Error(`a plaintext request to the backend sidecar's inbound ${backend.addresses.inbound} ${plaintext}: the mesh is STRICT`);
    const inboundAfter = backendStats(await adminJson(backend.addresses.admin, signal));
    const viaInbound = inboundAfter - inboundBefore;
    if (viaInbound < REQUESTS) throw new Error(`the backend sidecar's inbound counted ${viaInbound} of the ${REQUESTS} requests: they did not pass through it`);
    lines.push(
      `path: frontend sidecar outbound ${outbound} → backend sidecar inbound ${backend.addresses.inbound} → backend workload ${backendWorkload.host}:${backendWorkload.port}`,
      `backend sidecar /stats: inbound requests +${viaInbound}; backend workload answered ${backendWorkload.requests - servedBefore}`,
      `peer identity the backend saw: ${peer} (mTLS, verified by the backend sidecar against the mesh CA; x-forwarded-client-cert)`,
      `plaintext straight to the backend sidecar's inbound: ${plaintext}, as the STRICT mesh says`,
    );
    return lines;
  },
};

async function adminJson(admin: string, signal: AbortSignal): Promise<unknown> {
  const res = await fetch(`http://${admin}/stats`, { signal });
  if (!res.ok) throw new Error(`GET http://${admin}/stats answered ${res.status}`);
  return res.json();
}

function backendStats(stats: unknown): number {
  const n = (stats as { listeners?: { inbound?: { requests?: unknown } } }).listeners?.inbound?.requests;
  if (typeof n !== 'number') throw new Error('the backend sidecar\'s /stats has no listeners.inbound.requests');
  return n;
}
