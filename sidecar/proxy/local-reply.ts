/** The sidecar's own short text answers (404 no route, 503 no healthy upstream, 504 …). */
import type { ServerResponse } from 'node:http';

export const TEXT_PLAIN = 'text/plain';

/** Answers `status` with a text body; when the response already started, cuts it instead. */
export function localReply(res: ServerResponse, status: number, body: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': TEXT_PLAIN, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
