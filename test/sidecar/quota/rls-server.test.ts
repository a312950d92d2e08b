/**
 * The sidecar's Envoy rate limit service (envoy.service.ratelimit.v3.RateLimitService/
 * ShouldRateLimit) over real gRPC on 127.0.0.1, with a real redis-server as the store of GLOBAL
 * Quotas. The Quotas are real documents loaded as the control plane loads them; the requests
 * carry the descriptors the control plane's Envoy translation makes Envoy build
 * (rls-descriptors.ts), and the server judges by the palisade.v1.Quota resources the control
 * plane pushes to sidecars, kept by a QuotaGate with namespaceQuotas, so translator and server
 * are checked to agree. The same gate, in front of a real HTTP workload, shares its buckets
 * with the service.
 */
import { withAddedHeaders } from '../../../sidecar/proxy/added-headers.ts';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { Client, credentials, Metadata, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import pino from 'pino';
import { quotaMessage } from '../../../control/translate/quota.ts';
import { REMOTE_ADDRESS_KEY, ROUTE_GATE_KEY } from '../../../control/translate/envoy-ratelimit.ts';
import type { DesiredState } from '../../../control/config/state.ts';
import { QuotaGate } from '../../../sidecar/quota/quota-gate.ts';
import { RedisStore } from '../../../sidecar/quota/redis-store.ts';
import {
  currentLimit, RATE_LIMIT_SERVICE, RateLimitServer, REMOTE_ADDRESS_ENTRY_KEY, ROUTE_GATE_ENTRY_KEY,
} from '../../../sidecar/quota/rls-server.ts';
import {
  RateLimitRequestSchema, RateLimitResponse_Code as Code, RateLimitResponse_RateLimit_Unit as Unit, type RateLimitRequest, type RateLimitResponse,
} from '../../../xds/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { httpRequest } from '../../helpers/http.ts';
import { stateFrom } from '../../helpers/desired-state.ts';
import { startRedis, type TestRedis } from '../../helpers/redis.ts';
import { until } from '../../helpers/until.ts';
import { envoyRateLimitFilters, envoyRateLimitRequest, type EnvoyRequest } from './rls-descriptors.ts';

const NS = 'shop';
const BASE = [
  'apiVersion: palisade.dev/v1\nkind: Mesh\nmetadata: { name: mesh }\nspec: { trustDomain: mesh.local }\n',
  '---\napiVersion: palisade.dev/v1\nkind: Service\nmetadata: { name: backend, namespace: shop }\nspec: { port: 8080 }\n',
  '---\napiVersion: palisade.dev/v1\nkind: Service\nmetadata: { name: backend, namespace: other }\nspec: { port: 8080 }\n',
].join('');

function quotaYaml(name: string, spec: string, namespace = NS): string {
  return `---\napiVersion: palisade.dev/v1\nkind: Quota\nmetadata: { name: ${name}, namespace: ${namespace} }\nspec:\n${spec}`;
}

/** Routes, a header with a default, the route as a descriptor; a 10s interval (no Envoy unit). */
const API = quotaYaml('api', `  selector: { services: [backend] }
  routes:
    - { name: orders, pathPrefix: /orders, methods: [POST] }
    - { name: rest, pathPrefix: / }
  descriptors:
    - { key: tenant, from: { header: X-Tenant }, default: anonymous }
    - { key: route, from: { route: true } }
  limits:
    - { name: orders, match: { route: orders }, tokens: 2, interval: 1m }
    - { name: per-tenant, tokens: 3, interval: 10s }
  scope: global
`);
/** The peer address (Envoy's remote_address entry) and the method. */
const CLIENTS = quotaYaml('clients', `  selector: { services: [backend] }
  descriptors:
    - { key: client, from: { remoteAddress: true } }
    - { key: verb, from: { method: true } }
  limits:
    - { name: writes, match: { verb: POST }, tokens: 1, interval: 1s }
    - { name: per-client, tokens: 100, interval: 1h }
  scope: global
`);
const TENANT = (name: string, extra: string, tokens = 1) => quotaYaml(name, `  selector: { services: [backend] }
  descriptors:
    - { key: tenant, from: { header: x-tenant } }
  limits:
    - { name: per-tenant, tokens: ${tokens}, interval: 1m, fallbackTokens: 2 }
  scope: global
${extra}`);

const QUOTAS = [
  API, CLIENTS,
  TENANT('shadowed', '  shadow: true\n'),
  TENANT('open', '  failureMode: open\n', 1000),
  TENANT('closed', '  failureMode: closed\n', 1000),
  TENANT('shadow-closed', '  failureMode: closed\n  shadow: true\n', 1000),
  // Selects the Service of the sidecar's own inbound gate: shared buckets.
  quotaYaml('shared', `  selector: { services: [web] }
  descriptors:
    - { key: tenant, from: { header: x-tenant } }
  limits:
    - { name: per-tenant, tokens: 4, interval: 1m }
  scope: global
`),
  // Another namespace: not this sidecar's, so not loaded.
  TENANT('elsewhere', '', 1).replace(`namespace: ${NS}`, 'namespace: other'),
];

let state: DesiredState;
let redis: TestRedis;
let store: RedisStore;
let gate: QuotaGate;
let server: RateLimitServer;
let client: Client;
let workload: Server;
let workloadAddress: string;

beforeAll(async () => {
  state = stateFrom({ 'mesh.yaml': BASE + '---\napiVersion: palisade.dev/v1\nkind: Service\nmetadata: { name: web, namespace: shop }\nspec: { port: 8080 }\n' + QUOTAS.join('') });
  redis = await startRedis();
});

afterAll(async () => {
  await redis?.stop();
});

beforeEach(async () => {
  await redis.cli('FLUSHALL');
  store = await RedisStore.connect({ address: redis.address, nodes: [], cluster: false, keyPrefix: 'palisade:quota:', timeoutMs: 200, passwordFile: null, lease: null }, pino({ level: 'silent' }));
  await until('the store connected', () => store.connected);
  // The sidecar of Service web: only `shared` selects it; the service keeps every Quota of shop.
  gate = new QuotaGate({ service: 'web', namespace: NS, logger: pino({ level: 'silent' }), store, namespaceQuotas: true });
  gate.apply([...state.quotas].map(([key, q]) => quotaMessage(key, q)).filter((q) => q.name.startsWith(`${NS}/`)));
  server = new RateLimitServer({ config: () => gate.namespaceConfig!, logger: pino({ level: 'silent' }) });
  client = new Client(`127.0.0.1:${await server.listen('127.0.0.1', 0)}`, credentials.createInsecure());
  workload = createServer((req, res) => gate.gate(req, res, () => {
    res.writeHead(200, withAddedHeaders(res, { 'content-type': 'text/plain' }));
    res.end('ok');
  }));
  await new Promise<void>((resolve) => workload.listen(0, '127.0.0.1', resolve));
  workloadAddress = `127.0.0.1:${(workload.address() as AddressInfo).port}`;
});

afterEach(async () => {
  client.close();
  await server.close();
  gate.close();
  store.close();
  workload.closeAllConnections();
  await new Promise<void>((resolve) => workload.close(() => resolve()));
});

function shouldRateLimit(req: RateLimitRequest): Promise<RateLimitResponse> {
  const d = RATE_LIMIT_SERVICE.shouldRateLimit;
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(d.path, d.requestSerialize, d.responseDeserialize, req, new Metadata(), (err: ServiceError | null, res?: RateLimitResponse) => (err ? reject(err) : resolve(res!)));
  });
}

/** What the Envoy fronting shop/backend sends for `req` to the filter of Quota `name`. */
function envoyCall(name: string, req: EnvoyRequest, hitsAddend = 0): RateLimitRequest {
  const r = envoyRateLimitRequest(state, NS, 'backend', `${NS}/${name}`, req);
  if (r === null) throw new Error(`Envoy sends no descriptor for ${name} on ${req.method ?? 'GET'} ${req.path}`);
  r.hitsAddend = hitsAddend;
  return r;
}

const headersOf = (r: RateLimitResponse) => Object.fromEntries(r.responseHeadersToAdd.map((h) => [h.key, h.value]));
const stats = () => server.stats();
const counters = (quota: string, limit: string) => gate.namespaceConfig!.quotas.find((q) => q.name === `${NS}/${quota}`)!.limits.find((l) => l.name === limit)!.counters;

describe('what the service reads', () => {
  it('uses the entry keys the Envoy translation produces', () => {
    expect(REMOTE_ADDRESS_ENTRY_KEY).toBe(REMOTE_ADDRESS_KEY);
    expect(ROUTE_GATE_ENTRY_KEY).toBe(ROUTE_GATE_KEY);
  });

  it('gets one ratelimit filter per global Quota of the namespace, domain <namespace>/<name>, failure_mode_deny for closed ones', () => {
    const filters = envoyRateLimitFilters(state, NS, 'backend');
    expect(filters.map((f) => f.domain)).toEqual(['shop/api', 'shop/clients', 'shop/closed', 'shop/open', 'shop/shadow-closed', 'shop/shadowed']);
    expect(filters.filter((f) => f.failureModeDeny).map((f) => f.domain)).toEqual(['shop/closed', 'shop/shadow-closed']);
  });

  it('keeps every Quota of its namespace loaded although only one selects its own workload', () => {
    expect(gate.config.quotas.map((q) => q.name)).toEqual(['shop/shared']);
    expect(gate.namespaceConfig!.quotas.map((q) => q.name)).toEqual(['shop/api', 'shop/clients', 'shop/closed', 'shop/open', 'shop/shadow-closed', 'shop/shadowed', 'shop/shared']);
  });

  it.each([
    [1, 5, { requestsPerUnit: 5, unit: Unit.SECOND }],
    [60, 5, { requestsPerUnit: 5, unit: Unit.MINUTE }],
    [3600, 7, { requestsPerUnit: 7, unit: Unit.HOUR }],
    [86_400, 9, { requestsPerUnit: 9, unit: Unit.DAY }],
    [10, 5, { requestsPerUnit: 30, unit: Unit.MINUTE }],
    [90, 7, { requestsPerUnit: 280, unit: Unit.HOUR }],
    [7200, 100, { requestsPerUnit: 1200, unit: Unit.DAY }],
    [2, 1_000_000_000, { requestsPerUnit: 4_294_967_295, unit: Unit.MINUTE }],
  ])('reports %is × %i tokens as current_limit %o', (interval, tokens, expected) => {
    expect(currentLimit(tokens, interval)).toEqual(expected);
  });
});

describe('ShouldRateLimit', () => {
  it('answers OK with the remaining tokens, then OVER_LIMIT once the bucket is empty, with the gate\'s RateLimit headers', async () => {
    const req = envoyCall('api', { path: '/catalog', headers: { 'x-tenant': 'acme' } });
    expect(req.descriptors.map((d) => d.entries.map((e) => `${e.key}=${e.value}`))).toEqual([['palisade_quota=shop/api', 'tenant=acme', 'route=rest']]);
    const remaining: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await shouldRateLimit(req);
      expect(r.overallCode).toBe(Code.OK);
      expect(r.statuses).toHaveLength(1);
      expect(r.statuses[0]!.code).toBe(Code.OK);
      expect(r.statuses[0]!.currentLimit).toMatchObject({ name: 'per-tenant', requestsPerUnit: 18, unit: Unit.MINUTE });
      remaining.push(r.statuses[0]!.limitRemaining);
    }
    expect(remaining).toEqual([2, 1, 0]);
    const over = await shouldRateLimit(req);
    expect(over.overallCode).toBe(Code.OVER_LIMIT);
    expect(over.statuses[0]!.code).toBe(Code.OVER_LIMIT);
    expect(over.statuses[0]!.limitRemaining).toBe(0);
    const reset = Number(over.statuses[0]!.durationUntilReset!.seconds);
    expect(reset).toBeGreaterThanOrEqual(1);
    expect(reset).toBeLessThanOrEqual(10);
    expect(headersOf(over)).toEqual({ 'retry-after': String(reset), 'ratelimit-policy': '"api.per-tenant";q=3;w=10', ratelimit: `"api.per-tenant";r=0;t=${reset}` });
    // The bucket key is the inbound gate's, in the sidecars' Redis.
    expect(await redis.cli('GET', 'palisade:quota:shop/api|per-tenant|tenant=acme|route=rest')).toBe('4');
    expect(counters('api', 'per-tenant')).toMatchObject({ allowed: 3, limited: 1 });
    expect(stats()).toMatchObject({ requests: 4, ok: 3, overLimit: 1, errors: 0, unknownDomains: 0 });
    expect(stats().quotas['shop/api']).toEqual({ orders: { allowed: 0, limited: 0, shadowLimited: 0, storeErrors: 0, fallbackUsed: 0, overflowed: 0 }, 'per-tenant': { allowed: 3, limited: 1, shadowLimited: 0, storeErrors: 0, fallbackUsed: 0, overflowed: 0 } });
  });

  it('keeps a bucket per descriptor value: the header default, another tenant and another route count apart', async () => {
    const anon = envoyCall('api', { path: '/catalog' });
    expect(anon.descriptors[0]!.entries.map((e) => `${e.key}=${e.value}`)).toEqual(['palisade_quota=shop/api', 'tenant=anonymous', 'route=rest']);
    const orders = envoyCall('api', { method: 'POST', path: '/orders/1', headers: { 'x-tenant': 'acme' } });
    expect(orders.descriptors[0]!.entries.map((e) => `${e.key}=${e.value}`)).toEqual(['palisade_quota=shop/api', 'tenant=acme', 'route=orders']);
    // GET /orders is route rest (orders is POST only).
    expect(envoyCall('api', { path: '/orders/1', headers: { 'x-tenant': 'acme' } }).descriptors[0]!.entries[2]).toMatchObject({ key: 'route', value: 'rest' });
    const codes = async (req: RateLimitRequest, n: number) => {
      const out: Code[] = [];
      for (let i = 0; i < n; i++) out.push((await shouldRateLimit(req)).overallCode);
      return out;
    };
    expect(await codes(anon, 4)).toEqual([Code.OK, Code.OK, Code.OK, Code.OVER_LIMIT]);
    const first = await shouldRateLimit(orders);
    expect(first.statuses[0]!.currentLimit).toMatchObject({ name: 'orders', requestsPerUnit: 2, unit: Unit.MINUTE });
    expect([first.overallCode, ...(await codes(orders, 2))]).toEqual([Code.OK, Code.OK, Code.OVER_LIMIT]);
    expect(await codes(envoyCall('api', { path: '/x', headers: { 'x-tenant': 'other' } }), 1)).toEqual([Code.OK]);
  });

  it('reads the remote_address entry as the peer address descriptor and the method as its own', async () => {
    const post = envoyCall('clients', { method: 'POST', path: '/', remoteAddress: '10.1.2.3' });
    expect(post.descriptors[0]!.entries.map((e) => `${e.key}=${e.value}`)).toEqual(['remote_address=10.1.2.3', 'verb=POST']);
    expect((await shouldRateLimit(post)).overallCode).toBe(Code.OK);
    const again = await shouldRateLimit(post);
    expect(again.overallCode).toBe(Code.OVER_LIMIT);
    expect(again.statuses[0]!.currentLimit).toMatchObject({ name: 'writes', requestsPerUnit: 1, unit: Unit.SECOND });
    // Another address has its own bucket; a GET takes from per-client.
    expect((await shouldRateLimit(envoyCall('clients', { method: 'POST', path: '/', remoteAddress: '10.1.2.4' }))).overallCode).toBe(Code.OK);
    const get = await shouldRateLimit(envoyCall('clients', { path: '/', remoteAddress: '10.1.2.3' }));
    expect(get.statuses[0]).toMatchObject({ code: Code.OK, limitRemaining: 99, currentLimit: { name: 'per-client', requestsPerUnit: 100, unit: Unit.HOUR } });
    expect(await redis.cli('GET', 'palisade:quota:shop/clients|writes|client=10.1.2.3|verb=POST')).toBe('2');
  });

  it('takes hits_addend tokens at once (0 counts as one)', async () => {
    const r = await shouldRateLimit(envoyCall('clients', { path: '/', remoteAddress: '10.9.9.9' }, 40));
    expect(r.statuses[0]!.limitRemaining).toBe(60);
    expect((await shouldRateLimit(envoyCall('clients', { path: '/', remoteAddress: '10.9.9.9' }, 0))).statuses[0]!.limitRemaining).toBe(59);
    const over = await shouldRateLimit(envoyCall('clients', { path: '/', remoteAddress: '10.9.9.9' }, 60));
    expect(over.overallCode).toBe(Code.OVER_LIMIT);
  });

  it('answers OK without a limit for a domain it has no Quota for, counting it', async () => {
    const req = create(RateLimitRequestSchema, { domain: 'other/elsewhere', descriptors: [{ entries: [{ key: 'tenant', value: 'acme' }] }, { entries: [{ key: 'x', value: 'y' }] }] });
    for (let i = 0; i < 3; i++) {
      const r = await shouldRateLimit(req);
      expect(r.overallCode).toBe(Code.OK);
      expect(r.statuses.map((s) => [s.code, s.currentLimit])).toEqual([[Code.OK, undefined], [Code.OK, undefined]]);
      expect(r.responseHeadersToAdd).toEqual([]);
    }
    expect(stats()).toMatchObject({ requests: 3, ok: 3, unknownDomains: 3 });
  });

  it('answers OK without a limit for a descriptor the Quota does not describe, and judges the others of the call', async () => {
    const req = envoyCall('api', { path: '/', headers: { 'x-tenant': 'acme' } });
    req.descriptors.unshift(
      create(RateLimitRequestSchema, { descriptors: [{ entries: [{ key: 'unknown', value: 'x' }] }] }).descriptors[0]!,
      // The route gate naming another Quota.
      create(RateLimitRequestSchema, { descriptors: [{ entries: [{ key: 'palisade_quota', value: 'shop/other' }, { key: 'tenant', value: 'acme' }, { key: 'route', value: 'rest' }] }] }).descriptors[0]!,
      // No route gate, but the Quota names routes: not a request of its routes.
      create(RateLimitRequestSchema, { descriptors: [{ entries: [{ key: 'tenant', value: 'acme' }, { key: 'route', value: 'rest' }] }] }).descriptors[0]!,
    );
    const r = await shouldRateLimit(req);
    expect(r.statuses.map((s) => [s.code, s.currentLimit?.name])).toEqual([[Code.OK, undefined], [Code.OK, undefined], [Code.OK, undefined], [Code.OK, 'per-tenant']]);
    expect(r.statuses[3]!.limitRemaining).toBe(2);
  });

  it('answers a shadow Quota OK past its limit and counts what it would refuse, without limits or headers', async () => {
    const req = envoyCall('shadowed', { path: '/', headers: { 'x-tenant': 'acme' } });
    for (let i = 0; i < 3; i++) {
      const r = await shouldRateLimit(req);
      expect(r.overallCode).toBe(Code.OK);
      expect(r.statuses.map((s) => [s.code, s.currentLimit])).toEqual([[Code.OK, undefined]]);
      expect(r.responseHeadersToAdd).toEqual([]);
    }
    expect(counters('shadowed', 'per-tenant')).toMatchObject({ allowed: 1, limited: 0, shadowLimited: 2 });
    expect(await redis.cli('GET', 'palisade:quota:shop/shadowed|per-tenant|tenant=acme')).toBe('3');
  });

  it.each([
    ['no domain', { domain: '', descriptors: [{ entries: [{ key: 'a', value: 'b' }] }] }, 'domain: must name a Quota ("<namespace>/<name>"), got ""'],
    ['no descriptors', { domain: 'shop/api', descriptors: [] }, 'descriptors: must list at least one descriptor, got none (domain "shop/api")'],
    ['an empty descriptor', { domain: 'shop/api', descriptors: [{ entries: [{ key: 'a', value: 'b' }] }, { entries: [] }] }, 'descriptors[1].entries: must list at least one entry, got none'],
    ['a huge hits_addend', { domain: 'shop/api', descriptors: [{ entries: [{ key: 'a', value: 'b' }] }], hitsAddend: 2_000_000_000 }, 'hits_addend: must be at most 1000000000, got 2000000000'],
  ])('fails INVALID_ARGUMENT for %s', async (_what, init, details) => {
    const err = await shouldRateLimit(create(RateLimitRequestSchema, init)).then(() => null, (e: ServiceError) => e);
    expect(err?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(err?.details).toBe(details);
    expect(stats()).toMatchObject({ requests: 1, errors: 1, ok: 0 });
  });
});

describe('before the first Quota configuration', () => {
  it('fails UNAVAILABLE, so Envoy applies each Quota\'s failure mode, and judges once the Quotas are in force', async () => {
    const fresh = new QuotaGate({ service: 'web', namespace: NS, logger: pino({ level: 'silent' }), store, namespaceQuotas: true });
    const early = new RateLimitServer({ config: () => fresh.namespaceConfig!, ready: () => fresh.ready, logger: pino({ level: 'silent' }) });
    const req = envoyCall('clients', { path: '/', remoteAddress: '10.7.7.7' });
    const err = await early.shouldRateLimit(req);
    expect(err).toEqual({ ok: false, failure: { code: GrpcStatus.UNAVAILABLE, details: 'no Quotas loaded yet: the sidecar has not received its first Quota configuration' } });
    fresh.apply([...state.quotas].map(([key, q]) => quotaMessage(key, q)));
    const judged = await early.shouldRateLimit(req);
    expect(judged.ok && judged.response.statuses[0]!.limitRemaining).toBe(99);
    expect(early.stats()).toMatchObject({ requests: 2, ok: 1, errors: 1 });
    fresh.close();
    await early.close();
  });
});

describe('one bucket with the inbound gate', () => {
  it('draws the inbound requests and the rate limit calls of a GLOBAL Quota from one bucket', async () => {
    const call = () => httpRequest(workloadAddress, { method: 'GET', path: '/', headers: { 'x-tenant': 'acme' } });
    // The same descriptor as the Envoy translation of `shared` yields (it selects web, not backend: built by hand alike).
    const rls = create(RateLimitRequestSchema, { domain: 'shop/shared', descriptors: [{ entries: [{ key: 'tenant', value: 'acme' }] }] });
    expect((await call()).status).toBe(200);
    expect((await shouldRateLimit(rls)).statuses[0]!.limitRemaining).toBe(2);
    const viaGate = await call();
    expect(viaGate.status).toBe(200);
    expect(viaGate.headers['x-ratelimit-remaining']).toBe('1');
    expect((await shouldRateLimit(rls)).statuses[0]!.limitRemaining).toBe(0);
    expect((await call()).status).toBe(429);
    expect((await shouldRateLimit(rls)).overallCode).toBe(Code.OVER_LIMIT);
    expect(await redis.cli('GET', 'palisade:quota:shop/shared|per-tenant|tenant=acme')).toBe('6');
    // One limit, one set of counters: /stats quota shows both paths.
    expect(counters('shared', 'per-tenant')).toMatchObject({ allowed: 4, limited: 2 });
  });
});

describe('with the store unreachable', () => {
  it('answers FAIL_OPEN Quotas from the local fallback bucket, fails FAIL_CLOSED ones UNAVAILABLE, and a shadow one OK', async () => {
    const open = envoyCall('open', { path: '/', headers: { 'x-tenant': 'acme' } });
    expect((await shouldRateLimit(open)).statuses[0]!.limitRemaining).toBe(999);
    await redis.stop();
    try {
      await until('the store noticed', () => !store.connected, 10_000);
      // fallbackTokens 2 per minute.
      const codes: Code[] = [];
      for (let i = 0; i < 3; i++) codes.push((await shouldRateLimit(open)).overallCode);
      expect(codes).toEqual([Code.OK, Code.OK, Code.OVER_LIMIT]);
      expect(counters('open', 'per-tenant')).toMatchObject({ storeErrors: 3, fallbackUsed: 3 });

      const err = await shouldRateLimit(envoyCall('closed', { path: '/', headers: { 'x-tenant': 'acme' } })).then(() => null, (e: ServiceError) => e);
      expect(err?.code).toBe(GrpcStatus.UNAVAILABLE);
      expect(err?.details).toBe('quota shop/closed (limit per-tenant) cannot be checked: its store is unreachable');
      expect(counters('closed', 'per-tenant')).toMatchObject({ storeErrors: 1, limited: 1 });

      const shadow = await shouldRateLimit(envoyCall('shadow-closed', { path: '/', headers: { 'x-tenant': 'acme' } }));
      expect(shadow.overallCode).toBe(Code.OK);
      expect(counters('shadow-closed', 'per-tenant')).toMatchObject({ storeErrors: 1, shadowLimited: 1 });
      expect(stats()).toMatchObject({ requests: 6, ok: 4, overLimit: 1, errors: 1, unknownDomains: 0 });
    } finally {
      await redis.restart();
    }
  });
});
