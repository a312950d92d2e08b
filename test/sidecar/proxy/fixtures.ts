/**
 * Real servers on 127.0.0.1:0 for the forwarder tests: programmable backends that record what
 * reached them, a proxy server whose handler is `Forwarder.handle`, and a node:http client
 * that sends any header (hop-by-hop ones included) and streams bodies.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import type { RouteTable } from '../../../sidecar/routing/route-table.ts';
import type { Forwarder } from '../../../sidecar/proxy/forward.ts';

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
}

export interface Backend {
  readonly name: string;
  readonly port: number;
  readonly seen: SeenRequest[];
  /** Answers each request; default: 200 text/plain with the backend's name after reading the body. */
  handler: (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void;
  close(): Promise<void>;
}

async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

function closer(server: http.Server): () => Promise<void> {
  return async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
}

export async function startBackend(name: string): Promise<Backend> {
  const server = http.createServer();
  const b: Backend = {
    name,
    port: 0,
    seen: [],
    handler: (req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(name);
      });
    },
    close: closer(server),
  };
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    b.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    b.handler(req, res, b.seen.length);
  });
  (b as { port: number }).port = await listen(server);
  return b;
}

export interface Proxy {
  readonly port: number;
  close(): Promise<void>;
}

export async function startProxy(forwarder: Forwarder, table: RouteTable): Promise<Proxy> {
  const server = http.createServer((req, res) => forwarder.handle(req, res, table));
  const port = await listen(server);
  return { port, close: closer(server) };
}

/** A port nothing listens on (a server bound then closed). */
export async function deadPort(): Promise<number> {
  const server = http.createServer();
  const port = await listen(server);
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

export interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

export interface CallOptions {
  readonly method?: string;
  readonly path?: string;
  readonly headers?: Record<string, string | number>;
  readonly body?: string | Readable;
}

/** Starts a request to the proxy; resolves with the response stream. */
export function open(port: number, o: CallOptions = {}): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path ?? '/', headers: o.headers, agent: false }, resolve);
    req.on('error', reject);
    if (o.body === undefined) req.end();
    else if (typeof o.body === 'string') req.end(o.body);
    else o.body.pipe(req);
  });
}

/** Sends one request to the proxy and reads the whole (small) reply. */
export async function call(port: number, o: CallOptions = {}): Promise<Reply> {
  const res = await open(port, o);
  let body = '';
  res.setEncoding('utf8');
  for await (const chunk of res) body += chunk as string;
  return { status: res.statusCode ?? 0, headers: res.headers, body };
}

/** `total` bytes of a repeating pattern, in `chunk`-byte pieces, generated lazily. */
export function patternStream(total: number, chunk = 64 * 1024): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) {
        this.push(null);
        return;
      }
      const n = Math.min(chunk, total - sent);
      const buf = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) buf[i] = (sent + i) % 251;
      sent += n;
      this.push(buf);
    },
  });
}

/** Byte count and sha256 of a stream, read chunk by chunk. */
export async function digest(stream: NodeJS.ReadableStream): Promise<{ bytes: number; sha256: string }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of stream as AsyncIterable<Buffer>) {
    bytes += c.length;
    h.update(c);
  }
  return { bytes, sha256: h.digest('hex') };
}
