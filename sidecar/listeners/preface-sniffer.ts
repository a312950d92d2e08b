/**
 * Tells HTTP/2 with prior knowledge (h2c) from HTTP/1 on a plaintext connection, as Envoy's
 * `codec_type: AUTO`: reads until the bytes received either differ from the HTTP/2 connection
 * preface (RFC 9113 §3.4) — HTTP/1, decided at the first byte that differs — or hold it whole
 * (HTTP/2). The bytes read are put back (`unshift`) and the socket is left paused for its new
 * owner. Past `timeoutMs` (0: none), or when the peer goes away first, the socket is destroyed
 * and `decide(null)` is called.
 */
import type { Socket } from 'node:net';
import { sniff } from './sniff.ts';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function sniffPreface(socket: Socket, timeoutMs: number, decide: (h2: boolean | null) => void): void {
  sniff(socket, timeoutMs, (buf) => {
    const n = Math.min(buf.length, H2_PREFACE.length);
    const h2 = buf.compare(H2_PREFACE, 0, n, 0, n) === 0;
    // A prefix of the preface so far: wait for the rest.
    return h2 && n < H2_PREFACE.length ? undefined : h2;
  }, decide);
}
