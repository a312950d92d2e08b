import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { addResponseHeaders, setAddedHeaders, withAddedHeaders } from '../../../sidecar/proxy/added-headers.ts';
import { localReply } from '../../../sidecar/proxy/local-reply.ts';
import { httpRequest } from '../../helpers/http.ts';

const httpGet = (address: string, path: string) => httpRequest(address, { method: 'GET', path });

const RATE = [['ratelimit', '"q.l";r=4;t=1'], ['x-ratelimit-remaining', '4']] as const;
const MORE = [['x-added', 'second']] as const;

/** How each path's handler writes its response, after a filter added headers (or none). */
const writers: Record<string, (res: ServerResponse) => void> = {
  '/local-reply': (res) => {
    addResponseHeaders(res, RATE);
    localReply(res, 503, 'no healthy upstream');
  },
  '/write-head': (res) => {
    addResponseHeaders(res, RATE);
    addResponseHeaders(res, MORE);
    res.writeHead(200, withAddedHeaders(res, { 'content-type': 'text/plain', 'x-ratelimit-remaining': 'upstream value' })).end('ok');
  },
  '/set-header': (res) => {
    addResponseHeaders(res, RATE);
    res.statusCode = 200;
    setAddedHeaders(res);
    res.end();
  },
  '/none': (res) => {
    addResponseHeaders(res, []);
    res.writeHead(200, withAddedHeaders(res, { 'content-type': 'text/plain' })).end('plain');
  },
};

let server: Server;
let address: string;

beforeAll(async () => {
  server = createServer((req, res) => writers[req.url ?? '']!(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

describe('added response headers', () => {
  it('reach a local reply written after the filter that added them', async () => {
    const r = await httpGet(address, '/local-reply');
    expect(r.status).toBe(503);
    expect(r.body).toBe('no healthy upstream');
    expect(r.headers).toMatchObject({ ratelimit: '"q.l";r=4;t=1', 'x-ratelimit-remaining': '4', 'content-type': 'text/plain' });
  });

  it('are merged into a writeHead object in the order added, replacing a header of the same name', async () => {
    const r = await httpGet(address, '/write-head');
    expect(r.status).toBe(200);
    expect(r.headers).toMatchObject({ ratelimit: '"q.l";r=4;t=1', 'x-ratelimit-remaining': '4', 'x-added': 'second', 'content-type': 'text/plain' });
  });

  it('are set one by one for a writer that does not pass an object', async () => {
    const r = await httpGet(address, '/set-header');
    expect(r.status).toBe(200);
    expect(r.headers).toMatchObject({ ratelimit: '"q.l";r=4;t=1', 'x-ratelimit-remaining': '4' });
  });

  it('leave the head alone when none were added', async () => {
    const r = await httpGet(address, '/none');
    expect(r.body).toBe('plain');
    expect(Object.keys(r.headers).filter((h) => h.includes('ratelimit'))).toEqual([]);
  });
});
