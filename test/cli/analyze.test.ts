/**
 * `palisade analyze` as an operator runs it: a real CLI process over a config directory with
 * bundles built by the real `palisade policy build`, table and JSON output, and exit 1 with
 * the errors for an invalid directory.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPolicy, palisade } from '../helpers/policy-build.ts';
import { keyPair } from '../policies/support.ts';

let root: string;
let config: string;

const EXPRESSIBLE = `package envoy.authz

default allow := false

allow if input.attributes.source.principal == "spiffe://mesh.local/ns/shop/sa/web"

allow if input.attributes.request.http.method == "GET"
`;
const NOT_EXPRESSIBLE = `package envoy.authz

default allow := false

allow if endswith(input.attributes.request.http.path, ".json")
`;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'palisade-analyze-'));
  config = join(root, 'config');
  await mkdir(config);
  await writeFile(join(root, 'signing.pem'), keyPair('ec').privatePem, { mode: 0o600 });
  const built = await buildPolicy(join(root, 'rbac'), { 'authz.rego': EXPRESSIBLE }, join(config, 'rbac.tar.gz'), 'envoy/authz/allow', join(root, 'signing.pem'));
  expect(built.stdout).toContain('Envoy: RBAC (2 policies)\n');
  const refused = await buildPolicy(join(root, 'other'), { 'authz.rego': NOT_EXPRESSIBLE }, join(config, 'other.tar.gz'));
  expect(refused.stdout).toContain('Envoy: ext_authz (authz.rego:5: `endswith(input.attributes.request.http.path, ".json")`: function `endswith` has no RBAC form)\n');
  await writeFile(join(config, 'policies.yaml'), `apiVersion: palisade.dev/v1
kind: Service
metadata: { name: backend }
spec: { port: 8080 }
---
apiVersion: palisade.dev/v1
kind: Policy
metadata: { name: backend-authz }
spec:
  entrypoint: envoy/authz/allow
  bundle: { file: rbac.tar.gz }
  selector: { services: [backend], pathPrefixes: [/api/] }
---
apiVersion: palisade.dev/v1
kind: Policy
metadata: { name: json-only }
spec:
  entrypoint: envoy/authz/allow
  bundle: { file: other.tar.gz }
  mode: dry-run
`);
}, 120_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('palisade analyze', () => {
  it('prints each Policy with its Envoy translation as a table', async () => {
    const r = await palisade(['analyze', '--config', config]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^POLICY\s+MODE\s+SELECTOR\s+REVISION\s+SIGNED\s+ENVOY\s+SIDECAR$/);
    expect(lines[1]).toMatch(/^default\/backend-authz\s+enforce\s+service=backend,path=\/api\/\*\s+[0-9a-f]{16}\s+yes\s+RBAC \(2 policies\)\s+wasm$/);
    expect(lines[2]).toMatch(/^default\/json-only\s+dry-run\s+\*\s+[0-9a-f]{16}\s+NO\s+ext_authz: authz\.rego:5: `endswith\(input\.attributes\.request\.http\.path, "\.json"\)`: function `endswith` has no RBAC form\s+wasm$/);
    expect(lines).toHaveLength(3);
  });

  it('prints the same as JSON with -o json', async () => {
    const r = await palisade(['analyze', '--config', config, '-o', 'json']);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as unknown[];
    expect(rows).toEqual([
      {
        policy: 'default/backend-authz', mode: 'enforce', entrypoint: 'envoy/authz/allow', selector: { services: ['backend'], pathPrefixes: ['/api/'] },
        revision: expect.stringMatching(/^[0-9a-f]{16}$/), signed: true, envoy: { translation: 'rbac', policies: 2 }, sidecar: 'wasm',
      },
      {
        policy: 'default/json-only', mode: 'dry-run', entrypoint: 'envoy/authz/allow', selector: { services: [], pathPrefixes: [] },
        revision: expect.stringMatching(/^[0-9a-f]{16}$/), signed: false,
        envoy: { translation: 'ext_authz', reason: 'authz.rego:5: `endswith(input.attributes.request.http.path, ".json")`: function `endswith` has no RBAC form', cluster: 'outbound|9191||palisade-authz.default' },
        sidecar: 'wasm',
      },
    ]);
  });

  it('exits 1 with the errors for an invalid configuration', async () => {
    const bad = join(root, 'bad');
    await mkdir(bad);
    await writeFile(join(bad, 'p.yaml'), 'apiVersion: palisade.dev/v1\nkind: Policy\nmetadata: { name: p }\nspec: { entrypoint: envoy/authz/allow, bundle: { file: missing.tar.gz } }\n');
    const r = await palisade(['analyze', '--config', bad]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^palisade analyze: ${bad} is not a valid configuration:\\n  .*p\\.yaml#0 /spec/bundle/file: .*missing\\.tar\\.gz`));
  });

  it('refuses an unknown output format with exit 2', async () => {
    const r = await palisade(['analyze', '--config', config, '-o', 'yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('-o/--output must be one of table, json, got "yaml"');
  });
});
