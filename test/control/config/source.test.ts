import { once } from 'node:events';
import { cp, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConfigError } from '../../../control/config/config-error.ts';
import { loadDirectory } from '../../../control/config/load-directory.ts';
import { DirectorySource } from '../../../control/config/source.ts';
import type { DirectorySourceOptions, ResourceSource } from '../../../control/config/source.ts';
import { canonicalState } from '../../../control/config/state.ts';
import type { DesiredState } from '../../../control/config/state.ts';

const FIXTURES = fileURLToPath(new URL('../../fixtures/config', import.meta.url));
const DEBOUNCE_MS = 20;
const WAIT_MS = 5_000;

const SERVICE = (name: string, port: number) =>
  `apiVersion: palisade.dev/v1\nkind: Service\nmetadata:\n  name: ${name}\nspec:\n  port: ${port}\n  endpoints:\n    - address: 127.0.0.1\n      port: ${port}\n`;

let dir: string;
let source: DirectorySource | null;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-config-'));
  await cp(FIXTURES, dir, { recursive: true });
  source = null;
});

afterEach(async () => {
  await source?.close();
  await rm(dir, { recursive: true, force: true });
});

async function started(options: Partial<DirectorySourceOptions> = {}): Promise<DirectorySource> {
  source = new DirectorySource({ dir, debounceMs: DEBOUNCE_MS, ...options });
  await source.start();
  return source;
}

function nextUpdate(src: ResourceSource): Promise<DesiredState> {
  return once(src as DirectorySource, 'update', { signal: AbortSignal.timeout(WAIT_MS) }).then(([state]) => state as DesiredState);
}

function nextRejected(src: ResourceSource): Promise<ConfigError[]> {
  return once(src as DirectorySource, 'rejected', { signal: AbortSignal.timeout(WAIT_MS) }).then(([errors]) => errors as ConfigError[]);
}

/** Records every event, to assert what did not happen. */
function record(src: DirectorySource): Array<['update', DesiredState] | ['rejected', ConfigError[]]> {
  const events: Array<['update', DesiredState] | ['rejected', ConfigError[]]> = [];
  src.on('update', (s) => events.push(['update', s]));
  src.on('rejected', (e) => events.push(['rejected', e]));
  return events;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function editFile(path: string, from: string, to: string): Promise<void> {
  const text = await readFile(path, 'utf8');
  expect(text).toContain(from);
  await writeFile(path, text.replace(from, to));
}

describe('DirectorySource: start', () => {
  it('loads the directory before resolving, without emitting', async () => {
    source = new DirectorySource({ dir, debounceMs: DEBOUNCE_MS });
    const events = record(source);
    await source.start();
    const expected = await loadDirectory(dir);
    expect(expected.valid).toBe(true);
    if (!expected.valid) return;
    expect(canonicalState(source.current())).toBe(canonicalState(expected.result));
    expect([...source.current().services.keys()]).toEqual(['default/echo', 'default/web']);
    await sleep(DEBOUNCE_MS * 5);
    expect(events).toEqual([]);
  });

  it('returns the same promise when started twice', async () => {
    source = new DirectorySource({ dir });
    const first = source.start();
    expect(source.start()).toBe(first);
    await first;
  });

  it('throws PAL_ERR_CONFIG_SOURCE_NOT_STARTED from current() before start', () => {
    source = new DirectorySource({ dir });
    expect(() => source?.current()).toThrow(expect.objectContaining({ code: 'PAL_ERR_CONFIG_SOURCE_NOT_STARTED' }));
  });

  it('rejects a missing directory with PAL_ERR_CONFIG_INVALID', async () => {
    const missing = join(dir, 'missing');
    source = new DirectorySource({ dir: missing });
    await expect(source.start()).rejects.toMatchObject({
      code: 'PAL_ERR_CONFIG_INVALID',
      message: `invalid configuration in ${missing} (1 error):\n  ${missing}#0: config directory does not exist`,
      errors: [{ file: missing, index: 0, path: '', message: 'config directory does not exist' }],
    });
    expect(() => source?.current()).toThrow(expect.objectContaining({ code: 'PAL_ERR_CONFIG_SOURCE_NOT_STARTED' }));
  });

  it('rejects a file given as the directory', async () => {
    const file = join(dir, 'mesh.yaml');
    source = new DirectorySource({ dir: file });
    await expect(source.start()).rejects.toMatchObject({
      code: 'PAL_ERR_CONFIG_INVALID',
      errors: [{ file, index: 0, path: '', message: 'config path is not a directory' }],
    });
  });

  it('rejects an invalid directory, listing every error in the message', async () => {
    await editFile(join(dir, 'services.yaml'), 'port: 8080\n  endpoints', 'port: 80800\n  endpoints');
    await writeFile(join(dir, 'zz.yaml'), 'kind: [\n');
    source = new DirectorySource({ dir });
    const error = await source.start().then(
      () => null,
      (err: unknown) => err as Error & { code: string; errors: ConfigError[] },
    );
    expect(error?.code).toBe('PAL_ERR_CONFIG_INVALID');
    expect(error?.errors).toEqual([
      { file: join(dir, 'services.yaml'), index: 1, path: '/spec/port', message: 'must be <= 65535, got 80800' },
      { file: join(dir, 'zz.yaml'), index: 0, path: '', message: 'malformed YAML: Flow sequence in block collection must be sufficiently indented and end with a ] at line 2, column 1' },
    ]);
    expect(error?.message).toBe(
      [
        `invalid configuration in ${dir} (2 errors):`,
        `  ${join(dir, 'services.yaml')}#1 /spec/port: must be <= 65535, got 80800`,
        `  ${join(dir, 'zz.yaml')}#0: malformed YAML: Flow sequence in block collection must be sufficiently indented and end with a ] at line 2, column 1`,
      ].join('\n'),
    );
  });

  it('rejects a dangling reference between files', async () => {
    await rm(join(dir, 'services.yaml'));
    source = new DirectorySource({ dir });
    await expect(source.start()).rejects.toMatchObject({
      code: 'PAL_ERR_CONFIG_INVALID',
      errors: [
        { file: join(dir, 'routes.yaml'), index: 0, path: '/spec/http/0/backends/0/service', message: 'Service "echo" not found in namespace "default"' },
        { file: join(dir, 'routes.yaml'), index: 0, path: '/spec/http/1/backends/0/service', message: 'Service "web" not found in namespace "default"' },
      ],
    });
  });

  it('reads *.yaml, *.yml and *.json below the directory, skipping dot-entries and other files', async () => {
    await mkdir(join(dir, 'extra', 'deeper'), { recursive: true });
    await mkdir(join(dir, '.git'));
    await writeFile(join(dir, 'extra', 'a.yml'), SERVICE('a', 81));
    await writeFile(join(dir, 'extra', 'deeper', 'b.JSON'), JSON.stringify({ apiVersion: 'palisade.dev/v1', kind: 'Service', metadata: { name: 'b' }, spec: { port: 82 } }));
    await writeFile(join(dir, '.services.yaml.swp'), 'not: [yaml');
    await writeFile(join(dir, '.git', 'config.yaml'), 'not: [yaml');
    await writeFile(join(dir, 'README.md'), '# not: [yaml');
    await writeFile(join(dir, 'empty.yaml'), '');
    const src = await started();
    expect([...src.current().services.keys()]).toEqual(['default/a', 'default/b', 'default/echo', 'default/web']);
    expect(src.current().services.get('default/b')?.source).toEqual({ file: join(dir, 'extra', 'deeper', 'b.JSON'), index: 0 });
  });
});

describe('DirectorySource: watching', () => {
  it('emits update when a file is edited in place', async () => {
    const src = await started();
    const update = nextUpdate(src);
    await editFile(join(dir, 'services.yaml'), 'port: 8080\n  endpoints', 'port: 9090\n  endpoints');
    const state = await update;
    expect(state.services.get('default/web')?.spec.port).toBe(9090);
    expect(src.current()).toBe(state);
  });

  it('emits rejected for a broken file and keeps the last good state', async () => {
    const src = await started();
    const before = src.current();
    const rejected = nextRejected(src);
    await writeFile(join(dir, 'routes.yaml'), 'apiVersion: palisade.dev/v1\nkind: Route\nmetadata: {name: demo}\nspec:\n  hosts: [demo.local]\n  http: []\n');
    expect(await rejected).toEqual([{ file: join(dir, 'routes.yaml'), index: 0, path: '/spec/http', message: 'must not be empty' }]);
    expect(src.current()).toBe(before);

    const update = nextUpdate(src);
    await writeFile(join(dir, 'routes.yaml'), 'apiVersion: palisade.dev/v1\nkind: Route\nmetadata: {name: demo}\nspec:\n  hosts: [demo.local]\n  http: [{backends: [{service: web}]}]\n');
    expect([...(await update).routes.values()].map((r) => r.spec.hosts)).toEqual([['demo.local']]);
  });

  it('emits recovered when a refused change is undone, with the state unchanged', async () => {
    const src = await started();
    const before = src.current();
    const original = await readFile(join(dir, 'routes.yaml'), 'utf8');
    const rejected = nextRejected(src);
    await writeFile(join(dir, 'routes.yaml'), 'kind: Route\nmetadata: { name: x\n');
    await rejected;
    const recovered = once(src, 'recovered', { signal: AbortSignal.timeout(WAIT_MS) });
    const events = record(src);
    await writeFile(join(dir, 'routes.yaml'), original);
    await recovered;
    expect(events).toEqual([]);
    expect(src.current()).toBe(before);
  });

  it('emits rejected for a change that breaks a reference, naming the field', async () => {
    const src = await started();
    const before = src.current();
    const rejected = nextRejected(src);
    await editFile(join(dir, 'routes.yaml'), '- service: web', '- service: reviews');
    expect(await rejected).toEqual([
      { file: join(dir, 'routes.yaml'), index: 0, path: '/spec/http/1/backends/0/service', message: 'Service "reviews" not found in namespace "default"' },
    ]);
    expect(src.current()).toBe(before);
  });

  it('removes the resources of a deleted file', async () => {
    const src = await started();
    const update = nextUpdate(src);
    await rm(join(dir, 'routes.yaml'));
    const state = await update;
    expect(state.routes.size).toBe(0);
    expect([...state.services.keys()]).toEqual(['default/echo', 'default/web']);
  });

  it('picks up an atomic rename-save, and in-place writes to the same file after it', async () => {
    const src = await started();
    const file = join(dir, 'mesh.yaml');
    const text = await readFile(file, 'utf8');

    let update = nextUpdate(src);
    await writeFile(join(dir, '.mesh.yaml.tmp'), text.replace('mode: STRICT', 'mode: PERMISSIVE'));
    await rename(join(dir, '.mesh.yaml.tmp'), file);
    expect((await update).mesh?.spec.mtls.mode).toBe('PERMISSIVE');

    // Node 24's recursive fs.watch on Linux loses a file replaced by rename; a per-directory watch does not.
    update = nextUpdate(src);
    await writeFile(file, text.replace('trustDomain: palisade.local', 'trustDomain: example.org'));
    expect((await update).mesh?.spec).toEqual({ trustDomain: 'example.org', mtls: { mode: 'STRICT' } });
  });

  it('watches directories created after start, and files in them', async () => {
    const src = await started();
    let update = nextUpdate(src);
    await mkdir(join(dir, 'team', 'a'), { recursive: true });
    await writeFile(join(dir, 'team', 'a', 'svc.yaml'), SERVICE('extra', 81));
    expect([...(await update).services.keys()]).toEqual(['default/echo', 'default/extra', 'default/web']);

    update = nextUpdate(src);
    await writeFile(join(dir, 'team', 'a', 'svc.yaml'), SERVICE('extra', 82));
    expect((await update).services.get('default/extra')?.spec.port).toBe(82);

    update = nextUpdate(src);
    await rm(join(dir, 'team'), { recursive: true });
    expect((await update).services.has('default/extra')).toBe(false);
  });

  it('follows a ConfigMap-style ..data symlink swap', async () => {
    const mounted = await mkdtemp(join(tmpdir(), 'palisade-configmap-'));
    try {
      await mkdir(join(mounted, '..v1'));
      await cp(FIXTURES, join(mounted, '..v1'), { recursive: true });
      await symlink('..v1', join(mounted, '..data'));
      for (const name of ['mesh.yaml', 'services.yaml', 'routes.yaml']) await symlink(join('..data', name), join(mounted, name));
      source = new DirectorySource({ dir: mounted, debounceMs: DEBOUNCE_MS });
      await source.start();
      expect([...source.current().services.keys()]).toEqual(['default/echo', 'default/web']);

      await mkdir(join(mounted, '..v2'));
      await cp(FIXTURES, join(mounted, '..v2'), { recursive: true });
      await editFile(join(mounted, '..v2', 'mesh.yaml'), 'mode: STRICT', 'mode: PERMISSIVE');
      const update = nextUpdate(source);
      await symlink('..v2', join(mounted, '..data_tmp'));
      await rename(join(mounted, '..data_tmp'), join(mounted, '..data'));
      expect((await update).mesh?.spec.mtls.mode).toBe('PERMISSIVE');
    } finally {
      await source?.close();
      await rm(mounted, { recursive: true, force: true });
    }
  });

  it('emits nothing for a change that leaves the state equal', async () => {
    const src = await started();
    const events = record(src);
    const before = src.current();
    const services = join(dir, 'services.yaml');
    await writeFile(services, `# reformatted, same content\n${(await readFile(services, 'utf8')).replace('  protocol: http\n', '')}`);
    await sleep(DEBOUNCE_MS * 10);
    expect(events).toEqual([]);
    expect(src.current()).toBe(before);

    const update = nextUpdate(src);
    await editFile(join(dir, 'mesh.yaml'), 'mode: STRICT', 'mode: PERMISSIVE');
    await update;
    expect(events.map(([kind]) => kind)).toEqual(['update']);
  });

  it('reports the same refusal once, however often the directory is touched', async () => {
    const src = await started();
    const events = record(src);
    const rejected = nextRejected(src);
    await writeFile(join(dir, 'broken.yaml'), 'kind: Gateway\napiVersion: palisade.dev/v1\n');
    expect(await rejected).toEqual([
      { file: join(dir, 'broken.yaml'), index: 0, path: '/kind', message: 'unknown kind "Gateway"; known kinds: Mesh, Service, Route, Policy, RequestAuthentication, Quota' },
    ]);
    for (let i = 0; i < 3; i++) {
      await writeFile(join(dir, '.broken.yaml.swp'), String(i));
      await sleep(DEBOUNCE_MS * 4);
    }
    const update = nextUpdate(src);
    await writeFile(join(dir, 'broken.yaml'), SERVICE('fixed', 83));
    await update;
    expect(events.map(([kind]) => kind)).toEqual(['rejected', 'update']);
  });

  it('debounces a burst of writes into one reload', async () => {
    const src = await started({ debounceMs: 200 });
    const events = record(src);
    const update = nextUpdate(src);
    for (let port = 9001; port <= 9005; port++) {
      await editFile(join(dir, 'services.yaml'), `port: ${port === 9001 ? 8080 : port - 1}\n  endpoints`, `port: ${port}\n  endpoints`);
      await sleep(10);
    }
    expect((await update).services.get('default/web')?.spec.port).toBe(9005);
    await sleep(400);
    expect(events).toHaveLength(1);
  });

  it('emits rejected when the directory is deleted, keeping the last good state', async () => {
    const src = await started();
    const before = src.current();
    const rejected = nextRejected(src);
    // Gone in one step (a recursive rm empties the directory first, and a reload in between
    // would read a valid, empty configuration).
    await rename(dir, `${dir}-gone`);
    await rm(`${dir}-gone`, { recursive: true });
    expect(await rejected).toEqual([{ file: dir, index: 0, path: '', message: 'config directory does not exist' }]);
    expect(src.current()).toBe(before);
  });

  it('emits nothing after close, and refuses to start again', async () => {
    const src = await started();
    const events = record(src);
    await src.close();
    await editFile(join(dir, 'mesh.yaml'), 'mode: STRICT', 'mode: PERMISSIVE');
    await sleep(DEBOUNCE_MS * 10);
    expect(events).toEqual([]);
    await src.close();

    const late = new DirectorySource({ dir });
    await late.close();
    await expect(late.start()).rejects.toMatchObject({ code: 'PAL_ERR_CONFIG_SOURCE_CLOSED' });
  });
});

describe('DirectorySource: options', () => {
  it.each([
    [{ dir: '' }, 'dir must be a non-empty string, got ""'],
    [{ dir: 42 }, 'dir must be a non-empty string, got 42'],
    [{}, 'dir must be a non-empty string, got undefined'],
    [{ dir: 'x', debounceMs: -1 }, 'debounceMs must be an integer from 0 to 60000, got -1'],
    [{ dir: 'x', debounceMs: 1.5 }, 'debounceMs must be an integer from 0 to 60000, got 1.5'],
    [{ dir: 'x', debounceMs: '100' }, 'debounceMs must be an integer from 0 to 60000, got "100"'],
    [{ dir: 'x', debounceMs: Number.NaN }, 'debounceMs must be an integer from 0 to 60000, got NaN'],
    [{ dir: 'x', debounceMs: 60_001 }, 'debounceMs must be an integer from 0 to 60000, got 60001'],
    [{ dir: 'x', debounce: 100 }, 'unknown option "debounce"; known options: dir, debounceMs, policyCompiler'],
    [null, 'options must be an object, got null'],
  ])('rejects %j with PAL_ERR_CONFIG_INVALID_OPTION', (options, message) => {
    expect(() => new DirectorySource(options as unknown as DirectorySourceOptions)).toThrow(
      expect.objectContaining({ code: 'PAL_ERR_CONFIG_INVALID_OPTION', message }),
    );
  });

  it.each([
    [{ dir: 'x' }, { dir: 'x', debounceMs: 100, policyCompiler: null }],
    [{ dir: 'x', debounceMs: 0 }, { dir: 'x', debounceMs: 0, policyCompiler: null }],
    [{ dir: 'x', debounceMs: undefined }, { dir: 'x', debounceMs: 100, policyCompiler: null }],
  ])('accepts %j as %j, frozen', (options, expected) => {
    const src = new DirectorySource(options);
    expect(src.options).toEqual(expected);
    expect(Object.isFrozen(src.options)).toBe(true);
  });
});
