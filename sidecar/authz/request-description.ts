/**
 * The facts of an inbound request a policy's input is built from (policies/input.ts
 * RequestDescription), read from node:http or node:http2 requests. The caller's principal is
 * the SPIFFE ID of its verified client certificate, read once per connection; its verified JWT
 * payloads (if any) come from the authenticator (sidecar/authn).
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { uriSans } from '../../certs/peer-identity.ts';
import type { RequestDescription } from '../../policies/input.ts';
import type { DownstreamRequest } from '../listeners/http-listener.ts';
import type { KeySource } from './description-keys.ts';

const principals = new WeakMap<Socket, string | null>();

/** The peer's SPIFFE ID on an mTLS connection; null for plaintext or no client certificate. */
export function peerPrincipal(socket: Socket): string | null {
  const hit = principals.get(socket);
  if (hit !== undefined) return hit;
  let id: string | null = null;
  const tls = socket as TLSSocket;
  if (tls.encrypted === true) {
    const cert = tls.getPeerCertificate();
    id = uriSans(cert?.subjectaltname).find((u) => u.startsWith('spiffe://')) ?? null;
  }
  principals.set(socket, id);
  return id;
}

/** The x-request-id of `req`, set (appended, or an empty one replaced) with a generated id when it has none. */
function ensureRequestId(req: DownstreamRequest): string {
  const present = req.headers['x-request-id'];
  if (typeof present === 'string' && present !== '') return present;
  const requestId = randomUUID();
  // Absent (the common case): append; present but empty: replace.
  if (present === undefined) {
    req.rawHeaders.push('x-request-id', requestId);
    req.headers['x-request-id'] = requestId;
  } else {
    setRequestHeader(req, 'x-request-id', requestId);
  }
  return requestId;
}

/**
 * What a decision-cache key reads of `req` (description-keys.ts KeySource): the same values
 * describeRequest gives, without the fields only a policy input needs, so a cache hit builds
 * no description. Sets x-request-id as describeRequest does, so either one leaves the request
 * in the same state (the forwarder would generate the id otherwise).
 */
export function requestKeys(req: DownstreamRequest, ownPrincipal: string | null): KeySource {
  ensureRequestId(req);
  return keysOf(req, ownPrincipal);
}

function keysOf(req: DownstreamRequest, ownPrincipal: string | null): KeySource {
  const socket = req.socket as Socket;
  const h2 = req.httpVersion === '2.0';
  const authority = h2 ? req.headers[':authority'] : undefined;
  return {
    method: req.method ?? 'GET',
    path: req.url ?? '/',
    headers: req.headers,
    host: (typeof authority === 'string' ? authority : req.headers.host) ?? '',
    scheme: (socket as TLSSocket).encrypted === true ? 'https' : 'http',
    protocol: h2 ? 'HTTP/2' : req.httpVersion === '1.0' ? 'HTTP/1.0' : 'HTTP/1.1',
    sourcePrincipal: peerPrincipal(socket),
    destinationPrincipal: ownPrincipal,
  };
}

/**
 * Describes `req` for the policy input. Sets x-request-id when the request has none, so the
 * id in decision logs is the one the workload and the access log see.
 */
export function describeRequest(req: DownstreamRequest, ownPrincipal: string | null, jwtPayloads: Readonly<Record<string, unknown>> | null = null): RequestDescription {
  const requestId = ensureRequestId(req);
  const socket = req.socket as Socket;
  const length = req.headers['content-length'];
  return {
    ...keysOf(req, ownPrincipal),
    sourceAddress: socket.remoteAddress ?? '',
    sourcePort: socket.remotePort ?? 0,
    destinationAddress: socket.localAddress ?? '',
    destinationPort: socket.localPort ?? 0,
    requestId,
    time: new Date(),
    ...(typeof length === 'string' && /^\d+$/.test(length) ? { bodySize: Number(length) } : {}),
    // Verified JWT payloads (sidecar/authn), under metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].
    ...(jwtPayloads !== null ? { jwtPayloads } : {}),
  };
}

/** The path without its query: what Policy path prefixes match. */
export function pathOnly(url: string | undefined): string {
  const u = url ?? '/';
  const q = u.indexOf('?');
  return q === -1 ? u : u.slice(0, q);
}

/**
 * Sets a request header for the upstream: the forwarder copies `rawHeaders` (case kept), so
 * both it and `headers` change. Any earlier value of the header is replaced.
 */
export function setRequestHeader(req: DownstreamRequest, name: string, value: string): void {
  removeRequestHeader(req, name);
  req.rawHeaders.push(name, value);
  req.headers[name.toLowerCase()] = value;
}

/** Removes a request header (every occurrence) before the forwarder copies the rest. */
export function removeRequestHeader(req: DownstreamRequest, name: string): void {
  const lower = name.toLowerCase();
  const raw = req.rawHeaders;
  for (let i = raw.length - 2; i >= 0; i -= 2) if (raw[i]!.toLowerCase() === lower) raw.splice(i, 2);
  delete req.headers[lower];
}
