/** A free TCP port on 127.0.0.1 for a benchmark's child process to listen on. */
import { createServer } from 'node:net';

/** Asks the kernel for a free port on 127.0.0.1 and releases it at once (another process may take it before it is used). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
