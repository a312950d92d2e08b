/**
 * Tells HTTP/2 with prior knowledge (h2c) from HTTP/1 on a plaintext connection, as Envoy's
 * `codec_type: AUTO`: reads until the bytes received either differ from the HTTP/2 connection
 * preface (RFC 9113 §3.4) — HTTP/1, decided at the first byte that differs — or hold it whole
 * (HTTP/2). The bytes read are put back (`unshift`) and the socket is left paused for its new
 * owner. Past `timeoutMs` (0: none), or when the peer goes away first, the socket is destroyed
 * and `decide(null)` is called.
 */
import type { Socket } from 'node:net';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function sniffPreface(socket: Socket, timeoutMs: number, decide: (h2: boolean | null) => void): void {
  let buffered: Buffer | null = null;
  const timer = timeoutMs > 0 ? setTimeout(() => onGone(), timeoutMs) : null;
  timer?.unref();
  const stop = () => {
    if (timer !== null) clearTimeout(timer);
    socket.off('data', onData);
    socket.off('error', onGone);
    socket.off('end', onGone);
    socket.off('close', onGone);
  };
  function onGone(): void {
    stop();
    socket.destroy();
    decide(null);
  }
  const onData = (chunk: Buffer) => {
    const buf = buffered === null ? chunk : Buffer.concat([buffered, chunk]);
    const n = Math.min(buf.length, H2_PREFACE.length);
    const h2 = buf.compare(H2_PREFACE, 0, n, 0, n) === 0;
    if (h2 && n < H2_PREFACE.length) {
      buffered = buf;
      return;
    }
    stop();
    socket.pause();
    socket.unshift(buf);
    decide(h2);
  };
  socket.on('data', onData);
  socket.on('error', onGone);
  socket.on('end', onGone);
  socket.on('close', onGone);
}
