/**
 * Route matching on the request path: the compiled RouteTable against a peer that does what a
 * straightforward router does — scan every virtual host's domains as regexes, keep the best by
 * Envoy's precedence, split off the query, then test each route's path regex and compare its
 * headers. Both route the same requests to the same routes (checked before timing).
 *
 *   npx vitest bench bench/sidecar/route-match.bench.ts --run
 *
 * The table has 100 virtual hosts × 20 routes (prefix, exact, method- and header-guarded
 * prefixes, one safe_regex, a catch-all); requests are spread over every host form (name,
 * name:port, FQDN, wildcard) and route kind. Each benchmark call routes a batch of BATCH
 * requests; the printed requests/s is ops/s × BATCH.
 *
 * Vitest's module runner puts a getter in front of every cross-module call, which slows the
 * RouteTable (split over a few modules) more than the peer; for figures closer to production
 * Node, add `--experimental.viteModuleRunner=false` (native import with type stripping).
 */
import { test } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { RouteConfigurationSchema, type RouteConfiguration } from '../../xds/gen/envoy/config/route/v3/route_pb.js';
import { compileRouteTable, type HeaderLookup, type MatchedRoute, type RouteTable } from '../../sidecar/routing/route-table.ts';

const VHOSTS = 100;
const ROUTES = 20;
const REQUESTS = 1000;
const BATCH = 100;
const TIME_MS = 2000;

interface Request { authority: string; path: string; method: string; headers: HeaderLookup; want: string }

/** mulberry32: a seeded PRNG so every run routes the same requests. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const host = (i: number) => `svc-${i}.ns-${i % 10}`;

function routeConfiguration(): RouteConfiguration {
  return create(RouteConfigurationSchema, {
    name: 'bench',
    virtualHosts: Array.from({ length: VHOSTS }, (_, i) => ({
      name: `vh-${i}`,
      domains: [host(i), `${host(i)}:8080`, `${host(i)}.svc.cluster.local`, ...(i % 5 === 0 ? [`*.svc-${i}.example.com`] : []), ...(i % 25 === 0 ? [`svc-${i}.*`] : [])],
      routes: Array.from({ length: ROUTES }, (_, j) => {
        const cluster = { case: 'route' as const, value: { clusterSpecifier: { case: 'cluster' as const, value: `c-${i}-${j}` } } };
        const name = `r-${i}-${j}`;
        if (j === ROUTES - 1) return { name, match: { pathSpecifier: { case: 'prefix' as const, value: '/' } }, action: cluster };
        if (j === ROUTES - 2) return { name, match: { pathSpecifier: { case: 'safeRegex' as const, value: { regex: '/items/[0-9]+' } } }, action: cluster };
        switch (j % 4) {
          case 0: return { name, match: { pathSpecifier: { case: 'prefix' as const, value: `/api/v${j}/` } }, action: cluster };
          case 1: return { name, match: { pathSpecifier: { case: 'path' as const, value: `/exact/${j}` } }, action: cluster };
          case 2: return {
            name, action: cluster,
            match: { pathSpecifier: { case: 'prefix' as const, value: `/p${j}/` }, headers: [{ name: ':method', headerMatchSpecifier: { case: 'stringMatch' as const, value: { matchPattern: { case: 'exact' as const, value: 'POST' } } } }] },
          };
          default: return {
            name, action: cluster,
            match: { pathSpecifier: { case: 'prefix' as const, value: `/h${j}/` }, headers: [{ name: 'x-tenant', headerMatchSpecifier: { case: 'stringMatch' as const, value: { matchPattern: { case: 'exact' as const, value: `t${j}` } } } }] },
          };
        }
      }),
    })),
  });
}

function requests(): Request[] {
  const random = prng(4);
  const pickInt = (n: number) => Math.floor(random() * n);
  return Array.from({ length: REQUESTS }, () => {
    const i = pickInt(VHOSTS);
    let j = pickInt(ROUTES);
    const forms = [host(i), `${host(i)}:8080`, `${host(i)}.svc.cluster.local`, `${host(i)}:9999`, ...(i % 5 === 0 ? [`api.svc-${i}.example.com`] : [])];
    const authority = forms[pickInt(forms.length)]!;
    const query = random() < 0.3 ? '?page=2&sort=asc' : '';
    let path: string;
    let method = 'GET';
    const h: Record<string, string> = { 'user-agent': 'bench', accept: '*/*' };
    if (j === ROUTES - 1) path = `/unknown/${pickInt(1000)}${query}`;
    else if (j === ROUTES - 2) path = `/items/${pickInt(1000)}${query}`;
    else if (j % 4 === 0) path = `/api/v${j}/things/${pickInt(100)}${query}`;
    else if (j % 4 === 1) path = `/exact/${j}${query}`;
    else if (j % 4 === 2) {
      path = `/p${j}/x${query}`;
      method = 'POST';
    } else {
      path = `/h${j}/y${query}`;
      h['x-tenant'] = `t${j}`;
    }
    if (random() < 0.1 && j % 4 >= 2 && j < ROUTES - 2) {
      // The guard fails: the request falls through to the catch-all.
      method = 'GET';
      delete h['x-tenant'];
      j = ROUTES - 1;
    }
    return { authority, path, method, headers: (name: string) => h[name], want: `r-${i}-${j}` };
  });
}

// ---- the peer: linear scans, a regex per domain and per route path ----

interface PeerRoute { name: string; path: RegExp; headers: Array<{ name: string; value: string }> }
interface PeerHost { domains: Array<{ re: RegExp; rank: number }>; routes: PeerRoute[] }

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

function peerRouter(rc: RouteConfiguration): (authority: string, path: string, method: string, headers: HeaderLookup) => string | null {
  let fallback: PeerHost | null = null;
  const hosts: PeerHost[] = rc.virtualHosts.map((vh) => {
    const routes = vh.routes.map((r): PeerRoute => {
      const p = r.match!.pathSpecifier;
      const path = p.case === 'prefix' ? new RegExp(`^${esc(p.value)}`) : p.case === 'path' ? new RegExp(`^${esc(p.value)}$`) : new RegExp(`^(?:${(p.value as { regex: string }).regex})$`);
      const headers = r.match!.headers.map((h) => ({ name: h.name, value: ((h.headerMatchSpecifier.value as { matchPattern: { value: string } }).matchPattern.value) }));
      return { name: r.name, path, headers };
    });
    const entry: PeerHost = { domains: [], routes };
    for (const d of vh.domains.map((x) => x.toLowerCase())) {
      if (d === '*') fallback = entry;
      else if (d.startsWith('*')) entry.domains.push({ re: new RegExp(`^.+${esc(d.slice(1))}$`), rank: 2e6 + d.length });
      else if (d.endsWith('*')) entry.domains.push({ re: new RegExp(`^${esc(d.slice(0, -1))}.+$`), rank: 1e6 + d.length });
      else entry.domains.push({ re: new RegExp(`^${esc(d)}$`), rank: 3e6 });
    }
    return entry;
  });
  const best = (h: string): PeerHost | null => {
    let found: PeerHost | null = null;
    let rank = -1;
    for (const vh of hosts) for (const d of vh.domains) if (d.rank > rank && d.re.test(h)) { found = vh; rank = d.rank; }
    return found;
  };
  return (authority, path, method, headers) => {
    const h = authority.toLowerCase();
    const colon = h.lastIndexOf(':');
    const vh = best(h) ?? (colon >= 0 ? best(h.slice(0, colon)) : null) ?? fallback;
    if (vh === null) return null;
    const p = path.split('?')[0]!;
    for (const r of vh.routes) {
      if (!r.path.test(p)) continue;
      if (r.headers.every((m) => (m.name === ':method' ? method : headers(m.name)) === m.value)) return r.name;
    }
    return null;
  };
}

// ---- the run ----

const rc = routeConfiguration();
const compiled = compileRouteTable(rc);
if (!compiled.valid) throw new Error(compiled.errors.join('\n'));
const table: RouteTable = compiled.result;
const peer = peerRouter(rc);
const mixed = requests();
const hot: Request = { authority: host(0), path: '/api/v0/things/1', method: 'GET', headers: () => undefined, want: 'r-0-0' };

for (const r of [...mixed, hot]) {
  const ours = table.match(r.authority, r.path, r.method, r.headers)?.name ?? null;
  const theirs = peer(r.authority, r.path, r.method, r.headers);
  if (ours !== r.want || theirs !== r.want) throw new Error(`${r.authority}${r.path}: want ${r.want}, RouteTable ${ours}, peer ${theirs}`);
}

/** Consumed after each run so the engine cannot drop the matching as dead code. */
let sink = 0;

/** Each call routes the next BATCH requests of `reqs`, cycling. */
function batches(reqs: readonly Request[]) {
  let ours = 0;
  let theirs = 0;
  return {
    ours: () => {
      for (let k = 0; k < BATCH; k++) {
        const r = reqs[ours]!;
        ours = ours + 1 === reqs.length ? 0 : ours + 1;
        const m: MatchedRoute | null = table.match(r.authority, r.path, r.method, r.headers);
        sink += m === null ? 0 : m.name.length;
      }
    },
    peer: () => {
      for (let k = 0; k < BATCH; k++) {
        const r = reqs[theirs]!;
        theirs = theirs + 1 === reqs.length ? 0 : theirs + 1;
        sink += peer(r.authority, r.path, r.method, r.headers)?.length ?? 0;
      }
    },
  };
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

for (const [scenario, reqs] of [
  ['mixed requests over 100 vhosts × 20 routes', mixed],
  ['one hot route (first vhost, first route, exact host)', [hot]],
] as const) {
  test(scenario, async ({ bench }) => {
    const b = batches(reqs);
    const ourName = `RouteTable.match ×${BATCH}`;
    const peerName = `peer: linear scan + regex per domain ×${BATCH}`;
    const results = await bench.compare(bench(ourName, b.ours), bench(peerName, b.peer), { time: TIME_MS });
    const ours = results.get(ourName).throughput.mean * BATCH;
    const theirs = results.get(peerName).throughput.mean * BATCH;
    console.log(`${scenario} (Node ${process.version}):\n  RouteTable.match  ${fmt(ours)} requests/s\n  peer              ${fmt(theirs)} requests/s\n  ratio             ${(ours / theirs).toFixed(1)}x${sink < 0 ? ' ' : ''}`);
  });
}
