/**
 * The RequestAuthentication kind: validated with the config (errors at the exact field), a
 * jwks.file read with it (relative to the document), and translated into
 * palisade.v1.RequestAuthentication resources (providers as Envoy JwtProviders) for the sidecar
 * groups of its namespace only, valid under PGV as the control plane checks them.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDirectory } from '../../../control/config/load-directory.ts';
import { canonicalState, type DesiredState } from '../../../control/config/state.ts';
import { translate } from '../../../control/translate/translator.ts';
import { REQUEST_AUTHENTICATION_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { getResourceType, TYPE_REGISTRY } from '../../../xds/resources/registry.ts';
import { validateMessage } from '../../../xds/validate/pgv.ts';
import type { RequestAuthentication } from '../../../xds/gen/palisade/v1/request_authentication_pb.js';
import { createRequestAuthenticationValidator } from '../../../sidecar/authn/request-authentication-validator.ts';

let dir: string;
const SERVICES = `apiVersion: palisade.dev/v1
kind: Service
metadata: { name: backend }
spec: { port: 8080 }
`;
const JWKS = JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', kid: 'k1', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' }] });

function doc(spec: string, name = 'backend-jwt'): string {
  return `apiVersion: palisade.dev/v1\nkind: RequestAuthentication\nmetadata: { name: ${name} }\nspec:\n${spec}`;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-authn-config-'));
  await mkdir(join(dir, 'authn'));
  await writeFile(join(dir, 'services.yaml'), SERVICES);
  await writeFile(join(dir, 'authn', 'idp.jwks'), JWKS);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(): Promise<DesiredState> {
  const r = await loadDirectory(dir);
  if (!r.valid) throw new Error(JSON.stringify(r.errors));
  return r.result;
}

function sidecarResources(state: DesiredState, namespace = 'default'): RequestAuthentication[] | undefined {
  return translate(state, { kind: 'sidecar', namespace })[REQUEST_AUTHENTICATION_TYPE_URL] as RequestAuthentication[] | undefined;
}

describe('the RequestAuthentication kind', () => {
  it('translates every provider field into an Envoy JwtProvider for the sidecars of its namespace', async () => {
    await writeFile(join(dir, 'authn', 'jwt.yaml'), doc(`  selector: { services: [backend] }
  required: true
  providers:
    idp:
      issuer: https://idp.example
      audiences: [backend, api]
      jwks: { uri: "http://127.0.0.1:9/idp.jwks", cacheDuration: 10m, timeout: 2s }
      fromHeaders: [{ name: x-token }]
      fromParams: [access_token]
      forward: false
      forwardPayloadHeader: x-jwt-payload
      claimToHeaders: [{ claim: sub, header: x-user }, { claim: org.id, header: x-org }]
      clockSkew: 30s
`));
    const state = await load();
    const resources = sidecarResources(state)!;
    expect(resources.map((r) => r.name)).toEqual(['default/backend-jwt']);
    const r = resources[0]!;
    expect(r).toMatchObject({ services: ['backend'], required: true });
    const p = r.providers['idp']!;
    expect(p).toMatchObject({
      issuer: 'https://idp.example', audiences: ['backend', 'api'], forward: false, fromParams: ['access_token'],
      forwardPayloadHeader: 'x-jwt-payload', payloadInMetadata: 'idp', clockSkewSeconds: 30,
    });
    expect(p.fromHeaders.map((h) => [h.name, h.valuePrefix])).toEqual([['x-token', '']]);
    expect(p.claimToHeaders.map((c) => [c.claimName, c.headerName])).toEqual([['sub', 'x-user'], ['org.id', 'x-org']]);
    expect(p.jwksSourceSpecifier.case).toBe('remoteJwks');
    if (p.jwksSourceSpecifier.case !== 'remoteJwks') return;
    const remote = p.jwksSourceSpecifier.value;
    expect(remote.httpUri?.uri).toBe('http://127.0.0.1:9/idp.jwks');
    expect(remote.httpUri?.timeout?.seconds).toBe(2n);
    expect(remote.cacheDuration?.seconds).toBe(600n);
    // Valid for the control plane (PGV) and for the sidecar's validator.
    expect(validateMessage(getResourceType(REQUEST_AUTHENTICATION_TYPE_URL).schema, r, { registry: TYPE_REGISTRY })).toEqual({ valid: true });
    expect(createRequestAuthenticationValidator()(r)).toEqual([]);
    // Other namespaces' sidecars, Envoys and gRPC clients get none.
    expect(sidecarResources(state, 'shop')).toBeUndefined();
    expect(translate(state, { kind: 'envoy', namespace: 'default' })[REQUEST_AUTHENTICATION_TYPE_URL]).toBeUndefined();
    expect(translate(state, { kind: 'grpc', namespace: 'default' })[REQUEST_AUTHENTICATION_TYPE_URL]).toBeUndefined();
  });

  it('defaults: every workload, not required, Authorization Bearer, forward, 60s skew, 5m cache, 5s timeout', async () => {
    await writeFile(join(dir, 'authn', 'jwt.yaml'), doc('  providers:\n    idp: { issuer: https://idp.example, jwks: { uri: "https://idp.example/jwks" } }\n'));
    const state = await load();
    expect(state.requestAuthentications.get('default/backend-jwt')!.spec).toMatchObject({ required: false, selector: {} });
    const r = sidecarResources(state)![0]!;
    expect(r).toMatchObject({ services: [], required: false });
    const p = r.providers['idp']!;
    expect(p).toMatchObject({ forward: true, clockSkewSeconds: 60, audiences: [], fromParams: [], forwardPayloadHeader: '' });
    expect(p.fromHeaders.map((h) => [h.name, h.valuePrefix])).toEqual([['authorization', 'Bearer ']]);
    if (p.jwksSourceSpecifier.case !== 'remoteJwks') throw new Error('remote expected');
    expect([p.jwksSourceSpecifier.value.cacheDuration?.seconds, p.jwksSourceSpecifier.value.httpUri?.timeout?.seconds]).toEqual([300n, 5n]);
  });

  it('sends an inline JWKS and a jwks.file (read relative to the document) as local_jwks', async () => {
    await writeFile(join(dir, 'authn', 'jwt.yaml'), doc(`  providers:
    inline: { issuer: a, jwks: { inline: '${JWKS}' } }
    file: { issuer: b, jwks: { file: idp.jwks } }
`));
    const state = await load();
    const r = sidecarResources(state)![0]!;
    for (const name of ['inline', 'file']) {
      const s = r.providers[name]!.jwksSourceSpecifier;
      expect(s.case).toBe('localJwks');
      if (s.case === 'localJwks') expect(s.value.specifier).toEqual({ case: 'inlineString', value: JWKS });
    }
    expect(createRequestAuthenticationValidator()(r)).toEqual([]);
    // The file's text, not its name, is part of the state.
    const before = canonicalState(state);
    await writeFile(join(dir, 'authn', 'idp.jwks'), JSON.stringify({ keys: [] }));
    expect(canonicalState(await load())).not.toBe(before);
  });

  it.each([
    ['no providers', '  providers: {}\n', '/spec/providers', /at least 1 entry/],
    ['a bad provider name', '  providers:\n    "bad name": { issuer: a, jwks: { uri: "http://x/" } }\n', '/spec/providers/bad name', /invalid key "bad name": must be a provider name/],
    ['no issuer', '  providers:\n    idp: { jwks: { uri: "http://x/" } }\n', '/spec/providers/idp/issuer', /missing required field "issuer"/],
    ['no JWKS source', '  providers:\n    idp: { issuer: a, jwks: {} }\n', '/spec/providers/idp/jwks', /must set one of uri, inline or file/],
    ['two JWKS sources', `  providers:\n    idp: { issuer: a, jwks: { uri: "http://x/", file: idp.jwks } }\n`, '/spec/providers/idp/jwks', /must set only one of uri, inline or file, got uri and file/],
    ['a non-http URI', '  providers:\n    idp: { issuer: a, jwks: { uri: "ftp://x/" } }\n', '/spec/providers/idp/jwks/uri', /must be an http:\/\/ or https:\/\/ URL/],
    ['an inline text that is no JWKS', `  providers:\n    idp: { issuer: a, jwks: { inline: '{"k": 1}' } }\n`, '/spec/providers/idp/jwks/inline', /must be a JWKS: a JSON object with a "keys" array/],
    ['a cache duration on an inline JWKS', `  providers:\n    idp: { issuer: a, jwks: { inline: '${JWKS}', cacheDuration: 5m } }\n`, '/spec/providers/idp/jwks/cacheDuration', /applies to jwks.uri only/],
    ['a zero clock skew', '  providers:\n    idp: { issuer: a, jwks: { uri: "http://x/" }, clockSkew: 0s }\n', '/spec/providers/idp/clockSkew', /must be a positive duration/],
    ['a bad claim header', '  providers:\n    idp: { issuer: a, jwks: { uri: "http://x/" }, claimToHeaders: [{ claim: sub, header: "x user" }] }\n', '/spec/providers/idp/claimToHeaders/0/header', /must be an HTTP header name/],
    ['a bad claim', '  providers:\n    idp: { issuer: a, jwks: { uri: "http://x/" }, claimToHeaders: [{ claim: "a..b", header: x-a }] }\n', '/spec/providers/idp/claimToHeaders/0/claim', /must be a claim name/],
    ['two providers of one issuer', '  providers:\n    a: { issuer: same, jwks: { uri: "http://x/" } }\n    b: { issuer: same, jwks: { uri: "http://y/" } }\n', '/spec/providers/b/issuer', /already used by provider "a"/],
    ['an unknown field', '  providers:\n    idp: { issuer: a, jwks: { uri: "http://x/" }, fromCookies: [c] }\n', '/spec/providers/idp/fromCookies', /unknown field/],
    ['an unknown Service', '  selector: { services: [nope] }\n  providers:\n    idp: { issuer: a, jwks: { uri: "http://x/" } }\n', '/spec/selector/services/0', /Service "nope" not found in namespace "default"/],
    ['a missing jwks.file', '  providers:\n    idp: { issuer: a, jwks: { file: missing.json } }\n', '/spec/providers/idp/jwks/file', /JWKS file .*missing\.json does not exist/],
  ])('refuses %s at the field', async (_what, spec, path, message) => {
    await writeFile(join(dir, 'authn', 'jwt.yaml'), doc(spec));
    const r = await loadDirectory(dir);
    expect(r.valid).toBe(false);
    if (r.valid) return;
    const e = r.errors.find((x) => x.path === path);
    expect(e, JSON.stringify(r.errors)).toBeDefined();
    expect(e!.message).toMatch(message);
    expect(e!.file).toBe(join(dir, 'authn', 'jwt.yaml'));
  });

  it('refuses a jwks.file that is not a JWKS', async () => {
    await writeFile(join(dir, 'authn', 'idp.jwks'), 'not json');
    await writeFile(join(dir, 'authn', 'jwt.yaml'), doc('  providers:\n    idp: { issuer: a, jwks: { file: idp.jwks } }\n'));
    const r = await loadDirectory(dir);
    expect(r.valid ? [] : r.errors.map((e) => [e.path, e.message])).toEqual([['/spec/providers/idp/jwks/file', expect.stringMatching(/idp\.jwks must be a JWKS in JSON/)]]);
  });
});

describe('the sidecar validator of palisade.v1.RequestAuthentication', () => {
  it('NACKs what the authenticator cannot compile, naming each field', async () => {
    await writeFile(join(dir, 'authn', 'jwt.yaml'), doc(`  providers:\n    idp: { issuer: a, jwks: { inline: '${JWKS}' } }\n`));
    const r = sidecarResources(await load())![0]!;
    r.name = 'bad';
    r.providers['idp']!.fromCookies = ['session'];
    r.providers['idp']!.jwksSourceSpecifier = { case: 'localJwks', value: { ...(r.providers['idp']!.jwksSourceSpecifier.value as object), specifier: { case: 'inlineString', value: '{}' } } as never };
    expect(createRequestAuthenticationValidator()(r)).toEqual([
      'name: must be <namespace>/<name>, got "bad"',
      'providers["idp"].local_jwks.inline_string: not a JWKS: a JSON object with a "keys" array is required',
      'providers["idp"].from_cookies: not supported by the sidecar',
    ]);
  });
});
