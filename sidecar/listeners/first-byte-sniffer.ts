/**
 * Reads the first byte of a raw connection to tell a TLS ClientHello (a handshake record,
 * content type 0x16, RFC 8446 §5.1) from plaintext, as Envoy's `tls_inspector` listener
 * filter does. The chunk read is put back (`unshift`) and the socket left paused for its new
 * owner: node:tls feeds what the socket buffered to the handshake, an HTTP server reads it
 * after `resume()`. Past `timeoutMs` (0: none), or when the peer goes away first, the socket
 * is destroyed and `decide(null)` is called.
 */
import type { Socket } from 'node:net';
import { sniff } from './sniff.ts';

/** TLS record content type `handshake`: the first byte of every TLS (and SSLv3) ClientHello. */
export const TLS_HANDSHAKE_RECORD = 0x16;

export function sniffFirstByte(socket: Socket, timeoutMs: number, decide: (first: number | null) => void): void {
  sniff(socket, timeoutMs, (bytes) => bytes[0], decide);
}
