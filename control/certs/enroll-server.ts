/**
 * The control plane's CA endpoint (`palisade control --ca-address`), HTTPS with the control
 * plane's own SVID; a workload verifies it against the trust bundle from its bootstrap and
 * checks the server's SPIFFE ID (spiffe://<td>/ns/palisade-system/sa/control-plane).
 *
 *   POST /v1/renew   {"csr": PEM}, with the current SVID as TLS client certificate
 *     200 as enroll; 401 PAL_ERR_CERTS_RENEW_UNAUTHENTICATED without a valid one; 400 CSR refused
 *   POST /v1/enroll  {"csr": PEM, "token": "pal1.…"}
 *     200 {spiffeId, chain, bundle, serial, notAfter, renewAt}
 *     400 {code, errors}   not JSON, missing fields, CSR refused
 *     401 {code, errors}   token malformed, unknown, used, expired or revoked
 *     403 {code, errors}   the token is for another identity
 *
 * Bodies are limited to 64 KiB. Certificate rotation of the endpoint: setIdentity().
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { uriSans } from '../../certs/peer-identity.ts';
import { listenOn, readBody } from '../http-server.ts';
import { RENEW_UNAUTHENTICATED } from './enrollment.ts';
import type { CertsService, ServerIdentity } from './certs-service.ts';

const MAX_BODY_BYTES = 64 * 1024;
/** A request the CA endpoint cannot take: wrong path or method, not JSON, a field missing. */
export const BAD_REQUEST = 'PAL_ERR_CERTS_BAD_REQUEST';

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
}


export class EnrollServer {
  readonly #server: Server;
  readonly #certs: CertsService;

  constructor(certs: CertsService, identity: ServerIdentity) {
    this.#certs = certs;
    // Client certificates are asked for but optional: enrollment has none yet; renewal needs one.
    this.#server = createServer({ key: identity.key, cert: identity.chain, ca: identity.bundle, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, (req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) send(res, 500, { code: (err as { code?: string }).code ?? null, errors: [(err as Error).message] });
        else res.destroy();
      });
    });
    this.#server.on('tlsClientError', (_err, socket) => socket.destroy());
  }

  /** A new certificate for new handshakes (renewal); established connections keep theirs. */
  setIdentity(identity: ServerIdentity): void {
    this.#server.setSecureContext({ key: identity.key, cert: identity.chain, ca: identity.bundle });
  }

  listen(address: string): Promise<string> {
    return listenOn(this.#server, address);
  }


  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'https://ca').pathname;
    if (path !== '/v1/enroll' && path !== '/v1/renew') return send(res, 404, { code: BAD_REQUEST, errors: [`no such path ${path}; POST /v1/enroll or /v1/renew`] });
    if (req.method !== 'POST') return send(res, 405, { code: BAD_REQUEST, errors: [`${req.method} not allowed; POST ${path}`] });
    if (path === '/v1/renew') return this.#renew(req, res);
    let body: { csr?: unknown; token?: unknown };
    try {
      body = JSON.parse(await readBody(req, MAX_BODY_BYTES)) as typeof body;
    } catch (err) {
      return send(res, 400, { code: BAD_REQUEST, errors: [(err as Error).message.startsWith('the request body') ? (err as Error).message : 'the request body must be JSON {"csr", "token"}'] });
    }
    const errors: string[] = [];
    if (typeof body !== 'object' || body === null) body = {};
    if (typeof body.csr !== 'string' || body.csr === '') errors.push('csr: required, a PEM PKCS#10 certificate request');
    if (typeof body.token !== 'string' || body.token === '') errors.push('token: required, the join token from palisade certs token');
    if (errors.length > 0) return send(res, 400, { code: BAD_REQUEST, errors });
    const r = await this.#certs.enroll(body.csr as string, body.token as string);
    if (r.ok) return send(res, 200, r.enrolled);
    send(res, r.status, { code: r.code, errors: r.errors });
  }

  async #renew(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const socket = req.socket as TLSSocket;
    const peer = socket.getPeerCertificate();
    const uri = uriSans(peer.subjectaltname)[0];
    if (!socket.authorized || uri === undefined) {
      const why = socket.authorizationError ? `: ${String(socket.authorizationError)}` : '';
      return send(res, 401, { code: RENEW_UNAUTHENTICATED, errors: [`renewal needs the current SVID as client certificate${why}`] });
    }
    let body: { csr?: unknown };
    try {
      body = JSON.parse(await readBody(req, MAX_BODY_BYTES)) as typeof body;
    } catch {
      return send(res, 400, { code: BAD_REQUEST, errors: ['the request body must be JSON {"csr"}'] });
    }
    if (typeof body?.csr !== 'string' || body.csr === '') return send(res, 400, { code: BAD_REQUEST, errors: ['csr: required, a PEM PKCS#10 certificate request'] });
    const r = await this.#certs.renew(body.csr, uri, peer.serialNumber);
    if (r.ok) return send(res, 200, r.enrolled);
    send(res, r.status, { code: r.code, errors: r.errors });
  }
}
