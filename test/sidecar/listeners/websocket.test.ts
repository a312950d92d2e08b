/**
 * WebSocket upgrades through a listener (issue #4): routed like any request, relayed on a new
 * upstream connection, then piped both ways; refused with 403 when the listener's HCM does not
 * allow the upgrade type; a non-101 answer relayed and the connection closed. Real `ws` client
 * and server, a real HttpListener with the real forwarder and upgrader.
 */
import { UPSTREAM_CONNECT_FAILURE } from '../../../sidecar/proxy/local-reply.ts';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import type http from 'node:http';
import net from 'node:net';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { HttpListener } from '../../../sidecar/listeners/http-listener.ts';
import { createForwarder } from '../../../sidecar/proxy/forward.ts';
import { createUpgrader } from '../../../sidecar/proxy/upgrade.ts';
import { UpstreamCluster } from '../../../sidecar/upstream/upstream-cluster.ts';
import { compile, ms, prefix, routeConfig, toCluster } from '../routing/fixtures.ts';
import { compiled, ep, locality, staticCluster } from '../upstream/fixtures.ts';
import { deadPort, startBackend, type Backend } from '../proxy/fixtures.ts';
import { until } from '../../helpers/until.ts';

/** The ws echo server: echoes every message; `close:<code>` makes it close with that code. */
interface EchoServer {
  readonly port: number;
  /** Request headers of each upgrade it accepted. */
  readonly upgrades: http.IncomingHttpHeaders[];
  /** Close codes and reasons it received from clients. */
  readonly closes: Array<[number, string]>;
  /** Connections open now. */
  open(): number;
  close(): Promise<void>;
}

async function startEcho(): Promise<EchoServer> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 4 * 1024 * 1024 });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const e: EchoServer = {
    port: (wss.address() as net.AddressInfo).port,
    upgrades: [],
    closes: [],
    open: () => wss.clients.size,
    close: () => {
      for (const c of wss.clients) c.terminate();
      return new Promise((resolve) => wss.close(() => resolve()));
    },
  };
  wss.on('connection', (socket, req) => {
    e.upgrades.push(req.headers);
    socket.on('message', (data: RawData, isBinary: boolean) => {
      const text = isBinary ? null : data.toString();
      if (text !== null && text.startsWith('close:')) socket.close(Number(text.slice(6)), 'server says bye');
      else socket.send(data, { binary: isBinary });
    });
    socket.on('close', (code, reason) => e.closes.push([code, reason.toString()]));
  });
  return e;
}

/** A TCP server that accepts and never answers. */
async function startSilent(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

let echo: EchoServer;
let plain: Backend;
let silent: Awaited<ReturnType<typeof startSilent>>;
let clusters: Map<string, UpstreamCluster>;
let listener: HttpListener;
let port: number;
/** The upgrade types the listener's HCM allows, per test. */
let allowed: string[];
const clients: WebSocket[] = [];

function newListener(): HttpListener {
  const table = compile(routeConfig([{
    name: 'all', domains: ['*'],
    routes: [
      toCluster('plain', prefix('/plain')),
      toCluster('dead', prefix('/dead')),
      { match: prefix('/silent'), action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: 'silent' }, timeout: ms(100) } } },
      { match: prefix('/short'), action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: 'echo' }, timeout: ms(50) } } },
      toCluster('echo'),
    ],
  }]));
  const getCluster = (n: string) => clusters.get(n);
  const forwarder = createForwarder({ getCluster });
  const upgrader = createUpgrader({ getCluster });
  const l = new HttpListener('ws', (req, res) => forwarder.handle(req, res, table));
  l.setUpgradeHandler((req, socket, head, respond) => upgrader.upgrade(req, socket, head, table, allowed, respond));
  return l;
}

function open(path = '/ws', options: { headers?: Record<string, string>; port?: number } = {}): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${options.port ?? port}${path}`, { headers: options.headers, maxPayload: 4 * 1024 * 1024 });
  clients.push(ws);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** The non-101 answer a ws client got instead of an upgrade. */
function refused(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers });
  clients.push(ws);
  return new Promise((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    ws.once('open', () => reject(new Error('upgraded')));
    ws.once('error', () => {});
  });
}

function next(ws: WebSocket): Promise<{ data: Buffer; binary: boolean }> {
  return new Promise((resolve) => ws.once('message', (data: RawData, binary: boolean) => resolve({ data: data as Buffer, binary })));
}

function closed(ws: WebSocket): Promise<[number, string]> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve([code, reason.toString()])));
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  echo = await startEcho();
  plain = await startBackend('plain');
  silent = await startSilent();
  const cluster = (name: string, p: number) => new UpstreamCluster(compiled(staticCluster(name, [locality([ep('127.0.0.1', p)])])));
  clusters = new Map([
    ['echo', cluster('echo', echo.port)],
    ['plain', cluster('plain', plain.port)],
    ['dead', cluster('dead', await deadPort())],
    ['silent', cluster('silent', silent.port)],
  ]);
  listener = newListener();
  port = await listener.listen('127.0.0.1', 0);
});

afterAll(async () => {
  await listener.close();
  for (const c of clusters.values()) await c.destroy();
  await Promise.all([echo.close(), plain.close(), silent.close()]);
});

beforeEach(() => {
  allowed = ['websocket'];
  plain.handler = (req, res) => {
    req.resume();
    req.on('end', () => res.end('plain'));
  };
  echo.upgrades.length = 0;
  echo.closes.length = 0;
  plain.seen.length = 0;
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.terminate();
  // Each test starts with nothing left over from the one before.
  await until('the condition', () => echo.open() === 0 && listener.stats().inFlight === 0);
});

describe('WebSocket pass-through', () => {
  it('relays text and a 1 MiB binary message both ways', async () => {
    const ws = await open();
    const text = next(ws);
    ws.send('hello through the sidecar');
    expect(await text).toMatchObject({ binary: false });
    expect((await Promise.resolve(text)).data.toString()).toBe('hello through the sidecar');
    const big = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 251;
    const bin = next(ws);
    ws.send(big, { binary: true });
    const got = await bin;
    expect(got.binary).toBe(true);
    expect([got.data.length, sha(got.data)]).toEqual([big.length, sha(big)]);
  });

  it('passes the close code from the client to the upstream', async () => {
    const ws = await open();
    const done = closed(ws);
    ws.close(4001, 'client says bye');
    expect(await done).toEqual([4001, 'client says bye']);
    expect(await until('the condition', () => echo.closes[0])).toEqual([4001, 'client says bye']);
  });

  it('passes the close code from the upstream to the client', async () => {
    const ws = await open();
    const done = closed(ws);
    ws.send('close:4002');
    expect(await done).toEqual([4002, 'server says bye']);
  });

  it('sends the upgrade upstream with forwarded headers, other hop-by-hop headers dropped', async () => {
    const ws = await open('/ws?x=1', { headers: { 'x-request-id': 'rid-7', 'keep-alive': 'timeout=5', 'proxy-authorization': 'Basic eA==', 'x-forwarded-proto': 'https' } });
    ws.close();
    const h = echo.upgrades[0]!;
    expect(h.connection).toBe('Upgrade');
    expect(h.upgrade).toBe('websocket');
    expect(h.host).toBe(`127.0.0.1:${port}`);
    expect(h['x-request-id']).toBe('rid-7');
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe(`127.0.0.1:${port}`);
    expect(h['sec-websocket-key']).toMatch(/^[A-Za-z0-9+/]{22}==$/);
    expect(h['sec-websocket-version']).toBe('13');
    expect([h['keep-alive'], h['proxy-authorization']]).toEqual([undefined, undefined]);
  });

  it('holds the cluster request slot and counts the request until both sides close', async () => {
    const circuit = clusters.get('echo')!.circuit;
    const before = listener.stats();
    const ws = await open();
    expect(circuit.stats().activeRequests).toBe(1);
    expect(listener.stats().inFlight).toBe(before.inFlight + 1);
    const done = closed(ws);
    ws.close(1000);
    await done;
    await until('the condition', () => circuit.stats().activeRequests === 0);
    const after = await until('the condition', () => {
      const s = listener.stats();
      return s.inFlight === before.inFlight ? s : undefined;
    });
    expect(after.requests).toBe(before.requests + 1);
    expect(after.responses['1xx']).toBe(before.responses['1xx'] + 1);
  });

  it('does not apply the route timeout once upgraded', async () => {
    const ws = await open('/short');
    // Past the 50 ms route timeout the connection still relays.
    await new Promise((r) => setTimeout(r, 150));
    const reply = next(ws);
    ws.send('still here');
    expect((await reply).data.toString()).toBe('still here');
  });
});

describe('upgrades that do not happen', () => {
  it('relays a non-101 upstream answer with connection: close', async () => {
    plain.handler = (req, res) => {
      req.resume();
      res.writeHead(403, { 'content-type': 'text/plain', 'content-length': 4 });
      res.end('nope');
    };
    const r = await refused('/plain/ws');
    expect([r.status, r.body, r.headers.connection, r.headers['content-length']]).toEqual([403, 'nope', 'close', '4']);
    expect(plain.seen).toHaveLength(1);
    expect(plain.seen[0]!.headers.upgrade).toBe('websocket');
  });

  it('refuses the upgrade with 403 and an empty body when the listener does not allow websocket', async () => {
    allowed = [];
    const r = await refused('/ws');
    expect([r.status, r.body, r.headers['content-length'], r.headers.connection]).toEqual([403, '', '0', 'close']);
    expect(echo.upgrades).toEqual([]);
  });

  it('refuses an upgrade type the listener does not allow', async () => {
    const reply = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let text = '';
      s.setEncoding('latin1');
      s.on('data', (d: string) => (text += d));
      s.on('close', () => resolve(text));
      s.write('GET /ws HTTP/1.1\r\nHost: svc.test\r\nConnection: Upgrade\r\nUpgrade: foo/1\r\n\r\n');
    });
    expect(reply).toBe('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
  });

  it('answers 503 when the upstream refuses the connection', async () => {
    const before = clusters.get('dead')!.circuit.stats().activeRequests;
    const r = await refused('/dead');
    expect([r.status, r.body]).toEqual([503, UPSTREAM_CONNECT_FAILURE]);
    await until('the condition', () => clusters.get('dead')!.circuit.stats().activeRequests === before);
  });

  it('answers 504 when no response head arrives within the route timeout', async () => {
    const r = await refused('/silent');
    expect([r.status, r.body]).toEqual([504, 'upstream request timeout']);
  });

  it('without an upgrade handler the listener serves the request as plain HTTP', async () => {
    const table = compile(routeConfig([{ name: 'all', domains: ['*'], routes: [toCluster('plain')] }]));
    const forwarder = createForwarder({ getCluster: (n) => clusters.get(n) });
    const l = new HttpListener('no-upgrades', (req, res) => forwarder.handle(req, res, table));
    const lPort = await l.listen('127.0.0.1', 0);
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${lPort}/`);
      clients.push(ws);
      const status = await new Promise<number>((resolve) => {
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.once('error', () => {});
      });
      expect(status).toBe(200);
      expect(plain.seen[0]!.headers.upgrade).toBeUndefined();
    } finally {
      await l.close();
    }
  });
});

describe('drain with upgraded connections', () => {
  it('waits for an open WebSocket until the deadline, then cuts it', async () => {
    const l = newListener();
    const lPort = await l.listen('127.0.0.1', 0);
    const ws = await open('/ws', { port: lPort });
    const done = closed(ws);
    expect(await l.drain(50)).toBe(false);
    expect((await done)[0]).toBe(1006);
    expect(l.stats()).toMatchObject({ inFlight: 0, requests: 1, responses: { '1xx': 1 } });
    await until('the condition', () => clusters.get('echo')!.circuit.stats().activeRequests === 0);
  });

  it('finishes in time when the WebSocket closes during the drain', async () => {
    const l = newListener();
    const lPort = await l.listen('127.0.0.1', 0);
    const ws = await open('/ws', { port: lPort });
    const drained = l.drain(10_000);
    ws.close(1000);
    expect(await drained).toBe(true);
  });
});
