/**
 * The Palisade target of bench/tls, run by run.ts as its own process: an HttpListener
 * (HTTP/1.1 only) terminating TLS with the server SVID and answering every request `200 ok`.
 *
 *   node bench/tls/server.ts <key.pem> <chain.pem> [<bundle.pem>]
 *
 * With a bundle it requires mutual TLS (the client's certificate must chain to it). Prints
 * `{"event":"ready","port":N}` once listening on 127.0.0.1 (a port of the kernel's choice);
 * on SIGTERM drains and exits, printing `{"event":"stats",...}` (the listener's TLS counters).
 */
import { readFileSync } from 'node:fs';

import { HttpListener } from '../../sidecar/listeners/http-listener.ts';

const [keyFile, chainFile, bundleFile] = process.argv.slice(2);
if (keyFile === undefined || chainFile === undefined) {
  console.error('usage: node bench/tls/server.ts <key.pem> <chain.pem> [<bundle.pem>]');
  process.exit(2);
}

const tls = {
  key: readFileSync(keyFile),
  cert: readFileSync(chainFile),
  ...(bundleFile === undefined ? {} : { ca: readFileSync(bundleFile) }),
};
const listener = new HttpListener('bench', (_req, res) => res.end('ok'), { http2: false, tls });
const port = await listener.listen('127.0.0.1', 0);
console.log(JSON.stringify({ event: 'ready', port }));

process.once('SIGTERM', () => {
  void listener.drain(1000).then(() => {
    console.log(JSON.stringify({ event: 'stats', tls: listener.stats().tls }));
    process.exit(0);
  });
});
