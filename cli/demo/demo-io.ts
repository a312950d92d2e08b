/** Small I/O the demo's steps share: whole-file writes the config watcher never half-reads, and one HTTP call. */
import { rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { request, type IncomingHttpHeaders } from 'node:http';

/** Writes a file whole (temp file + rename): the config watcher never reads half of it. */
export async function writeAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.tmp`);
  await writeFile(tmp, data);
  await rename(tmp, file);
}

export interface DemoResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One HTTP/1.1 request to host:port (a sidecar's outbound listener), no connection reuse. */
export function call(address: string, method: string, path: string, headers: Record<string, string>, signal: AbortSignal): Promise<DemoResponse> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = request({ host: address.slice(0, i), port: Number(address.slice(i + 1)), method, path, headers, agent: false, signal }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: body.trim() }));
    });
    req.on('error', reject);
    req.end();
  });
}
