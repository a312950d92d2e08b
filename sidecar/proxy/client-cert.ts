/**
 * x-forwarded-client-cert (XFCC), as Envoy sets it for an mTLS downstream: the workload
 * learns which peer identity a request arrived with.
 *
 *   By=<this listener's SPIFFE ID>;Hash=<sha256 of the peer certificate, hex>;Subject="<peer subject>";URI=<peer SPIFFE ID>
 *
 * Policy: Envoy's SANITIZE_SET. An XFCC the client sent is always dropped (a plaintext or
 * outbound client could forge one); over mTLS the sidecar sets its own. Computed once per
 * connection (the certificates cannot change on it) and cached on the socket.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { uriSans } from '../../certs/peer-identity.ts';

export const XFCC_HEADER = 'x-forwarded-client-cert';

const cache = new WeakMap<Socket, string | null>();


/** Quotes a value as Envoy's XFCC does: in double quotes, with `"` and `\` escaped. */
function quoted(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** The XFCC value for requests on `socket`, or null when it is not mTLS with a client certificate. */
export function clientCertDetails(socket: Socket): string | null {
  const hit = cache.get(socket);
  if (hit !== undefined) return hit;
  let value: string | null = null;
  const tls = socket as TLSSocket;
  if (tls.encrypted === true) {
    const peer = tls.getPeerCertificate();
    if (peer !== null && peer.raw !== undefined) {
      const parts: string[] = [];
      const local = tls.getCertificate();
      const by = local !== null && 'subjectaltname' in local ? (uriSans(local.subjectaltname)[0] ?? null) : null;
      if (by !== null) parts.push(`By=${by}`);
      parts.push(`Hash=${createHash('sha256').update(peer.raw).digest('hex')}`);
      // An X.509-SVID may have an empty subject (node:crypto then says undefined): Subject="".
      parts.push(`Subject=${quoted((new X509Certificate(peer.raw).subject ?? '').split('\n').join(','))}`);
      const uri = uriSans(peer.subjectaltname)[0];
      if (uri !== undefined) parts.push(`URI=${uri}`);
      value = parts.join(';');
    }
  }
  cache.set(socket, value);
  return value;
}
