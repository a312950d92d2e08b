/**
 * The mechanics both connection sniffers share: read until `classify` can tell what the
 * peer speaks, put every byte read back (`unshift`) and leave the socket paused for its new
 * owner. Past `timeoutMs` (0: none), or when the peer goes away first, the socket is
 * destroyed and `decide(null)` is called.
 */
import type { Socket } from 'node:net';

/** `classify` returns undefined while it needs more bytes. */
export function sniff<T>(socket: Socket, timeoutMs: number, classify: (bytes: Buffer) => T | undefined, decide: (result: T | null) => void): void {
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
  function onData(chunk: Buffer): void {
    const buf = buffered === null ? chunk : Buffer.concat([buffered, chunk]);
    const result = buf.length === 0 ? undefined : classify(buf);
    if (result === undefined) {
      buffered = buf;
      return;
    }
    stop();
    socket.pause();
    socket.unshift(buf);
    decide(result);
  }
  socket.on('data', onData);
  socket.on('error', onGone);
  socket.on('end', onGone);
  socket.on('close', onGone);
}
