/** The forwarder between a real node:http proxy server and real backends, all on 127.0.0.1:0. */
import { UPSTREAM_CONNECT_FAILURE } from '../../../sidecar/proxy/local-reply.ts';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { RouteAction, RouteActionSchema } from '../../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { createForwarder, type ForwarderOptions } from '../../../sidecar/proxy/forward.ts';
import { coarseTimers } from '../../../sidecar/timers/coarse-timers.ts';
import { UpstreamCluster } from '../../../sidecar/upstream/upstream-cluster.ts';
import type { RouteTable } from '../../../sidecar/routing/route-table.ts';
import { compile, ms, prefix, routeConfig, type RouteInit, type VirtualHostInit } from '../routing/fixtures.ts';
import { compiled, ep, locality, staticCluster, type ClusterInit } from '../upstream/fixtures.ts';
import { call, deadPort, digest, open, patternStream, startBackend, startProxy, type Backend, type Proxy } from './fixtures.ts';
import { Cluster_LbPolicy } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';

type RouteActionInit = Exclude<MessageInitShape<typeof RouteActionSchema>, RouteAction>;

const backends: Backend[] = [];
const proxies: Proxy[] = [];
const clusters: UpstreamCluster[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await Promise.all(clusters.splice(0).map((c) => c.destroy()));
  await Promise.all(backends.splice(0).map((b) => b.close()));
});

async function backend(name: string): Promise<Backend> {
  const b = await startBackend(name);
  backends.push(b);
  return b;
}

function cluster(name: string, port: number, init: ClusterInit = {}): UpstreamCluster {
  const c = new UpstreamCluster(compiled(staticCluster(name, [locality([ep('127.0.0.1', port)])], init)));
  clusters.push(c);
  return c;
}

function route(match: RouteInit['match'], clusterName: string, extra: Omit<RouteActionInit, 'clusterSpecifier'> = {}): RouteInit {
  return { match, action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: clusterName }, ...extra } } };
}

async function proxy(vhosts: VirtualHostInit[], cs: UpstreamCluster[], opts: Partial<ForwarderOptions> = {}): Promise<number> {
  const byName = new Map(cs.map((c) => [c.name, c]));
  const table: RouteTable = compile(routeConfig(vhosts));
  const p = await startProxy(createForwarder({ getCluster: (n) => byName.get(n), random: () => 0, ...opts }), table);
  proxies.push(p);
  return p.port;
}

/** One virtual host `a.test` with `routes`, over the clusters. */
const single = (routes: RouteInit[], cs: UpstreamCluster[], opts: Partial<ForwarderOptions> = {}): Promise<number> =>
  proxy([{ name: 'a', domains: ['a.test'], routes }], cs, opts);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('routing', () => {
  it('sends requests to the backend their host and path select', async () => {
    const [one, two] = [await backend('one'), await backend('two')];
    const port = await proxy([
      { name: 'a', domains: ['a.test'], routes: [route(prefix('/two'), 'two'), route(prefix('/'), 'one')] },
      { name: 'b', domains: ['b.test'], routes: [route(prefix('/'), 'two')] },
    ], [cluster('one', one.port), cluster('two', two.port)]);
    const replies = await Promise.all([
      call(port, { headers: { host: 'a.test' }, path: '/x' }),
      call(port, { headers: { host: 'a.test' }, path: '/two/y' }),
      call(port, { headers: { host: 'b.test:8080' }, path: '/z' }),
    ]);
    expect(replies.map((r) => [r.status, r.body])).toEqual([[200, 'one'], [200, 'two'], [200, 'two']]);
    expect(one.seen.map((s) => s.url)).toEqual(['/x']);
    expect(two.seen.map((s) => s.url).sort()).toEqual(['/two/y', '/z']);
  });

  it('answers 404 "no route" when no virtual host or route matches', async () => {
    const one = await backend('one');
    const port = await single([route({ pathSpecifier: { case: 'path', value: '/only' } }, 'one')], [cluster('one', one.port)]);
    for (const [host, path] of [['nope.test', '/only'], ['a.test', '/other']]) {
      const r = await call(port, { headers: { host: host! }, path });
      expect([r.status, r.body, r.headers['content-type']]).toEqual([404, 'no route', 'text/plain']);
    }
    expect(one.seen).toEqual([]);
  });

  it('splits a weighted route by the injected random number', async () => {
    const [a, b] = [await backend('a'), await backend('b')];
    const rolls = [0.1, 0.3, 0.6, 0.9, 0.2, 0.24];
    let i = 0;
    const port = await single([{
      match: prefix('/'),
      action: { case: 'route', value: { clusterSpecifier: { case: 'weightedClusters', value: { clusters: [{ name: 'a', weight: 1 }, { name: 'b', weight: 3 }] } } } },
    }], [cluster('a', a.port), cluster('b', b.port)], { random: () => rolls[i++]! });
    const bodies: string[] = [];
    for (let n = 0; n < rolls.length; n++) bodies.push((await call(port, { headers: { host: 'a.test' } })).body);
    expect(bodies).toEqual(['a', 'b', 'b', 'b', 'a', 'a']);
  });

  it('answers direct responses and redirects itself', async () => {
    const port = await single([
      { match: prefix('/direct'), action: { case: 'directResponse', value: { status: 418, body: { specifier: { case: 'inlineString', value: 'teapot' } } } } },
      { match: prefix('/moved'), action: { case: 'redirect', value: { hostRedirect: 'b.test', pathRewriteSpecifier: { case: 'pathRedirect', value: '/new' } } } },
    ], []);
    const d = await call(port, { headers: { host: 'a.test' }, path: '/direct' });
    expect([d.status, d.body]).toEqual([418, 'teapot']);
    const r = await call(port, { headers: { host: 'a.test' }, path: '/moved?x=1' });
    expect([r.status, r.headers.location, r.body]).toEqual([301, 'http://b.test/new?x=1', '']);
  });

  it('rewrites the path prefix and keeps the query', async () => {
    const one = await backend('one');
    const port = await single([route(prefix('/v1/'), 'one', { prefixRewrite: '/v2/' })], [cluster('one', one.port)]);
    expect((await call(port, { headers: { host: 'a.test' }, path: '/v1/items?q=1' })).status).toBe(200);
    expect(one.seen[0]!.url).toBe('/v2/items?q=1');
  });

  it('answers 503 "cluster not found" for a cluster the lookup does not know', async () => {
    const port = await single([route(prefix('/'), 'ghost')], []);
    const r = await call(port, { headers: { host: 'a.test' } });
    expect([r.status, r.body]).toEqual([503, 'cluster not found']);
  });
});

describe('headers', () => {
  it('strips hop-by-hop headers and those Connection names, both ways', async () => {
    const one = await backend('one');
    one.handler = (req, res) => {
      req.resume();
      res.writeHead(200, { 'x-backend': 'yes', 'proxy-authenticate': 'Basic', 'content-type': 'text/plain' });
      res.end('ok');
    };
    const port = await single([route(prefix('/'), 'one')], [cluster('one', one.port)]);
    const r = await call(port, {
      headers: {
        host: 'a.test', connection: 'x-foo, keep-alive', 'x-foo': '1', 'keep-alive': 'timeout=5', 'proxy-connection': 'keep-alive',
        'proxy-authorization': 'Basic Zm9v', te: 'trailers, deflate', upgrade: 'websocket', 'x-keep': 'kept',
      },
    });
    expect([r.status, r.body, r.headers['x-backend'], r.headers['proxy-authenticate']]).toEqual([200, 'ok', 'yes', undefined]);
    const h = one.seen[0]!.headers;
    for (const name of ['x-foo', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'upgrade']) expect(h[name]).toBeUndefined();
    expect(h.te).toBe('trailers');
    expect(h['x-keep']).toBe('kept');
    expect(h.host).toBe('a.test');
  });

  it('keeps x-request-id, appends the peer to x-forwarded-for, sets x-forwarded-proto and -host', async () => {
    const one = await backend('one');
    const port = await single([route(prefix('/'), 'one')], [cluster('one', one.port)]);
    await call(port, { headers: { host: 'a.test', 'x-request-id': 'req-1', 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https' } });
    await call(port, { headers: { host: 'a.test:81' } });
    const [first, second] = one.seen.map((s) => s.headers);
    expect([first!['x-request-id'], first!['x-forwarded-for'], first!['x-forwarded-proto'], first!['x-forwarded-host']])
      .toEqual(['req-1', '203.0.113.7, 127.0.0.1', 'http', 'a.test']);
    expect(second!['x-request-id']).toMatch(UUID);
    expect([second!['x-forwarded-for'], second!['x-forwarded-host']]).toEqual(['127.0.0.1', 'a.test:81']);
  });
});

describe('streaming', () => {
  const TEN_MB = 10 * 1024 * 1024;
  const expected = async (): Promise<string> => (await digest(patternStream(TEN_MB))).sha256;

  it('streams a 10 MB request body to the backend', async () => {
    const one = await backend('one');
    one.handler = (req, res) => {
      void digest(req).then(({ bytes, sha256 }) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`${bytes}:${sha256}`);
      });
    };
    const port = await single([route(prefix('/'), 'one')], [cluster('one', one.port)]);
    const r = await call(port, { method: 'POST', headers: { host: 'a.test', 'content-length': TEN_MB }, body: patternStream(TEN_MB) });
    expect([r.status, r.body]).toEqual([200, `${TEN_MB}:${await expected()}`]);
    const chunked = await call(port, { method: 'PUT', headers: { host: 'a.test' }, body: patternStream(TEN_MB) });
    expect([chunked.status, chunked.body]).toEqual([200, `${TEN_MB}:${await expected()}`]);
  });

  it('streams a 10 MB response body to the client', async () => {
    const one = await backend('one');
    one.handler = (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': TEN_MB });
      patternStream(TEN_MB).pipe(res);
    };
    const port = await single([route(prefix('/'), 'one')], [cluster('one', one.port)]);
    const res = await open(port, { headers: { host: 'a.test' } });
    expect([res.statusCode, res.headers['content-length']]).toEqual([200, String(TEN_MB)]);
    expect(await digest(res)).toEqual({ bytes: TEN_MB, sha256: await expected() });
  });
});

describe('disconnects and backpressure', () => {
  it('aborts the upstream request and frees the circuit when the client goes away mid-response', async () => {
    const one = await backend('one');
    let upstreamClosed = false;
    one.handler = (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      res.on('close', () => { upstreamClosed = true; });
    };
    const c = cluster('one', one.port);
    const port = await single([route(prefix('/'), 'one')], [c]);
    const res = await open(port, { headers: { host: 'a.test' } });
    expect(res.statusCode).toBe(200);
    res.destroy();
    await vi.waitFor(() => expect(upstreamClosed).toBe(true));
    await vi.waitFor(() => expect([c.circuit.activeRequests, c.hosts[0]!.activeRequests]).toEqual([0, 0]));
  });

  it('aborts the upstream request and frees the circuit when the client goes away mid-upload', async () => {
    const one = await backend('one');
    let upstreamAborted = false;
    one.handler = (req) => {
      req.resume();
      req.on('close', () => { upstreamAborted = !req.complete; });
    };
    const c = cluster('one', one.port);
    const port = await single([route(prefix('/'), 'one')], [c]);
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { host: 'a.test', 'content-length': 1000 }, agent: false });
    req.on('error', () => {});
    req.write('x'.repeat(100));
    await vi.waitFor(() => expect(one.seen.length).toBe(1));
    req.destroy();
    await vi.waitFor(() => expect(upstreamAborted).toBe(true));
    await vi.waitFor(() => expect([c.circuit.activeRequests, c.hosts[0]!.activeRequests]).toEqual([0, 0]));
  });

  it('stops reading from the backend while the client does not read', async () => {
    const TOTAL = 64 * 1024 * 1024;
    const one = await backend('one');
    let written = 0;
    one.handler = (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': TOTAL });
      const src = patternStream(TOTAL);
      src.on('data', (chunk: Buffer) => { written += chunk.length; });
      src.pipe(res);
    };
    const port = await single([route(prefix('/'), 'one')], [cluster('one', one.port)]);
    const res = await open(port, { headers: { host: 'a.test' } });
    res.pause();
    await new Promise((r) => setTimeout(r, 300));
    const stalled = written;
    await new Promise((r) => setTimeout(r, 100));
    expect(written).toBe(stalled);
    expect(stalled).toBeLessThan(TOTAL / 2);
    expect((await digest(res)).bytes).toBe(TOTAL);
    expect(written).toBe(TOTAL);
  });
});

describe('timeouts', () => {
  it('answers 504 "upstream request timeout" when the route timeout fires before headers', async () => {
    const one = await backend('one');
    one.handler = (req, res) => void setTimeout(() => res.end('late'), 1000);
    const c = cluster('one', one.port);
    const port = await single([route(prefix('/'), 'one', { timeout: ms(100) })], [c]);
    const r = await call(port, { headers: { host: 'a.test' } });
    expect([r.status, r.body]).toEqual([504, 'upstream request timeout']);
    expect([c.hosts[0]!.activeRequests, c.hosts[0]!.totalErrors, c.circuit.activeRequests]).toEqual([0, 1, 0]);
  });

  it('destroys the response when the route timeout fires after headers were sent', async () => {
    const one = await backend('one');
    one.handler = (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
    };
    const port = await single([route(prefix('/'), 'one', { timeout: ms(100) })], [cluster('one', one.port)]);
    const res = await open(port, { headers: { host: 'a.test' } });
    expect(res.statusCode).toBe(200);
    await expect(digest(res)).rejects.toMatchObject({ code: 'ECONNRESET' });
  });

  it('runs a route timeout of 1 s or more on the shared coarse timer, and clears it when the exchange ends', async () => {
    const one = await backend('one');
    one.handler = (req, res) => {
      req.resume();
      if (req.url === '/slow') setTimeout(() => res.end('late'), 3000).unref();
      else res.end('quick');
    };
    const c = cluster('one', one.port);
    const port = await single([route(prefix('/'), 'one', { timeout: ms(1000) })], [c]);
    const quick = await call(port, { headers: { host: 'a.test' } });
    expect([quick.status, quick.body]).toEqual([200, 'quick']);
    await vi.waitFor(() => expect(coarseTimers.size).toBe(0)); // cleared when the response body has gone out
    const pending = call(port, { headers: { host: 'a.test' }, path: '/slow' });
    await vi.waitFor(() => expect(one.seen.length).toBe(2));
    expect(coarseTimers.size).toBe(1);
    const r = await pending;
    expect([r.status, r.body, coarseTimers.size, c.circuit.activeRequests, c.hosts[0]!.activeRequests]).toEqual([504, 'upstream request timeout', 0, 0, 0]);
  });

  it('retries after a per-try timeout and answers with the next attempt', async () => {
    const one = await backend('one');
    one.handler = (req, res, n) => {
      req.resume();
      if (n === 1) setTimeout(() => res.end('slow'), 1000);
      else res.end('fast');
    };
    const port = await single([route(prefix('/'), 'one', { retryPolicy: { retryOn: '5xx', numRetries: 1, perTryTimeout: ms(100) } })], [cluster('one', one.port)]);
    const r = await call(port, { headers: { host: 'a.test' } });
    expect([r.status, r.body, one.seen.length]).toEqual([200, 'fast', 2]);
  });
});

describe('retries', () => {
  const retry5xx = { retryPolicy: { retryOn: '5xx', numRetries: 3 } };

  it('retries a 503 and answers with the successful second attempt', async () => {
    const one = await backend('one');
    one.handler = (req, res, n) => {
      req.resume();
      res.writeHead(n === 1 ? 503 : 200, { 'content-type': 'text/plain' });
      res.end(n === 1 ? 'busy' : 'ok');
    };
    const c = cluster('one', one.port);
    const port = await single([route(prefix('/'), 'one', retry5xx)], [c]);
    const r = await call(port, { headers: { host: 'a.test' } });
    expect([r.status, r.body, one.seen.length]).toEqual([200, 'ok', 2]);
    const h = c.hosts[0]!;
    expect([h.totalRequests, h.totalErrors, h.activeRequests, c.circuit.activeRetries, c.circuit.activeRequests]).toEqual([2, 1, 0, 0, 0]);
  });

  it('gives the last 503 downstream once the retries are used up', async () => {
    const one = await backend('one');
    one.handler = (req, res) => {
      req.resume();
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('still busy');
    };
    const port = await single([route(prefix('/'), 'one', { retryPolicy: { retryOn: 'gateway-error', numRetries: 2 } })], [cluster('one', one.port)]);
    const r = await call(port, { headers: { host: 'a.test' } });
    expect([r.status, r.body, one.seen.length]).toEqual([503, 'still busy', 3]);
  });

  it.each([
    ['5xx', [], 500, 2],
    ['5xx', [], 404, 1],
    ['gateway-error', [], 502, 2],
    ['gateway-error', [], 500, 1],
    ['retriable-4xx', [], 409, 2],
    ['retriable-4xx', [], 429, 1],
    ['retriable-status-codes', [429], 429, 2],
    ['retriable-status-codes', [429], 503, 1],
    ['connect-failure', [], 503, 1],
    ['reset, 5xx', [], 503, 2],
  ] as const)('retry_on %s (codes %j) and status %i: %i attempt(s)', async (retryOn, codes, status, attempts) => {
    const one = await backend('one');
    one.handler = (req, res, n) => {
      req.resume();
      res.writeHead(n === 1 ? status : 200, { 'content-type': 'text/plain' });
      res.end(String(n));
    };
    const port = await single([route(prefix('/'), 'one', { retryPolicy: { retryOn, numRetries: 1, retriableStatusCodes: [...codes] } })], [cluster('one', one.port)]);
    const r = await call(port, { headers: { host: 'a.test' } });
    expect([r.status, r.body, one.seen.length]).toEqual([attempts === 2 ? 200 : status, String(attempts), attempts]);
  });

  it('answers 503 "upstream connect error…" after retrying a refused connection', async () => {
    const c = cluster('dead', await deadPort());
    const port = await single([route(prefix('/'), 'dead', { retryPolicy: { retryOn: 'connect-failure', numRetries: 2 } })], [c]);
    const r = await call(port, { headers: { host: 'a.test' } });
    expect([r.status, r.body]).toEqual([503, UPSTREAM_CONNECT_FAILURE]);
    const h = c.hosts[0]!;
    expect([h.totalRequests, h.totalErrors, h.activeRequests, c.circuit.activeRetries]).toEqual([3, 3, 0, 0]);
  });

  it('stops retrying when the retry circuit is full', async () => {
    const c = cluster('dead', await deadPort(), { circuitBreakers: { thresholds: [{ maxRetries: 0 }] } });
    const port = await single([route(prefix('/'), 'dead', { retryPolicy: { retryOn: 'connect-failure', numRetries: 2 } })], [c]);
    const r = await call(port, { headers: { host: 'a.test' } });
    expect([r.status, r.body, c.hosts[0]!.totalRequests, c.circuit.retryOverflows]).toEqual([503, UPSTREAM_CONNECT_FAILURE, 1, 1]);
  });
});

describe('retries with a request body', () => {
  const retry5xx = { retryPolicy: { retryOn: '5xx', numRetries: 1 } };
  const KIB64 = 64 * 1024;

  /** A backend whose first attempt reads the whole body then answers 503, and whose next ones answer `bytes:sha256` of it. */
  function digestThen503(b: Backend, firstDigests: string[] = []): void {
    b.handler = (req, res, n) => {
      void digest(req).then(({ bytes, sha256 }) => {
        if (n === 1) firstDigests.push(`${bytes}:${sha256}`);
        res.writeHead(n === 1 ? 503 : 200, { 'content-type': 'text/plain' });
        res.end(`${bytes}:${sha256}`);
      });
    };
  }

  it('retries a POST with a 64 KiB body after a 503, and the second attempt gets it byte-identical', async () => {
    const one = await backend('one');
    const first: string[] = [];
    digestThen503(one, first);
    const c = cluster('one', one.port);
    const port = await single([route(prefix('/'), 'one', retry5xx)], [c]);
    const want = await digest(patternStream(KIB64, 4096));
    const r = await call(port, { method: 'POST', headers: { host: 'a.test', 'content-length': KIB64 }, body: patternStream(KIB64, 4096) });
    expect([r.status, r.body, first, one.seen.length]).toEqual([200, `${KIB64}:${want.sha256}`, [`${KIB64}:${want.sha256}`], 2]);
    expect(one.seen.map((s) => s.headers['content-length'])).toEqual([String(KIB64), String(KIB64)]);
    expect([c.retryOrShadowAbandoned, c.circuit.activeRetries, c.circuit.activeRequests, c.hosts[0]!.activeRequests]).toEqual([0, 0, 0, 0]);
  });

  it.each([
    ['below', KIB64 + 1, 2, 0],
    ['exactly at', KIB64, 2, 0],
    ['above', KIB64 - 1, 1, 1],
  ] as const)('a 64 KiB body %s per_request_buffer_limit_bytes (%i) makes %i attempt(s)', async (_what, limit, attempts, abandoned) => {
    const one = await backend('one');
    digestThen503(one);
    const c = cluster('one', one.port);
    const port = await single([{ ...route(prefix('/'), 'one', retry5xx), perRequestBufferLimitBytes: limit }], [c]);
    const want = await digest(patternStream(KIB64, 4096));
    const r = await call(port, { method: 'PUT', headers: { host: 'a.test' }, body: patternStream(KIB64, 4096) });
    expect([r.status, r.body, one.seen.length]).toEqual([attempts === 2 ? 200 : 503, `${KIB64}:${want.sha256}`, attempts]);
    expect([c.retryOrShadowAbandoned, c.stats().retryOrShadowAbandoned, c.circuit.activeRequests]).toEqual([abandoned, abandoned, 0]);
  });

  it('takes the limit from the virtual host when the route sets none', async () => {
    const one = await backend('one');
    digestThen503(one);
    const c = cluster('one', one.port);
    const port = await proxy([{ name: 'a', domains: ['a.test'], perRequestBufferLimitBytes: 1024, routes: [route(prefix('/'), 'one', retry5xx)] }], [c]);
    const r = await call(port, { method: 'POST', headers: { host: 'a.test', 'content-length': 2048 }, body: 'x'.repeat(2048) });
    expect([r.status, one.seen.length, c.retryOrShadowAbandoned]).toEqual([503, 1, 1]);
  });

  it('replays a chunked body that is still arriving when the first attempt fails, then streams the rest', async () => {
    const one = await backend('one');
    const bodies: string[] = [];
    one.handler = (req, res, n) => {
      if (n === 1) {
        req.once('data', () => {
          res.writeHead(503, { 'content-type': 'text/plain' });
          res.end('busy');
        });
        return;
      }
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => { body += chunk; });
      req.on('end', () => {
        bodies.push(body);
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`got ${body.length}`);
      });
    };
    const c = cluster('one', one.port);
    const port = await single([route(prefix('/'), 'one', retry5xx)], [c]);
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { host: 'a.test' }, agent: false });
    const replied = new Promise<http.IncomingMessage>((resolve, reject) => {
      req.on('response', resolve);
      req.on('error', reject);
    });
    req.write('first part;');
    await vi.waitFor(() => expect(one.seen.length).toBe(2));
    req.write('second part;');
    req.end('end');
    const res = await replied;
    expect([res.statusCode, (await digest(res)).bytes, bodies]).toEqual([200, 'got 26'.length, ['first part;second part;end']]);
    expect(one.seen.map((s) => s.headers['transfer-encoding'])).toEqual(['chunked', 'chunked']);
    expect([c.retryOrShadowAbandoned, c.circuit.activeRetries, c.circuit.activeRequests, c.hosts[0]!.activeRequests]).toEqual([0, 0, 0, 0]);
  });

  it('stops reading the client body past the limit while the upstream does not read, then delivers it whole', async () => {
    const TOTAL = 64 * 1024 * 1024;
    const one = await backend('one');
    let upstreamRead = (): void => {};
    one.handler = (req, res) => {
      req.pause();
      upstreamRead = () => {
        void digest(req).then(({ bytes, sha256 }) => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end(`${bytes}:${sha256}`);
        });
      };
    };
    const c = cluster('one', one.port);
    const port = await single([route(prefix('/'), 'one', { ...retry5xx, timeout: ms(0) })], [c]);
    let sent = 0;
    const body = patternStream(TOTAL);
    body.on('data', (chunk: Buffer) => { sent += chunk.length; });
    const reply = call(port, { method: 'POST', headers: { host: 'a.test', 'content-length': TOTAL }, body });
    await vi.waitFor(() => expect(one.seen.length).toBe(1));
    await new Promise((r) => setTimeout(r, 300));
    const stalled = sent;
    await new Promise((r) => setTimeout(r, 100));
    expect(sent).toBe(stalled);
    expect(stalled).toBeLessThan(TOTAL / 2);
    expect(c.retryOrShadowAbandoned).toBe(1);
    upstreamRead();
    const r = await reply;
    expect([r.status, r.body]).toEqual([200, `${TOTAL}:${(await digest(patternStream(TOTAL))).sha256}`]);
  });

  it('frees the circuit and the host when the client goes away mid-body during a retry', async () => {
    const one = await backend('one');
    let upstreamAborted = 0;
    one.handler = (req, res, n) => {
      if (n === 1) {
        req.once('data', () => {
          res.writeHead(503);
          res.end();
        });
        return;
      }
      req.resume();
      req.on('close', () => { if (!req.complete) upstreamAborted++; });
    };
    const c = cluster('one', one.port);
    const port = await single([route(prefix('/'), 'one', retry5xx)], [c]);
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { host: 'a.test', 'content-length': 1000 }, agent: false });
    req.on('error', () => {});
    req.write('x'.repeat(100));
    await vi.waitFor(() => expect(one.seen.length).toBe(2));
    req.destroy();
    await vi.waitFor(() => expect(upstreamAborted).toBe(1));
    await vi.waitFor(() => expect([c.circuit.activeRequests, c.circuit.activeRetries, c.hosts[0]!.activeRequests]).toEqual([0, 0, 0]));
  });
});

describe('retry budget', () => {
  const budget = (budgetPercent: number, minRetryConcurrency: number): ClusterInit => ({
    circuitBreakers: { thresholds: [{ maxRetries: 0, retryBudget: { budgetPercent: { value: budgetPercent }, minRetryConcurrency } }] },
  });

  it.each([
    [100, 0, 2],
    [50, 0, 1],
    [50, 1, 2],
    [0, 0, 1],
  ] as const)('budget_percent %i, min_retry_concurrency %i, max_retries 0, one request in flight: %i attempt(s)', async (percent, min, attempts) => {
    const one = await backend('one');
    one.handler = (req, res, n) => {
      req.resume();
      res.writeHead(n === 1 ? 503 : 200, { 'content-type': 'text/plain' });
      res.end(String(n));
    };
    const c = cluster('one', one.port, budget(percent, min));
    const port = await single([route(prefix('/'), 'one', { retryPolicy: { retryOn: '5xx', numRetries: 3 } })], [c]);
    const r = await call(port, { headers: { host: 'a.test' } });
    expect([r.status, r.body, one.seen.length, c.circuit.retryOverflows]).toEqual([attempts === 2 ? 200 : 503, String(attempts), attempts, attempts === 2 ? 0 : 1]);
  });

  it('refuses a retry while the budget is taken by another request, and that request gets the 503', async () => {
    const one = await backend('one');
    let release = (): void => {};
    const held = new Promise<void>((r) => { release = r; });
    one.handler = (req, res) => {
      req.resume();
      const id = req.headers['x-id'];
      const attempt = one.seen.filter((s) => s.headers['x-id'] === id).length;
      if (attempt === 1) {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end(`${String(id)} busy`);
      } else void held.then(() => res.end(`${String(id)} ok`));
    };
    // 20% of 2 requests in flight is 0: min_retry_concurrency (1) is the limit; max_retries (0) is ignored.
    const c = cluster('one', one.port, budget(20, 1));
    const port = await single([route(prefix('/'), 'one', { retryPolicy: { retryOn: '5xx', numRetries: 3 } })], [c]);
    const a = call(port, { headers: { host: 'a.test', 'x-id': 'a' } });
    await vi.waitFor(() => expect(one.seen.length).toBe(2));
    expect(c.circuit.activeRetries).toBe(1);
    const b = await call(port, { headers: { host: 'a.test', 'x-id': 'b' } });
    expect([b.status, b.body, c.circuit.retryOverflows]).toEqual([503, 'b busy', 1]);
    release();
    const ra = await a;
    expect([ra.status, ra.body, one.seen.length, c.circuit.activeRetries]).toEqual([200, 'a ok', 3, 0]);
  });
});

describe('least-request balancing', () => {
  it('counts a request on its host until the response body ends, so a long stream sends the next requests elsewhere', async () => {
    const [a, b] = [await backend('a'), await backend('b')];
    let finishStream = (): void => {};
    const streamDone = new Promise<void>((r) => { finishStream = r; });
    for (const be of [a, b]) {
      be.handler = (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/plain' });
        if (req.url === '/stream') {
          res.write('start;');
          void streamDone.then(() => res.end('end'));
        } else res.end(be.name);
      };
    }
    const c = new UpstreamCluster(compiled(staticCluster('lr', [locality([ep('127.0.0.1', a.port), ep('127.0.0.1', b.port)])], {
      lbPolicy: Cluster_LbPolicy.LEAST_REQUEST,
    })));
    clusters.push(c);
    const port = await single([route(prefix('/'), 'lr')], [c]);
    const stream = await open(port, { headers: { host: 'a.test' }, path: '/stream' });
    expect(stream.statusCode).toBe(200);
    const streaming = a.seen.length === 1 ? a : b;
    const other = streaming === a ? b : a;
    const streamingHost = c.hosts.find((h) => h.port === streaming.port)!;
    expect(streamingHost.activeRequests).toBe(1);
    const bodies: string[] = [];
    for (let i = 0; i < 6; i++) bodies.push((await call(port, { headers: { host: 'a.test' } })).body);
    expect(bodies).toEqual(Array(6).fill(other.name));
    finishStream();
    expect(await (async () => { let t = ''; stream.setEncoding('utf8'); for await (const ch of stream) t += ch as string; return t; })()).toBe('start;end');
    await vi.waitFor(() => expect(c.hosts.map((h) => h.activeRequests)).toEqual([0, 0]));
  });
});

describe('circuit breaking', () => {
  it('answers 503 "upstream overflow" to a second concurrent request at max_requests=1', async () => {
    const one = await backend('one');
    let release = (): void => {};
    const held = new Promise<void>((r) => { release = r; });
    one.handler = (req, res) => {
      req.resume();
      void held.then(() => res.end('first'));
    };
    const c = cluster('one', one.port, { circuitBreakers: { thresholds: [{ maxRequests: 1 }] } });
    const port = await single([route(prefix('/'), 'one')], [c]);
    const first = call(port, { headers: { host: 'a.test' } });
    await vi.waitFor(() => expect(one.seen.length).toBe(1));
    const second = await call(port, { headers: { host: 'a.test' } });
    expect([second.status, second.body]).toEqual([503, 'upstream overflow']);
    release();
    const r = await first;
    expect([r.status, r.body, one.seen.length, c.circuit.requestOverflows]).toEqual([200, 'first', 1, 1]);
    await vi.waitFor(() => expect(c.circuit.activeRequests).toBe(0));
  });

  it('answers 503 "no healthy upstream" when the cluster has no usable host', async () => {
    const c = new UpstreamCluster(compiled(staticCluster('empty', [locality([])])));
    clusters.push(c);
    const port = await single([route(prefix('/'), 'empty')], [c]);
    const r = await call(port, { headers: { host: 'a.test' } });
    expect([r.status, r.body, c.circuit.activeRequests]).toEqual([503, 'no healthy upstream', 0]);
  });
});

// Keeps the hash helper honest: the pattern stream is deterministic.
it('pattern streams hash the same every time', async () => {
  const a = await digest(patternStream(100_000, 999));
  expect(a.sha256).toBe(createHash('sha256').update(Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251))).digest('hex'));
});
