/**
 * What the upstream request carries from the downstream one: its headers (hop-by-hop fields
 * dropped, x-forwarded-* and x-request-id set, HTTP/2 pseudo-headers turned into a Host) and
 * whether it has a body. Used by the forwarder and by WebSocket upgrades.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { DownstreamRequest } from '../listeners/http-listener.ts';
import { clientCertDetails, XFCC_HEADER } from './client-cert.ts';
import { connectionTokens, HOP_BY_HOP, teHasTrailers } from './hop-by-hop.ts';
import { traceHeadersOf } from '../telemetry/trace-headers.ts';

/** Whether the request carries a body (Transfer-Encoding, or a Content-Length other than 0). */
export function hasBody(req: IncomingMessage): boolean {
  // HTTP/2: DATA frames may follow the HEADERS with neither content-length nor transfer-encoding.
  const stream = (req as unknown as Partial<Http2ServerRequest>).stream;
  if (stream !== undefined) return !stream.endAfterHeaders;
  const h = req.headers;
  if (h['transfer-encoding'] !== undefined) return true;
  const cl = h['content-length'];
  return cl !== undefined && cl !== '0';
}

/**
 * The upstream request headers: the downstream's raw headers (case kept) less the hop-by-hop
 * fields, plus x-request-id (kept or generated), x-forwarded-for (peer appended),
 * x-forwarded-proto and x-forwarded-host, and over mTLS x-forwarded-client-cert (any the client
 * sent is dropped: client-cert.ts), as a flat [name, value, …] list for undici (or
 * upgrade.ts). HTTP/2: pseudo-headers are dropped, `host` is the authority, and the cookie
 * crumbs (RFC 9113 §8.2.3) are joined into one `cookie` with "; ". With tracing on, `traceparent`
 * and `tracestate` are this sidecar's span's (telemetry/trace-headers.ts); off, the client's pass
 * untouched. A generated x-request-id is also set on `req.headers`, for the access log.
 */
export function upstreamHeaders(req: DownstreamRequest, authority: string, hostRewrite: string | null): string[] {
  const raw = req.rawHeaders;
  const h2 = req.httpVersionMajor === 2;
  const named = connectionTokens(req.headers['connection']);
  const out: string[] = [];
  let requestId: string | null = null;
  let xff: string | null = null;
  let cookie: string | null = null;
  const trace = traceHeadersOf(req);
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (name.charCodeAt(0) === 0x3a) continue; // ':' — an HTTP/2 pseudo-header
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower === 'expect' || lower === 'x-forwarded-proto' || lower === 'x-forwarded-host' || lower === XFCC_HEADER) continue;
    if (named !== null && named.has(lower)) continue;
    if (trace !== undefined && (lower === 'traceparent' || lower === 'tracestate')) continue;
    switch (lower) {
      case 'te':
        if (teHasTrailers(value)) out.push('te', 'trailers');
        continue;
      case 'host':
        if (hostRewrite !== null || h2) continue;
        break;
      case 'cookie':
        if (!h2) break;
        cookie = cookie === null ? value : `${cookie}; ${value}`;
        continue;
      case 'x-request-id':
        if (requestId === null) requestId = value;
        continue;
      case 'x-forwarded-for':
        xff = xff === null ? value : `${xff}, ${value}`;
        continue;
    }
    out.push(name, value);
  }
  if (hostRewrite !== null) out.push('host', hostRewrite);
  else if (h2) out.push('host', authority);
  if (cookie !== null) out.push('cookie', cookie);
  const peer = req.socket.remoteAddress;
  if (peer !== undefined) xff = xff === null ? peer : `${xff}, ${peer}`;
  if (xff !== null) out.push('x-forwarded-for', xff);
  out.push('x-forwarded-proto', (req.socket as TLSSocket).encrypted === true ? 'https' : 'http');
  out.push('x-forwarded-host', authority);
  const xfcc = clientCertDetails(req.socket);
  if (xfcc !== null) out.push(XFCC_HEADER, xfcc);
  if (trace !== undefined) for (const name in trace) out.push(name, trace[name]!);
  if (requestId === null) req.headers['x-request-id'] = requestId = randomUUID();
  out.push('x-request-id', requestId);
  return out;
}
