/**
 * `palisade control --state-dir S` with a CA in S: a real control plane process serves the
 * CA endpoint with its own SVID, a token minted over its admin API enrolls a workload's CSR,
 * and without a CA the endpoint stays off.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { CertificateAuthority } from '../../certs/ca.ts';
import { createCsr } from '../../certs/csr.ts';
import { generateKeyPair } from '../../certs/keys.ts';
import { FileKek } from '../../certs/keyring.ts';
import { verifySvid } from '../../certs/svid.ts';
import { CA_DIR, KEK_FILE } from '../../control/certs/certs-service.ts';
import { startControlProcess } from '../helpers/control-process.ts';

const children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'palisade-control-ca-'));
  dirs.push(d);
  return d;
}

function startControl(stateDir: string): Promise<{ admin: string; ca: string | null; out: string }> {
  return startControlProcess(stateDir, tempDir(), children);
}

function enroll(ca: string, bundle: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const i = ca.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = request({
      host: ca.slice(0, i), port: Number(ca.slice(i + 1)), path: '/v1/enroll', method: 'POST', ca: bundle,
      checkServerIdentity: (_h: string, cert: PeerCertificate) => (cert.subjectaltname === 'URI:spiffe://mesh.local/ns/palisade-system/sa/control-plane' ? undefined : new Error(`unexpected server ${cert.subjectaltname}`)),
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('palisade control with a CA', () => {
  it('serves enrollment with its own SVID; a token from the admin API enrolls a CSR once', async () => {
    const stateDir = tempDir();
    const root = await CertificateAuthority.initRoot({ trustDomain: 'mesh.local' });
    const intermediate = await CertificateAuthority.createIntermediate(root);
    await CertificateAuthority.writeState(join(stateDir, CA_DIR), await FileKek.open(join(stateDir, KEK_FILE)), { root, intermediate });
    const { admin, ca } = await startControl(stateDir);
    expect(ca).not.toBeNull();

    const minted = await (await fetch(`http://${admin}/api/v1/certs/tokens`, { method: 'POST', body: JSON.stringify({ namespace: 'shop', serviceAccount: 'web', ttl: '10m' }) })).json() as { token: string };
    const csr = await createCsr(await generateKeyPair(), 'spiffe://mesh.local/ns/shop/sa/web');
    const first = await enroll(ca!, root.pem, { csr, token: minted.token });
    expect(first.status).toBe(200);
    expect((await verifySvid(first.body.chain as string, root.pem, { trustDomain: 'mesh.local' })).valid).toBe(true);
    const second = await enroll(ca!, root.pem, { csr, token: minted.token });
    expect([second.status, second.body.code]).toEqual([401, 'PAL_ERR_CERTS_TOKEN_USED']);
  });

  it('keeps the CA endpoint off while the state dir has no CA', async () => {
    const { ca, out } = await startControl(tempDir());
    expect(ca).toBeNull();
    expect(out).not.toContain('CA on https://');
  });
});
