/**
 * The sidecar's HTTP listener refuses malformed requests as Envoy does (issue #4): 400 (431 for
 * an oversized header block or more than 100 headers, 426 for HTTP/1.0, 501 for a
 * Transfer-Encoding other than chunked) with `connection: close`, the connection closed by the
 * listener, and nothing forwarded. Raw sockets write exact bytes to a real HttpListener whose handler is
 * the real forwarder in front of a real backend that records what reaches it.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { HttpListener } from '../../../sidecar/listeners/http-listener.ts';
import { createForwarder } from '../../../sidecar/proxy/forward.ts';
import { UpstreamCluster } from '../../../sidecar/upstream/upstream-cluster.ts';
import { compile, routeConfig, toCluster } from '../routing/fixtures.ts';
import { compiled, ep, locality, staticCluster } from '../upstream/fixtures.ts';
import { startBackend, type Backend } from '../proxy/fixtures.ts';

/** What a raw connection received, and how it ended. */
interface RawReply {
  readonly text: string;
  /** The listener closed the connection (FIN) without the client closing first. */
  readonly closedByServer: boolean;
  /** The connection was reset (ECONNRESET, EPIPE) instead. */
  readonly error: string | null;
}

/** A raw TCP client: write exact bytes, read what comes back. */
class Raw {
  readonly #socket: net.Socket;
  #text = '';
  #ended = false;
  #error: string | null = null;
  #waiters: Array<() => void> = [];
  readonly ready: Promise<void>;

  constructor(port: number) {
    this.#socket = net.connect(port, '127.0.0.1');
    this.#socket.setEncoding('latin1');
    this.ready = new Promise((resolve, reject) => {
      this.#socket.once('connect', resolve);
      this.#socket.once('error', reject);
    });
    this.#socket.on('data', (d: string) => {
      this.#text += d;
      this.#wake();
    });
    this.#socket.on('end', () => {
      this.#ended = true;
      this.#wake();
    });
    this.#socket.on('error', (e: NodeJS.ErrnoException) => {
      this.#error = e.code ?? e.message;
      this.#wake();
    });
    this.#socket.on('close', () => this.#wake());
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  write(bytes: string | Buffer): void {
    this.#socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  get text(): string {
    return this.#text;
  }

  /** Resolves once `done(text)` holds, or the connection is over. */
  async until(done: (text: string) => boolean): Promise<string> {
    while (!done(this.#text) && !this.#ended && this.#error === null && !this.#socket.destroyed) {
      await new Promise<void>((r) => this.#waiters.push(r));
    }
    return this.#text;
  }

  /** Reads until the server closes (or resets) the connection. */
  async closed(): Promise<RawReply> {
    await this.until(() => false);
    return { text: this.#text, closedByServer: this.#ended, error: this.#error };
  }

  get open(): boolean {
    return !this.#ended && this.#error === null && !this.#socket.destroyed;
  }

  destroy(): void {
    this.#socket.destroy();
  }
}

/** Whether `text` holds `n` complete responses with content-length bodies. */
function responses(text: string): string[] {
  const out: string[] = [];
  let rest = text;
  for (;;) {
    const head = rest.indexOf('\r\n\r\n');
    if (head < 0) return out;
    const m = /\r\ncontent-length: *(\d+)/i.exec(rest.slice(0, head));
    const len = m === null ? 0 : Number(m[1]);
    if (rest.length < head + 4 + len) return out;
    out.push(rest.slice(0, head + 4 + len));
    rest = rest.slice(head + 4 + len);
  }
}

const GET = (path = '/'): string => `GET ${path} HTTP/1.1\r\nHost: svc.test\r\n\r\n`;

let backend: Backend;
let cluster: UpstreamCluster;
let listener: HttpListener;
let port: number;
const MAX_HEADER_BYTES = 8 * 1024;

beforeAll(async () => {
  backend = await startBackend('backend');
  cluster = new UpstreamCluster(compiled(staticCluster('backend', [locality([ep('127.0.0.1', backend.port)])])));
  const table = compile(routeConfig([{ name: 'all', domains: ['*'], routes: [toCluster('backend')] }]));
  const forwarder = createForwarder({ getCluster: (n) => (n === 'backend' ? cluster : undefined) });
  listener = new HttpListener('test', (req, res) => forwarder.handle(req, res, table), { maxHeaderBytes: MAX_HEADER_BYTES });
  port = await listener.listen('127.0.0.1', 0);
});

afterAll(async () => {
  await listener.close();
  await cluster.destroy();
  await backend.close();
});

/** URLs of the requests the backend received whole (body to its end). */
const completed: string[] = [];

beforeEach(() => {
  backend.seen.length = 0;
  completed.length = 0;
  backend.handler = (req, res) => {
    req.resume();
    req.on('end', () => {
      completed.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 7 });
      res.end('backend');
    });
  };
});

/** Sends `bytes` on a new connection and reads until the listener closes it. */
async function send(bytes: string | Buffer): Promise<RawReply> {
  const c = new Raw(port);
  await c.ready;
  c.write(bytes);
  const r = await c.closed();
  c.destroy();
  return r;
}

/** The reply is exactly one `status` response with connection: close, and the listener closed the connection. */
function expectRejected(r: RawReply, status: number, reason: string): void {
  expect(r.error).toBeNull();
  expect(r.closedByServer).toBe(true);
  expect(r.text.startsWith(`HTTP/1.1 ${status} ${reason}\r\n`)).toBe(true);
  const [head, body] = r.text.split('\r\n\r\n') as [string, string];
  expect(head.toLowerCase().split('\r\n')).toContain('connection: close');
  expect(body.length).toBeGreaterThan(0);
  expect(responses(r.text)).toHaveLength(1);
}

describe('malformed requests: 400 Bad Request, connection closed, nothing forwarded', () => {
  /** [name, bytes, the error is in the body (after the headers reached the handler)]. */
  const cases: Array<[string, string, boolean?]> = [
    ['CL.TE: Content-Length and Transfer-Encoding: chunked', 'POST / HTTP/1.1\r\nHost: svc.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG'],
    ['TE.CL: Transfer-Encoding: chunked then Content-Length', 'POST / HTTP/1.1\r\nHost: svc.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n'],
    ['two different Content-Length headers', 'POST / HTTP/1.1\r\nHost: svc.test\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde'],
    ['Content-Length with two values in one header', 'POST / HTTP/1.1\r\nHost: svc.test\r\nContent-Length: 3, 5\r\n\r\nabcde'],
    ['Transfer-Encoding: chunked, identity (chunked not last)', 'POST / HTTP/1.1\r\nHost: svc.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    ['"Transfer-Encoding : chunked" (space before the colon)', 'POST / HTTP/1.1\r\nHost: svc.test\r\nTransfer-Encoding : chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    ['Transfer-Encoding: chunked with a Content-Length after an obfuscated TE', 'POST / HTTP/1.1\r\nHost: svc.test\r\nContent-Length: 4\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n'],
    ['a header name with a space', 'GET / HTTP/1.1\r\nHost: svc.test\r\nX Bad: 1\r\n\r\n'],
    ['a header name with an invalid character', 'GET / HTTP/1.1\r\nHost: svc.test\r\nX-B@d(: 1\r\n\r\n'],
    ['a header line without a colon', 'GET / HTTP/1.1\r\nHost: svc.test\r\nnocolon\r\n\r\n'],
    ['a header value with a bare CR', 'GET / HTTP/1.1\r\nHost: svc.test\r\nX-A: a\rb\r\n\r\n'],
    ['a header value with a NUL', 'GET / HTTP/1.1\r\nHost: svc.test\r\nX-A: a\0b\r\n\r\n'],
    ['a header line ending in a bare LF', 'GET / HTTP/1.1\r\nHost: svc.test\nX-A: b\r\n\r\n'],
    ['obsolete line folding', 'GET / HTTP/1.1\r\nHost: svc.test\r\nX-A: a\r\n b\r\n\r\n'],
    ['an HTTP/0.9 request line (no version)', 'GET /\r\nHost: svc.test\r\n\r\n'],
    ['a request line with a trailing token', 'GET / HTTP/1.1 extra\r\nHost: svc.test\r\n\r\n'],
    ['a request line with spaces in the target', 'GET /a b HTTP/1.1\r\nHost: svc.test\r\n\r\n'],
    ['an invalid method', 'G(T / HTTP/1.1\r\nHost: svc.test\r\n\r\n'],
    ['a bad HTTP version', 'GET / HTTP/1.x\r\nHost: svc.test\r\n\r\n'],
    ['an unsupported HTTP version', 'GET / HTTP/3.0\r\nHost: svc.test\r\n\r\n'],
    ['a bad chunk size', 'POST / HTTP/1.1\r\nHost: svc.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n', true],
    ['a chunk size overflowing', 'POST / HTTP/1.1\r\nHost: svc.test\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n', true],
    ['a chunk without its CRLF', 'POST / HTTP/1.1\r\nHost: svc.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n', true],
    ['a negative Content-Length', 'POST / HTTP/1.1\r\nHost: svc.test\r\nContent-Length: -1\r\n\r\n'],
    ['an HTTP/1.1 request without Host', 'GET / HTTP/1.1\r\nX-A: 1\r\n\r\n'],
  ];

  for (const [name, bytes, inBody = false] of cases) {
    it(name, async () => {
      const r = await send(bytes);
      expectRejected(r, 400, 'Bad Request');
      // A body error comes after the headers went to the handler, which streams: the upstream
      // may see the request begin, but never complete.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(completed).toEqual([]);
      if (!inBody) expect(backend.seen).toEqual([]);
    });
  }

  it('an oversized header block: 431 Request Header Fields Too Large', async () => {
    const r = await send(`GET / HTTP/1.1\r\nHost: svc.test\r\nX-Big: ${'a'.repeat(MAX_HEADER_BYTES + 1)}\r\n\r\n`);
    expectRejected(r, 431, 'Request Header Fields Too Large');
    expect(backend.seen).toEqual([]);
  });

  it('a header block just under the maximum is accepted', async () => {
    const c = new Raw(port);
    await c.ready;
    c.write(`GET / HTTP/1.1\r\nHost: svc.test\r\nX-Big: ${'a'.repeat(MAX_HEADER_BYTES - 200)}\r\n\r\n`);
    const text = await c.until((t) => responses(t).length === 1);
    expect(text.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true);
    c.destroy();
    expect(backend.seen).toHaveLength(1);
  });

  it('counts rejections in the listener stats', async () => {
    const before = listener.stats();
    await send('GET / HTTP/1.x\r\n\r\n');
    const after = listener.stats();
    expect(after.rejected).toBe(before.rejected + 1);
    expect(after.requests).toBe(before.requests);
  });
});

describe('what Node accepts and Envoy refuses by default', () => {
  const headersN = (n: number): string => Array.from({ length: n }, (_, i) => `X-H${i}: ${i}\r\n`).join('');

  it('an HTTP/1.0 request: 426 Upgrade Required (accept_http_10 is off)', async () => {
    const r = await send('GET / HTTP/1.0\r\nHost: svc.test\r\n\r\n');
    expectRejected(r, 426, 'Upgrade Required');
    expect(backend.seen).toEqual([]);
  });

  it.each([
    ['Transfer-Encoding: gzip, chunked', 'gzip, chunked'],
    ['Transfer-Encoding: xchunked', 'xchunked'],
    ['Transfer-Encoding: deflate, chunked', 'deflate, chunked'],
  ])('%s: 501 Not Implemented', async (_name, te) => {
    const r = await send(`POST / HTTP/1.1\r\nHost: svc.test\r\nTransfer-Encoding: ${te}\r\n\r\n3\r\nabc\r\n0\r\n\r\n`);
    expectRejected(r, 501, 'Not Implemented');
    expect(backend.seen).toEqual([]);
  });

  it('Transfer-Encoding: Chunked (any case) is accepted', async () => {
    const c = new Raw(port);
    await c.ready;
    c.write('POST / HTTP/1.1\r\nHost: svc.test\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
    const text = await c.until((t) => responses(t).length === 1);
    c.destroy();
    expect(text.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true);
    expect(completed).toEqual(['/']);
  });

  it('more than 100 request headers: 431 (max_headers_count)', async () => {
    // Host plus 100 more: 101 headers.
    const r = await send(`GET / HTTP/1.1\r\nHost: svc.test\r\n${headersN(100)}\r\n`);
    expectRejected(r, 431, 'Request Header Fields Too Large');
    expect(backend.seen).toEqual([]);
  });

  it('exactly 100 request headers are accepted', async () => {
    const c = new Raw(port);
    await c.ready;
    c.write(`GET / HTTP/1.1\r\nHost: svc.test\r\n${headersN(99)}\r\n`);
    const text = await c.until((t) => responses(t).length === 1);
    c.destroy();
    expect(text.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true);
    expect(backend.seen).toHaveLength(1);
    expect(backend.seen[0]!.headers['x-h98']).toBe('98');
  });

  it('counts these refusals as rejected, not as requests', async () => {
    const before = listener.stats();
    await send('GET / HTTP/1.0\r\nHost: svc.test\r\n\r\n');
    await send('POST / HTTP/1.1\r\nHost: svc.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n');
    const after = listener.stats();
    expect(after.rejected).toBe(before.rejected + 2);
    expect(after.requests).toBe(before.requests);
  });
});

describe('keep-alive connections', () => {
  it('serves two requests on one connection (positive control)', async () => {
    const c = new Raw(port);
    await c.ready;
    c.write(GET('/one'));
    await c.until((t) => responses(t).length === 1);
    c.write(GET('/two'));
    const text = await c.until((t) => responses(t).length === 2);
    const [a, b] = responses(text) as [string, string];
    expect(a.startsWith('HTTP/1.1 200 OK\r\n') && a.endsWith('backend')).toBe(true);
    expect(b.startsWith('HTTP/1.1 200 OK\r\n') && b.endsWith('backend')).toBe(true);
    expect(c.open).toBe(true);
    c.destroy();
    expect(backend.seen.map((s) => s.url)).toEqual(['/one', '/two']);
  });

  it('garbage after a served request: 400 and close for the garbage, the first response intact', async () => {
    const c = new Raw(port);
    await c.ready;
    c.write(GET('/one'));
    await c.until((t) => responses(t).length === 1);
    const first = c.text;
    c.write('\x16\x03\x01garbage\r\n\r\n');
    const r = await c.closed();
    c.destroy();
    expect(r.text.startsWith(first)).toBe(true);
    expect(first.startsWith('HTTP/1.1 200 OK\r\n') && first.endsWith('backend')).toBe(true);
    expectRejected({ ...r, text: r.text.slice(first.length) }, 400, 'Bad Request');
    expect(backend.seen.map((s) => s.url)).toEqual(['/one']);
  });

  it('garbage pipelined behind a request: the request is answered first, then 400 and close', async () => {
    const r = await send(`${GET('/one')}${GET('/two')}BAD LINE\r\n\r\n`);
    const [a, b, c] = responses(r.text) as [string, string, string];
    expect(responses(r.text)).toHaveLength(3);
    expect(a.startsWith('HTTP/1.1 200 OK\r\n') && a.endsWith('backend')).toBe(true);
    expect(b.startsWith('HTTP/1.1 200 OK\r\n') && b.endsWith('backend')).toBe(true);
    expectRejected({ ...r, text: c }, 400, 'Bad Request');
    expect(backend.seen.map((s) => s.url)).toEqual(['/one', '/two']);
  });

  it('a smuggling attempt behind a valid request on the same connection', async () => {
    const c = new Raw(port);
    await c.ready;
    c.write(GET('/one'));
    await c.until((t) => responses(t).length === 1);
    const first = c.text;
    c.write('POST /smuggle HTTP/1.1\r\nHost: svc.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: svc.test\r\n\r\n');
    const r = await c.closed();
    c.destroy();
    expectRejected({ ...r, text: r.text.slice(first.length) }, 400, 'Bad Request');
    expect(backend.seen.map((s) => s.url)).toEqual(['/one']);
  });
});

describe('timeouts', () => {
  it('headers not complete within headersTimeoutMs: 408 and close', async () => {
    const slow = new HttpListener('slow', null, { headersTimeoutMs: 200, requestTimeoutMs: 300 });
    const slowPort = await slow.listen('127.0.0.1', 0);
    try {
      const c = new Raw(slowPort);
      await c.ready;
      c.write('GET / HTTP/1.1\r\nHost: svc.test\r\n');
      const r = await c.closed();
      c.destroy();
      expectRejected(r, 408, 'Request Timeout');
    } finally {
      await slow.close();
    }
  });
});
