/**
 * `palisade config validate` and `palisade control --admission-*` as an operator runs them:
 * real CLI processes, real config directories, admission bundles built and signed by the
 * real opa.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULTS, REQUIRE_OWNER, cleanup, route, service, signer, tempDir, type Signed } from '../control/admission/support.ts';

const CLI = join(import.meta.dirname, '../../cli/main.ts');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

let s: Signed;
const bundles: Record<string, string> = {};
const children: ChildProcess[] = [];

beforeAll(async () => {
  s = await signer();
  bundles.owner = await s.bundle('owner', REQUIRE_OWNER, ['admission/deny']);
  bundles.defaults = await s.bundle('defaults', DEFAULTS, ['admission/patch']);
  bundles.unsigned = await s.bundle('unsigned', REQUIRE_OWNER, ['admission/deny'], true);
}, 60_000);

afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

afterAll(cleanup);

async function configDir(files: Record<string, string>): Promise<string> {
  const dir = join(await tempDir('config-cli'), 'config');
  await mkdir(dir);
  for (const [f, t] of Object.entries(files)) await writeFile(join(dir, f), t);
  return dir;
}

const admission = (...names: string[]) => [...names.flatMap((n) => ['--admission-bundle', bundles[n]!]), '--admission-verification-key', s.keyFile];

describe('palisade config validate', () => {
  it('accepts a valid directory without admission bundles (exit 0)', async () => {
    const dir = await configDir({ 'app.yaml': `${service('echo', 80)}---\n${route('web', 'echo')}` });
    const r = await cli(['config', 'validate', dir]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`config     ${dir} (2 resources)\nadmission  none\nresult     ACCEPTED\n`);
    expect(r.code).toBe(0);
  });

  it('reports schema and reference errors as the control plane does (exit 1)', async () => {
    const dir = await configDir({ 'app.yaml': `${service('echo', 70000)}---\n${route('web', 'nope')}` });
    const r = await cli(['config', 'validate', dir, '-o', 'json']);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as { accepted: boolean; invalid: string[] };
    expect(out.accepted).toBe(false);
    expect(out.invalid).toEqual([`${join(dir, 'app.yaml')}#0 /spec/port: must be <= 65535, got 70000`]);
  });

  it('shows what a validating policy would deny, with the reason (exit 1)', async () => {
    const dir = await configDir({ 'svc.yaml': `${service('echo', 80)}---\n${service('owned', 81, { owner: 'ana' })}` });
    const r = await cli(['config', 'validate', dir, ...admission('owner')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('result     DENIED (dry run: nothing applied)\n');
    expect(r.stdout).toMatch(new RegExp(`\\nDENIED\\nSOURCE +RESOURCE +BUNDLE +REASON\\n${join(dir, 'svc.yaml')}#0 +Service default/echo +${bundles.owner} +Service echo must have an owner label\\n`));
    expect(r.stdout).not.toContain('owned');
  });

  it('shows what a mutating policy would change: the patch, and with -o json the resulting document (exit 0)', async () => {
    const dir = await configDir({ 'app.yaml': `${service('echo', 80, { owner: 'ana' })}---\n${route('web', 'echo')}` });
    const table = await cli(['config', 'validate', dir, '--dry-run', ...admission('defaults', 'owner')]);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain('result     ACCEPTED (dry run: nothing applied)\n');
    expect(table.stdout).toMatch(/MUTATED\nSOURCE +RESOURCE +BUNDLE +PATCH\n.*app\.yaml#0 +Service default\/echo +\S+defaults\.tar\.gz +add \/metadata\/labels\/team "platform"\n.*app\.yaml#1 +Route default\/web +\S+ +add \/spec\/http\/0\/retries \{"attempts":2\}\n/);
    const json = await cli(['config', 'validate', dir, ...admission('defaults', 'owner'), '-o', 'json']);
    expect(json.code).toBe(0);
    const out = JSON.parse(json.stdout) as { accepted: boolean; denied: unknown[]; mutated: Array<{ resource: string; bundle: string; patch: unknown[]; document: { metadata: unknown } }>; admission: unknown };
    expect(out.accepted).toBe(true);
    expect(out.denied).toEqual([]);
    expect(out.mutated[0]).toMatchObject({ resource: 'Service default/echo', bundle: bundles.defaults, patch: [{ op: 'add', path: '/metadata/labels/team', value: 'platform' }] });
    expect(out.mutated[0]!.document.metadata).toEqual({ name: 'echo', namespace: 'default', labels: { owner: 'ana', team: 'platform' } });
    expect(out.admission).toEqual({ bundles: [
      { name: bundles.defaults, revision: '', deny: false, patch: true },
      { name: bundles.owner, revision: '', deny: true, patch: false },
    ] });
  });

  it('refuses an unsigned admission bundle (exit 1)', async () => {
    const dir = await configDir({ 'svc.yaml': service('echo', 80) });
    const r = await cli(['config', 'validate', dir, ...admission('unsigned')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`palisade config: PAL_ERR_POLICY_BUNDLE_SIGNATURE: admission bundle ${bundles.unsigned} refused: bundle is unsigned (no .signatures.json) and verification keys are configured\n`);
  });

  it.each([
    [['config'], 'a subcommand is required: validate'],
    [['config', 'check', 'x'], 'unknown subcommand "check": use validate'],
    [['config', 'validate'], 'validate needs one configuration directory, got none'],
    [['config', 'validate', 'x', '--admission-bundle', 'b.tar.gz'], '--admission-bundle needs --admission-verification-key PUB.pem: unsigned admission bundles are refused'],
    [['config', 'validate', 'x', '-o', 'yaml'], '-o/--output must be one of table, json, got "yaml"'],
  ])('exits 2 on bad flags: %j', async (args, message) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(`palisade config: ${message}`);
  });
});

/** `palisade control` with extra flags on ephemeral ports; resolves with the admin address once it is ready. */
function control(dir: string, extra: string[]): Promise<string> {
  const stateDir = join(dir, '..', 'state');
  const child = spawn(process.execPath, [CLI, 'control', '--config', dir, '--state-dir', stateDir, '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0', '--log-level', 'warn', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stderr.on('data', (d) => (out += d));
    child.stdout.on('data', (d) => {
      out += d;
      const m = /admin on http:\/\/(\S+?), config/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(Object.assign(new Error(`control exited ${code}: ${out}`), { exitCode: code, out })));
  });
}

describe('palisade control --admission-bundle', () => {
  it('refuses to start with an unsigned admission bundle', async () => {
    const dir = await configDir({ 'svc.yaml': service('echo', 80) });
    await expect(control(dir, admission('unsigned'))).rejects.toMatchObject({
      exitCode: 1,
      out: `palisade control: PAL_ERR_POLICY_BUNDLE_SIGNATURE: admission bundle ${bundles.unsigned} refused: bundle is unsigned (no .signatures.json) and verification keys are configured\n`,
    });
  });

  it('refuses to start when admission denies the first configuration', async () => {
    const dir = await configDir({ 'svc.yaml': service('echo', 80) });
    await expect(control(dir, admission('owner'))).rejects.toMatchObject({
      exitCode: 1,
      out: expect.stringContaining(`PAL_ERR_ADMISSION_DENIED: configuration denied by admission control:\n  ${join(dir, 'svc.yaml')}#0 Service default/echo: denied by ${bundles.owner}: Service echo must have an owner label`) as unknown,
    });
  });

  it('exits 2 for admission flags without a key', async () => {
    const r = await cli(['control', '--admission-bundle', 'b.tar.gz']);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('palisade control: --admission-bundle needs --admission-verification-key PUB.pem: unsigned admission bundles are refused');
  });

  it('with --admission-dry-run serves the configuration as read and reports the decisions on /api/v1/state', async () => {
    const dir = await configDir({ 'svc.yaml': service('echo', 80) });
    const admin = await control(dir, [...admission('defaults', 'owner'), '--admission-dry-run']);
    const state = (await (await fetch(`http://${admin}/api/v1/state`)).json()) as { resources: { services: string[] }; admission: Record<string, unknown> };
    expect(state.resources.services).toEqual(['default/echo']);
    expect(state.admission).toMatchObject({
      dryRun: true,
      allowed: false,
      denied: [`${join(dir, 'svc.yaml')}#0 Service default/echo: denied by ${bundles.owner}: Service echo must have an owner label`],
      mutated: [{ resource: 'Service default/echo', source: `${join(dir, 'svc.yaml')}#0`, bundle: bundles.defaults, patch: [{ op: 'add', path: '/metadata/labels', value: { team: 'platform' } }] }],
    });
  });
});
