/**
 * The Node peers of bench/proxy, each run as its own child process by run.ts:
 *
 *   node bench/proxy/node-servers.ts upstream     BODY_BYTES      a node:http server answering 200 + a fixed body
 *   node bench/proxy/node-servers.ts http-proxy-3 UPSTREAM_URL    a bare http-proxy-3 server, keep-alive http.Agent
 *   node bench/proxy/node-servers.ts fastify      UPSTREAM_URL    fastify + @fastify/http-proxy (undici, its default)
 *
 * Each listens on 127.0.0.1, port 0, and prints one JSON line `{"event":"ready","port":N}`
 * on stdout. SIGTERM / SIGINT close it. Nothing is logged per request.
 */
import { Agent, createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function ready(port: number, close: () => Promise<void>): void {
  process.stdout.write(`${JSON.stringify({ event: 'ready', port })}\n`);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      close().then(() => process.exit(0), () => process.exit(1));
      setTimeout(() => process.exit(0), 2000).unref();
    });
  }
}

/** The same body nginx's `return 200 "…"` sends (run.ts builds it with this function too). */
export function fixedBody(bytes: number): string {
  // Letters, digits and '-' only: it goes verbatim into nginx.conf (no '$', quotes, escapes).
  const unit = 'palisade-bench-0123456789abcdefghijklmnopqrstuvwxyz-';
  return unit.repeat(Math.ceil(bytes / unit.length)).slice(0, bytes);
}

async function upstream(bytes: number): Promise<void> {
  const body = Buffer.from(fixedBody(bytes));
  const headers = { 'content-type': 'text/plain', 'content-length': String(body.length) };
  const server = createServer({ keepAliveTimeout: 300_000 }, (req, res) => {
    // Drain any request body, then answer; the benchmark sends none.
    req.resume();
    res.writeHead(200, headers);
    res.end(body);
  });
  const port = await listen(server);
  ready(port, () => new Promise((r) => server.close(() => r())));
}

async function httpProxy3(target: string): Promise<void> {
  const { createProxyServer } = await import('http-proxy-3');
  // Keep-alive to the upstream, no socket cap: one upstream connection per concurrent request.
  const agent = new Agent({ keepAlive: true, keepAliveMsecs: 1000, maxFreeSockets: 1024 });
  const proxy = createProxyServer({ target, agent, xfwd: true });
  proxy.on('error', (_err, _req, res) => {
    const r = res as ServerResponse;
    if (!r.headersSent && typeof r.writeHead === 'function') r.writeHead(502, { 'content-type': 'text/plain' });
    r.end('bad gateway');
  });
  const server = createServer({ keepAliveTimeout: 300_000 }, (req, res) => proxy.web(req, res));
  const port = await listen(server);
  ready(port, async () => {
    await new Promise<void>((r) => server.close(() => r()));
    agent.destroy();
  });
}

async function fastifyProxy(target: string): Promise<void> {
  const { default: Fastify } = await import('fastify');
  const { default: proxy } = await import('@fastify/http-proxy');
  const app = Fastify({ logger: false, keepAliveTimeout: 300_000 });
  // Defaults: @fastify/reply-from over an undici Pool, keep-alive.
  await app.register(proxy, { upstream: target });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  ready(port, () => app.close());
}

const isMain = process.argv[1] !== undefined && import.meta.filename === process.argv[1];
if (isMain) {
  const [mode, arg] = process.argv.slice(2);
  try {
    if (mode === 'upstream') await upstream(Number(arg));
    else if (mode === 'http-proxy-3') await httpProxy3(String(arg));
    else if (mode === 'fastify') await fastifyProxy(String(arg));
    else throw new Error(`usage: node-servers.ts upstream BYTES | http-proxy-3 URL | fastify URL (got ${JSON.stringify(mode)})`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ event: 'error', message: (err as Error).message })}\n`);
    process.exit(1);
  }
}
