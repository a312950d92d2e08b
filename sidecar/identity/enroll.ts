/**
 * The sidecar's enrollment (issue #5): it generates its key here, sends only a CSR and its
 * one-time join token to the control plane's CA endpoint, and gets its X.509-SVID back.
 *
 * The control plane is authenticated before the token leaves: its certificate must chain
 * to the bootstrap's trust bundle and carry the control plane's SPIFFE ID
 * (spiffe://<td>/ns/palisade-system/sa/control-plane), not merely some name in the bundle.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { expectServerId } from '../../certs/peer-identity.ts';
import { createCsr } from '../../certs/csr.ts';
import { exportPrivateKeyPem, generateKeyPair, type KeyPair } from '../../certs/keys.ts';
import { PalisadeError } from '../../xds/errors.ts';
import type { BootstrapIdentity } from '../bootstrap/bootstrap.ts';

/** The control plane's identity in its trust domain (control/certs/certs-service.ts). */
export const CONTROL_PLANE_PATH = '/ns/palisade-system/sa/control-plane';

/** Enrollment failed: the message says where (connection, TLS, the CA's answer) and why. */
export class EnrollError extends PalisadeError {
  /** The CA endpoint's code (e.g. PAL_ERR_CERTS_TOKEN_USED), when it answered. */
  readonly serverCode: string | null;
  constructor(message: string, serverCode: string | null = null, options?: { cause?: unknown }) {
    super('PAL_ERR_SIDECAR_ENROLL', message, options);
    this.serverCode = serverCode;
  }
}

/** What the sidecar holds after enrolling: its key stays in this process. */
export interface WorkloadIdentity {
  readonly spiffeId: string;
  /** PKCS#8 PEM. */
  readonly keyPem: string;
  /** Leaf then intermediate, PEM. */
  readonly chainPem: string;
  readonly bundlePem: string;
  readonly notAfter: Date;
  readonly renewAt: Date;
}

export interface EnrollOptions {
  readonly caAddress: string;
  readonly bundlePem: string;
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly token: string;
  /** Default 10 s. */
  readonly timeoutMs?: number;
}

/** The trust domain a bundle's first root names in its spiffe:// URI SAN, or null. */
export function bundleTrustDomain(bundlePem: string): string | null {
  const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(bundlePem)?.[0];
  if (first === undefined) return null;
  const san = new X509Certificate(first).subjectAltName ?? '';
  return /URI:spiffe:\/\/([^/,\s]+)/.exec(san)?.[1] ?? null;
}

/** Reads the bootstrap's bundle and token and resolves the trust domain. Throws EnrollError naming the file. */
export async function enrollmentInputs(identity: BootstrapIdentity): Promise<{ bundlePem: string; token: string; trustDomain: string }> {
  const read = async (file: string, what: string) => {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new EnrollError(`cannot read the ${what} ${file}: ${(err as Error).message}`, null, { cause: err });
    }
  };
  const bundlePem = await read(identity.trustBundle, 'trust bundle');
  const token = identity.joinToken ?? (await read(identity.joinTokenFile!, 'join token file')).trim();
  const trustDomain = identity.trustDomain ?? bundleTrustDomain(bundlePem);
  if (trustDomain === null) throw new EnrollError(`the trust bundle ${identity.trustBundle} names no spiffe:// trust domain; set identity.trustDomain`);
  return { bundlePem, token, trustDomain };
}

/** One JSON POST to the CA endpoint, authenticating the server as the control plane (and the client by `clientCert`, if given). */
function postToCa(o: { caAddress: string; bundlePem: string; trustDomain: string; timeoutMs?: number }, path: string, payload: unknown, clientCert?: { keyPem: string; chainPem: string }): Promise<{ status: number; body: Record<string, unknown> }> {
  const serverId = `spiffe://${o.trustDomain}${CONTROL_PLANE_PATH}`;
  const i = o.caAddress.lastIndexOf(':');
  const timeoutMs = o.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const req = request({
      host: o.caAddress.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(o.caAddress.slice(i + 1)), path, method: 'POST',
      ca: o.bundlePem, headers: { 'content-type': 'application/json' }, timeout: timeoutMs, agent: false,
      ...(clientCert === undefined ? {} : { key: clientCert.keyPem, cert: clientCert.chainPem }),
      checkServerIdentity: expectServerId(serverId, 'the CA endpoint'),
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> });
        } catch {
          reject(new EnrollError(`the CA endpoint ${o.caAddress} answered ${res.statusCode} without JSON`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => reject(err instanceof EnrollError ? err : new EnrollError(`${path === '/v1/renew' ? 'renewing' : 'enrolling'} at ${o.caAddress} failed: ${err.message}`, null, { cause: err })));
    req.end(JSON.stringify(payload));
  });
}

/** The identity from a 200 answer, checked to be for `spiffeId`; throws EnrollError for any other answer. */
async function identityFrom(reply: { status: number; body: Record<string, unknown> }, what: string, caAddress: string, spiffeId: string, keys: KeyPair): Promise<WorkloadIdentity> {
  if (reply.status !== 200) {
    const code = typeof reply.body.code === 'string' ? reply.body.code : null;
    const errors = Array.isArray(reply.body.errors) ? (reply.body.errors as string[]).join('; ') : '';
    throw new EnrollError(`the CA endpoint ${caAddress} refused the ${what} of ${spiffeId} (${reply.status} ${code ?? ''}): ${errors}`, code);
  }
  const b = reply.body;
  if (b.spiffeId !== spiffeId || typeof b.chain !== 'string' || typeof b.bundle !== 'string') {
    throw new EnrollError(`the CA endpoint ${caAddress} answered an SVID for ${String(b.spiffeId)}, expected ${spiffeId}`);
  }
  return {
    spiffeId, keyPem: await exportPrivateKeyPem(keys.privateKey), chainPem: b.chain, bundlePem: b.bundle,
    notAfter: new Date(String(b.notAfter)), renewAt: new Date(String(b.renewAt)),
  };
}

export async function enrollWorkload(o: EnrollOptions): Promise<WorkloadIdentity> {
  const spiffeId = `spiffe://${o.trustDomain}/ns/${o.namespace}/sa/${o.serviceAccount}`;
  const keys = await generateKeyPair();
  const reply = await postToCa(o, '/v1/enroll', { csr: await createCsr(keys, spiffeId), token: o.token });
  return identityFrom(reply, 'enrollment', o.caAddress, spiffeId, keys);
}

/**
 * Renews `current` before it expires: a fresh key, a CSR for the same SPIFFE ID, and the
 * current SVID as the TLS client certificate that authenticates the request (no token).
 */
export async function renewWorkload(current: WorkloadIdentity, o: { caAddress: string; trustDomain: string; timeoutMs?: number }): Promise<WorkloadIdentity> {
  const keys = await generateKeyPair();
  const reply = await postToCa({ ...o, bundlePem: current.bundlePem }, '/v1/renew', { csr: await createCsr(keys, current.spiffeId) }, current);
  return identityFrom(reply, 'renewal', o.caAddress, current.spiffeId, keys);
}
