/**
 * 100 MB bodies both ways through a real `palisade sidecar` process: they arrive intact and
 * the sidecar's resident memory does not grow with them (bodies stream, nothing is buffered
 * whole). Memory is read from /proc/<pid>/status (VmRSS) while the bodies flow.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { startControlPlane } from '../../helpers/control-plane.ts';

const ROOT = join(import.meta.dirname, '../../..');
const CLI = join(ROOT, 'cli/main.ts');
const TOTAL = 100 * 1024 * 1024;
/** Bodies sent each way: memory must not grow with the bytes passed. */
const ROUNDS = 3;
const CHUNK = 64 * 1024;
/**
 * RSS growth allowed: less than one body. V8 collects freed Buffers lazily (its external
 * memory soft limit is 64 MiB), so ~70-85 MiB of slack is normal and the same at 100 or 400 MB.
 */
const MAX_GROWTH_BYTES = 100 * 1024 * 1024;
/** How much more the later rounds may peak than the first: bodies are not accumulated. */
const MAX_DRIFT_BYTES = 24 * 1024 * 1024;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

/** Chunk `i` of the deterministic body: its index repeated, so a reordering or loss changes the hash. */
function chunk(i: number): Buffer {
  const b = Buffer.allocUnsafe(CHUNK);
  for (let off = 0; off < CHUNK; off += 4) b.writeUInt32BE(i, off);
  return b;
}

function expectedHash(): string {
  const h = createHash('sha256');
  for (let i = 0; i < TOTAL / CHUNK; i++) h.update(chunk(i));
  return h.digest('hex');
}

/** A Readable of the deterministic body that only produces when read (backpressure honoured). */
function body(): Readable {
  let i = 0;
  return new Readable({
    highWaterMark: CHUNK,
    read() {
      this.push(i < TOTAL / CHUNK ? chunk(i++) : null);
    },
  });
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Samples the process's RSS every 20 ms until stopped; returns the peak. */
function watchRss(pid: number): () => number {
  let peak = rssBytes(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssBytes(pid));
  }, 20);
  return () => {
    clearInterval(timer);
    return Math.max(peak, rssBytes(pid));
  };
}

async function startSidecar(backendPort: number): Promise<{ pid: number; outbound: number }> {
  const cp = await startControlPlane({
    'services.yaml': `apiVersion: palisade.dev/v1
kind: Service
metadata: { name: blob }
spec:
  protocol: http
  port: 9090
  endpoints: [{ address: 127.0.0.1, port: ${backendPort} }]
`,
  });
  cleanups.push(() => cp.close());
  const dir = mkdtempSync(join(tmpdir(), 'palisade-large-body-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'bootstrap.yaml');
  writeFileSync(file, `node: { id: large-body, service: client }
controlPlane: { address: ${cp.address} }
inbound: { address: 127.0.0.1, port: 0 }
workload: { address: 127.0.0.1:${backendPort} }
outbound: { address: 127.0.0.1, port: 0 }
admin: { address: 127.0.0.1, port: 0 }
`);
  const child: ChildProcess = spawn(process.execPath, [CLI, 'sidecar', '--bootstrap', file, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(() => {
    child.kill('SIGKILL');
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sidecar did not become ready: ${out}`)), 15_000);
    child.stderr!.on('data', (d) => (out += d));
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /outbound 127\.0\.0\.1:(\d+),[\s\S]*palisade sidecar: ready/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ pid: child.pid!, outbound: Number(m[1]) });
      }
    });
    child.on('exit', (code) => reject(new Error(`sidecar exited ${code}: ${out}`)));
  });
}

/** /upload answers with the byte count and sha256 of what it received; /download sends the body. */
async function startBackend(): Promise<number> {
  const server: Server = createServer((req, res) => {
    if (req.url === '/download') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': TOTAL });
      body().pipe(res);
      return;
    }
    const h = createHash('sha256');
    let n = 0;
    req.on('data', (d: Buffer) => {
      n += d.length;
      h.update(d);
    });
    req.on('end', () => res.end(JSON.stringify({ bytes: n, sha256: h.digest('hex') })));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return (server.address() as AddressInfo).port;
}

describe('large streamed bodies through the sidecar', () => {
  it('streams 100 MB uploads and downloads intact, three times each, without the sidecar growing by a body', async () => {
    const want = expectedHash();
    const backend = await startBackend();
    const { pid, outbound } = await startSidecar(backend);
    const headers = { host: 'blob.default:9090' };

    // Warm the path so JIT and pools are in the baseline.
    await new Promise<void>((resolve, reject) => {
      request({ host: '127.0.0.1', port: outbound, path: '/upload', method: 'POST', headers, agent: false }, (res) => {
        res.resume();
        res.on('end', resolve);
      }).on('error', reject).end('warm');
    });
    const baseline = rssBytes(pid);

    const up = () => new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: outbound, path: '/upload', method: 'POST', headers: { ...headers, 'transfer-encoding': 'chunked' }, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      body().pipe(req);
    });
    const down = () => new Promise<{ status: number; bytes: number; sha256: string }>((resolve, reject) => {
      request({ host: '127.0.0.1', port: outbound, path: '/download', headers, agent: false }, (res) => {
        const h = createHash('sha256');
        let n = 0;
        res.on('data', (d: Buffer) => {
          n += d.length;
          h.update(d);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes: n, sha256: h.digest('hex') }));
        res.on('error', reject);
      }).on('error', reject).end();
    });

    const peaks: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const stop = watchRss(pid);
      const uploaded = await up();
      expect(uploaded.status).toBe(200);
      expect(JSON.parse(uploaded.text)).toEqual({ bytes: TOTAL, sha256: want });
      expect(await down()).toEqual({ status: 200, bytes: TOTAL, sha256: want });
      peaks.push(stop() - baseline);
    }
    const first = peaks[0]!;
    const worst = Math.max(...peaks);
    expect(worst, `RSS growth per round ${peaks.map((p) => (p / 2 ** 20).toFixed(1)).join(', ')} MiB`).toBeLessThan(MAX_GROWTH_BYTES);
    expect(worst - first).toBeLessThan(MAX_DRIFT_BYTES);
  }, 120_000);
});
