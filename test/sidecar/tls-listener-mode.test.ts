/**
 * The inbound listener's mesh mTLS mode: with `tls`, STRICT (`plaintext: 'refuse'`) closes a
 * connection that does not open with a TLS handshake, PERMISSIVE (`'accept'`) serves it as
 * HTTP/1.1 or h2c; the mode switches at run time; TLS (and session resumption) still work
 * behind the first-byte sniff; connectionSecurity says how each request came. Real sockets on
 * 127.0.0.1, SVIDs from certs/ca.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { connectionSecurity, HttpListener } from '../../sidecar/listeners/http-listener.ts';
import type { CertificateSecret } from '../../sidecar/tls/secrets.ts';
import { closeSession, h2call, h2connect } from './listeners/fixtures.ts';
import { makeMeshPki, type MeshPki } from './tls-fixtures.ts';

let pki: MeshPki;
let server: CertificateSecret;
let client: CertificateSecret;
let listener: HttpListener;
let port: number;
const sockets: Socket[] = [];

beforeAll(async () => {
  pki = await makeMeshPki();
  server = await pki.svid('shop', 'api');
  client = await pki.svid('shop', 'web');
  listener = new HttpListener('inbound', (req, res) => {
    res.end(connectionSecurity(req));
  }, { headersTimeoutMs: 300, requestTimeoutMs: 1000, tls: { key: server.keyPem, cert: server.chainPem, ca: pki.bundle } });
  port = await listener.listen('127.0.0.1', 0);
});

afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  listener.setPlaintext('refuse');
});

afterAll(async () => {
  await listener?.close();
});

/** Opens an mTLS connection (the server is checked by its chain only: an SVID has no DNS SAN). */
function openTls(session?: Buffer): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({
      host: '127.0.0.1', port, ca: pki.bundle, key: client.keyPem, cert: client.chainPem,
      checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'],
      ...(session === undefined ? {} : { session }),
    });
    sockets.push(s);
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

/** One HTTP/1.1 GET on a connected socket: the status line and body, or 'closed'. */
function get(s: Socket): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    const onData = (d: Buffer) => {
      data += d.toString('latin1');
      const end = data.indexOf('\r\n\r\n');
      const len = /content-length: (\d+)/i.exec(data);
      if (end >= 0 && len !== null && data.length >= end + 4 + Number(len[1])) {
        s.off('data', onData);
        resolve(`${data.slice(0, data.indexOf('\r\n'))} ${data.slice(end + 4)}`);
      }
    };
    s.on('data', onData);
    s.once('close', () => resolve(data === '' ? 'closed' : data));
    s.once('error', () => {});
    s.write('GET / HTTP/1.1\r\nhost: api\r\n\r\n');
  });
}

function openPlain(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port });
    sockets.push(s);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** A plaintext HTTP/1.1 request through node:http (a fresh connection). */
function plainGet(): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', headers: { host: 'api' }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(`${res.statusCode} ${body}`));
    });
    req.on('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message));
  });
}

describe('TLS listener, STRICT (plaintext refused)', () => {
  it('serves mutual TLS and says so', async () => {
    const s = await openTls();
    expect(await get(s)).toBe('HTTP/1.1 200 OK mtls');
  });

  it('is STRICT by default: a plaintext request gets no answer and is counted', async () => {
    expect(listener.plaintext).toBe('refuse');
    const before = listener.stats().tls!;
    expect(await get(await openPlain())).toBe('closed');
    expect(await plainGet()).toBe('ECONNRESET');
    const after = listener.stats().tls!;
    expect(after.plaintextRefused - before.plaintextRefused).toBe(2);
    expect(after.plaintext - before.plaintext).toBe(0);
  });

  it('closes a connection that sends nothing, once the headers timeout passes', async () => {
    const before = listener.stats().tls!.plaintextRefused;
    const s = await openPlain();
    await new Promise<void>((resolve) => s.once('close', () => resolve()));
    expect(listener.stats().tls!.plaintextRefused).toBe(before + 1);
  });

  it('closes a connection that starts a TLS record and stalls, counting it refused', async () => {
    const before = listener.stats().tls!.refused;
    const s = await openPlain();
    s.write(Buffer.from([0x16, 0x03, 0x01]));
    await new Promise<void>((resolve) => s.once('close', () => resolve()));
    expect(listener.stats().tls!.refused).toBe(before + 1);
  });

  it('resumes a TLS session behind the first-byte sniff', async () => {
    const first = await openTls();
    const session = await new Promise<Buffer>((resolve) => {
      first.once('session', resolve);
      void get(first);
    });
    const before = listener.stats().tls!;
    const second = await openTls(session);
    expect(second.isSessionReused()).toBe(true);
    expect(await get(second)).toBe('HTTP/1.1 200 OK mtls');
    const after = listener.stats().tls!;
    expect([after.handshakes - before.handshakes, after.resumed - before.resumed]).toEqual([1, 1]);
  });

  it('serves HTTP/2 over mutual TLS by ALPN', async () => {
    const session = await h2connect(`https://127.0.0.1:${port}`, {
      ca: pki.bundle, key: client.keyPem, cert: client.chainPem, checkServerIdentity: () => undefined,
    });
    try {
      const r = await h2call(session, { ':path': '/', ':authority': 'api' });
      expect([r.status, r.body]).toEqual([200, 'mtls']);
    } finally {
      await closeSession(session);
    }
  });
});

describe('TLS listener, PERMISSIVE (plaintext accepted)', () => {
  it('serves plaintext HTTP/1.1, h2c and mutual TLS on the same port, and tells them apart', async () => {
    listener.setPlaintext('accept');
    const before = listener.stats().tls!;
    expect(await plainGet()).toBe('200 plaintext');
    const h2c = await h2connect(`http://127.0.0.1:${port}`);
    try {
      const r = await h2call(h2c, { ':path': '/', ':authority': 'api' });
      expect([r.status, r.body]).toEqual([200, 'plaintext']);
    } finally {
      await closeSession(h2c);
    }
    expect(await get(await openTls())).toBe('HTTP/1.1 200 OK mtls');
    const after = listener.stats().tls!;
    expect(after.plaintext - before.plaintext).toBe(2);
    expect(after.plaintextRefused - before.plaintextRefused).toBe(0);
  });

  it('answers a malformed plaintext request with 400, as the TLS path does', async () => {
    listener.setPlaintext('accept');
    const s = await openPlain();
    const reply = await new Promise<string>((resolve) => {
      let data = '';
      s.on('data', (d: Buffer) => (data += d.toString('latin1')));
      s.once('close', () => resolve(data));
      s.write('GET / HTTP/1.1\r\nhost: api\r\nbad header\r\n\r\n');
    });
    expect(reply.slice(0, reply.indexOf('\r\n'))).toBe('HTTP/1.1 400 Bad Request');
  });

  it('switches between PERMISSIVE and STRICT at run time for new connections, leaving a served plaintext connection alone', async () => {
    listener.setPlaintext('accept');
    const kept = await openPlain();
    expect(await get(kept)).toBe('HTTP/1.1 200 OK plaintext');
    listener.setPlaintext('refuse');
    expect(await plainGet()).toBe('ECONNRESET');
    expect(await get(kept)).toBe('HTTP/1.1 200 OK plaintext');
    listener.setPlaintext('accept');
    expect(await plainGet()).toBe('200 plaintext');
  });

  it('refuses setPlaintext on a listener without tls, and plaintext without tls', () => {
    const plain = new HttpListener('outbound');
    expect(() => plain.setPlaintext('accept')).toThrow(/was not created with tls/);
    expect(plain.plaintext).toBeNull();
    expect(() => new HttpListener('outbound', null, { plaintext: 'accept' })).toThrow(/plaintext applies only with tls/);
  });
});
