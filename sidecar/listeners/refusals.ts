/**
 * What a listener refuses, and the bytes it answers with: parser errors from llhttp (400, 431
 * past the header size, 408 past the headers / request timeout) and what Node accepts but
 * Envoy's defaults refuse (HTTP/0.9 and Host-less HTTP/1.1: 400; HTTP/1.0: 426, as
 * `accept_http_10: false`; a Transfer-Encoding other than `chunked`: 501; more than
 * MAX_HEADERS_COUNT headers: 431). Every reply closes the connection.
 */
import type { IncomingMessage } from 'node:http';

/** Envoy's default `max_headers_count`: more request headers get 431. */
export const MAX_HEADERS_COUNT = 100;

const REASONS: Record<number, string> = {
  400: 'Bad Request', 408: 'Request Timeout', 426: 'Upgrade Required', 431: 'Request Header Fields Too Large', 501: 'Not Implemented',
};
const BODIES: Record<number, string> = {
  400: 'bad request', 408: 'request timeout', 426: 'upgrade required', 431: 'request header fields too large', 501: 'not implemented',
};

/** The status a parser / socket error is answered with. */
export function rejectStatus(err: Error & { code?: string }): number {
  if (err.code === 'HPE_HEADER_OVERFLOW') return 431;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return 400;
}

export function rejectReply(status: number): string {
  const body = BODIES[status]!;
  return `HTTP/1.1 ${status} ${REASONS[status]!}\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
}

/** The short text body of a refusal. */
export function refusalBody(status: number): string {
  return BODIES[status]!;
}

/** The status an HTTP/1 request the parser let through is refused with, or 0. */
export function refusalStatus(req: IncomingMessage): number {
  // llhttp takes `GET /` as HTTP/0.9; Envoy refuses it, and an HTTP/1.1 request needs a Host.
  if (req.httpVersionMajor !== 1) return 400;
  if (req.httpVersionMinor === 0) return 426;
  if (req.headers.host === undefined) return 400;
  if (req.rawHeaders.length > 2 * MAX_HEADERS_COUNT) return 431;
  const te = req.headers['transfer-encoding'];
  // llhttp has already refused a Transfer-Encoding whose last coding is not chunked.
  if (te !== undefined && te.trim().toLowerCase() !== 'chunked') return 501;
  return 0;
}
