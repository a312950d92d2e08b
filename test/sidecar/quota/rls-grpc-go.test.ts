/**
 * Interop: a grpc-go client with go-control-plane's generated ratelimit types (an independent
 * encoder and decoder of envoy.service.ratelimit.v3) calls the sidecar's rate limit service on
 * 127.0.0.1 with the descriptors the control plane's Envoy translation yields. The client is
 * test/interop/grpc-go-rls (a Go module pinned by go.sum), built here with `go build` and
 * driven over stdin/stdout, one JSON line each way. Go is required: without it the suite fails.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { quotaMessage } from '../../../control/translate/quota.ts';
import type { DesiredState } from '../../../control/config/state.ts';
import { QuotaGate } from '../../../sidecar/quota/quota-gate.ts';
import { RedisStore } from '../../../sidecar/quota/redis-store.ts';
import { RateLimitServer } from '../../../sidecar/quota/rls-server.ts';
import { stateFrom } from '../../helpers/desired-state.ts';
import { startRedis, type TestRedis } from '../../helpers/redis.ts';
import { until } from '../../helpers/until.ts';
import { envoyRateLimitRequest } from './rls-descriptors.ts';
import { GO_BUILD_TIMEOUT_MS, goBuild, requireGo } from '../../helpers/go-build.ts';

const MODULE_DIR = join(import.meta.dirname, '../../interop/grpc-go-rls');
const COMMAND_TIMEOUT_MS = 30_000;

const STATE = `apiVersion: palisade.dev/v1
kind: Mesh
metadata: { name: mesh }
spec: { trustDomain: mesh.local }
---
apiVersion: palisade.dev/v1
kind: Service
metadata: { name: backend, namespace: shop }
spec: { port: 8080 }
---
apiVersion: palisade.dev/v1
kind: Quota
metadata: { name: api, namespace: shop }
spec:
  routes:
    - { name: orders, pathPrefix: /orders }
  descriptors:
    - { key: tenant, from: { header: x-tenant }, default: anonymous }
    - { key: route, from: { route: true } }
  limits:
    - { name: per-tenant, tokens: 2, interval: 1m }
  scope: global
`;


/** The Go client: one JSON command in, one JSON line out. */
class GoClient {
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #lines: string[] = [];
  #stderr = '';

  constructor(binary: string, target: string) {
    this.#proc = spawn(binary, ['-target', target]);
    this.#proc.stderr.on('data', (d: Buffer) => (this.#stderr += d.toString()));
    createInterface({ input: this.#proc.stdout }).on('line', (l) => this.#lines.push(l));
  }

  async call(command: unknown): Promise<Record<string, unknown>> {
    this.#proc.stdin.write(`${JSON.stringify(command)}\n`);
    const line = await until(`the grpc-go client's answer (stderr: ${this.#stderr})`, () => this.#lines.shift(), COMMAND_TIMEOUT_MS);
    return JSON.parse(line) as Record<string, unknown>;
  }

  close(): void {
    this.#proc.stdin.end();
  }
}

let dir: string;
let state: DesiredState;
let redis: TestRedis;
let store: RedisStore;
let gate: QuotaGate;
let server: RateLimitServer;
let client: GoClient;

beforeAll(async () => {
  requireGo('the grpc-go rate limit client');
  dir = await mkdtemp(join(tmpdir(), 'palisade-rls-go-'));
  const binary = join(dir, 'grpc-go-rls');
  const built = goBuild(MODULE_DIR, binary);
  state = stateFrom({ 'mesh.yaml': STATE });
  redis = await startRedis();
  store = await RedisStore.connect({ address: redis.address, nodes: [], cluster: false, keyPrefix: 'palisade:quota:', timeoutMs: 200, passwordFile: null, lease: null }, pino({ level: 'silent' }));
  await until('the store connected', () => store.connected);
  gate = new QuotaGate({ service: 'ratelimit', namespace: 'shop', logger: pino({ level: 'silent' }), store, namespaceQuotas: true });
  gate.apply([...state.quotas].map(([key, q]) => quotaMessage(key, q)));
  server = new RateLimitServer({ config: () => gate.namespaceConfig!, ready: () => gate.ready, logger: pino({ level: 'silent' }) });
  const port = await server.listen('127.0.0.1', 0);
  await built;
  client = new GoClient(binary, `127.0.0.1:${port}`);
}, GO_BUILD_TIMEOUT_MS + 30_000);

afterAll(async () => {
  client?.close();
  await server?.close();
  gate?.close();
  store?.close();
  await redis?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** The translator's descriptors for `path` with tenant `tenant`, as the Go client's command. */
function command(path: string, tenant: string | null, hits = 0): { domain: string; descriptors: [string, string][][]; hits: number } {
  const r = envoyRateLimitRequest(state, 'shop', 'backend', 'shop/api', { path, headers: tenant === null ? {} : { 'x-tenant': tenant } });
  if (r === null) throw new Error(`no descriptor for ${path}`);
  return { domain: r.domain, descriptors: r.descriptors.map((d) => d.entries.map((e) => [e.key, e.value] as [string, string])), hits };
}

describe('grpc-go client → sidecar rate limit service', () => {
  it('gets OK with the current limit, then OVER_LIMIT with the reset and headers', async () => {
    const cmd = command('/orders/7', 'acme');
    expect(cmd.descriptors).toEqual([[['palisade_quota', 'shop/api'], ['tenant', 'acme'], ['route', 'orders']]]);
    const first = await client.call(cmd);
    expect(first).toMatchObject({
      overall_code: 'OK',
      statuses: [{ code: 'OK', current_limit: { name: 'per-tenant', requests_per_unit: 2, unit: 'MINUTE' }, limit_remaining: 1 }],
      response_headers_to_add: [{ key: 'ratelimit-policy', value: '"api.per-tenant";q=2;w=60' }, { key: 'ratelimit', value: expect.stringMatching(/^"api\.per-tenant";r=1;t=\d+$/) }],
    });
    expect((await client.call(cmd)).overall_code).toBe('OK');
    const over = await client.call(cmd);
    expect(over).toMatchObject({ overall_code: 'OVER_LIMIT', statuses: [{ code: 'OVER_LIMIT', current_limit: { name: 'per-tenant' } }] });
    const statuses = over.statuses as { duration_until_reset: string }[];
    expect(statuses[0]!.duration_until_reset).toMatch(/^\d+s$/);
    expect((over.response_headers_to_add as { key: string }[]).map((h) => h.key)).toEqual(['retry-after', 'ratelimit-policy', 'ratelimit']);
  });

  it('takes hits_addend tokens and applies the header default', async () => {
    expect(command('/orders', null).descriptors[0]).toEqual([['palisade_quota', 'shop/api'], ['tenant', 'anonymous'], ['route', 'orders']]);
    expect(await client.call(command('/orders', null, 2))).toMatchObject({ overall_code: 'OK', statuses: [{ code: 'OK' }] });
    expect(await client.call(command('/orders', null))).toMatchObject({ overall_code: 'OVER_LIMIT' });
    expect(await redis.cli('GET', 'palisade:quota:shop/api|per-tenant|tenant=anonymous|route=orders')).toBe('3');
  });

  it('gets OK for an unknown domain and INVALID_ARGUMENT for a request without descriptors', async () => {
    expect(await client.call({ domain: 'shop/none', descriptors: [[['tenant', 'acme']]] })).toEqual({ overall_code: 'OK', statuses: [{ code: 'OK' }] });
    expect(await client.call({ domain: 'shop/api', descriptors: [] })).toEqual({ code: 'InvalidArgument', error: 'descriptors: must list at least one descriptor, got none (domain "shop/api")' });
  });
});
