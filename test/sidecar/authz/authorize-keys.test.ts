/**
 * The Authorizer reads a request only as far as its policies need: no key source and no
 * description for a request no policy judges, the key source alone on a decision-cache hit,
 * the description on a miss (its input is evaluated). A real policy, built by the real `opa`.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBundle } from '../../../policies/bundle.ts';
import { DecisionCache } from '../../../policies/decision-cache.ts';
import { PolicyEngine } from '../../../policies/evaluator.ts';
import { buildInput, type RequestDescription } from '../../../policies/input.ts';
import { ALLOW_NOTHING, Authorizer } from '../../../sidecar/authz/authorize.ts';
import type { AuthzConfig, CompiledPolicy } from '../../../sidecar/authz/authz-config.ts';
import { descriptionKeys, type KeySource } from '../../../sidecar/authz/description-keys.ts';
import { cleanup, opaBuild } from '../../policies/support.ts';

const REGO = { 'authz.rego': 'package envoy.authz\ndefault allow := false\nallow if input.attributes.request.http.method == "GET"\n' };
const CACHE_KEYS = ['attributes.request.http.method', 'attributes.source.principal'];

let engine: PolicyEngine;
let config: AuthzConfig;

beforeAll(async () => {
  engine = await PolicyEngine.create(readBundle(await opaBuild(REGO, { entrypoints: ['envoy/authz/allow'], revision: 'r1' })), { entrypoint: 'envoy/authz/allow' });
  const policy: CompiledPolicy = Object.freeze({
    name: 'default/admin-only', mode: 'enforce', revision: engine.revision, engine, cache: DecisionCache.create({ cacheKeys: CACHE_KEYS }),
    descriptionKeys: descriptionKeys(CACHE_KEYS), services: Object.freeze([]), pathPrefixes: Object.freeze(['/admin']), decisionLogPercent: 0, engineKey: 'test',
  });
  config = Object.freeze({ policies: Object.freeze([policy]) });
});

afterAll(async () => {
  engine.close();
  await cleanup();
});

function request(method: string, path: string, caller: string): RequestDescription {
  return {
    method, path, headers: { host: 'api' }, host: 'api', scheme: 'https', protocol: 'HTTP/1.1', sourceAddress: '127.0.0.1', sourcePort: 5000,
    destinationAddress: '127.0.0.1', destinationPort: 8080, sourcePrincipal: `spiffe://mesh.local/ns/shop/sa/${caller}`, destinationPrincipal: null, requestId: 'r',
  };
}

describe('Authorizer.authorize with a key source', () => {
  it('reads nothing of a request no policy judges, only the key source on a hit, and the description on a miss', () => {
    const authorizer = new Authorizer(pino({ level: 'silent' }));
    const calls = { describe: 0, keys: 0 };
    const judge = (method: string, path: string, caller = 'web') => {
      const d = request(method, path, caller);
      return authorizer.authorize(config, path, () => (calls.describe++, d), buildInput, undefined, (): KeySource => (calls.keys++, d));
    };

    expect(judge('GET', '/public')).toBe(ALLOW_NOTHING);
    expect(calls).toEqual({ describe: 0, keys: 0 });

    expect(judge('GET', '/admin/a').allowed).toBe(true);
    expect(calls).toEqual({ describe: 1, keys: 1 });

    // The same key: a hit, answered from the key source alone.
    expect(judge('GET', '/admin/b').allowed).toBe(true);
    expect(calls).toEqual({ describe: 1, keys: 2 });

    // Another key (another caller): a miss, evaluated on the description's input; then a hit.
    expect(judge('GET', '/admin/a', 'api').allowed).toBe(true);
    expect(calls).toEqual({ describe: 2, keys: 3 });
    expect(judge('GET', '/admin/b', 'api').allowed).toBe(true);
    expect(calls).toEqual({ describe: 2, keys: 4 });

    // A denial is logged with the request's description, hit or miss.
    expect(judge('DELETE', '/admin/a').allowed).toBe(false);
    expect(calls).toEqual({ describe: 3, keys: 5 });
    expect(judge('DELETE', '/admin/b').allowed).toBe(false);
    expect(calls).toEqual({ describe: 4, keys: 6 });
  });
});
