/**
 * Request and response sizes, and upgrade records, end to end: a real control plane, a sidecar
 * with an access log file, an upstream that answers chunked, and a workload that accepts
 * WebSocket-style upgrades and echoes what it receives. Sizes are body bytes (Envoy's
 * BYTES_RECEIVED / BYTES_SENT), not the bytes of heads and chunk framing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, request, type Server } from 'node:http';
import { connect as connectH2 } from 'node:http2';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { parseBootstrap } from '../../../sidecar/bootstrap/bootstrap.ts';
import { Sidecar, type SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { startControlPlane, type TestControlPlane } from '../../helpers/control-plane.ts';
import { servicesYaml } from '../../helpers/services-yaml.ts';
import { until } from '../../helpers/until.ts';
import { parseExposition, sumOf } from '../telemetry/prometheus-text.ts';

/** Answers every request with `hello` in two chunks (no content-length), after reading the body; echoes upgraded bytes. */
function chunkedServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('hel');
      res.end('lo');
    });
  });
  server.on('upgrade', (_req, socket: Socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n');
    socket.on('data', (d: Buffer) => socket.write(d));
    socket.on('end', () => socket.end());
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port })));
}

function split(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

/** A request whose body is sent chunked (no content-length) in the given parts. */
function chunkedPost(address: string, host: string, parts: string[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ ...split(address), method: 'POST', path: '/up', headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    for (const p of parts) req.write(p);
    req.end();
  });
}

/** Sends an upgrade request on a raw socket, then `payload` once upgraded; resolves with the status line and the echoed bytes. */
function upgrade(address: string, type: string, payload: string): Promise<{ statusLine: string; echoed: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(split(address));
    let buf = '';
    let sent = false;
    s.setEncoding('latin1');
    s.on('error', reject);
    s.on('data', (d: string) => {
      buf += d;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const statusLine = buf.slice(0, buf.indexOf('\r\n'));
      if (!statusLine.includes(' 101 ')) {
        s.destroy();
        resolve({ statusLine, echoed: '' });
        return;
      }
      if (!sent) {
        sent = true;
        s.write(payload);
      }
      const echoed = buf.slice(end + 4);
      if (echoed.length >= payload.length) {
        s.end();
        s.once('close', () => resolve({ statusLine, echoed }));
      }
    });
    s.write(`GET /ws HTTP/1.1\r\nhost: web.default:8080\r\nconnection: Upgrade\r\nupgrade: ${type}\r\n\r\n`);
  });
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('sidecar telemetry sizes and upgrades', () => {
  let cp: TestControlPlane;
  let api: { server: Server; port: number };
  let web: { server: Server; port: number };
  let sidecar: Sidecar;
  let addresses: SidecarAddresses;
  let dir: string;
  let logFile: string;

  const lines = (n: number) => until(`${n} access log lines`, () => {
    const l = readFileSync(logFile, 'utf8').split('\n').filter((x) => x !== '');
    return l.length >= n ? l.map((x) => JSON.parse(x) as Record<string, unknown>) : undefined;
  });

  beforeAll(async () => {
    api = await chunkedServer();
    web = await chunkedServer();
    dir = mkdtempSync(join(tmpdir(), 'palisade-telemetry-bytes-'));
    logFile = join(dir, 'access.log');
    cp = await startControlPlane({ 'services.yaml': servicesYaml({ name: 'web', port: 8080 }, { name: 'api', port: 9090, endpointPorts: [api.port] }) });
    const parsed = parseBootstrap({
      node: { id: 'web-1', service: 'web' },
      inbound: { address: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1' },
      workload: { address: `127.0.0.1:${web.port}` },
      outbound: { address: '127.0.0.1', port: 0 },
      admin: { address: '127.0.0.1', port: 0 },
      controlPlane: { address: cp.address },
      telemetry: { accessLog: { path: logFile, sampleRate: 100 } },
    });
    if (!parsed.valid) throw new Error(parsed.errors.join('\n'));
    sidecar = new Sidecar({ bootstrap: parsed.result, logger: pino({ level: 'silent' }), version: 'test', drainTimeoutMs: 2000 });
    addresses = await sidecar.start();
    await sidecar.whenReady();
  }, 30_000);

  afterAll(async () => {
    await sidecar?.close();
    await cp?.close();
    if (api) await closeServer(api.server);
    if (web) await closeServer(web.server);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('counts body bytes both ways for a chunked request and a chunked response, not heads or chunk framing', async () => {
    expect(await chunkedPost(addresses.outbound, 'api:9090', ['abc', 'def'])).toEqual({ status: 200, body: 'hello' });
    const [line] = await lines(1);
    expect(line).toMatchObject({ method: 'POST', response_code: 200, bytes_received: 6, bytes_sent: 5 });
    const f = parseExposition((await new Promise<string>((resolve, reject) => {
      request({ ...split(addresses.admin), path: '/metrics', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve(body));
      }).on('error', reject).end();
    })));
    const size = f.get('palisade_response_size_bytes')?.metrics.find((s) => s.labels?.listener === 'outbound');
    expect(Number(size?.sum)).toBe(5);
    expect(sumOf(f, 'palisade_request_size_bytes', { listener: 'outbound' })).toBe(1);
  });

  it('counts body bytes on HTTP/2 downstream too, without a declared content-length', async () => {
    const before = (await lines(1)).length;
    const session = connectH2(`http://${addresses.outbound}`);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const st = session.request({ ':method': 'POST', ':path': '/h2', ':authority': 'api:9090' });
        let text = '';
        st.setEncoding('utf8');
        st.on('data', (d: string) => (text += d));
        st.on('end', () => resolve(text));
        st.on('error', reject);
        st.write('1234');
        st.end('56789');
      });
      expect(body).toBe('hello');
    } finally {
      session.close();
    }
    const all = await lines(before + 1);
    expect(all[before]).toMatchObject({ protocol: 'HTTP/2', path: '/h2', response_code: 200, bytes_received: 9, bytes_sent: 5 });
  });

  it('records a relayed upgrade when the connection ends (101, bytes both ways) and a refused one with its status', async () => {
    const before = (await lines(1)).length;
    const ok = await upgrade(addresses.inbound, 'websocket', 'ping-1234');
    expect(ok.statusLine).toContain(' 101 ');
    expect(ok.echoed).toBe('ping-1234');
    const refused = await upgrade(addresses.inbound, 'not-a-protocol', '');
    expect(refused.statusLine).toContain(' 403 ');
    const all = await lines(before + 2);
    const ws = all.slice(before);
    const relayed = ws.find((l) => l.response_code === 101);
    expect(relayed).toMatchObject({ listener: 'inbound', method: 'GET', path: '/ws', bytes_received: 9, bytes_sent: 9, upstream_cluster: `inbound|${web.port}||web`, attempts: 1 });
    expect(ws.find((l) => l.response_code === 403)).toMatchObject({ listener: 'inbound', path: '/ws', bytes_sent: 0 });
  });
});
