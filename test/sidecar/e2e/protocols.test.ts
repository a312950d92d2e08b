/**
 * The sidecar's protocols end to end (issue #4), everything real on loopback: a control
 * plane, the Sidecar in-process, and its workload and upstream services. HTTP/2 clients
 * (prior knowledge) reach HTTP/1.1 and h2c upstreams through the outbound listener and the
 * workload through the inbound one; WebSocket upgrades pass through both, as the control
 * plane's `upgrade_configs` allow.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { Sidecar } from '../../../sidecar/sidecar.ts';
import { startTestSidecar } from '../../helpers/sidecar.ts';
import { startControlPlane, type TestControlPlane } from '../../helpers/control-plane.ts';
import { h2call, h2connect } from '../listeners/fixtures.ts';
import { until } from '../../helpers/until.ts';
import { servicesYaml } from '../../helpers/services-yaml.ts';

/** An HTTP/1.1 server answering `<name> <httpVersion>` that also echoes WebSocket messages as `<name>: <msg>`. */
async function h1AndWs(name: string): Promise<{ server: Server; wss: WebSocketServer; port: number; upgrades: IncomingMessage['headers'][] }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    res.end(`${name} ${req.httpVersion}`);
  });
  const wss = new WebSocketServer({ server });
  const upgrades: IncomingMessage['headers'][] = [];
  wss.on('connection', (ws, req) => {
    upgrades.push(req.headers);
    ws.on('message', (data: RawData) => ws.send(`${name}: ${data.toString()}`));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, wss, port: (server.address() as AddressInfo).port, upgrades };
}

/** A cleartext HTTP/2 (prior knowledge) server answering `<name> <httpVersion>`. */
async function h2cServer(name: string): Promise<{ server: http2.Http2Server; port: number; sessions: Set<http2.ServerHttp2Session> }> {
  const server = http2.createServer((req, res) => {
    req.resume();
    res.end(`${name} ${req.httpVersion}`);
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, sessions };
}

const SERVICES = (apiPort: number, rpcPort: number, chatPort: number) => servicesYaml(
  { name: 'web', port: 8080 },
  { name: 'api', port: 9090, endpointPorts: [apiPort] },
  { name: 'rpc', port: 9191, protocol: 'grpc', endpointPorts: [rpcPort] },
  { name: 'chat', port: 9292, endpointPorts: [chatPort] },
);

describe('sidecar protocols, end to end', () => {
  let cp: TestControlPlane;
  let web: Awaited<ReturnType<typeof h1AndWs>>;
  let api: Awaited<ReturnType<typeof h1AndWs>>;
  let chat: Awaited<ReturnType<typeof h1AndWs>>;
  let rpc: Awaited<ReturnType<typeof h2cServer>>;
  let sidecar: Sidecar;
  let addresses: { inbound: string; outbound: string; admin: string };
  const sessions: http2.ClientHttp2Session[] = [];
  const sockets: WebSocket[] = [];

  const h2 = async (address: string): Promise<http2.ClientHttp2Session> => {
    const s = await h2connect(`http://${address}`);
    sessions.push(s);
    return s;
  };

  /** Opens a WebSocket to `address` with Host `host`, sends `msg`, resolves with the first reply. */
  const wsEcho = async (address: string, host: string, msg: string): Promise<string> => {
    const ws = new WebSocket(`ws://${address}/socket`, { headers: { host } });
    sockets.push(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const reply = new Promise<string>((resolve) => ws.once('message', (d: RawData) => resolve(d.toString())));
    ws.send(msg);
    return reply;
  };

  beforeAll(async () => {
    web = await h1AndWs('web');
    api = await h1AndWs('api');
    chat = await h1AndWs('chat');
    rpc = await h2cServer('rpc');
    cp = await startControlPlane({ 'services.yaml': SERVICES(api.port, rpc.port, chat.port) });
    ({ sidecar, addresses } = await startTestSidecar(cp.address, web.port));
  }, 30_000);

  afterEach(() => {
    for (const s of sessions.splice(0)) s.destroy();
    for (const w of sockets.splice(0)) w.terminate();
  });

  afterAll(async () => {
    await sidecar?.close();
    await cp?.close();
    for (const s of [web, api, chat]) {
      if (!s) continue;
      for (const c of s.wss.clients) c.terminate();
      s.server.closeAllConnections();
      await new Promise<void>((resolve) => s.server.close(() => resolve()));
    }
    if (rpc) {
      for (const s of rpc.sessions) s.destroy();
      await new Promise<void>((resolve) => rpc.server.close(() => resolve()));
    }
  });

  it('HTTP/2 downstream → outbound → HTTP/1.1 upstream', async () => {
    const session = await h2(addresses.outbound);
    expect(await h2call(session, { ':path': '/items', ':authority': 'api:9090' })).toMatchObject({ status: 200, body: 'api 1.1' });
  });

  it('HTTP/2 downstream → outbound → h2c upstream (a grpc Service)', async () => {
    const session = await h2(addresses.outbound);
    expect(await h2call(session, { ':path': '/svc/Method', ':authority': 'rpc.default:9191' })).toMatchObject({ status: 200, body: 'rpc 2.0' });
  });

  it('HTTP/2 downstream → inbound → the workload over HTTP/1.1', async () => {
    const session = await h2(addresses.inbound);
    expect(await h2call(session, { ':path': '/', ':authority': 'web.default:8080' })).toMatchObject({ status: 200, body: 'web 1.1' });
  });

  it('takes the outbound listener\'s upgrade types from the control plane', async () => {
    expect(sidecar.store.current!.listeners.map((l) => l.upgradeTypes)).toEqual([['websocket']]);
  });

  it('passes a WebSocket through the outbound listener to a Service', async () => {
    expect(await wsEcho(addresses.outbound, 'chat:9292', 'hi')).toBe('chat: hi');
    const h = chat.upgrades.at(-1)!;
    expect([h.host, h['x-forwarded-proto'], h.upgrade]).toEqual(['chat:9292', 'http', 'websocket']);
  });

  it('passes a WebSocket through the inbound listener to the workload', async () => {
    expect(await wsEcho(addresses.inbound, 'web.default:8080', 'hello')).toBe('web: hello');
  });

  it('passes a WebSocket through the mesh: outbound → EDS → inbound → workload', async () => {
    // The sidecar becomes an endpoint of web once it reports ready.
    await until('web through the mesh', async () => {
      const session = await h2(addresses.outbound);
      const r = await h2call(session, { ':path': '/', ':authority': 'web:8080' });
      return r.status === 200 ? r : undefined;
    });
    expect(await wsEcho(addresses.outbound, 'web:8080', 'round trip')).toBe('web: round trip');
  });

  it('counts HTTP/2 requests and upgrades in /stats', async () => {
    const stats = sidecar.stats() as { listeners: Record<'inbound' | 'outbound', { requests: number; responses: Record<string, number> }> };
    expect(stats.listeners.outbound.requests).toBeGreaterThanOrEqual(4);
    expect(stats.listeners.outbound.responses['2xx']).toBeGreaterThanOrEqual(3);
    expect(stats.listeners.inbound.requests).toBeGreaterThanOrEqual(2);
  });
});
