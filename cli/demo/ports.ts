/** Default listen addresses that step aside when their port is taken. */
import { createServer } from 'node:net';

export interface ListenChoice {
  /** Where to listen: the address asked for, or its host with port 0. */
  address: string;
  /** Why the address differs from the one asked for, or null. */
  note: string | null;
}

/**
 * `address` (host:port) if it can be bound; if it is a default (not the user's explicit
 * choice) and its port is in use, the same host with port 0, so the OS picks a free one.
 * An explicit address is returned as is: binding it later fails with the real reason.
 */
export async function chooseListenAddress(address: string, isDefault: boolean): Promise<ListenChoice> {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i);
  const port = Number(address.slice(i + 1));
  if (!isDefault || port === 0) return { address, note: null };
  const free = await new Promise<boolean>((resolve) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code !== 'EADDRINUSE'));
    probe.listen({ host: host.replace(/^\[(.*)\]$/, '$1'), port, exclusive: true }, () => probe.close(() => resolve(true)));
  });
  return free ? { address, note: null } : { address: `${host}:0`, note: `port ${port} is in use, so a free port was picked` };
}
