/**
 * The demo's HTTP workloads: a tiny server on loopback that answers every request with its
 * name and a short JSON of what it received (method, path, Host and the headers the
 * sidecars add), so the demo can show the path a request took through the mesh.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HttpWorkload {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Requests answered so far. */
  readonly requests: number;
  close(): Promise<void>;
}

/** What a workload answers: its name and the request as it arrived. */
export interface WorkloadReply {
  from: string;
  request: {
    method: string; path: string; host: string | null; 'x-request-id': string | null; 'x-forwarded-for': string | null;
    /** Set by the workload's sidecar for a request that arrived over mTLS: the caller's verified identity. */
    'x-forwarded-client-cert': string | null;
  };
}

function header(req: IncomingMessage, name: string): string | null {
  const v = req.headers[name];
  return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
}

/** Starts a workload on `host:0` (a free port) and resolves once it listens. */
export async function startHttpWorkload(name: string, host = '127.0.0.1'): Promise<HttpWorkload> {
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    req.resume();
    const reply: WorkloadReply = {
      from: name,
      request: {
        method: req.method ?? '',
        path: req.url ?? '',
        host: header(req, 'host'),
        'x-request-id': header(req, 'x-request-id'),
        'x-forwarded-for': header(req, 'x-forwarded-for'),
        'x-forwarded-client-cert': header(req, 'x-forwarded-client-cert'),
      },
    };
    const body = `${JSON.stringify(reply)}\n`;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-served-by': name });
    res.end(body);
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });
  return {
    name, host, port,
    get requests() {
      return requests;
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
