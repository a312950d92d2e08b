/** ReplayBody over a real request received by a node:http server on 127.0.0.1:0. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ReplayBody } from '../../../sidecar/proxy/replay-body.ts';
import { digest, patternStream } from './fixtures.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

/** A chunked POST in progress: the server side's request and the client's writer. */
async function upload(): Promise<{ req: http.IncomingMessage; client: http.ClientRequest }> {
  let got: (req: http.IncomingMessage) => void = () => {};
  const received = new Promise<http.IncomingMessage>((r) => { got = r; });
  const server = http.createServer((req, res) => {
    got(req);
    res.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = http.request({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, method: 'POST', agent: false });
  client.on('error', () => {});
  client.flushHeaders();
  cleanups.push(async () => {
    client.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { req: await received, client };
}

/** Everything a stream gives, as it arrives. */
function collect(s: Readable): { text: () => string; ended: Promise<string> } {
  let text = '';
  s.setEncoding('utf8');
  s.on('data', (c: string) => { text += c; });
  const ended = new Promise<string>((resolve) => s.on('end', () => resolve(text)));
  return { text: () => text, ended };
}

describe('ReplayBody', () => {
  it('streams the body to an attempt as it arrives, and gives the next attempt all of it, then the rest', async () => {
    const { req, client } = await upload();
    let overflows = 0;
    const body = new ReplayBody(req, 1024, () => void overflows++);
    const first = body.attach();
    const a = collect(first);
    client.write('abc');
    await vi.waitFor(() => expect(a.text()).toBe('abc'));
    body.detachAttempt();
    expect(first.destroyed).toBe(true);
    client.write('def');
    await vi.waitFor(() => expect(body.bufferedBytes).toBe(6));
    const b = collect(body.attach());
    await vi.waitFor(() => expect(b.text()).toBe('abcdef'));
    client.end('ghi');
    expect(await b.ended).toBe('abcdefghi');
    expect([overflows, body.replayable, body.bufferedBytes, a.text()]).toEqual([0, true, 9, 'abc']);
    const c = collect(body.attach());
    expect(await c.ended).toBe('abcdefghi');
    body.close();
  });

  it('past the limit with an attempt in flight: not replayable any more, and the attempt still gets every byte', async () => {
    const { req, client } = await upload();
    let overflows = 0;
    const body = new ReplayBody(req, 4, () => void overflows++);
    const a = collect(body.attach());
    client.write('abc');
    await vi.waitFor(() => expect(a.text()).toBe('abc'));
    expect([overflows, body.replayable, body.bufferedBytes]).toEqual([0, true, 3]);
    client.write('de');
    await vi.waitFor(() => expect(a.text()).toBe('abcde'));
    expect([overflows, body.replayable, body.bufferedBytes]).toEqual([1, false, 0]);
    client.end('fgh');
    expect(await a.ended).toBe('abcdefgh');
    expect(overflows).toBe(1);
  });

  it('past the limit between attempts: calls onOverflow with no attempt to continue', async () => {
    const { req, client } = await upload();
    const events: string[] = [];
    const body = new ReplayBody(req, 4, () => void events.push(`overflow, replayable ${String(body.replayable)}`));
    const a = collect(body.attach());
    client.write('abc');
    await vi.waitFor(() => expect(a.text()).toBe('abc'));
    body.detachAttempt();
    client.write('de');
    await vi.waitFor(() => expect(events).toEqual(['overflow, replayable false']));
    body.close();
    client.end('more');
    await new Promise<void>((r) => req.on('end', r));
    expect(events).toHaveLength(1);
  });

  it('pauses the request while the attempt does not read, holding no more than the limit, then delivers it whole', async () => {
    const TOTAL = 8 * 1024 * 1024;
    const LIMIT = 64 * 1024;
    const { req, client } = await upload();
    let overflows = 0;
    const body = new ReplayBody(req, LIMIT, () => void overflows++);
    const attempt = body.attach();
    attempt.read(0); // one read, as a consumer that then stops does
    let sent = 0;
    const src = patternStream(TOTAL, 16 * 1024);
    src.on('data', (c: Buffer) => { sent += c.length; });
    src.pipe(client);
    await vi.waitFor(() => expect(req.isPaused()).toBe(true));
    await new Promise((r) => setTimeout(r, 200));
    expect(req.isPaused()).toBe(true);
    expect(sent).toBeLessThan(TOTAL);
    expect(body.bufferedBytes).toBeLessThanOrEqual(LIMIT);
    expect(attempt.readableLength).toBeLessThanOrEqual(LIMIT);
    expect(await digest(attempt)).toEqual(await digest(patternStream(TOTAL, 16 * 1024)));
    expect([overflows, body.replayable]).toEqual([1, false]);
  });
});
