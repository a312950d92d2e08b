/**
 * The demo's prebuilt policy bundle (committed so `npm start` needs no opa) is exactly what the
 * pinned opa builds from the committed Rego (scripts/build-demo-policy.sh), and the Rego's own
 * tests pass.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readBundle } from '../../policies/bundle.ts';
import { findOpa } from '../../policies/opa-binary.ts';

const run = promisify(execFile);
const POLICY_DIR = join(import.meta.dirname, '../../cli/demo/policy');
const dirs: string[] = [];

afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('the demo policy', () => {
  it('the committed bundle is what opa builds from the committed Rego', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'palisade-demo-policy-'));
    dirs.push(dir);
    await mkdir(join(dir, 'src'));
    await copyFile(join(POLICY_DIR, 'backend_authz.rego'), join(dir, 'src', 'backend_authz.rego'));
    await run(findOpa(), ['build', '-b', '-t', 'wasm', '-e', 'envoy/authz/allow', '--revision', 'demo-1', '-o', 'bundle.tar.gz', 'src'], { cwd: dir });
    const built = readBundle(new Uint8Array(await readFile(join(dir, 'bundle.tar.gz'))));
    const committed = readBundle(new Uint8Array(await readFile(join(POLICY_DIR, 'backend-authz.tar.gz'))));
    expect(committed.revision).toBe('demo-1');
    expect(committed.signatures).toBeNull();
    expect([...committed.files.keys()].sort()).toEqual([...built.files.keys()].sort());
    for (const [name, bytes] of built.files) expect(Buffer.from(committed.files.get(name)!).equals(Buffer.from(bytes)), name).toBe(true);
  }, 60_000);

  it('passes its own opa tests', async () => {
    const r = await run(findOpa(), ['test', POLICY_DIR, '-v']);
    expect(r.stdout).toMatch(/PASS: 3\/3/);
  }, 60_000);
});
