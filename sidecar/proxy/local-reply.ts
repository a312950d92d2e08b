/** The sidecar's own short text answers (404 no route, 503 no healthy upstream, 504 …). */
import type { ServerResponse } from 'node:http';
import { factsOf } from '../telemetry/request-facts.ts';
import { withAddedHeaders } from './added-headers.ts';

export const TEXT_PLAIN = 'text/plain';

/**
 * Envoy's local replies when no upstream response started: 503 with these bodies (its
 * router's "upstream connect error or disconnect/reset before headers"), not 502, which
 * Envoy keeps for upstream protocol errors.
 */
export const UPSTREAM_CONNECT_FAILURE = 'upstream connect error or disconnect/reset before headers. reset reason: connection failure';
export const UPSTREAM_RESET = 'upstream connect error or disconnect/reset before headers. reset reason: connection termination';

/** Answers `status` with a text body; when the response already started, cuts it instead. */
export function localReply(res: ServerResponse, status: number, body: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const bytes = Buffer.byteLength(body);
  const facts = res.req === undefined ? undefined : factsOf(res.req);
  if (facts !== undefined) facts.bytesSent = res.req.method === 'HEAD' ? 0 : bytes;
  res.writeHead(status, withAddedHeaders(res, { 'content-type': TEXT_PLAIN, 'content-length': bytes }));
  res.end(body);
}
