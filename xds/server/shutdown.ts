/** Shutting a grpc-js server down: calls in flight get `graceMs`, then the server is cut. */
import type { Server } from '@grpc/grpc-js';

export function shutdownGracefully(server: Server, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    timer.unref();
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
