/**
 * Host name → addresses for STRICT_DNS clusters, through `dns.lookup` (the system resolver,
 * /etc/hosts included), filtered by `dns_lookup_family` as Envoy does: AUTO prefers IPv6
 * and falls back to IPv4, V4_PREFERRED the reverse, ALL keeps both. dns.lookup reports no
 * TTL, so `respect_dns_ttl` cannot be honoured; clusters re-resolve at dns_refresh_rate.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { DnsLookupFamily } from './cluster-config.ts';

export type Resolve = (hostname: string, family: DnsLookupFamily) => Promise<string[]>;

/** The addresses `hostname` resolves to, in resolver order; rejects when it does not resolve. */
export const resolveAddresses: Resolve = async (hostname, family) => {
  if (isIP(hostname) !== 0) return [hostname];
  const all = await lookup(hostname, { all: true, family: family === 'V4_ONLY' ? 4 : family === 'V6_ONLY' ? 6 : 0 });
  const v4 = all.filter((a) => a.family === 4).map((a) => a.address);
  const v6 = all.filter((a) => a.family === 6).map((a) => a.address);
  switch (family) {
    case 'V4_ONLY':
      return v4;
    case 'V6_ONLY':
      return v6;
    case 'AUTO':
      return v6.length > 0 ? v6 : v4;
    case 'V4_PREFERRED':
      return v4.length > 0 ? v4 : v6;
    case 'ALL':
      return [...v4, ...v6];
  }
};
