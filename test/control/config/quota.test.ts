/**
 * The Quota kind: validated with the config (every problem at its field, naming the value),
 * defaults filled in, a serialize/parse round trip, cross-resource checks (selected Services
 * and jwtClaim providers exist, one Quota per name), and accepted by the config directory
 * loader and by `palisade config validate` as an operator runs it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDirectory } from '../../../control/config/load-directory.ts';
import { parseConfig } from '../../../control/config/parse.ts';
import { serializeConfig } from '../../../control/config/serialize.ts';
import type { QuotaResource } from '../../../control/config/schema.ts';

const CLI = join(import.meta.dirname, '../../../cli/main.ts');

const EXAMPLE = `apiVersion: palisade.dev/v1
kind: Quota
metadata: { name: api-per-tenant, namespace: default }
spec:
  selector: { services: [backend] }
  routes:
    - { name: api, pathPrefix: /api/, methods: [GET, POST] }
  descriptors:
    - key: tenant
      from: { header: x-tenant-id }
      default: anonymous
  limits:
    - name: gold
      match: { tenant: acme }
      tokens: 1000
      interval: 1m
      burst: 100
      fallbackTokens: 200
    - { name: per-tenant, tokens: 100, interval: 1s }
  scope: local
  shadow: false
  failureMode: open
  priority:
    from: { header: x-priority }
    classes: [ { name: critical, values: [critical], shedAt: 0 }, { name: normal, values: [normal], shedAt: 90 }, { name: batch, values: [batch], shedAt: 60 } ]
    default: normal
`;

const SERVICE = 'apiVersion: palisade.dev/v1\nkind: Service\nmetadata: { name: backend }\nspec: { port: 8080 }\n';
const AUTHN = `apiVersion: palisade.dev/v1
kind: RequestAuthentication
metadata: { name: jwt }
spec:
  providers:
    keycloak: { issuer: https://idp.example, jwks: { uri: "http://127.0.0.1:9/jwks" } }
`;

/** A Quota document with `spec` (indented two spaces) as written. */
function quota(spec: string, name = 'q'): string {
  return `apiVersion: palisade.dev/v1\nkind: Quota\nmetadata: { name: ${name} }\nspec:\n${spec}`;
}

const MINIMAL = '  descriptors: [{ key: client, from: { remoteAddress: true } }]\n  limits: [{ name: all, tokens: 10, interval: 1s }]\n';

function parsed(text: string): QuotaResource {
  const r = parseConfig(text, 'q.yaml');
  if (!r.valid) throw new Error(JSON.stringify(r.errors));
  return r.result[0] as QuotaResource;
}

function problems(text: string): Array<[string, string]> {
  const r = parseConfig(text, 'q.yaml');
  return r.valid ? [] : r.errors.map((e) => [e.path, e.message]);
}

describe('the Quota kind', () => {
  it('accepts the documented example with every field', () => {
    const q = parsed(EXAMPLE);
    expect(q.spec).toEqual({
      selector: { services: ['backend'] },
      routes: [{ name: 'api', pathPrefix: '/api/', methods: ['GET', 'POST'] }],
      descriptors: [{ key: 'tenant', from: { header: 'x-tenant-id' }, default: 'anonymous' }],
      limits: [
        { name: 'gold', match: { tenant: 'acme' }, tokens: 1000, interval: '1m', burst: 100, fallbackTokens: 200 },
        { name: 'per-tenant', tokens: 100, interval: '1s', burst: 0 },
      ],
      scope: 'local',
      shadow: false,
      failureMode: 'open',
      priority: {
        from: { header: 'x-priority' },
        classes: [{ name: 'critical', values: ['critical'], shedAt: 0 }, { name: 'normal', values: ['normal'], shedAt: 90 }, { name: 'batch', values: ['batch'], shedAt: 60 }],
        default: 'normal',
      },
    });
    expect(Object.isFrozen(q.spec.limits[0])).toBe(true);
  });

  it('fills in defaults: every workload, local scope, not shadow, fail open, burst 0', () => {
    expect(parsed(quota(MINIMAL)).spec).toEqual({
      selector: {},
      descriptors: [{ key: 'client', from: { remoteAddress: true } }],
      limits: [{ name: 'all', tokens: 10, interval: '1s', burst: 0 }],
      scope: 'local',
      shadow: false,
      failureMode: 'open',
    });
  });

  it('round-trips through serializeConfig and parseConfig unchanged', () => {
    const first = parseConfig(EXAMPLE, 'a.yaml');
    if (!first.valid) throw new Error('invalid');
    const again = parseConfig(serializeConfig(first.result), 'a.yaml');
    expect(again).toEqual(first);
  });

  it.each([
    ['a header', '{ header: x-tenant-id }'],
    ['a JWT claim', '{ jwtClaim: keycloak.org.id }'],
    ['the principal', '{ principal: true }'],
    ['the route', '{ route: true }'],
    ['the remote address', '{ remoteAddress: true }'],
    ['the method', '{ method: true }'],
  ])('accepts a descriptor read from %s', (_what, from) => {
    expect(problems(quota(`  descriptors: [{ key: k, from: ${from} }]\n  limits: [{ name: all, tokens: 1, interval: 24h }]\n`))).toEqual([]);
  });

  it('accepts failureMode and fallbackTokens with scope local (they have no effect there)', () => {
    expect(problems(quota(`${MINIMAL.replace('interval: 1s', 'interval: 1s, fallbackTokens: 5')}  scope: local\n  failureMode: closed\n`))).toEqual([]);
  });

  const D = '  descriptors: [{ key: tenant, from: { header: x-tenant } }]\n';
  const L = '  limits: [{ name: all, tokens: 10, interval: 1s }]\n';
  it.each([
    ['no descriptors', '  descriptors: []\n' + L, '/spec/descriptors', 'must not be empty'],
    ['nine descriptors', `  descriptors: [${Array.from({ length: 9 }, (_, i) => `{ key: k${i}, from: { method: true } }`).join(', ')}]\n${L}`, '/spec/descriptors', 'must have at most 8 items, got 9'],
    ['no limits', D + '  limits: []\n', '/spec/limits', 'must not be empty'],
    ['a descriptor without a source', D.replace('{ header: x-tenant }', '{}') + L, '/spec/descriptors/0/from', 'must set one of header, jwtClaim, principal, route, remoteAddress or method'],
    ['a descriptor with two sources', D.replace('{ header: x-tenant }', '{ header: x-tenant, method: true }') + L, '/spec/descriptors/0/from', 'must set only one of header, jwtClaim, principal, route, remoteAddress, method, got header and method'],
    ['principal: false', D.replace('{ header: x-tenant }', '{ principal: false }') + L, '/spec/descriptors/0/from/principal', 'must be true, got false'],
    ['a bad header name', D.replace('x-tenant', '"x tenant"') + L, '/spec/descriptors/0/from/header', 'must be an HTTP header name, got "x tenant"'],
    ['a jwtClaim without a claim', D.replace('{ header: x-tenant }', '{ jwtClaim: keycloak }') + L, '/spec/descriptors/0/from/jwtClaim',
      'must be "<provider>.<claim path>" (a provider name without \'.\', then the claim, nested claims separated by \'.\'), e.g. keycloak.tenant, got "keycloak"'],
    ['a jwtClaim with an empty claim segment', D.replace('{ header: x-tenant }', '{ jwtClaim: "keycloak.a..b" }') + L, '/spec/descriptors/0/from/jwtClaim',
      'must be "<provider>.<claim path>" (a provider name without \'.\', then the claim, nested claims separated by \'.\'), e.g. keycloak.tenant, got "keycloak.a..b"'],
    ['a descriptor key in upper case', D.replace('key: tenant', 'key: Tenant') + L, '/spec/descriptors/0/key',
      'must be 1-64 lowercase letters, digits, \'_\', \'.\' or \'-\', starting and ending with a letter or digit, got "Tenant"'],
    ['a duplicate descriptor key', '  descriptors: [{ key: tenant, from: { header: a } }, { key: tenant, from: { header: b } }]\n' + L, '/spec/descriptors/1/key',
      'duplicate descriptor key "tenant": also at spec.descriptors[0]'],
    ['a duplicate limit name', D + '  limits: [{ name: a, match: { tenant: x }, tokens: 1, interval: 1s }, { name: a, tokens: 1, interval: 1s }]\n', '/spec/limits/1/name',
      'duplicate limit name "a": also at spec.limits[0]'],
    ['a match on an unknown key', D + '  limits: [{ name: a, match: { tenat: x }, tokens: 1, interval: 1s }]\n', '/spec/limits/0/match/tenat',
      'unknown descriptor key "tenat"; descriptor keys: tenant'],
    ['an interval that is not whole seconds', D + '  limits: [{ name: a, tokens: 1, interval: 1500ms }]\n', '/spec/limits/0/interval', 'must be whole seconds, got "1500ms"'],
    ['an interval over 24h', D + '  limits: [{ name: a, tokens: 1, interval: 25h }]\n', '/spec/limits/0/interval', 'must be between 1s and 24h, got "25h"'],
    ['a zero interval', D + '  limits: [{ name: a, tokens: 1, interval: 0s }]\n', '/spec/limits/0/interval', 'must be a positive duration, got "0s"'],
    ['an interval without a unit', D + '  limits: [{ name: a, tokens: 1, interval: "60" }]\n', '/spec/limits/0/interval', 'must be a duration like 250ms, 1.5s, 2m or 1h, got "60"'],
    ['zero tokens', D + '  limits: [{ name: a, tokens: 0, interval: 1s }]\n', '/spec/limits/0/tokens', 'must be >= 1, got 0'],
    ['too many tokens', D + '  limits: [{ name: a, tokens: 1000000001, interval: 1s }]\n', '/spec/limits/0/tokens', 'must be <= 1000000000, got 1000000001'],
    ['a negative burst', D + '  limits: [{ name: a, tokens: 1, interval: 1s, burst: -1 }]\n', '/spec/limits/0/burst', 'must be >= 0, got -1'],
    ['a limit behind a catch-all', D + '  limits: [{ name: all, tokens: 1, interval: 1s }, { name: acme, match: { tenant: acme }, tokens: 5, interval: 1s }]\n', '/spec/limits/1',
      'limit "acme" is never applied: the earlier limit "all" matches every request it matches'],
    ['a limit behind one with fewer match entries', '  descriptors: [{ key: a, from: { header: x-a } }, { key: b, from: { method: true } }]\n'
      + '  limits: [{ name: acme, match: { a: acme }, tokens: 1, interval: 1s }, { name: acme-get, match: { b: GET, a: acme }, tokens: 5, interval: 1s }]\n', '/spec/limits/1',
      'limit "acme-get" is never applied: the earlier limit "acme" matches every request it matches'],
    ['a duplicate route name', D + L + '  routes: [{ name: api, pathPrefix: /a }, { name: api, pathPrefix: /b }]\n', '/spec/routes/1/name', 'duplicate route name "api": also at spec.routes[0]'],
    ['a route path without /', D + L + '  routes: [{ name: api, pathPrefix: api }]\n', '/spec/routes/0/pathPrefix', 'must be a path starting with \'/\', got "api"'],
    ['a lower-case method', D + L + '  routes: [{ name: api, pathPrefix: /, methods: [get] }]\n', '/spec/routes/0/methods/0', 'must be an upper-case HTTP method such as GET or POST, got "get"'],
    ['an unknown scope', D + L + '  scope: cluster\n', '/spec/scope', 'must be one of "local", "global"; got "cluster"'],
    ['an unknown failure mode', D + L + '  failureMode: deny\n', '/spec/failureMode', 'must be one of "open", "closed"; got "deny"'],
    ['a default class not listed', D + L + '  priority: { from: { header: x-p }, classes: [{ name: high, values: [h], shedAt: 0 }], default: low }\n', '/spec/priority/default',
      'must name a class (high), got "low"'],
    ['a duplicate class name', D + L + '  priority: { from: { header: x-p }, classes: [{ name: high, values: [h], shedAt: 0 }, { name: high, values: [x], shedAt: 50 }], default: high }\n',
      '/spec/priority/classes/1/name', 'duplicate class name "high": also at spec.priority.classes[0]'],
    ['a value in two classes', D + L + '  priority: { from: { header: x-p }, classes: [{ name: high, values: [h], shedAt: 0 }, { name: low, values: [h], shedAt: 50 }], default: high }\n',
      '/spec/priority/classes/1/values/0', 'value "h" already selects class "high"'],
    ['shedAt over 100', D + L + '  priority: { from: { header: x-p }, classes: [{ name: high, values: [h], shedAt: 101 }], default: high }\n', '/spec/priority/classes/0/shedAt', 'must be <= 100, got 101'],
    ['a priority source with two attributes', D + L + '  priority: { from: { header: x-p, route: true }, classes: [{ name: high, values: [h], shedAt: 0 }], default: high }\n',
      '/spec/priority/from', 'must set only one of header, jwtClaim, principal, route, remoteAddress, method, got header and route'],
    ['an unknown field', D + L + '  shadw: true\n', '/spec/shadw', 'unknown field "shadw" (did you mean "shadow"?)'],
  ])('refuses %s, naming the field and the value', (_what, spec, path, message) => {
    expect(problems(quota(spec))).toEqual([[path, message]]);
  });

  it('reports every problem of a document at once', () => {
    const spec = '  descriptors: [{ key: a, from: { header: x } }, { key: a, from: { method: true } }]\n'
      + '  limits: [{ name: l, match: { b: x }, tokens: 1, interval: 2500ms }]\n'
      + '  priority: { from: { method: true }, classes: [{ name: c, values: [GET], shedAt: 0 }], default: d }\n';
    expect(problems(quota(spec)).map(([p]) => p)).toEqual(['/spec/descriptors/1/key', '/spec/limits/0/match/b', '/spec/limits/0/interval', '/spec/priority/default']);
  });
});

describe('Quotas in a config directory', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'palisade-quota-config-'));
    await write('services.yaml', SERVICE);
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes atomically: a temp file renamed into place. */
  async function write(file: string, text: string): Promise<void> {
    await writeFile(join(dir, `.${file}.tmp`), text);
    await rename(join(dir, `.${file}.tmp`), join(dir, file));
  }

  async function errorsOf(): Promise<Array<[string, string]>> {
    const r = await loadDirectory(dir);
    return r.valid ? [] : r.errors.map((e) => [e.path, e.message]);
  }

  it('loads into DesiredState.quotas by namespace/name', async () => {
    await write('authn.yaml', AUTHN);
    await write('quota.yaml', `${EXAMPLE}---\n${quota(MINIMAL.replace('{ remoteAddress: true }', '{ jwtClaim: keycloak.tenant }'), 'by-claim')}`);
    const r = await loadDirectory(dir);
    if (!r.valid) throw new Error(JSON.stringify(r.errors));
    expect([...r.result.quotas.keys()]).toEqual(['default/api-per-tenant', 'default/by-claim']);
  });

  it('refuses a selector naming a Service that does not exist', async () => {
    await write('quota.yaml', quota(`  selector: { services: [nope] }\n${MINIMAL}`));
    expect(await errorsOf()).toEqual([['/spec/selector/services/0', 'Service "nope" not found in namespace "default"']]);
  });

  it('refuses a jwtClaim of a provider no RequestAuthentication of the namespace has', async () => {
    await write('quota.yaml', quota(`${MINIMAL.replace('{ remoteAddress: true }', '{ jwtClaim: auth0.tenant }')}  priority: { from: { jwtClaim: auth0.tier }, classes: [{ name: a, values: [x], shedAt: 0 }], default: a }\n`));
    expect(await errorsOf()).toEqual([
      ['/spec/descriptors/0/from/jwtClaim', 'no RequestAuthentication in namespace "default" has a provider "auth0", got "auth0.tenant"'],
      ['/spec/priority/from/jwtClaim', 'no RequestAuthentication in namespace "default" has a provider "auth0", got "auth0.tier"'],
    ]);
  });

  it('refuses two Quotas of one name, naming the first', async () => {
    await write('a.yaml', quota(MINIMAL));
    await write('b.yaml', quota(MINIMAL));
    expect(await errorsOf()).toEqual([['/metadata/name', `duplicate Quota "default/q": also defined at ${join(dir, 'a.yaml')}#0`]]);
  });
});

describe('palisade config validate with a Quota', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'palisade-quota-cli-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
      });
    });
  }

  it('accepts a directory with a Quota (exit 0)', async () => {
    await writeFile(join(dir, 'app.yaml'), `${SERVICE}---\n${EXAMPLE}`);
    const r = await cli(['config', 'validate', dir]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`config     ${dir} (2 resources)\nadmission  none\nresult     ACCEPTED\n`);
    expect(r.code).toBe(0);
  });

  it('reports an invalid Quota at its field (exit 1)', async () => {
    await writeFile(join(dir, 'app.yaml'), `${SERVICE}---\n${EXAMPLE.replace('match: { tenant: acme }', 'match: { tenantx: acme }')}`);
    const r = await cli(['config', 'validate', dir, '-o', 'json']);
    expect(r.code).toBe(1);
    expect((JSON.parse(r.stdout) as { invalid: string[] }).invalid).toEqual([`${join(dir, 'app.yaml')}#1 /spec/limits/0/match/tenantx: unknown descriptor key "tenantx"; descriptor keys: tenant`]);
  });
});
