/**
 * Enrollment over the control plane's CA endpoint, everything real: a CA in a state dir
 * (root key offline), the control plane's own SVID on an HTTPS port on 127.0.0.1, join
 * tokens, and a workload that generates its key, sends only a CSR and verifies the server
 * by the trust bundle and its SPIFFE ID.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:https';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { CertificateAuthority } from '../../../certs/ca.ts';
import { createCsr } from '../../../certs/csr.ts';
import { generateKeyPair } from '../../../certs/keys.ts';
import { FileKek } from '../../../certs/keyring.ts';
import { verifySvid } from '../../../certs/svid.ts';
import { AUDIT_FILE, CA_DIR, CertsService, KEK_FILE, type ServerIdentity } from '../../../control/certs/certs-service.ts';
import { EnrollServer } from '../../../control/certs/enroll-server.ts';

const TD = 'mesh.local';
let stateDir: string;
let certs: CertsService;
let server: EnrollServer;
let identity: ServerIdentity;
let address: string;

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'palisade-enroll-'));
  const root = await CertificateAuthority.initRoot({ trustDomain: TD });
  const intermediate = await CertificateAuthority.createIntermediate(root);
  await CertificateAuthority.writeState(join(stateDir, CA_DIR), await FileKek.open(join(stateDir, KEK_FILE)), { root, intermediate });
  certs = await CertsService.open(stateDir);
  identity = await certs.serverIdentity();
  server = new EnrollServer(certs, identity);
  address = await server.listen('127.0.0.1:0');
});

afterAll(async () => {
  await server?.close();
  await certs?.close();
  await rm(stateDir, { recursive: true, force: true });
});

interface Reply { status: number; body: Record<string, unknown> }

/** POSTs to the CA endpoint as a workload: trusts only the bundle, and only the control plane's SPIFFE ID. */
function post(path: string, payload: string, expectedServerId = `spiffe://${TD}/ns/palisade-system/sa/control-plane`): Promise<Reply> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = request({
      host: address.slice(0, i), port: Number(address.slice(i + 1)), path, method: 'POST',
      ca: identity.bundle, headers: { 'content-type': 'application/json' },
      checkServerIdentity: (_host: string, cert: PeerCertificate) => (cert.subjectaltname === `URI:${expectedServerId}` ? undefined : new Error(`server is ${cert.subjectaltname}, expected ${expectedServerId}`)),
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function csrFor(namespace: string, serviceAccount: string, td = TD): Promise<string> {
  return createCsr(await generateKeyPair(), `spiffe://${td}/ns/${namespace}/sa/${serviceAccount}`);
}

async function mint(namespace: string, serviceAccount: string): Promise<string> {
  return (await certs.tokens.mint({ namespace, serviceAccount, ttlMs: 600_000 })).token;
}

describe('enrollment over the CA endpoint', () => {
  it('trades a join token and a CSR for an SVID the trust bundle verifies, and audits it', async () => {
    const token = await mint('shop', 'web');
    const r = await post('/v1/enroll', JSON.stringify({ csr: await csrFor('shop', 'web'), token }));
    expect(r.status).toBe(200);
    expect(r.body.spiffeId).toBe(`spiffe://${TD}/ns/shop/sa/web`);
    const verified = await verifySvid(r.body.chain as string, r.body.bundle as string, { trustDomain: TD });
    expect(verified.valid).toBe(true);
    expect(Date.parse(r.body.renewAt as string)).toBeLessThan(Date.parse(r.body.notAfter as string));
    const audit = await readFile(join(stateDir, AUDIT_FILE), 'utf8');
    expect(audit).toContain(`"type":"cert.issued"`);
    expect(audit).toContain(`"serial":"${r.body.serial as string}"`);
  });

  it('refuses a used token with 401 and says so', async () => {
    const token = await mint('shop', 'web');
    expect((await post('/v1/enroll', JSON.stringify({ csr: await csrFor('shop', 'web'), token }))).status).toBe(200);
    const again = await post('/v1/enroll', JSON.stringify({ csr: await csrFor('shop', 'web'), token }));
    expect(again.status).toBe(401);
    expect(again.body.code).toBe('PAL_ERR_CERTS_TOKEN_USED');
  });

  it('refuses a CSR for another identity than the token\'s with 403, and the token stays usable', async () => {
    const token = await mint('shop', 'web');
    const wrong = await post('/v1/enroll', JSON.stringify({ csr: await csrFor('shop', 'payments'), token }));
    expect(wrong.status).toBe(403);
    expect(wrong.body.code).toBe('PAL_ERR_CERTS_TOKEN_SCOPE_MISMATCH');
    expect((await post('/v1/enroll', JSON.stringify({ csr: await csrFor('shop', 'web'), token }))).status).toBe(200);
  });

  it('refuses a CSR from another trust domain with 400 before spending the token', async () => {
    const token = await mint('shop', 'web');
    const r = await post('/v1/enroll', JSON.stringify({ csr: await csrFor('shop', 'web', 'elsewhere.example'), token }));
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('PAL_ERR_CERTS_CSR_REFUSED');
    expect((await post('/v1/enroll', JSON.stringify({ csr: await csrFor('shop', 'web'), token }))).status).toBe(200);
  });

  it.each([
    ['not JSON', '{', ['the request body must be JSON {"csr", "token"}']],
    ['no fields', '{}', ['csr: required, a PEM PKCS#10 certificate request', 'token: required, the join token from palisade certs token']],
  ])('answers 400 naming the problem for %s', async (_what, payload, errors) => {
    const r = await post('/v1/enroll', payload);
    expect(r).toEqual({ status: 400, body: { code: 'PAL_ERR_CERTS_BAD_REQUEST', errors } });
  });

  it('is a server a workload can tell apart: another expected SPIFFE ID fails the connection', async () => {
    await expect(post('/v1/enroll', '{}', `spiffe://${TD}/ns/shop/sa/impostor`)).rejects.toThrow(/expected spiffe:\/\/mesh.local\/ns\/shop\/sa\/impostor/);
  });
});
