/**
 * The Policy kind: validated with the config, its bundle file read with it (relative to the
 * document), errors at the exact field, and translated into palisade.v1.Policy resources for
 * the sidecar groups of its namespace only.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDirectory } from '../../../control/config/load-directory.ts';
import { canonicalState, type DesiredState } from '../../../control/config/state.ts';
import { translate } from '../../../control/translate/translator.ts';
import { POLICY_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { Policy_Mode, type Policy } from '../../../xds/gen/palisade/v1/policy_pb.js';

let dir: string;
const SERVICES = `apiVersion: palisade.dev/v1
kind: Service
metadata: { name: backend }
spec: { port: 8080 }
---
apiVersion: palisade.dev/v1
kind: Service
metadata: { name: other, namespace: shop }
spec: { port: 8080 }
`;

function policyYaml(spec: string, name = 'backend-authz'): string {
  return `apiVersion: palisade.dev/v1\nkind: Policy\nmetadata: { name: ${name} }\nspec:\n${spec}`;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-policy-config-'));
  await mkdir(join(dir, 'policies'));
  await writeFile(join(dir, 'services.yaml'), SERVICES);
  await writeFile(join(dir, 'policies', 'authz.tar.gz'), Buffer.from('bundle bytes v1'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(): Promise<DesiredState> {
  const r = await loadDirectory(dir);
  if (!r.valid) throw new Error(JSON.stringify(r.errors));
  return r.result;
}

describe('the Policy kind', () => {
  it('reads the bundle relative to its document and sends it to the sidecars of its namespace', async () => {
    await writeFile(join(dir, 'policies', 'authz.yaml'), policyYaml(`  entrypoint: envoy/authz/allow
  bundle: { file: authz.tar.gz }
  mode: dry-run
  selector: { services: [backend], pathPrefixes: [/api] }
  cacheKeys: [attributes.source.principal, parsed_path]
`));
    const state = await load();
    const p = state.policies.get('default/backend-authz')!;
    expect(p.spec.mode).toBe('dry-run');
    expect(Buffer.from(state.policyBundles.get('default/backend-authz')!).toString()).toBe('bundle bytes v1');
    const resources = translate(state, { kind: 'sidecar', namespace: 'default' })[POLICY_TYPE_URL] as Policy[];
    expect(resources.map((r) => r.name)).toEqual(['default/backend-authz']);
    expect(resources[0]).toMatchObject({ mode: Policy_Mode.DRY_RUN, entrypoint: 'envoy/authz/allow', services: ['backend'], pathPrefixes: ['/api'], cacheKeys: ['attributes.source.principal', 'parsed_path'] });
    expect(Buffer.from(resources[0]!.bundle).toString()).toBe('bundle bytes v1');
    // Other namespaces' sidecars, Envoys and gRPC clients get none.
    expect(translate(state, { kind: 'sidecar', namespace: 'shop' })[POLICY_TYPE_URL]).toBeUndefined();
    expect(translate(state, { kind: 'envoy', namespace: 'default' })[POLICY_TYPE_URL]).toBeUndefined();
    expect(translate(state, { kind: 'grpc', namespace: 'default' })[POLICY_TYPE_URL]).toBeUndefined();
  });

  it('defaults: enforce, every workload and path, no cache', async () => {
    await writeFile(join(dir, 'policies', 'authz.yaml'), policyYaml('  entrypoint: envoy/authz/allow\n  bundle: { file: authz.tar.gz }\n'));
    const p = (await load()).policies.get('default/backend-authz')!;
    expect(p.spec).toMatchObject({ mode: 'enforce', cacheKeys: [], decisionLogPercent: 0, selector: {} });
  });

  it('a changed bundle changes the state, a renamed file with the same bytes does not', async () => {
    await writeFile(join(dir, 'policies', 'authz.yaml'), policyYaml('  entrypoint: envoy/authz/allow\n  bundle: { file: authz.tar.gz }\n'));
    const before = canonicalState(await load());
    await writeFile(join(dir, 'policies', 'authz.tar.gz'), Buffer.from('bundle bytes v2'));
    const changed = canonicalState(await load());
    expect(changed).not.toBe(before);
    await writeFile(join(dir, 'policies', 'copy.tar.gz'), Buffer.from('bundle bytes v2'));
    await writeFile(join(dir, 'policies', 'authz.yaml'), policyYaml('  entrypoint: envoy/authz/allow\n  bundle: { file: copy.tar.gz }\n'));
    expect(canonicalState(await load())).not.toBe(before);
  });

  it.each([
    ['a missing bundle file', '  entrypoint: envoy/authz/allow\n  bundle: { file: missing.tar.gz }\n', '/spec/bundle/file', /does not exist \(build it with palisade policy build\)/],
    ['an unknown Service', '  entrypoint: envoy/authz/allow\n  bundle: { file: authz.tar.gz }\n  selector: { services: [nope] }\n', '/spec/selector/services/0', /Service "nope" not found in namespace "default"/],
    ['a bad entrypoint', '  entrypoint: envoy.authz.allow\n  bundle: { file: authz.tar.gz }\n', '/spec/entrypoint', /./],
    ['an unknown mode', '  entrypoint: envoy/authz/allow\n  bundle: { file: authz.tar.gz }\n  mode: warn\n', '/spec/mode', /./],
    ['a relative path prefix', '  entrypoint: envoy/authz/allow\n  bundle: { file: authz.tar.gz }\n  selector: { pathPrefixes: [api] }\n', '/spec/selector/pathPrefixes/0', /./],
  ])('refuses %s at the field', async (_what, spec, path, message) => {
    await writeFile(join(dir, 'policies', 'authz.yaml'), policyYaml(spec));
    const r = await loadDirectory(dir);
    expect(r.valid).toBe(false);
    if (r.valid) return;
    const e = r.errors.find((x) => x.path === path);
    expect(e, JSON.stringify(r.errors)).toBeDefined();
    expect(e!.message).toMatch(message);
    expect(e!.file).toBe(join(dir, 'policies', 'authz.yaml'));
  });
});
