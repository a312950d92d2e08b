import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBootstrap, parseBootstrap } from '../../../sidecar/bootstrap/bootstrap.ts';
import { sidecarNode } from '../../../sidecar/bootstrap/node.ts';
import { parseRegistration } from '../../../control/registry/endpoint-registry.ts';

const MINIMAL = { node: { service: 'web' }, workload: { address: '127.0.0.1:8080' } };

describe('sidecar bootstrap', () => {
  it('fills every default from a minimal bootstrap', () => {
    const r = parseBootstrap(MINIMAL);
    expect(r.valid).toBe(true);
    if (!r.valid) return;
    expect(r.result).toMatchObject({
      node: { service: 'web', namespace: 'default', serviceAccount: 'web', labels: {}, locality: { region: '', zone: '', subZone: '' } },
      controlPlane: { address: '127.0.0.1:18000' },
      inbound: { address: '0.0.0.0', port: 15006, advertiseAddress: '127.0.0.1' },
      workload: { address: '127.0.0.1:8080' },
      outbound: { address: '127.0.0.1', port: 15001 },
      admin: { address: '127.0.0.1', port: 15000 },
      // No keys: every Policy bundle is refused.
      policy: { verificationKeys: [] },
      // Off unless asked for.
      extAuthz: null,
    });
    expect(r.result.node.id).toMatch(/^web-/);
    expect(Object.isFrozen(r.result.node.labels)).toBe(true);
  });

  it.each([
    [{ workload: { address: '127.0.0.1:8080' } }, 'node: missing required section'],
    [{ ...MINIMAL, node: { service: 'Web' } }, 'node.service: must be a Service name (lowercase DNS label), got "Web"'],
    [{ ...MINIMAL, workload: { address: 'localhost' } }, 'workload.address: must be host:port with a port 1..65535, got "localhost"'],
    [{ ...MINIMAL, inbound: { port: 70000 } }, 'inbound.port: must be an integer 0..65535 (0 picks a free port), got 70000'],
    [{ ...MINIMAL, inbound: { advertiseAddress: '0.0.0.0' } }, 'inbound.advertiseAddress: must be an address peers can reach, got "0.0.0.0"'],
    [{ ...MINIMAL, admin: { port: 15001 } }, 'admin.port: must differ from outbound.port (both 15001)'],
    [{ ...MINIMAL, policy: { verificationKeys: [] } }, 'policy.verificationKeys: must be a non-empty list of PEM public key files, got []'],
    [{ ...MINIMAL, policy: { verificationKeys: [7] } }, 'policy.verificationKeys[0]: must be a file path, got 7'],
    [{ ...MINIMAL, policy: { keys: ['a.pem'] } }, 'policy.keys: unknown field; known fields: verificationKeys'],
    [{ ...MINIMAL, outbund: {} }, 'outbund: unknown field; known fields: node, controlPlane, inbound, workload, outbound, admin, identity, policy, extAuthz, rateLimitService, quota, telemetry, overload'],
    [{ ...MINIMAL, node: { service: 'web', labels: { version: 2 } } }, 'node.labels.version: must be a label value (string, up to 63 of [A-Za-z0-9-_.]), got 2'],
    [{ ...MINIMAL, controlPlane: { address: '127.0.0.1:0' } }, 'controlPlane.address: must be host:port with a port 1..65535, got "127.0.0.1:0"'],
    [{ ...MINIMAL, extAuthz: { address: 'localhost' } }, 'extAuthz.address: must be an IPv4 or IPv6 address, got "localhost"'],
    [{ ...MINIMAL, extAuthz: { port: -1 } }, 'extAuthz.port: must be an integer 0..65535 (0 picks a free port), got -1'],
    [{ ...MINIMAL, extAuthz: { port: 15000 } }, 'extAuthz.port: must differ from admin.port (both 15000)'],
    [{ ...MINIMAL, extAuthz: { host: '127.0.0.1' } }, 'extAuthz.host: unknown field; known fields: address, port'],
    [{ ...MINIMAL, extAuthz: 9191 }, 'extAuthz: must be a mapping, got 9191'],
    [{ ...MINIMAL, node: { service: 'web', serviceAccount: 'Web_SA' } }, 'node.serviceAccount: must be a service account name (lowercase DNS label), got "Web_SA"'],
  ])('refuses %j with the field and the value', (doc, error) => {
    const r = parseBootstrap(doc);
    expect(r.valid).toBe(false);
    if (!r.valid) expect(r.errors).toContain(error);
  });

  it.each([
    [{}, { address: '127.0.0.1', port: 9191 }],
    [{ port: 0 }, { address: '127.0.0.1', port: 0 }],
    [{ address: '::1', port: 19191 }, { address: '::1', port: 19191 }],
  ])('serves ext_authz with extAuthz %j, defaults filled', (section, expected) => {
    const r = parseBootstrap({ ...MINIMAL, extAuthz: section });
    expect(r.valid && r.result.extAuthz).toEqual(expected);
  });

  it('reads the policy verification key files', () => {
    const r = parseBootstrap({ ...MINIMAL, policy: { verificationKeys: ['a.pub.pem', 'b.pub.pem'] } });
    expect(r.valid && r.result.policy.verificationKeys).toEqual(['a.pub.pem', 'b.pub.pem']);
  });

  it('names the file and lists every problem when loading', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'palisade-bootstrap-'));
    const file = join(dir, 'bootstrap.yaml');
    writeFileSync(file, 'node: { service: Web }\ninbound: { port: -1 }\n');
    await expect(loadBootstrap(file)).rejects.toMatchObject({
      code: 'PAL_ERR_SIDECAR_INVALID_BOOTSTRAP',
      message: expect.stringContaining(file),
      errors: [
        'node.service: must be a Service name (lowercase DNS label), got "Web"',
        'inbound.port: must be an integer 0..65535 (0 picks a free port), got -1',
        'workload: missing required section',
      ],
    });
    await expect(loadBootstrap(join(dir, 'missing.yaml'))).rejects.toMatchObject({ code: 'PAL_ERR_SIDECAR_INVALID_BOOTSTRAP' });
  });

  it('presents a node the control plane registers as an endpoint of its Service', () => {
    const r = parseBootstrap({ ...MINIMAL, node: { id: 'web-1', service: 'web', namespace: 'shop', labels: { version: 'v2' }, locality: { zone: 'z1' } } });
    if (!r.valid) throw new Error(r.errors.join('; '));
    const reg = parseRegistration(sidecarNode(r.result, 15006, true, '0.1.0'));
    expect(reg).toEqual({
      valid: true,
      result: { nodeId: 'web-1', service: 'shop/web', ready: true, endpoint: { address: '127.0.0.1', port: 15006, weight: 1, labels: { version: 'v2' }, locality: { zone: 'z1' } } },
    });
  });

  it('presents its service account in the node metadata (the SVID identity the control plane expects)', () => {
    const r = parseBootstrap({ ...MINIMAL, node: { service: 'web', namespace: 'shop', serviceAccount: 'storefront' } });
    if (!r.valid) throw new Error(r.errors.join('; '));
    expect(r.result.node.serviceAccount).toBe('storefront');
    const metadata = sidecarNode(r.result, 15006, false, '0.1.0').metadata!;
    expect(metadata['palisade.io/service-account']).toBe('storefront');
    expect(metadata['palisade.io/namespace']).toBe('shop');
  });
});
