/**
 * HTTP/2 on the sidecar's listeners (issue #4), as Envoy's HttpConnectionManager with
 * codec_type AUTO: HTTP/1.1 and h2c (prior knowledge) on one plaintext port, h2 and http/1.1
 * by ALPN over TLS; the forwarder routes HTTP/2 requests to HTTP/1.1 and h2c upstreams; stats
 * and drain cover HTTP/2 streams; bad frames end a session without harming the listener.
 * Real sockets on 127.0.0.1, a real HttpListener whose handler is the real forwarder.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import type { TLSSocket } from 'node:tls';
import { HttpListener } from '../../../sidecar/listeners/http-listener.ts';
import { createForwarder, type Forwarder } from '../../../sidecar/proxy/forward.ts';
import type { RouteTable } from '../../../sidecar/routing/route-table.ts';
import { UpstreamCluster } from '../../../sidecar/upstream/upstream-cluster.ts';
import { compile, prefix, routeConfig, toCluster } from '../routing/fixtures.ts';
import { compiled, ep, http2Options, locality, startServer, staticCluster, type TestServer } from '../upstream/fixtures.ts';
import { call, startBackend, type Backend } from '../proxy/fixtures.ts';
import { h2call, h2connect, selfSigned, type SelfSigned } from './fixtures.ts';
import { until } from '../../helpers/until.ts';

let backend: Backend;
let h2c: TestServer;
let held: TestServer;
let clusters: Map<string, UpstreamCluster>;
let forwarder: Forwarder;
let table: RouteTable;
let listener: HttpListener;
let port: number;
let tls: SelfSigned;
const sessions: http2.ClientHttp2Session[] = [];

async function connect(authority = `http://127.0.0.1:${port}`, options: http2.SecureClientSessionOptions = {}): Promise<http2.ClientHttp2Session> {
  const s = await h2connect(authority, options);
  sessions.push(s);
  return s;
}

function newListener(options: ConstructorParameters<typeof HttpListener>[2] = {}): HttpListener {
  return new HttpListener('test', (req, res) => forwarder.handle(req, res, table), options);
}

beforeAll(async () => {
  backend = await startBackend('h1');
  h2c = await startServer('h2c', { h2c: true });
  held = await startServer('held');
  clusters = new Map([
    ['h1', new UpstreamCluster(compiled(staticCluster('h1', [locality([ep('127.0.0.1', backend.port)])])))],
    ['h2c', new UpstreamCluster(compiled(staticCluster('h2c', [locality([ep('127.0.0.1', h2c.port)])], { typedExtensionProtocolOptions: http2Options() })))],
    ['held', new UpstreamCluster(compiled(staticCluster('held', [locality([ep('127.0.0.1', held.port)])])))],
  ]);
  table = compile(routeConfig([{
    name: 'all', domains: ['*'],
    routes: [toCluster('h2c', prefix('/h2c')), toCluster('held', prefix('/held')), toCluster('h1')],
  }]));
  forwarder = createForwarder({ getCluster: (n) => clusters.get(n) });
  listener = newListener();
  port = await listener.listen('127.0.0.1', 0);
  tls = selfSigned();
});

afterAll(async () => {
  await listener.close();
  for (const c of clusters.values()) await c.destroy();
  await Promise.all([backend.close(), h2c.close(), held.close()]);
});

beforeEach(() => {
  backend.seen.length = 0;
  held.hold = false;
  backend.handler = (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('h1');
    });
  };
});

afterEach(async () => {
  for (const s of sessions.splice(0)) s.destroy();
});

describe('HTTP/1.1 and HTTP/2 on one plaintext port (codec AUTO)', () => {
  it('serves HTTP/1.1 and HTTP/2 with prior knowledge on the same port', async () => {
    const one = await call(port, { headers: { host: 'svc.test' } });
    const session = await connect();
    const two = await h2call(session, { ':path': '/a?b=1', ':authority': 'svc.test' });
    expect([one.status, one.body]).toEqual([200, 'h1']);
    expect([two.status, two.body]).toEqual([200, 'h1']);
    expect(backend.seen.map((s) => [s.method, s.url])).toEqual([['GET', '/'], ['GET', '/a?b=1']]);
  });

  it('forwards an HTTP/2 request to HTTP/1.1 with the host from :authority and no pseudo-headers', async () => {
    const session = await connect();
    const r = await h2call(session, { ':method': 'GET', ':path': '/x', ':authority': 'svc.test:8080', 'x-custom': 'v', 'x-request-id': 'rid-1' });
    expect(r.status).toBe(200);
    const h = backend.seen[0]!.headers;
    expect(Object.keys(h).filter((k) => k.startsWith(':'))).toEqual([]);
    expect(h.host).toBe('svc.test:8080');
    expect(h['x-custom']).toBe('v');
    expect(h['x-request-id']).toBe('rid-1');
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe('svc.test:8080');
  });

  it('forwards an HTTP/2 request body that has no content-length (chunked upstream)', async () => {
    let received = '';
    backend.handler = (req, res) => {
      req.setEncoding('utf8');
      req.on('data', (d: string) => (received += d));
      req.on('end', () => res.end(`got ${received.length}`));
    };
    const session = await connect();
    const r = await h2call(session, { ':method': 'POST', ':path': '/upload', ':authority': 'svc.test' }, 'hello body');
    expect([r.status, r.body]).toEqual([200, 'got 10']);
    expect(received).toBe('hello body');
    expect(backend.seen[0]!.headers['transfer-encoding']).toBe('chunked');
  });

  it('joins HTTP/2 cookie crumbs into one cookie header for HTTP/1.1', async () => {
    const session = await connect();
    await h2call(session, { ':path': '/', ':authority': 'svc.test', cookie: ['a=1', 'b=2'] });
    expect(backend.seen[0]!.headers.cookie).toBe('a=1; b=2');
  });

  it('sends no connection-specific headers on an HTTP/2 response', async () => {
    backend.handler = (req, res) => {
      req.resume();
      res.writeHead(200, { connection: 'keep-alive', 'keep-alive': 'timeout=5', 'x-up': '1', 'content-type': 'text/plain' });
      res.write('chunk one, ');
      res.end('chunk two');
    };
    const session = await connect();
    const r = await h2call(session, { ':path': '/', ':authority': 'svc.test' });
    expect([r.status, r.body]).toEqual([200, 'chunk one, chunk two']);
    expect(r.headers['x-up']).toBe('1');
    for (const name of ['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']) expect(r.headers[name]).toBeUndefined();
  });

  it('routes HTTP/2 downstream to an h2c upstream', async () => {
    const session = await connect();
    const before = h2c.versions.length;
    const r = await h2call(session, { ':path': '/h2c/x', ':authority': 'svc.test' });
    expect([r.status, r.body]).toEqual([200, 'h2c']);
    expect(h2c.versions.slice(before)).toEqual(['2.0']);
  });

  it('answers local replies on HTTP/2 too (404 no route)', async () => {
    const narrow = newListener();
    const narrowPort = await narrow.listen('127.0.0.1', 0);
    const saved = table;
    table = compile(routeConfig([{ name: 'only', domains: ['only.test'], routes: [toCluster('h1')] }]));
    try {
      const session = await connect(`http://127.0.0.1:${narrowPort}`);
      const r = await h2call(session, { ':path': '/', ':authority': 'other.test' });
      expect([r.status, r.body]).toEqual([404, 'no route']);
    } finally {
      table = saved;
      await narrow.close();
    }
  });

  it('serves an HTTP/1.1 request with Upgrade: h2c as HTTP/1.1, the upgrade headers dropped', async () => {
    const up = newListener();
    up.setUpgradeHandler((_req, socket) => socket.destroy());
    const upPort = await up.listen('127.0.0.1', 0);
    try {
      const r = await call(upPort, {
        headers: { host: 'svc.test', connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAARAAAAAAAIAAAAA' },
      });
      expect([r.status, r.body]).toEqual([200, 'h1']);
      const h = backend.seen[0]!.headers;
      expect([h.upgrade, h['http2-settings'], h.connection]).toEqual([undefined, undefined, 'keep-alive']);
    } finally {
      await up.close();
    }
  });
});

describe('stats and malformed HTTP/2', () => {
  it('counts HTTP/2 requests and response classes', async () => {
    const before = listener.stats();
    const session = await connect();
    await h2call(session, { ':path': '/', ':authority': 'svc.test' });
    await h2call(session, { ':path': '/h2c', ':authority': 'svc.test' });
    const after = await until('the condition', () => {
      const s = listener.stats();
      return s.inFlight === 0 && s.responses['2xx'] === before.responses['2xx'] + 2 ? s : undefined;
    });
    expect(after.requests).toBe(before.requests + 2);
    expect(after.inFlight).toBe(0);
  });

  it('counts a stream the client resets as reset', async () => {
    held.hold = true;
    const before = listener.stats();
    const session = await connect();
    const stream = session.request({ ':path': '/held', ':authority': 'svc.test' });
    stream.on('error', () => {});
    await until('the condition', () => listener.stats().inFlight === before.inFlight + 1);
    stream.close(http2.constants.NGHTTP2_CANCEL);
    const after = await until('the condition', () => {
      const s = listener.stats();
      return s.inFlight === before.inFlight ? s : undefined;
    });
    expect(after.responses.reset).toBe(before.responses.reset + 1);
    expect(after.requests).toBe(before.requests + 1);
  });

  it('resets an HTTP/2 request without :authority or host (PROTOCOL_ERROR), forwarding nothing', async () => {
    // Raw frames: preface, empty SETTINGS, HEADERS (stream 1, END_STREAM|END_HEADERS) holding
    // the HPACK static entries :method GET (0x82), :scheme http (0x86), :path / (0x84).
    const frames = await rawH2(Buffer.concat([
      Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'),
      frame(0x4, 0, 0, Buffer.alloc(0)),
      frame(0x1, 0x5, 1, Buffer.from([0x82, 0x86, 0x84])),
    ]), (fs) => fs.some((f) => f.stream === 1));
    const reply = frames.filter((f) => f.stream === 1);
    expect(reply.map((f) => [f.type, f.payload.readUInt32BE(0)])).toEqual([[0x3, http2.constants.NGHTTP2_PROTOCOL_ERROR]]);
    expect(backend.seen).toEqual([]);
  });

  it('a malformed frame ends the session with GOAWAY (PROTOCOL_ERROR), and the listener keeps serving', async () => {
    const before = listener.stats();
    // DATA on stream 0 is a connection error of type PROTOCOL_ERROR (RFC 9113 §6.1).
    const frames = await rawH2(Buffer.concat([
      Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'),
      frame(0x4, 0, 0, Buffer.alloc(0)),
      frame(0x0, 0, 0, Buffer.from('bad')),
    ]), () => false);
    const goaway = frames.find((f) => f.type === 0x7);
    expect(goaway).toBeDefined();
    expect(goaway!.payload.readUInt32BE(4)).toBe(http2.constants.NGHTTP2_PROTOCOL_ERROR);
    const session = await connect();
    const r = await h2call(session, { ':path': '/', ':authority': 'svc.test' });
    expect(r.status).toBe(200);
    expect(listener.stats().requests).toBe(before.requests + 1);
  });

  it('a truncated preface is dropped when the client goes away', async () => {
    const frames = await rawH2(Buffer.from('PRI * HTTP/2.0\r\n', 'latin1'), () => false, true);
    expect(frames).toEqual([]);
    const r = await call(port, { headers: { host: 'svc.test' } });
    expect(r.status).toBe(200);
  });
});

describe('drain with HTTP/2', () => {
  it('sends GOAWAY, lets the stream in flight finish, and refuses new streams', async () => {
    const l = newListener();
    const lPort = await l.listen('127.0.0.1', 0);
    held.hold = true;
    const session = await connect(`http://127.0.0.1:${lPort}`);
    const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
    const hits = held.hits;
    const inFlight = h2call(session, { ':path': '/held', ':authority': 'svc.test' });
    await until('the condition', () => held.hits === hits + 1);
    const drained = l.drain(10_000);
    await goaway;
    await expect(h2call(session, { ':path': '/', ':authority': 'svc.test' })).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_HTTP2_/) });
    held.release();
    const r = await inFlight;
    expect([r.status, r.body]).toEqual([200, 'held']);
    expect(await drained).toBe(true);
    expect(l.stats()).toMatchObject({ requests: 1, inFlight: 0, responses: { '2xx': 1, reset: 0 } });
    expect(l.listening).toBe(false);
  });

  it('resets the streams still in flight at the deadline', async () => {
    const l = newListener();
    const lPort = await l.listen('127.0.0.1', 0);
    held.hold = true;
    const session = await connect(`http://127.0.0.1:${lPort}`);
    const hits = held.hits;
    const inFlight = h2call(session, { ':path': '/held', ':authority': 'svc.test' });
    await until('the condition', () => held.hits === hits + 1);
    expect(await l.drain(50)).toBe(false);
    // The session is destroyed: the stream ends without a response.
    expect(await inFlight).toEqual({ status: 0, headers: {}, body: '' });
    expect(l.stats()).toMatchObject({ requests: 1, inFlight: 0, responses: { reset: 1 } });
    held.release();
  });

  it('closes an idle HTTP/2 session at once', async () => {
    const l = newListener();
    const lPort = await l.listen('127.0.0.1', 0);
    const session = await connect(`http://127.0.0.1:${lPort}`);
    await h2call(session, { ':path': '/', ':authority': 'svc.test' });
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    expect(await l.drain(10_000)).toBe(true);
    await closed;
  });
});

describe('TLS with ALPN', () => {
  let secure: HttpListener;
  let securePort: number;

  beforeAll(async () => {
    secure = newListener({ tls: { key: tls.key, cert: tls.cert } });
    securePort = await secure.listen('127.0.0.1', 0);
  });

  afterAll(async () => {
    await secure.close();
  });

  it('negotiates h2 by ALPN and forwards with x-forwarded-proto https', async () => {
    const session = await connect(`https://127.0.0.1:${securePort}`, { ca: tls.cert });
    expect(session.alpnProtocol).toBe('h2');
    const r = await h2call(session, { ':path': '/tls', ':authority': 'svc.test' });
    expect([r.status, r.body]).toEqual([200, 'h1']);
    expect(backend.seen[0]!.headers['x-forwarded-proto']).toBe('https');
  });

  it('serves HTTP/1.1 negotiated by ALPN, and without ALPN', async () => {
    const get = (alpn: string[] | null) => new Promise<{ status: number; body: string; alpn: string | false | null }>((resolve, reject) => {
      const options: https.RequestOptions & { ALPNProtocols?: string[] } = { host: '127.0.0.1', port: securePort, path: '/', headers: { host: 'svc.test' }, servername: 'localhost', ca: tls.cert, agent: false };
      if (alpn !== null) options.ALPNProtocols = alpn;
      const req = https.request(options, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, alpn: (res.socket as TLSSocket).alpnProtocol }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(await get(['http/1.1'])).toEqual({ status: 200, body: 'h1', alpn: 'http/1.1' });
    expect(await get(null)).toEqual({ status: 200, body: 'h1', alpn: false });
    expect(backend.seen.map((s) => s.headers['x-forwarded-proto'])).toEqual(['https', 'https']);
  });

  it('without http2, ALPN offers http/1.1 only', async () => {
    const h1only = newListener({ tls: { key: tls.key, cert: tls.cert }, http2: false });
    const h1Port = await h1only.listen('127.0.0.1', 0);
    try {
      const session = http2.connect(`https://127.0.0.1:${h1Port}`, { ca: tls.cert });
      const err = await new Promise<Error>((resolve) => session.once('error', resolve));
      session.destroy();
      expect(err).toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL' });
    } finally {
      await h1only.close();
    }
  });
});

interface Frame { type: number; flags: number; stream: number; payload: Buffer }

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

function parseFrames(buf: Buffer): Frame[] {
  const out: Frame[] = [];
  let at = 0;
  while (buf.length - at >= 9) {
    const len = buf.readUIntBE(at, 3);
    if (buf.length - at < 9 + len) break;
    out.push({ type: buf[at + 3]!, flags: buf[at + 4]!, stream: buf.readUInt32BE(at + 5) & 0x7fffffff, payload: buf.subarray(at + 9, at + 9 + len) });
    at += 9 + len;
  }
  return out;
}

/**
 * Writes `bytes` on a raw connection to the shared listener and collects the frames the
 * server sends until `done(frames)` or the server closes; `hangUp` closes from the client side
 * right after writing.
 */
function rawH2(bytes: Buffer, done: (frames: Frame[]) => boolean, hangUp = false): Promise<Frame[]> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    const finish = () => {
      socket.destroy();
      resolve(parseFrames(got));
    };
    socket.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (done(parseFrames(got))) finish();
    });
    socket.on('error', finish);
    socket.on('close', finish);
    socket.write(bytes);
    if (hangUp) socket.end();
  });
}
