/**
 * requestKeys gives a cache key's reader the same values describeRequest does, for every kind
 * of inbound request (HTTP/1.1, HTTP/2, over mTLS), and leaves the request with the same
 * x-request-id: a decision cached under a key from one must be found under a key from the other.
 */
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect as h2connect, createServer as createH2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRequest, requestKeys } from '../../../sidecar/authz/request-description.ts';
import type { KeySource } from '../../../sidecar/authz/description-keys.ts';
import type { DownstreamRequest } from '../../../sidecar/listeners/http-listener.ts';
import type { CertificateSecret } from '../../../sidecar/tls/secrets.ts';
import { makeMeshPki, type MeshPki } from '../tls-fixtures.ts';

const OWN = 'spiffe://mesh.local/ns/shop/sa/api';
const FIELDS: readonly (keyof KeySource)[] = ['method', 'path', 'headers', 'host', 'scheme', 'protocol', 'sourcePrincipal', 'destinationPrincipal'];

interface Seen {
  readonly keys: KeySource;
  readonly idAfterKeys: unknown;
  readonly description: ReturnType<typeof describeRequest>;
}

/** What a request carries after one of the two functions ran on it alone, the generated id masked. */
interface Left {
  readonly mode: string;
  readonly rawHeaders: string[];
  readonly headers: Record<string, unknown>;
}

/**
 * Reads each request with requestKeys, then describeRequest, and answers 204; with an
 * `x-mode` header (keys or describe), runs that one alone and records what it left.
 */
function recorder(seen: Seen[], left: Left[] = []) {
  return (req: DownstreamRequest, res: ServerResponse | Http2ServerResponse) => {
    const mode = req.headers['x-mode'];
    if (typeof mode === 'string') {
      const generated = new Set<unknown>();
      const before = req.headers['x-request-id'];
      if (mode === 'keys') requestKeys(req, OWN);
      else describeRequest(req, OWN);
      if (req.headers['x-request-id'] !== before) generated.add(req.headers['x-request-id']);
      const mask = (v: unknown) => (generated.has(v) ? '<generated>' : v);
      left.push({ mode, rawHeaders: req.rawHeaders.map(mask) as string[], headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, mask(v)])) });
    } else {
      const keys = requestKeys(req, OWN);
      const idAfterKeys = req.headers['x-request-id'];
      seen.push({ keys: { ...keys }, idAfterKeys, description: describeRequest(req, OWN) });
    }
    (res as ServerResponse).writeHead(204);
    res.end();
  };
}

function expectSame(s: Seen): void {
  for (const f of FIELDS) expect(s.keys[f], f).toStrictEqual(s.description[f]);
  expect(typeof s.idAfterKeys).toBe('string');
  expect(s.idAfterKeys).not.toBe('');
  expect(s.description.requestId).toBe(s.idAfterKeys);
}

let pki: MeshPki;
let serverSvid: CertificateSecret;
let clientSvid: CertificateSecret;

beforeAll(async () => {
  pki = await makeMeshPki();
  serverSvid = await pki.svid('shop', 'api');
  clientSvid = await pki.svid('shop', 'web');
});

async function get(send: (done: (status: number) => void) => void): Promise<number> {
  return new Promise((resolve) => send(resolve));
}

describe('requestKeys', () => {
  const seen: Seen[] = [];
  const closers: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of closers) await c();
  });

  it('matches describeRequest over HTTP/1.1, and generates or keeps x-request-id as it does', async () => {
    const left: Left[] = [];
    const server = createServer(recorder(seen, left) as (req: IncomingMessage, res: ServerResponse) => void);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    closers.push(async () => { server.close(); server.closeAllConnections(); });
    const port = (server.address() as AddressInfo).port;
    const send = (headers: Record<string, string>) => get((done) => httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/a/b?x=1', headers }, (r) => { r.resume(); done(r.statusCode!); }).end('body'));
    const cases: Record<string, string>[] = [{}, { 'x-request-id': 'client-id-1' }, { 'x-request-id': '' }, { host: 'Shop.Example:8080', 'x-caller': 'a' }];
    for (const headers of cases) {
      seen.length = 0;
      expect(await send(headers)).toBe(204);
      expect(seen).toHaveLength(1);
      expectSame(seen[0]!);
      expect(seen[0]!.keys.scheme).toBe('http');
      expect(seen[0]!.keys.sourcePrincipal).toBeNull();
      if (headers['x-request-id'] === 'client-id-1') expect(seen[0]!.idAfterKeys).toBe('client-id-1');
      // Each alone leaves the request the same: one x-request-id, the client's or a generated one.
      left.length = 0;
      expect(await send({ ...headers, 'x-mode': 'keys' })).toBe(204);
      expect(await send({ ...headers, 'x-mode': 'describe' })).toBe(204);
      expect(left.map((l) => l.mode)).toEqual(['keys', 'describe']);
      const withoutMode = (raw: string[]) => raw.filter((_, i) => raw[i - (i % 2)]!.toLowerCase() !== 'x-mode');
      const [byKeys, byDescribe] = left.map(({ rawHeaders, headers: h }) => ({ rawHeaders: withoutMode(rawHeaders), headers: { ...h, 'x-mode': undefined } }));
      expect(byKeys).toEqual(byDescribe);
      const ids = byKeys!.rawHeaders.filter((_, i) => i % 2 === 1 && byKeys!.rawHeaders[i - 1]!.toLowerCase() === 'x-request-id');
      expect(ids).toEqual([headers['x-request-id'] === 'client-id-1' ? 'client-id-1' : '<generated>']);
    }
  });

  it('matches describeRequest over HTTP/1.0', async () => {
    const server = createServer(recorder(seen) as (req: IncomingMessage, res: ServerResponse) => void);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    closers.push(async () => { server.close(); server.closeAllConnections(); });
    const port = (server.address() as AddressInfo).port;
    seen.length = 0;
    const socket = netConnect(port, '127.0.0.1');
    socket.end('GET /old?q=1 HTTP/1.0\r\nHost: legacy\r\n\r\n');
    let reply = '';
    socket.setEncoding('latin1').on('data', (c: string) => (reply += c));
    await once(socket, 'close');
    expect(reply).toMatch(/^HTTP\/1\.1 204/);
    expect(seen).toHaveLength(1);
    expectSame(seen[0]!);
    expect(seen[0]!.keys.protocol).toBe('HTTP/1.0');
    expect(seen[0]!.keys.host).toBe('legacy');
  });

  it('matches describeRequest over HTTP/2 (host from :authority)', async () => {
    const server = createH2Server(recorder(seen) as (req: Http2ServerRequest, res: Http2ServerResponse) => void);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    closers.push(async () => { server.close(); });
    const port = (server.address() as AddressInfo).port;
    const session = h2connect(`http://127.0.0.1:${port}`);
    closers.unshift(async () => { session.close(); });
    seen.length = 0;
    const stream = session.request({ ':path': '/h2/path', ':method': 'GET', ':authority': 'h2.example' });
    const [headers] = (await once(stream, 'response')) as [Record<string, unknown>];
    stream.resume();
    expect(headers[':status']).toBe(204);
    expect(seen).toHaveLength(1);
    expectSame(seen[0]!);
    expect(seen[0]!.keys.protocol).toBe('HTTP/2');
    expect(seen[0]!.keys.host).toBe('h2.example');
  });

  it('matches describeRequest over mTLS (the caller SVID as source principal)', async () => {
    const server = createHttpsServer({ key: serverSvid.keyPem, cert: serverSvid.chainPem, ca: pki.bundle, requestCert: true, rejectUnauthorized: true }, recorder(seen) as (req: IncomingMessage, res: ServerResponse) => void);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    closers.push(async () => { server.close(); server.closeAllConnections(); });
    const port = (server.address() as AddressInfo).port;
    seen.length = 0;
    const status = await get((done) => httpsRequest({
      host: '127.0.0.1', port, path: '/tls', key: clientSvid.keyPem, cert: clientSvid.chainPem, ca: pki.bundle, servername: 'localhost', checkServerIdentity: () => undefined,
    }, (r) => { r.resume(); done(r.statusCode!); }).end());
    expect(status).toBe(204);
    expect(seen).toHaveLength(1);
    expectSame(seen[0]!);
    expect(seen[0]!.keys.scheme).toBe('https');
    expect(seen[0]!.keys.sourcePrincipal).toBe(clientSvid.spiffeId);
  });
});
