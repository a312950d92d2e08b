/**
 * A listener terminating mutual TLS: the client's certificate must chain to the trust bundle
 * and pass verifyPeer (here: a SPIFFE ID in the trust domain); sessions resume; a certificate
 * rotation reaches new handshakes while an established connection keeps serving. Real TLS on
 * 127.0.0.1 with certificates from the openssl CLI.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { connect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { createHash } from 'node:crypto';
import { HttpListener } from '../../../sidecar/listeners/http-listener.ts';
import { createForwarder } from '../../../sidecar/proxy/forward.ts';
import { UpstreamCluster } from '../../../sidecar/upstream/upstream-cluster.ts';
import { makeTestPki, type Pem, type TestPki } from '../../helpers/openssl-pki.ts';
import { compile, routeConfig, toCluster } from '../routing/fixtures.ts';
import { compiled, ep, locality, staticCluster } from '../upstream/fixtures.ts';
import { startBackend } from '../proxy/fixtures.ts';

const TRUST_DOMAIN = 'spiffe://mesh.local/';

function verifyPeer(cert: PeerCertificate): string | null {
  const uri = /URI:([^,]+)/.exec(cert.subjectaltname ?? '')?.[1];
  return uri !== undefined && uri.startsWith(TRUST_DOMAIN) ? null : `${uri ?? 'no URI SAN'} is not in the trust domain mesh.local`;
}

let pki: TestPki;
let listener: HttpListener;
let port: number;
const refusals: string[] = [];
const sockets: TLSSocket[] = [];

beforeAll(async () => {
  pki = makeTestPki();
  listener = new HttpListener('inbound', (req, res) => {
    // The peer's identity is visible to the handler (and so to later filters).
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    res.end(/URI:([^,]+)/.exec(peer.subjectaltname ?? '')?.[1] ?? 'anonymous');
  }, { http2: false, tls: { key: pki.server.key, cert: pki.server.cert, ca: pki.ca, verifyPeer } });
  listener.onTlsRefused((reason) => refusals.push(reason));
  port = await listener.listen('127.0.0.1', 0);
});

afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
});

afterAll(async () => {
  await listener?.close();
  pki?.dispose();
});

/** Opens a TLS connection; resolves once the handshake is done (or rejects when it fails). */
function open(client: Pem | null, session?: Buffer): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({
      host: '127.0.0.1', port, ca: pki.ca, servername: 'localhost',
      ...(client === null ? {} : { key: client.key, cert: client.cert }),
      ...(session === undefined ? {} : { session }),
    });
    sockets.push(s);
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

/** One HTTP/1.1 GET on `s`; resolves with the status line and body, or with the error / close. */
function get(s: TLSSocket): Promise<string> {
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
    s.once('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message));
    s.write('GET / HTTP/1.1\r\nhost: web\r\n\r\n');
  });
}

describe('listener with mutual TLS', () => {
  it('serves a client whose certificate chains to the bundle and passes verifyPeer, and shows its identity', async () => {
    const s = await open(pki.client('spiffe://mesh.local/ns/shop/sa/web'));
    expect(await get(s)).toBe('HTTP/1.1 200 OK spiffe://mesh.local/ns/shop/sa/web');
  });

  it('refuses a client without a certificate at the handshake', async () => {
    const before = listener.stats().tls!.refused;
    // TLS 1.3: the client's handshake completes before the server's alert arrives.
    const outcome = await open(null).then((s) => get(s), (e: Error & { code?: string }) => e.code ?? e.message);
    expect(outcome).not.toMatch(/^HTTP/);
    expect(listener.stats().tls!.refused).toBe(before + 1);
  });

  it('closes the connection of a certificate verifyPeer refuses, and says why', async () => {
    const s = await open(pki.client('spiffe://elsewhere.example/ns/shop/sa/web'));
    expect(await get(s)).not.toMatch(/^HTTP/);
    expect(refusals).toContain('spiffe://elsewhere.example/ns/shop/sa/web is not in the trust domain mesh.local');
  });

  it('resumes a TLS session', async () => {
    const client = pki.client('spiffe://mesh.local/ns/shop/sa/web');
    const first = await open(client);
    const session = await new Promise<Buffer>((resolve) => {
      first.once('session', resolve);
      void get(first);
    });
    const before = listener.stats().tls!;
    const second = await open(client, session);
    expect(second.isSessionReused()).toBe(true);
    expect(await get(second)).toBe('HTTP/1.1 200 OK spiffe://mesh.local/ns/shop/sa/web');
    const after = listener.stats().tls!;
    expect([after.handshakes - before.handshakes, after.resumed - before.resumed]).toEqual([1, 1]);
  });

  it('rotates its certificate for new handshakes while an established connection keeps serving', async () => {
    const client = pki.client('spiffe://mesh.local/ns/shop/sa/web');
    const old = await open(client);
    const oldCert = new X509Certificate(old.getPeerCertificate().raw);
    expect(await get(old)).toBe('HTTP/1.1 200 OK spiffe://mesh.local/ns/shop/sa/web');

    const rotated = pki.anotherServer();
    listener.setTls({ key: rotated.key, cert: rotated.cert, ca: pki.ca, verifyPeer });

    const fresh = await open(client);
    expect(new X509Certificate(fresh.getPeerCertificate().raw).fingerprint256).toBe(new X509Certificate(rotated.cert).fingerprint256);
    expect(oldCert.fingerprint256).not.toBe(new X509Certificate(rotated.cert).fingerprint256);
    expect(await get(fresh)).toBe('HTTP/1.1 200 OK spiffe://mesh.local/ns/shop/sa/web');
    // The connection made before the rotation is untouched.
    expect(await get(old)).toBe('HTTP/1.1 200 OK spiffe://mesh.local/ns/shop/sa/web');
  });

  it('refuses to turn mutual TLS off by rotation', () => {
    expect(() => listener.setTls({ key: pki.server.key, cert: pki.server.cert })).toThrow(/cannot turn mutual TLS on or off/);
  });

  it('tells the workload the peer identity in x-forwarded-client-cert, replacing one the client sent', async () => {
    const backend = await startBackend('workload');
    const cluster = new UpstreamCluster(compiled(staticCluster('workload', [locality([ep('127.0.0.1', backend.port)])])));
    const table = compile(routeConfig([{ name: 'all', domains: ['*'], routes: [toCluster('workload')] }]));
    const forwarder = createForwarder({ getCluster: (n) => (n === 'workload' ? cluster : undefined) });
    const inbound = new HttpListener('inbound', (req, res) => forwarder.handle(req, res, table), {
      http2: false, tls: { key: pki.server.key, cert: pki.server.cert, ca: pki.ca, verifyPeer },
    });
    const inboundPort = await inbound.listen('127.0.0.1', 0);
    try {
      const client = pki.client('spiffe://mesh.local/ns/shop/sa/web');
      const s = await new Promise<TLSSocket>((resolve, reject) => {
        const c = connect({ host: '127.0.0.1', port: inboundPort, ca: pki.ca, servername: 'localhost', key: client.key, cert: client.cert });
        sockets.push(c);
        c.once('secureConnect', () => resolve(c));
        c.once('error', reject);
      });
      const reply = await new Promise<string>((resolve) => {
        let data = '';
        s.on('data', (d: Buffer) => {
          data += d.toString('latin1');
          if (data.includes('workload')) resolve(data);
        });
        s.write('GET / HTTP/1.1\r\nhost: web\r\nx-forwarded-client-cert: By=forged;URI=spiffe://mesh.local/ns/kube-system/sa/admin\r\n\r\n');
      });
      expect(reply).toMatch(/^HTTP\/1.1 200/);
      const hash = createHash('sha256').update(new X509Certificate(client.cert).raw).digest('hex');
      expect(backend.seen[0]!.headers['x-forwarded-client-cert']).toBe(`Hash=${hash};Subject="O=palisade test";URI=spiffe://mesh.local/ns/shop/sa/web`);
    } finally {
      await inbound.close();
      await cluster.destroy();
      await backend.close();
    }
  });
});
