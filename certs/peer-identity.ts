/**
 * SPIFFE IDs as TLS shows them: Node reports a certificate's SANs as one string
 * (`URI:spiffe://…, DNS:…`), and a TLS client checks the server by its URI SAN, not its host.
 */
import type { PeerCertificate } from 'node:tls';

/** The URI SANs in Node's `subjectaltname` string, in order. */
export function uriSans(subjectaltname: string | undefined): string[] {
  if (subjectaltname === undefined || subjectaltname === '') return [];
  const out: string[] = [];
  for (const part of subjectaltname.split(', ')) if (part.startsWith('URI:')) out.push(part.slice(4));
  return out;
}

/**
 * A `checkServerIdentity` for TLS clients: the server must present exactly `expected` as its
 * SAN (an SVID's one URI), whatever host name was dialled. `what` names the server in the error.
 */
export function expectServerId(expected: string, what: string): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => (cert.subjectaltname === `URI:${expected}`
    ? undefined
    : new Error(`${what} presented ${cert.subjectaltname || 'no SAN'}, expected URI:${expected}`));
}
