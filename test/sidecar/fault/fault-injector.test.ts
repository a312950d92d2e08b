import { afterEach, describe, expect, it } from 'vitest';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { anyPack, DurationSchema } from '@bufbuild/protobuf/wkt';
import { HTTPFaultSchema } from '../../../xds/gen/envoy/extensions/filters/http/fault/v3/fault_pb.js';
import { FractionalPercent_DenominatorType as D } from '../../../xds/gen/envoy/type/v3/percent_pb.js';
import { type CompiledFault, compileHttpFault } from '../../../sidecar/fault/http-fault.ts';
import { FaultInjector, grpcToHttpStatus, httpToGrpcStatus } from '../../../sidecar/fault/fault-injector.ts';
import { attachFacts } from '../../../sidecar/telemetry/request-facts.ts';
import { headerLookup } from '../../../sidecar/proxy/route-target.ts';
import { until } from '../../helpers/until.ts';

function fault(f: MessageInitShape<typeof HTTPFaultSchema>): CompiledFault {
  const errors: string[] = [];
  const c = compileHttpFault(anyPack(HTTPFaultSchema, create(HTTPFaultSchema, f)), 'f', errors);
  if (c === null) throw new Error(errors.join('\n'));
  return c;
}
const delay = (ms: number, numerator = 100, denominator = D.HUNDRED) => ({ faultDelaySecifier: { case: 'fixedDelay' as const, value: create(DurationSchema, { nanos: ms * 1e6 }) }, percentage: { numerator, denominator } });
const httpAbort = (status: number, numerator = 100, denominator = D.HUNDRED) => ({ errorType: { case: 'httpStatus' as const, value: status }, percentage: { numerator, denominator } });

interface Outcome { status: number; body: string; headers: IncomingMessage['headers'] }

/**
 * A real HTTP server whose handler runs `f` through `injector` and answers 200 `forwarded` when
 * the request goes on (now or after a delay); records each request's response flags.
 */
async function serve(injector: FaultInjector, f: CompiledFault): Promise<{ server: Server; port: number; flags: string[][]; forwarded: () => number }> {
  const flags: string[][] = [];
  let forwarded = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const facts = attachFacts(req);
    res.once('close', () => flags.push(facts.flags));
    const go = () => {
      forwarded++;
      res.end('forwarded');
    };
    const view = { method: req.method ?? 'GET', authority: req.headers.host ?? '', path: req.url ?? '/', lookup: headerLookup(req.headers) };
    if (injector.apply(f, req, res, view, go)) go();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, flags, forwarded: () => forwarded };
}

function get(port: number, headers: Record<string, string> = {}): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A `random` that returns the given values in turn, then repeats the last. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)]!;
}

describe('FaultInjector', () => {
  let server: Server | null = null;
  afterEach(async () => {
    if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = null;
  });

  it('aborts exactly the requests whose roll falls under the percentage, with the status and body "fault filter abort"', async () => {
    // 30%: rolls of 0.0, 0.1, 0.2 (floor(r*100) < 30) abort, 0.3.. do not.
    const rolls = [0.0, 0.5, 0.1, 0.9, 0.29, 0.3, 0.2, 0.99, 0.75, 0.6];
    const injector = new FaultInjector({ random: sequence(...rolls) });
    const s = await serve(injector, fault({ abort: httpAbort(503, 30) }));
    server = s.server;
    const outcomes: Outcome[] = [];
    for (let i = 0; i < rolls.length; i++) outcomes.push(await get(s.port));
    expect(outcomes.map((o) => o.status)).toEqual([503, 200, 503, 200, 503, 200, 503, 200, 200, 200]);
    expect(outcomes.filter((o) => o.status === 503).every((o) => o.body === 'fault filter abort' && o.headers['content-type'] === 'text/plain')).toBe(true);
    expect(s.forwarded()).toBe(6);
    expect(s.flags.filter((f) => f.includes('FI'))).toHaveLength(4);
    expect(injector.stats()).toEqual({ delaysInjected: 0, abortsInjected: 4, overflow: 0, active: 0 });
  });

  it('rolls out of ten thousand and a million as Envoy does (numerator over denominator)', async () => {
    const injector = new FaultInjector({ random: sequence(0.00049, 0.0005, 0.0000009, 0.000001) });
    const a = await serve(injector, fault({ abort: httpAbort(500, 5, D.TEN_THOUSAND) }));
    server = a.server;
    expect((await get(a.port)).status).toBe(500);
    expect((await get(a.port)).status).toBe(200);
    await new Promise<void>((resolve) => a.server.close(() => resolve()));
    const m = await serve(injector, fault({ abort: httpAbort(500, 1, D.MILLION) }));
    server = m.server;
    expect((await get(m.port)).status).toBe(500);
    expect((await get(m.port)).status).toBe(200);
  });

  it('never faults at 0% and always at 100%, whatever the roll', async () => {
    const injector = new FaultInjector({ random: () => 0 });
    const s0 = await serve(injector, fault({ abort: httpAbort(500, 0) }));
    server = s0.server;
    for (let i = 0; i < 5; i++) expect((await get(s0.port)).status).toBe(200);
    await new Promise<void>((resolve) => s0.server.close(() => resolve()));
    const high = new FaultInjector({ random: () => 0.999999 });
    const s100 = await serve(high, fault({ abort: httpAbort(418, 100) }));
    server = s100.server;
    for (let i = 0; i < 5; i++) expect((await get(s100.port)).status).toBe(418);
  });

  it('holds a delayed request at least the fixed delay, flags it DI, then forwards it', async () => {
    const injector = new FaultInjector({ random: () => 0 });
    const s = await serve(injector, fault({ delay: delay(60) }));
    server = s.server;
    const started = performance.now();
    const o = await get(s.port);
    expect(performance.now() - started).toBeGreaterThanOrEqual(60);
    expect(o).toMatchObject({ status: 200, body: 'forwarded' });
    expect(s.flags).toEqual([['DI']]);
    expect(injector.stats()).toMatchObject({ delaysInjected: 1, abortsInjected: 0, active: 0 });
  });

  it('rolls the abort again after a delay: a delayed request can then be aborted (DI and FI)', async () => {
    // delay roll 0 (yes), abort roll 0 (yes)
    const injector = new FaultInjector({ random: () => 0 });
    const s = await serve(injector, fault({ delay: delay(20), abort: httpAbort(502) }));
    server = s.server;
    expect(await get(s.port)).toMatchObject({ status: 502, body: 'fault filter abort' });
    expect(s.flags).toEqual([['DI', 'FI']]);
    expect(s.forwarded()).toBe(0);
  });

  it('faults only the requests every fault header matcher matches', async () => {
    const injector = new FaultInjector({ random: () => 0 });
    const s = await serve(injector, fault({
      abort: httpAbort(503),
      headers: [
        { name: 'x-chaos', headerMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'exact', value: 'on' } } } },
        { name: 'x-tenant', headerMatchSpecifier: { case: 'presentMatch', value: true } },
      ],
    }));
    server = s.server;
    expect((await get(s.port, { 'x-chaos': 'on', 'x-tenant': 'a' })).status).toBe(503);
    expect((await get(s.port, { 'x-chaos': 'on' })).status).toBe(200);
    expect((await get(s.port, { 'x-chaos': 'off', 'x-tenant': 'a' })).status).toBe(200);
    expect((await get(s.port)).status).toBe(200);
    expect(injector.stats().abortsInjected).toBe(1);
  });

  it('injects no fault beyond max_active_faults while the delayed ones are held', async () => {
    const injector = new FaultInjector({ random: () => 0 });
    const s = await serve(injector, fault({ delay: delay(300), maxActiveFaults: 2 }));
    server = s.server;
    const held = [get(s.port), get(s.port)];
    // Wait until both are held, then a third gets no fault and is forwarded at once.
    await until('two requests held', () => injector.stats().active === 2);
    expect(await get(s.port)).toMatchObject({ status: 200, body: 'forwarded' });
    expect(s.flags).toEqual([[]]);
    expect(injector.stats()).toMatchObject({ overflow: 1, delaysInjected: 2 });
    await Promise.all(held);
    expect(injector.stats().active).toBe(0);
  });

  it('forgets a delayed request whose client went away: it is never forwarded', async () => {
    const injector = new FaultInjector({ random: () => 0 });
    const s = await serve(injector, fault({ delay: delay(150) }));
    server = s.server;
    await new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port: s.port, path: '/', agent: false });
      req.on('error', () => resolve());
      req.end();
      const poll = setInterval(() => {
        if (injector.stats().active === 1) {
          clearInterval(poll);
          req.destroy();
        }
      }, 2);
    });
    await until('the fault slot released', () => injector.stats().active === 0);
    await new Promise((r) => setTimeout(r, 200));
    expect(s.forwarded()).toBe(0);
  });

  it('takes no fault slot for a response that is already closed, so later requests still get the fault', async () => {
    const injector = new FaultInjector({ random: () => 0 });
    const f = fault({ delay: delay(20), maxActiveFaults: 1 });
    let closedLate = 0;
    const server1 = createServer((req: IncomingMessage, res: ServerResponse) => {
      attachFacts(req);
      const view = { method: req.method ?? 'GET', authority: req.headers.host ?? '', path: req.url ?? '/', lookup: headerLookup(req.headers) };
      if (req.url === '/gone') {
        // The fault runs only once the client went away (as after a slow earlier stage).
        res.once('close', () => {
          injector.apply(f, req, res, view, () => undefined);
          closedLate++;
        });
        return;
      }
      if (injector.apply(f, req, res, view, () => res.end('forwarded'))) res.end('forwarded');
    });
    server = server1;
    await new Promise<void>((resolve) => server1.listen(0, '127.0.0.1', resolve));
    const port = (server1.address() as AddressInfo).port;
    await new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/gone', agent: false });
      req.on('error', () => resolve());
      req.end();
      setTimeout(() => req.destroy(), 20);
    });
    await until('the late fault ran', () => closedLate === 1);
    expect(injector.stats().active).toBe(0);
    expect(await get(port)).toMatchObject({ status: 200, body: 'forwarded' });
    expect(injector.stats()).toMatchObject({ delaysInjected: 1, overflow: 0, active: 0 });
  });

  it('counts and flags no abort when the response had already started', async () => {
    const injector = new FaultInjector({ random: () => 0 });
    const f = fault({ abort: httpAbort(503) });
    const flags: string[][] = [];
    const server1 = createServer((req: IncomingMessage, res: ServerResponse) => {
      const facts = attachFacts(req);
      res.once('close', () => flags.push(facts.flags));
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('started');
      const view = { method: req.method ?? 'GET', authority: req.headers.host ?? '', path: req.url ?? '/', lookup: headerLookup(req.headers) };
      injector.apply(f, req, res, view, () => undefined);
      res.end();
    });
    server = server1;
    await new Promise<void>((resolve) => server1.listen(0, '127.0.0.1', resolve));
    expect(await get((server1.address() as AddressInfo).port)).toMatchObject({ status: 200, body: 'started' });
    await until('the response closed', () => flags.length === 1);
    expect(flags[0]).toEqual([]);
    expect(injector.stats().abortsInjected).toBe(0);
  });

  it('answers a gRPC request with a trailers-only gRPC status', async () => {
    const injector = new FaultInjector({ random: () => 0 });
    const s = await serve(injector, fault({ abort: { errorType: { case: 'grpcStatus', value: 14 }, percentage: { numerator: 100 } } }));
    server = s.server;
    const o = await get(s.port, { 'content-type': 'application/grpc' });
    expect(o.status).toBe(200);
    expect(o.headers).toMatchObject({ 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'fault filter abort' });
    expect(o.body).toBe('');
    // An HTTP status abort on a gRPC request maps the status; a gRPC status on plain HTTP too.
    const plain = await get(s.port);
    expect(plain).toMatchObject({ status: 503, body: 'fault filter abort' });
  });

  it.each([[400, 13], [401, 16], [403, 7], [404, 12], [429, 14], [503, 14], [500, 2]])('maps HTTP %i to gRPC %i', (http, grpc) => {
    expect(httpToGrpcStatus(http)).toBe(grpc);
  });

  it.each([[0, 200], [4, 504], [7, 403], [8, 429], [14, 503], [16, 401], [13, 500]])('maps gRPC %i to HTTP %i', (grpc, http) => {
    expect(grpcToHttpStatus(grpc)).toBe(http);
  });
});
