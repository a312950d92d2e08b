/**
 * The peer of bench/full-chain's diagnostic topologies `node` and `node-mtls`: the least a
 * reverse proxy written on Node does, as its own process:
 *
 *   node bench/full-chain/node-proxy.ts '<NodeProxySpec as JSON>'
 *
 * node:http (or node:https requiring and verifying a client certificate, as the sidecar's
 * STRICT inbound) in front of an undici Pool to the upstream; each response streamed back as
 * it comes (writeHead, write, end), hop-by-hop headers dropped both ways (the sidecar's own filter, sidecar/proxy/hop-by-hop.ts), x-forwarded-proto
 * set, 502 when the upstream fails. No routing, no telemetry, no filters: what it costs over
 * TLS against plaintext is Node's own TLS termination, the floor under the sidecar's.
 * Prints `{"event":"listening","port":N}` once it listens.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { Pool, type Dispatcher } from 'undici';
import { responseHeaders as forwardable } from '../../sidecar/proxy/hop-by-hop.ts';

export interface NodeProxySpec {
  readonly upstreamPort: number;
  /** PEM file paths: the server's key and chain, and the bundle client certificates must chain to; null: plaintext. */
  readonly tls: { readonly key: string; readonly cert: string; readonly ca: string } | null;
}

class Relay implements Dispatcher.DispatchHandler {
  readonly res: ServerResponse;
  ctl: Dispatcher.DispatchController | null = null;
  started = false;
  /** The client went away first: the upstream request is aborted (a paused one would hold its connection for good). */
  gone = false;

  constructor(res: ServerResponse) {
    this.res = res;
    res.once('close', () => {
      if (res.writableFinished) return;
      this.gone = true;
      this.ctl?.abort(new Error('client went away'));
    });
  }

  onRequestStart(ctl: Dispatcher.DispatchController): void {
    this.ctl = ctl;
    if (this.gone) ctl.abort(new Error('client went away'));
  }

  onResponseStart(_ctl: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>): void {
    this.started = true;
    this.res.writeHead(status, forwardable(headers));
  }

  onResponseData(ctl: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.gone) return;
    if (!this.res.write(chunk)) {
      ctl.pause();
      this.res.once('drain', () => ctl.resume());
    }
  }

  onResponseEnd(): void {
    this.res.end();
  }

  onResponseError(_ctl: Dispatcher.DispatchController, err: Error): void {
    if (this.gone) return;
    process.stderr.write(`upstream failed: ${err.message}\n`);
    if (this.started) {
      this.res.destroy(err);
      return;
    }
    this.res.writeHead(502, { 'content-type': 'text/plain' });
    this.res.end('upstream failed\n');
  }
}

const spec = JSON.parse(process.argv[2] ?? '') as NodeProxySpec;
const pool = new Pool(`http://127.0.0.1:${spec.upstreamPort}`, { connections: 128, pipelining: 1 });
const proto = spec.tls === null ? 'http' : 'https';

function handle(req: IncomingMessage, res: ServerResponse): void {
  const headers = forwardable(req.headers);
  headers['x-forwarded-proto'] = proto;
  pool.dispatch({ path: req.url ?? '/', method: req.method ?? 'GET', headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req }, new Relay(res));
}

const server = spec.tls === null
  ? createServer(handle)
  : createHttpsServer({
    key: readFileSync(spec.tls.key), cert: readFileSync(spec.tls.cert), ca: readFileSync(spec.tls.ca),
    requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['http/1.1'],
  }, handle);
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error(`unexpected address ${String(address)}`);
  process.stdout.write(`${JSON.stringify({ event: 'listening', port: address.port })}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void pool.close().then(() => process.exit(0));
});
