/** A plain HTTP/1.1 GET over a fresh connection, for e2e tests. */
import { request } from 'node:http';

export interface Reply {
  status: number;
  body: string;
}

/** GET `path` from `address` (host:port) with `headers`; rejects on a socket error or after 5 s. */
export async function httpGet(address: string, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  const { status, body } = await httpRequest(address, { method: 'GET', path, headers });
  return { status, body };
}

/** Any method, with the response headers too; same rules as httpGet. */
export function httpRequest(address: string, o: { method: string; path: string; headers?: Record<string, string>; body?: string }): Promise<Reply & { headers: Record<string, string | string[] | undefined> }> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = request({ host: address.slice(0, i), port: Number(address.slice(i + 1)), method: o.method, path: o.path, headers: o.headers ?? {}, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(o.body);
  });
}
