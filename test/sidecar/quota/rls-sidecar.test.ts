/**
 * The rate limit service as a sidecar serves it (bootstrap rateLimitService): a real Sidecar
 * configured by a real ADS server, a real redis-server as its quota store, a real workload,
 * and a grpc-js client calling ShouldRateLimit on the bound address. The sidecar's inbound
 * requests, a second sidecar's and the rate limit calls draw from one GLOBAL bucket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Server } from 'node:http';
import { create } from '@bufbuild/protobuf';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import pino from 'pino';
import { ENVOY_RATELIMIT_ADDRESS, ENVOY_RATELIMIT_PORT } from '../../../control/translate/envoy-ratelimit.ts';
import { BOOTSTRAP_DEFAULTS, parseBootstrap } from '../../../sidecar/bootstrap/bootstrap.ts';
import { Sidecar, type SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { RATE_LIMIT_SERVICE } from '../../../sidecar/quota/rls-server.ts';
import { RateLimitRequestSchema, RateLimitResponse_Code as Code, type RateLimitRequest, type RateLimitResponse } from '../../../xds/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { httpRequest } from '../../helpers/http.ts';
import { startRedis, type TestRedis } from '../../helpers/redis.ts';
import { until } from '../../helpers/until.ts';
import { quota, Quota_Scope } from './fixtures.ts';
import { closeServer, QuotaXds, SERVICE, startSidecar, startWorkload } from './quota-mesh.ts';

const MINIMAL = { node: { service: 'web' }, workload: { address: '127.0.0.1:8080' } };

describe('bootstrap rateLimitService', () => {
  it('defaults to where the control plane points Envoys (palisade_ratelimit)', () => {
    expect(BOOTSTRAP_DEFAULTS.rateLimitService).toEqual({ address: ENVOY_RATELIMIT_ADDRESS, port: ENVOY_RATELIMIT_PORT });
    const parsed = parseBootstrap({ ...MINIMAL, rateLimitService: {}, quota: { redis: { address: '127.0.0.1:6379' } } });
    expect(parsed.valid && parsed.result.rateLimitService).toEqual({ address: '127.0.0.1', port: 8081 });
    const absent = parseBootstrap(MINIMAL);
    expect(absent.valid && absent.result.rateLimitService).toBeNull();
  });

  it.each([
    [{ rateLimitService: { port: 9000 } }, 'rateLimitService: needs quota.redis (the store of the GLOBAL Quotas it judges by); configure quota.redis or remove rateLimitService'],
    [{ rateLimitService: { address: 'localhost' }, quota: { redis: { address: '127.0.0.1:6379' } } }, 'rateLimitService.address: must be an IPv4 or IPv6 address, got "localhost"'],
    [{ rateLimitService: { port: 70000 }, quota: { redis: { address: '127.0.0.1:6379' } } }, 'rateLimitService.port: must be an integer 0..65535 (0 picks a free port), got 70000'],
    [{ rateLimitService: { host: '127.0.0.1' }, quota: { redis: { address: '127.0.0.1:6379' } } }, 'rateLimitService.host: unknown field; known fields: address, port'],
    [{ rateLimitService: { port: 15000 }, quota: { redis: { address: '127.0.0.1:6379' } } }, 'rateLimitService.port: must differ from admin.port (both 15000)'],
  ])('refuses %j with the field and the value', (extra, message) => {
    const parsed = parseBootstrap({ ...MINIMAL, ...extra });
    expect(parsed.valid).toBe(false);
    expect(!parsed.valid && parsed.errors).toContain(message);
  });
});

let redis: TestRedis;
let xds: QuotaXds;
let workload: { server: Server; port: number; hits: () => number };
let sidecar: Sidecar;
let addresses: SidecarAddresses;
let other: { sidecar: Sidecar; addresses: SidecarAddresses };
let client: Client;

beforeAll(async () => {
  redis = await startRedis();
  workload = await startWorkload();
  xds = await QuotaXds.start();
  xds.push([
    quota('shared', { tokens: 6, interval: 60 }, { scope: Quota_Scope.GLOBAL }),
    // Selects another Service: not in force on these sidecars' inbound, judged by the rate limit service.
    quota('envoy-only', { tokens: 1, interval: 60 }, { scope: Quota_Scope.GLOBAL, services: ['backend'] }),
  ]);
  const parsed = parseBootstrap({
    node: { id: 'web-rls', service: SERVICE },
    inbound: { address: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1' },
    workload: { address: `127.0.0.1:${workload.port}` },
    outbound: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    controlPlane: { address: xds.address },
    // lease: false on both sidecars: the cases count one Redis round trip per inbound check.
    quota: { redis: { address: redis.address, timeout: 200, lease: false } },
    rateLimitService: { address: '127.0.0.1', port: 0 },
  });
  if (!parsed.valid) throw new Error(parsed.errors.join('\n'));
  sidecar = new Sidecar({ bootstrap: parsed.result, logger: pino({ level: 'silent' }), version: 'test', drainTimeoutMs: 1000 });
  addresses = await sidecar.start();
  await sidecar.whenReady();
  other = await startSidecar(xds.address, workload.port, { id: 'web-2', redis: redis.address, lease: false });
  client = new Client(addresses.rateLimitService!, credentials.createInsecure());
  const connected = () => (sidecar.stats() as { quota: { redis: { connected: boolean } } }).quota.redis.connected
    && (other.sidecar.stats() as { quota: { redis: { connected: boolean } } }).quota.redis.connected;
  await until('both sidecars connected to redis', connected, 10_000);
}, 60_000);

afterAll(async () => {
  client?.close();
  await sidecar?.close();
  await other?.sidecar.close();
  await xds?.close();
  if (workload !== undefined) await closeServer(workload.server);
  await redis?.stop();
});

function shouldRateLimit(req: RateLimitRequest): Promise<RateLimitResponse> {
  const d = RATE_LIMIT_SERVICE.shouldRateLimit;
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(d.path, d.requestSerialize, d.responseDeserialize, req, new Metadata(), (err: ServiceError | null, res?: RateLimitResponse) => (err ? reject(err) : resolve(res!)));
  });
}

const rls = (name: string) => create(RateLimitRequestSchema, { domain: `default/${name}`, descriptors: [{ entries: [{ key: 'tenant', value: 'acme' }] }] });
const call = (inbound: string) => httpRequest(inbound, { method: 'GET', path: '/', headers: { 'x-tenant': 'acme' } });

describe('a sidecar with rateLimitService', () => {
  it('serves ShouldRateLimit on the bound address, printed with the others', () => {
    expect(addresses.rateLimitService).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(other.addresses.rateLimitService).toBeUndefined();
  });

  it('draws its inbound requests, another sidecar\'s and the rate limit calls from one GLOBAL bucket', async () => {
    const outcomes: string[] = [];
    for (let i = 0; i < 3; i++) {
      outcomes.push(String((await call(addresses.inbound)).status));
      outcomes.push(Code[(await shouldRateLimit(rls('shared'))).overallCode]!);
      outcomes.push(String((await call(other.addresses.inbound)).status));
    }
    // 6 tokens: the first six of the nine, in order, then refused on every path.
    expect(outcomes).toEqual(['200', 'OK', '200', '200', 'OK', '200', '429', 'OVER_LIMIT', '429']);
    expect(await redis.cli('GET', 'palisade:quota:default/shared|per-tenant|tenant=acme')).toBe('9');
  });

  it('judges by a Quota of its namespace that does not select its own Service', async () => {
    expect((await call(addresses.inbound)).headers['x-ratelimit-limit']).toBe('6');
    expect((await shouldRateLimit(rls('envoy-only'))).overallCode).toBe(Code.OK);
    expect((await shouldRateLimit(rls('envoy-only'))).overallCode).toBe(Code.OVER_LIMIT);
    expect((await shouldRateLimit(rls('unknown'))).overallCode).toBe(Code.OK);
  });

  it('reports its calls in /stats rateLimitService, and the limits\' counts in quota', () => {
    const s = sidecar.stats() as { rateLimitService: unknown; quota: { quotas: Record<string, { limits: Record<string, { allowed: number; limited: number }> }> } };
    const counts = (allowed: number, limited: number) => ({ 'per-tenant': { allowed, limited, shadowLimited: 0, storeErrors: 0, fallbackUsed: 0, overflowed: 0 } });
    expect(s.rateLimitService).toEqual({ requests: 6, ok: 4, overLimit: 2, errors: 0, unknownDomains: 1, quotas: { 'default/envoy-only': counts(1, 1), 'default/shared': counts(4, 3) } });
    // The inbound gate's view: only `shared` selects web; its counters include the rate limit calls.
    expect(Object.keys(s.quota.quotas)).toEqual(['default/shared']);
    expect(s.quota.quotas['default/shared']!.limits['per-tenant']).toMatchObject({ allowed: 4, limited: 3 });
    expect((other.sidecar.stats() as Record<string, unknown>).rateLimitService).toBeUndefined();
  });
});
