/**
 * Quota translation. Sidecars: palisade.v1.Quota for the groups of the quota's namespace,
 * field for field, deterministic, PGV-valid. Envoy identity groups: a local Quota becomes
 * envoy.filters.http.local_ratelimit, a global one envoy.filters.http.ratelimit to the
 * `palisade_ratelimit` cluster, with route rate_limits whose actions build the descriptor; every
 * resource passes Envoy's PGV rules and the snapshot is consistent. Quotas Envoy cannot
 * enforce are left out with the reason, which `palisade analyze` prints.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toBinary, toJson, type Message } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { loadDirectory } from '../../../control/config/load-directory.ts';
import type { DesiredState } from '../../../control/config/state.ts';
import { translate } from '../../../control/translate/translator.ts';
import { inboundFor } from '../../../control/translate/inbound.ts';
import { ROUTER_FILTER_NAME } from '../../../control/translate/listeners.ts';
import {
  ENVOY_RATELIMIT_CLUSTER, ENVOY_RATELIMIT_PORT, LOCAL_RATELIMIT_FILTER_NAME, MAX_ENVOY_QUOTAS, RATELIMIT_FILTER_NAME, ROUTE_GATE_KEY,
} from '../../../control/translate/envoy-ratelimit.ts';
import type { NodeTarget } from '../../../control/translate/node-kind.ts';
import { QuotaSchema, Quota_FailureMode, Quota_Scope, type Quota } from '../../../xds/gen/palisade/v1/quota_pb.js';
import type { Cluster } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { Listener } from '../../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import { HttpConnectionManagerSchema, type HttpConnectionManager } from '../../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { LocalRateLimitSchema } from '../../../xds/gen/envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit_pb.js';
import { RateLimitSchema as RateLimitFilterSchema } from '../../../xds/gen/envoy/extensions/filters/http/ratelimit/v3/rate_limit_pb.js';
import { RateLimitSchema } from '../../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { Snapshot } from '../../../xds/cache/snapshot.ts';
import { inconsistencies } from '../../../xds/cache/consistency.ts';
import { getResourceType, TYPE_REGISTRY } from '../../../xds/resources/registry.ts';
import { CLUSTER_TYPE_URL, LISTENER_TYPE_URL, QUOTA_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { validateMessage } from '../../../xds/validate/pgv.ts';

const CLI = join(import.meta.dirname, '../../../cli/main.ts');
const TD = 'mesh.local';
const BUNDLE = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const BACKEND: NodeTarget = { kind: 'envoy', namespace: 'shop', identity: `spiffe://${TD}/ns/shop/sa/backend` };

const BASE = [
  `apiVersion: palisade.dev/v1\nkind: Mesh\nmetadata: { name: mesh }\nspec: { trustDomain: ${TD} }\n`,
  '---\napiVersion: palisade.dev/v1\nkind: Service\nmetadata: { name: backend, namespace: shop }\nspec: { port: 8080 }\n',
  '---\napiVersion: palisade.dev/v1\nkind: Service\nmetadata: { name: other, namespace: shop }\nspec: { port: 9090 }\n',
  '---\napiVersion: palisade.dev/v1\nkind: RequestAuthentication\nmetadata: { name: jwt, namespace: shop }\nspec:\n  providers:\n    keycloak: { issuer: https://idp.example, jwks: { uri: "http://127.0.0.1:9/jwks" } }\n',
].join('');

function quota(name: string, spec: string, namespace = 'shop'): string {
  return `---\napiVersion: palisade.dev/v1\nkind: Quota\nmetadata: { name: ${name}, namespace: ${namespace} }\nspec:\n${spec}`;
}

/** Every field set, scope local. */
const FULL = `  selector: { services: [backend] }
  routes:
    - { name: api, pathPrefix: /api/, methods: [GET, POST] }
    - { name: rest, pathPrefix: / }
  descriptors:
    - { key: tenant, from: { header: X-Tenant-ID }, default: anonymous }
    - { key: route, from: { route: true } }
  limits:
    - { name: gold, match: { tenant: acme, route: api }, tokens: 1000, interval: 1m, burst: 100, fallbackTokens: 200 }
    - { name: anon, match: { route: rest, tenant: anonymous }, tokens: 10, interval: 1s }
  shadow: true
  failureMode: closed
  priority:
    from: { header: x-priority }
    classes: [{ name: critical, values: [critical], shedAt: 0 }, { name: normal, values: [normal, standard], shedAt: 90 }]
    default: normal
`;

const GLOBAL = `  descriptors:
    - { key: client, from: { remoteAddress: true } }
    - { key: verb, from: { method: true } }
  limits:
    - { name: writes, match: { verb: POST }, tokens: 5, interval: 1s }
    - { name: per-client, tokens: 50, interval: 1s }
  scope: global
  failureMode: closed
`;

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-quota-translate-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function stateWith(...quotas: string[]): Promise<DesiredState> {
  await writeFile(join(dir, 'config.yaml'), BASE + quotas.join(''));
  const r = await loadDirectory(dir);
  if (!r.valid) throw new Error(JSON.stringify(r.errors));
  return r.result;
}

/** What the control plane's #build checks: every resource against PGV, Any payloads included. */
function pgvProblems(resources: Record<string, Message[]>): string[] {
  const out: string[] = [];
  for (const [typeUrl, list] of Object.entries(resources)) {
    const type = getResourceType(typeUrl);
    for (const r of list) {
      const v = validateMessage(type.schema, r, { registry: TYPE_REGISTRY });
      if (!v.valid) out.push(...v.errors);
    }
  }
  return out;
}

function inboundHcm(resources: Record<string, Message[]>): HttpConnectionManager {
  const listener = (resources[LISTENER_TYPE_URL] as Listener[]).find((l) => l.name === 'inbound_15006')!;
  const f = listener.filterChains[0]!.filters[0]!;
  if (f.configType.case !== 'typedConfig') throw new Error('no typed_config');
  return anyUnpack(f.configType.value, HttpConnectionManagerSchema)!;
}

function routeOf(hcm: HttpConnectionManager) {
  if (hcm.routeSpecifier.case !== 'routeConfig') throw new Error('no inline route config');
  const action = hcm.routeSpecifier.value.virtualHosts[0]!.routes[0]!.action;
  if (action.case !== 'route') throw new Error('not a route action');
  return action.value;
}

function typedConfig<T extends Message>(hcm: HttpConnectionManager, name: string, schema: Parameters<typeof anyUnpack>[1]): T {
  const f = hcm.httpFilters.find((x) => x.name === name)!;
  if (f.configType.case !== 'typedConfig') throw new Error('no typed_config');
  return anyUnpack(f.configType.value, schema) as T;
}

describe('Quota → palisade.v1.Quota for sidecars', () => {
  it('maps every field, for the sidecar group of its namespace only', async () => {
    const state = await stateWith(quota('full', FULL), quota('elsewhere', GLOBAL, 'default'));
    const resources = translate(state, { kind: 'sidecar', namespace: 'shop' });
    expect(pgvProblems(resources)).toEqual([]);
    const quotas = resources[QUOTA_TYPE_URL] as Quota[];
    expect(quotas.map((q) => q.name)).toEqual(['shop/full']);
    expect(toJson(QuotaSchema, quotas[0]!)).toEqual({
      name: 'shop/full',
      services: ['backend'],
      routes: [{ name: 'api', pathPrefix: '/api/', methods: ['GET', 'POST'] }, { name: 'rest', pathPrefix: '/' }],
      descriptors: [
        { key: 'tenant', value: { header: 'x-tenant-id' }, defaultValue: 'anonymous' },
        { key: 'route', value: { route: true } },
      ],
      limits: [
        { name: 'gold', match: { route: 'api', tenant: 'acme' }, tokens: '1000', interval: '60s', burst: '100', fallbackTokens: '200' },
        { name: 'anon', match: { route: 'rest', tenant: 'anonymous' }, tokens: '10', interval: '1s' },
      ],
      shadow: true,
      failureMode: 'FAIL_CLOSED',
      priorityAttribute: { header: 'x-priority' },
      priorityClasses: [{ name: 'critical', values: ['critical'] }, { name: 'normal', values: ['normal', 'standard'], shedAtPercent: 90 }],
      defaultPriorityClass: 'normal',
    });
    expect(quotas[0]!.scope).toBe(Quota_Scope.LOCAL);
    expect(translate(state, { kind: 'sidecar', namespace: 'default' })[QUOTA_TYPE_URL]!.map((q) => (q as Quota).name)).toEqual(['default/elsewhere']);
  });

  it('maps each attribute source and the global scope', async () => {
    const state = await stateWith(quota('sources', `  descriptors:
    - { key: a, from: { jwtClaim: keycloak.org.id } }
    - { key: b, from: { principal: true } }
    - { key: c, from: { remoteAddress: true } }
    - { key: d, from: { method: true } }
  limits: [{ name: all, tokens: 1, interval: 24h }]
  scope: global
`));
    const q = translate(state, { kind: 'sidecar', namespace: 'shop' })[QUOTA_TYPE_URL]![0] as Quota;
    expect(q.descriptors.map((d) => [d.key, d.value?.source.case, d.value?.source.value])).toEqual([
      ['a', 'jwtClaim', 'keycloak.org.id'], ['b', 'principal', true], ['c', 'remoteAddress', true], ['d', 'method', true],
    ]);
    expect(q.scope).toBe(Quota_Scope.GLOBAL);
    expect(q.failureMode).toBe(Quota_FailureMode.FAIL_OPEN);
    expect(q.limits[0]!.interval?.seconds).toBe(86400n);
    expect(q.priorityAttribute).toBeUndefined();
  });

  it('gives the same bytes for the same state, whatever the order of match keys in the file', async () => {
    const a = translate(await stateWith(quota('full', FULL)), { kind: 'sidecar', namespace: 'shop' })[QUOTA_TYPE_URL]![0] as Quota;
    const swapped = FULL.replace('match: { tenant: acme, route: api }', 'match: { route: api, tenant: acme }');
    const b = translate(await stateWith(quota('full', swapped)), { kind: 'sidecar', namespace: 'shop' })[QUOTA_TYPE_URL]![0] as Quota;
    expect(Buffer.from(toBinary(QuotaSchema, b))).toEqual(Buffer.from(toBinary(QuotaSchema, a)));
  });

  it('sends no Quota resources to Envoy groups', async () => {
    const state = await stateWith(quota('full', FULL));
    expect(translate(state, BACKEND, { trustBundle: BUNDLE })[QUOTA_TYPE_URL]).toBeUndefined();
  });
});

describe('Quota → Envoy rate limit filters on inbound_15006', () => {
  it('turns a local Quota into local_ratelimit before the router, one token bucket per limit, shadow as 0% enforced', async () => {
    const state = await stateWith(quota('full', FULL));
    const resources = translate(state, BACKEND, { trustBundle: BUNDLE });
    expect(pgvProblems(resources)).toEqual([]);
    expect(inconsistencies(Snapshot.fromResources(resources))).toEqual([]);
    const hcm = inboundHcm(resources);
    expect(hcm.httpFilters.map((f) => f.name)).toEqual([`${LOCAL_RATELIMIT_FILTER_NAME}.shop.full`, ROUTER_FILTER_NAME]);
    const lrl = toJson(LocalRateLimitSchema, typedConfig(hcm, `${LOCAL_RATELIMIT_FILTER_NAME}.shop.full`, LocalRateLimitSchema));
    expect(lrl).toEqual({
      statPrefix: 'palisade_quota.shop.full',
      tokenBucket: { maxTokens: 4294967295, tokensPerFill: 4294967295, fillInterval: '1s' },
      filterEnabled: { defaultValue: { numerator: 100 }, runtimeKey: 'palisade.quota.shop.full.enabled' },
      filterEnforced: { defaultValue: {}, runtimeKey: 'palisade.quota.shop.full.enforced' },
      responseHeadersToAdd: [{ header: { key: 'x-palisade-quota', value: 'shop/full' }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
      descriptors: [
        {
          entries: [{ key: ROUTE_GATE_KEY, value: 'shop/full' }, { key: 'tenant', value: 'acme' }, { key: 'route', value: 'api' }],
          tokenBucket: { maxTokens: 1100, tokensPerFill: 1000, fillInterval: '60s' },
        },
        {
          entries: [{ key: ROUTE_GATE_KEY, value: 'shop/full' }, { key: 'tenant', value: 'anonymous' }, { key: 'route', value: 'rest' }],
          tokenBucket: { maxTokens: 10, tokensPerFill: 10, fillInterval: '1s' },
        },
      ],
      enableXRatelimitHeaders: 'DRAFT_VERSION_03',
      alwaysConsumeDefaultTokenBucket: false,
    });
    // No rate limit service is needed.
    expect((resources[CLUSTER_TYPE_URL] as Cluster[]).map((c) => c.name)).not.toContain(ENVOY_RATELIMIT_CLUSTER);
  });

  it('builds the descriptor with route rate_limits: a header (and its default), the route name, first matching route', async () => {
    const hcm = inboundHcm(translate(await stateWith(quota('full', FULL)), BACKEND, { trustBundle: BUNDLE }));
    const limits = routeOf(hcm).rateLimits.map((r) => toJson(RateLimitSchema, r));
    const gate = (headers: unknown[]) => ({ headerValueMatch: { descriptorKey: ROUTE_GATE_KEY, descriptorValue: 'shop/full', headers } });
    const present = { requestHeaders: { headerName: 'x-tenant-id', descriptorKey: 'tenant' } };
    const absent = { headerValueMatch: { descriptorKey: 'tenant', descriptorValue: 'anonymous', expectMatch: false, headers: [{ name: 'x-tenant-id', presentMatch: true }] } };
    const api = [{ name: ':path', stringMatch: { prefix: '/api/' } }, { name: ':method', stringMatch: { safeRegex: { regex: '^(?:GET|POST)$' } } }];
    // "rest" is "/" minus what "api" took: another path, or /api/ with another method.
    const restOtherPath = [{ name: ':path', stringMatch: { prefix: '/' } }, { name: ':path', stringMatch: { prefix: '/api/' }, invertMatch: true }];
    const restOtherMethod = [
      { name: ':path', stringMatch: { prefix: '/' } }, { name: ':path', stringMatch: { prefix: '/api/' } },
      { name: ':method', stringMatch: { safeRegex: { regex: '^(?:GET|POST)$' } }, invertMatch: true },
    ];
    const key = (route: string) => ({ genericKey: { descriptorKey: 'route', descriptorValue: route } });
    expect(limits).toEqual([
      { stage: 0, actions: [gate(api), present, key('api')] },
      { stage: 0, actions: [gate(api), absent, key('api')] },
      { stage: 0, actions: [gate(restOtherPath), present, key('rest')] },
      { stage: 0, actions: [gate(restOtherPath), absent, key('rest')] },
      { stage: 0, actions: [gate(restOtherMethod), present, key('rest')] },
      { stage: 0, actions: [gate(restOtherMethod), absent, key('rest')] },
    ]);
  });

  it('turns a global Quota into the ratelimit filter to palisade_ratelimit, with remote_address and :method actions', async () => {
    const state = await stateWith(quota('global', GLOBAL));
    const resources = translate(state, BACKEND, { trustBundle: BUNDLE });
    expect(pgvProblems(resources)).toEqual([]);
    expect(inconsistencies(Snapshot.fromResources(resources))).toEqual([]);
    const hcm = inboundHcm(resources);
    expect(toJson(RateLimitFilterSchema, typedConfig(hcm, `${RATELIMIT_FILTER_NAME}.shop.global`, RateLimitFilterSchema))).toEqual({
      domain: 'shop/global',
      failureModeDeny: true,
      rateLimitService: { grpcService: { envoyGrpc: { clusterName: ENVOY_RATELIMIT_CLUSTER } }, transportApiVersion: 'V3' },
      enableXRatelimitHeaders: 'DRAFT_VERSION_03',
      responseHeadersToAdd: [{ header: { key: 'x-palisade-quota', value: 'shop/global' }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
      statPrefix: 'palisade_quota.shop.global',
      statusOnError: { code: 'TooManyRequests' },
      timeout: '0.250s',
    });
    expect(routeOf(hcm).rateLimits.map((r) => toJson(RateLimitSchema, r))).toEqual([
      { stage: 0, actions: [{ remoteAddress: {} }, { requestHeaders: { headerName: ':method', descriptorKey: 'verb' } }] },
    ]);
    const cluster = (resources[CLUSTER_TYPE_URL] as Cluster[]).find((c) => c.name === ENVOY_RATELIMIT_CLUSTER)!;
    const ep = cluster.loadAssignment!.endpoints[0]!.lbEndpoints[0]!.hostIdentifier;
    expect(ep.case === 'endpoint' && ep.value.address?.address.case === 'socketAddress' && ep.value.address.address.value.portSpecifier.value).toBe(ENVOY_RATELIMIT_PORT);
    expect(Object.keys(cluster.typedExtensionProtocolOptions)).toEqual(['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']);
  });

  it('fails open unless failureMode is closed', async () => {
    const hcm = inboundHcm(translate(await stateWith(quota('global', GLOBAL.replace('failureMode: closed', 'failureMode: open'))), BACKEND, { trustBundle: BUNDLE }));
    expect(typedConfig<{ failureModeDeny: boolean } & Message>(hcm, `${RATELIMIT_FILTER_NAME}.shop.global`, RateLimitFilterSchema).failureModeDeny).toBe(false);
  });

  it('gives each Quota of the Service its own stage, in key order, and skips Quotas selecting another Service', async () => {
    const state = await stateWith(quota('b-global', GLOBAL), quota('a-local', FULL), quota('c-other', GLOBAL.replace('  descriptors:', '  selector: { services: [other] }\n  descriptors:')));
    const out = inboundFor(state, BACKEND, 'STRICT')!;
    expect(out.quotas.map((t) => [t.quota, t.kind, t.stage])).toEqual([['shop/a-local', 'local_ratelimit', 0], ['shop/b-global', 'ratelimit', 1]]);
    const hcm = inboundHcm(translate(state, BACKEND, { trustBundle: BUNDLE }));
    expect(hcm.httpFilters.map((f) => f.name)).toEqual([`${LOCAL_RATELIMIT_FILTER_NAME}.shop.a-local`, `${RATELIMIT_FILTER_NAME}.shop.b-global`, ROUTER_FILTER_NAME]);
    expect([...new Set(routeOf(hcm).rateLimits.map((r) => r.stage))]).toEqual([0, 1]);
  });

  it.each([
    ['a principal descriptor', '  descriptors: [{ key: peer, from: { principal: true } }]\n  limits: [{ name: all, tokens: 1, interval: 1s }]\n  scope: global\n',
      'descriptor "peer" reads the principal: no Envoy rate limit action reads the peer certificate\'s SPIFFE ID'],
    ['a jwtClaim descriptor', '  descriptors: [{ key: org, from: { jwtClaim: keycloak.org } }]\n  limits: [{ name: all, tokens: 1, interval: 1s }]\n  scope: global\n',
      'descriptor "org" reads a JWT claim: Envoy nodes verify no JWTs (RequestAuthentication is enforced by sidecars only)'],
    ['a local limit with a bucket per value', '  descriptors: [{ key: ip, from: { remoteAddress: true } }]\n  limits: [{ name: per-ip, tokens: 1, interval: 1s }]\n',
      'limit "per-ip" leaves "ip" open (a bucket per value): local_ratelimit matches descriptor values exactly; use scope global'],
    ['more than 256 rate limit variants', `  routes: [{ name: a, pathPrefix: /a }, { name: b, pathPrefix: /b }]
  descriptors: [${Array.from({ length: 8 }, (_, i) => `{ key: h${i}, from: { header: x-h${i} }, default: none }`).join(', ')}]
  limits: [{ name: all, tokens: 1, interval: 1s }]
  scope: global
`, 'it needs 512 rate_limits entries (route exclusions × headers with a default), more than 256'],
  ])('leaves out a Quota with %s, saying why', async (_what, spec, reason) => {
    const state = await stateWith(quota('q', spec));
    const out = inboundFor(state, BACKEND, 'STRICT')!;
    expect(out.quotas).toEqual([{ quota: 'shop/q', kind: 'none', stage: null, reason, warnings: [] }]);
    const hcm = inboundHcm(translate(state, BACKEND, { trustBundle: BUNDLE }));
    expect(hcm.httpFilters.map((f) => f.name)).toEqual([ROUTER_FILTER_NAME]);
    expect(routeOf(hcm).rateLimits).toEqual([]);
  });

  it(`enforces at most ${MAX_ENVOY_QUOTAS} Quotas per Service (stages 0..10) and says so for the rest`, async () => {
    const names = Array.from({ length: MAX_ENVOY_QUOTAS + 1 }, (_, i) => `q${String(i).padStart(2, '0')}`);
    const state = await stateWith(...names.map((n) => quota(n, GLOBAL)));
    const out = inboundFor(state, BACKEND, 'STRICT')!;
    expect(out.quotas.filter((t) => t.kind === 'ratelimit').map((t) => t.stage)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(out.quotas.at(-1)).toEqual({
      quota: 'shop/q11', kind: 'none', stage: null, warnings: [],
      reason: 'more than 11 Quotas select Service "shop/backend": Envoy has rate limit stages 0..10',
    });
    expect(pgvProblems(translate(state, BACKEND, { trustBundle: BUNDLE }))).toEqual([]);
  });

  it('drops a route an earlier one shadows entirely, and excludes an earlier route of a longer path with an inverted :path', async () => {
    const spec = (first: string, second: string) => `  routes:
    - ${first}
    - ${second}
  descriptors: [{ key: r, from: { route: true } }]
  limits: [{ name: all, match: { r: all }, tokens: 1, interval: 1s }]
`;
    const state = await stateWith(
      quota('longer', spec('{ name: api, pathPrefix: /api/ }', '{ name: all, pathPrefix: / }')),
      quota('shadowed', spec('{ name: all, pathPrefix: / }', '{ name: never, pathPrefix: /api/ }')),
    );
    const hcm = inboundHcm(translate(state, BACKEND, { trustBundle: BUNDLE }));
    const gates = routeOf(hcm).rateLimits.map((r) => toJson(RateLimitSchema, r) as { stage: number; actions: Array<{ headerValueMatch: { headers: unknown[] } }> });
    expect(gates.map((g) => [g.stage, g.actions[0]!.headerValueMatch.headers])).toEqual([
      [0, [{ name: ':path', stringMatch: { prefix: '/api/' } }]],
      [0, [{ name: ':path', stringMatch: { prefix: '/' } }, { name: ':path', stringMatch: { prefix: '/api/' }, invertMatch: true }]],
      [1, [{ name: ':path', stringMatch: { prefix: '/' } }]],
    ]);
  });
});

describe('palisade analyze and Quotas', () => {
  function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
      });
    });
  }

  it('warns once about each Quota Envoy nodes cannot enforce, or enforce only in part, per Service for the stage limit', async () => {
    await writeFile(join(dir, 'config.yaml'), BASE
      + quota('by-peer', '  descriptors: [{ key: peer, from: { principal: true } }]\n  limits: [{ name: all, tokens: 1, interval: 1s }]\n  scope: global\n')
      + quota('full', FULL)
      + quota('global', GLOBAL)
      + Array.from({ length: 11 }, (_, i) => quota(`z${String(i).padStart(2, '0')}`, GLOBAL)).join(''));
    const r = await cli(['analyze', '--config', dir, '-o', 'json']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe([
      'palisade analyze: warning: Quota shop/by-peer is not enforced on Envoy nodes: descriptor "peer" reads the principal: no Envoy rate limit action reads the peer certificate\'s SPIFFE ID',
      'palisade analyze: warning: Quota shop/full is enforced on Envoy nodes in part: priority classes are not enforced by Envoy (no priority shedding); the limits are',
      // backend: full, global and z00..z08 take stages 0..10; other (no full): global and z00..z09.
      'palisade analyze: warning: Quota shop/z09 is not enforced on Envoy nodes: more than 11 Quotas select Service "shop/backend": Envoy has rate limit stages 0..10',
      'palisade analyze: warning: Quota shop/z10 is not enforced on Envoy nodes: more than 11 Quotas select Service "shop/backend": Envoy has rate limit stages 0..10',
      'palisade analyze: warning: Quota shop/z10 is not enforced on Envoy nodes: more than 11 Quotas select Service "shop/other": Envoy has rate limit stages 0..10',
      '',
    ].join('\n'));
    expect(JSON.parse(r.stdout)).toEqual([]);
  });
});
