/**
 * Policies given as inline Rego (spec.rego.inline): the control plane compiles them with the
 * real pinned opa, signs them with its --policy-signing-key and serves them exactly as a bundle
 * file; errors land at /spec/rego/inline; unchanged Rego is not compiled again.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDirectory } from '../../../control/config/load-directory.ts';
import { NO_SIGNING_KEY_MESSAGE, PolicyCompiler } from '../../../control/config/policy-compiler.ts';
import { DirectorySource } from '../../../control/config/source.ts';
import type { ConfigError } from '../../../control/config/config-error.ts';
import { ControlPlane } from '../../../control/control-plane.ts';
import { createLogger } from '../../../control/log.ts';
import { translate } from '../../../control/translate/translator.ts';
import { readBundle } from '../../../policies/bundle.ts';
import { syncVerificationKeys, verifyBundleSync } from '../../../policies/signature.ts';
import { POLICY_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { Policy_Mode, type Policy } from '../../../xds/gen/palisade/v1/policy_pb.js';

const REGO = `package envoy.authz

default allow := false

allow if input.attributes.request.http.method == "GET"
`;
const SERVICES = 'apiVersion: palisade.dev/v1\nkind: Service\nmetadata: { name: backend }\nspec: { port: 8080 }\n';

function keys(type: 'ec' | 'ed25519'): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }) : generateKeyPairSync('ed25519');
  return { privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

function policyYaml(rego: string, extra = '', entrypoint = 'envoy/authz/allow'): string {
  const indented = rego.split('\n').map((l) => (l === '' ? '' : `      ${l}`)).join('\n');
  return `apiVersion: palisade.dev/v1\nkind: Policy\nmetadata: { name: backend-authz }\nspec:\n  entrypoint: ${entrypoint}\n${extra}  rego:\n    inline: |\n${indented}`;
}

const ec = keys('ec');
let dir: string;
const planes: ControlPlane[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-inline-rego-'));
  await writeFile(join(dir, 'services.yaml'), SERVICES);
});

afterEach(async () => {
  for (const cp of planes.splice(0)) await cp.close();
  await rm(dir, { recursive: true, force: true });
});

async function errorsOf(compiler: PolicyCompiler | null): Promise<ConfigError[]> {
  const r = await loadDirectory(dir, { policyCompiler: compiler });
  expect(r.valid).toBe(false);
  return r.valid ? [] : r.errors;
}

describe('inline Rego Policies', () => {
  it.each([['ec' as const], ['ed25519' as const]])('compiles inline Rego to a wasm bundle signed with the %s key, revision = the Rego hash', async (type) => {
    const k = type === 'ec' ? ec : keys('ed25519');
    await writeFile(join(dir, 'authz.yaml'), policyYaml(REGO));
    const compiler = new PolicyCompiler({ signingKeyPem: k.privatePem });
    const r = await loadDirectory(dir, { policyCompiler: compiler });
    if (!r.valid) throw new Error(JSON.stringify(r.errors));
    const bundle = readBundle(r.result.policyBundles.get('default/backend-authz')!);
    expect(() => verifyBundleSync(bundle, syncVerificationKeys({ keys: { default: { pem: k.publicPem } } }))).not.toThrow();
    expect(() => verifyBundleSync(bundle, syncVerificationKeys({ keys: { default: { pem: keys('ec').publicPem } } }))).toThrow();
    expect(bundle.revision).toBe(createHash('sha256').update(REGO).digest('hex').slice(0, 16));
    expect([...bundle.files.keys()].sort()).toEqual(['/.manifest', '/.signatures.json', '/data.json', '/policy.rego', '/policy.wasm']);
    // The Envoy analysis travels in the bundle as palisade policy build writes it.
    expect(JSON.parse(Buffer.from(bundle.files.get('/data.json')!).toString()).palisade.envoy_rbac['envoy/authz/allow']).toHaveProperty('expressible');
    expect(compiler.opaBuilds).toBe(1);
  });

  it('does not run opa again for unchanged Rego, and again for changed Rego', async () => {
    const compiler = new PolicyCompiler({ signingKeyPem: ec.privatePem });
    await writeFile(join(dir, 'authz.yaml'), policyYaml(REGO, '  mode: enforce\n'));
    const first = await loadDirectory(dir, { policyCompiler: compiler });
    await writeFile(join(dir, 'authz.yaml'), policyYaml(REGO, '  mode: dry-run\n'));
    const second = await loadDirectory(dir, { policyCompiler: compiler });
    if (!first.valid || !second.valid) throw new Error('invalid');
    expect(compiler.opaBuilds).toBe(1);
    expect(second.result.policyBundles.get('default/backend-authz')).toEqual(first.result.policyBundles.get('default/backend-authz'));
    await writeFile(join(dir, 'authz.yaml'), policyYaml(REGO.replace('"GET"', '"HEAD"')));
    const third = await loadDirectory(dir, { policyCompiler: compiler });
    expect(third.valid).toBe(true);
    expect(compiler.opaBuilds).toBe(2);
  });

  it.each([
    ['no signing key', REGO, 'envoy/authz/allow', new PolicyCompiler({ signingKeyPem: null }), `^${NO_SIGNING_KEY_MESSAGE.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`],
    ['no policy compiler', REGO, 'envoy/authz/allow', null, 'this loader has no policy compiler'],
    ['a Rego syntax error', `${REGO}\nallow if {\n  input.x ==\n}\n`, 'envoy/authz/allow', new PolicyCompiler({ signingKeyPem: ec.privatePem }), '^opa build failed: .*policy\\.rego:9: rego_parse_error: unexpected } token'],
    ['an undefined entrypoint', REGO, 'envoy/authz/nope', new PolicyCompiler({ signingKeyPem: ec.privatePem }), '^opa build failed: entrypoint "envoy/authz/nope" does not refer to a rule or policy decision$'],
  ])('refuses inline Rego with %s at /spec/rego/inline', async (_what, rego, entrypoint, compiler, message) => {
    await writeFile(join(dir, 'authz.yaml'), policyYaml(rego, '', entrypoint));
    const errors = await errorsOf(compiler);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ file: join(dir, 'authz.yaml'), index: 0, path: '/spec/rego/inline' });
    expect(errors[0]!.message).toMatch(new RegExp(message));
  });

  it.each([
    ['both bundle and rego', '  bundle: { file: authz.tar.gz }\n', 'must set only one of bundle or rego, got bundle and rego'],
  ])('refuses %s at /spec', async (_what, extra, message) => {
    await writeFile(join(dir, 'authz.yaml'), policyYaml(REGO, extra));
    const errors = await errorsOf(new PolicyCompiler({ signingKeyPem: ec.privatePem }));
    expect(errors.map((e) => [e.path, e.message])).toEqual([['/spec', message]]);
  });

  it('refuses a Policy with neither bundle nor rego at /spec', async () => {
    await writeFile(join(dir, 'authz.yaml'), 'apiVersion: palisade.dev/v1\nkind: Policy\nmetadata: { name: p }\nspec: { entrypoint: envoy/authz/allow }\n');
    const errors = await errorsOf(null);
    expect(errors.map((e) => [e.path, e.message])).toEqual([['/spec', 'must set one of bundle (a signed bundle file) or rego (inline Rego)']]);
  });

  it.each([
    ['an RSA key', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), /must be an EC P-256 or Ed25519 private key, got rsa/],
    ['a public key', ec.publicPem, /not a PEM private key/],
  ])('refuses %s as the signing key at construction', (_what, pem, message) => {
    expect(() => new PolicyCompiler({ signingKeyPem: pem })).toThrow(expect.objectContaining({ code: 'PAL_ERR_CONFIG_INVALID_OPTION', message: expect.stringMatching(message) }));
  });

  it('a control plane with the compiler serves the compiled Policy to the sidecars and recompiles nothing on an unrelated reload', async () => {
    await writeFile(join(dir, 'authz.yaml'), policyYaml(REGO));
    const compiler = new PolicyCompiler({ signingKeyPem: ec.privatePem });
    const cp = new ControlPlane({ source: new DirectorySource({ dir, debounceMs: 10, policyCompiler: compiler }), xdsAddress: '127.0.0.1:0', logger: createLogger('silent') });
    planes.push(cp);
    await cp.start();
    const served = () => (translate(cp.state!, { kind: 'sidecar', namespace: 'default' })[POLICY_TYPE_URL] as Policy[])[0]!;
    const first = served();
    expect(first).toMatchObject({ name: 'default/backend-authz', entrypoint: 'envoy/authz/allow', mode: Policy_Mode.ENFORCE });
    expect(readBundle(first.bundle).revision).toBe(createHash('sha256').update(REGO).digest('hex').slice(0, 16));

    await writeFile(join(dir, '.authz.yaml.tmp'), policyYaml(REGO, '  mode: audit\n'));
    await rename(join(dir, '.authz.yaml.tmp'), join(dir, 'authz.yaml'));
    const end = Date.now() + 10_000;
    while (cp.status.publishes < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    expect(served().mode).toBe(Policy_Mode.AUDIT);
    expect(served().bundle).toEqual(first.bundle);
    expect(compiler.opaBuilds).toBe(1);
  });
});
