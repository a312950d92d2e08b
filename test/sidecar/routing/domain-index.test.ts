/**
 * Virtual host selection by authority: Envoy's order and port rules, plus the port-stripped
 * retry Palisade adds before falling back to `*`.
 */
import { describe, expect, it } from 'vitest';
import { DomainIndex, portStart } from '../../../sidecar/routing/domain-index.ts';

function index(hosts: Record<string, string[]>, ignorePort = false): DomainIndex<string> {
  const r = DomainIndex.tryNew(Object.entries(hosts).map(([value, domains], i) => ({ domains, value, path: `virtual_hosts[${i}]` })), ignorePort);
  if (!r.valid) throw new Error(r.errors.join('\n'));
  return r.result;
}

describe('DomainIndex', () => {
  const hosts = index({
    svc: ['svc', 'svc:8080'],
    portOnly: ['other:9090'],
    tls: ['api.com:8443'],
    plain: ['api.com'],
    wild: ['*.foo.com'],
    wildPort: ['*.bar.com:8080'],
    pre: ['x.*'],
    v6: ['[::1]', '[::1]:8080'],
    fallback: ['*'],
  });

  it.each([
    ['svc', 'svc'],
    ['svc:8080', 'svc'],
    ['svc:9999', 'svc'],
    ['other:9090', 'portOnly'],
    ['other', 'fallback'],
    ['other:1', 'fallback'],
    ['api.com:8443', 'tls'],
    ['api.com:80', 'plain'],
    ['api.com', 'plain'],
    ['a.foo.com:8080', 'wild'],
    ['a.bar.com:8080', 'wildPort'],
    ['a.bar.com:9090', 'fallback'],
    ['x.foo.com:8080', 'pre'],
    ['x.foo.com', 'wild'],
    ['[::1]:8080', 'v6'],
    ['[::1]:9', 'v6'],
    ['[::1]', 'v6'],
  ])('selects for %j the virtual host %s', (authority, want) => {
    expect(hosts.find(authority)).toBe(want);
  });

  it('strips the port before matching when ignore_port_in_host_matching is set', () => {
    const ignoring = index({ svc: ['svc'], portOnly: ['other:9090'], fallback: ['*'] }, true);
    expect(ignoring.find('svc:1234')).toBe('svc');
    expect(ignoring.find('other:9090')).toBe('fallback');
  });

  it('probes large wildcard groups through a map with the same precedence', () => {
    const many = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`s${i}`, [`*.d${String(i).padStart(2, '0')}.com`]]));
    const idx = index({ ...many, longer: ['*.x.d07.com'], pre: ['d07.*'] });
    expect(idx.find('a.d07.com')).toBe('s7');
    expect(idx.find('a.x.d07.com')).toBe('longer');
    expect(idx.find('d07.org')).toBe('pre');
    expect(idx.find('d07.com')).toBe('pre');
    expect(idx.find('zzz')).toBeNull();
  });

  it.each([
    ['host', -1],
    ['host:80', 4],
    ['host:', 4],
    ['[::1]', -1],
    ['[::1]:80', 5],
    ['::1', 1],
  ])('finds the port of %j at %d, as Envoy getPortStart', (host, at) => {
    expect(portStart(host)).toBe(at);
  });
});
