/**
 * Shared fixtures for the policy tests: real bundles built by the real `opa`, signing keys
 * from node:crypto, a tiny ustar writer to tamper with bundles, and `opa eval` for parity.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { readBundle } from '../../policies/bundle.ts';
import { findOpa } from '../../policies/opa-binary.ts';

const run = promisify(execFile);

export interface KeyMaterial {
  /** PKCS#8 PEM, for `opa build --signing-key`. */
  privatePem: string;
  /** SPKI PEM, for verification. */
  publicPem: string;
}

export function keyPair(type: 'ec' | 'ed25519'): KeyMaterial {
  const { privateKey, publicKey } = type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
  };
}

export interface BuildOptions {
  entrypoints: string[];
  signingAlg?: 'ES256' | 'EdDSA';
  signingKey?: KeyMaterial;
  revision?: string;
}

/** Temp dirs created by the helpers; call cleanup() in afterAll. */
const dirs: string[] = [];

export async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), `palisade-${prefix}-`));
  dirs.push(d);
  return d;
}

export async function cleanup(): Promise<void> {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

/** Writes `files` (relative path → text) under a new temp dir; returns the dir. */
export async function writeSources(files: Record<string, string>): Promise<string> {
  const dir = await tempDir('rego');
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, 'src', name)), { recursive: true });
    await writeFile(join(dir, 'src', name), text);
  }
  return join(dir, 'src');
}

/** `opa build -b -t wasm -e ... [--signing-alg --signing-key] [--revision]` of `files`; the bundle bytes. */
export async function opaBuild(files: Record<string, string>, o: BuildOptions): Promise<Uint8Array> {
  const src = await writeSources(files);
  const out = join(dirname(src), 'bundle.tar.gz');
  const args = ['build', '-b', '-t', 'wasm', '-o', out];
  for (const e of o.entrypoints) args.push('-e', e);
  if (o.revision !== undefined) args.push('--revision', o.revision);
  if (o.signingKey !== undefined) {
    const keyFile = join(dirname(src), 'signing.pem');
    await writeFile(keyFile, o.signingKey.privatePem, { mode: 0o600 });
    args.push('--signing-alg', o.signingAlg ?? 'ES256', '--signing-key', keyFile);
  }
  args.push('src'); // relative: opa names sources by the path it was given
  await run(findOpa(), args, { cwd: dirname(src) });
  return new Uint8Array(await readFile(out));
}

/** `opa eval` (the Go evaluator) of `query` over the Rego/data `files` with `input`; the value, or undefined. */
export async function opaEval(files: Record<string, string>, query: string, input: unknown): Promise<unknown> {
  const src = await writeSources(files);
  const inputFile = join(dirname(src), 'input.json');
  await writeFile(inputFile, JSON.stringify(input));
  const { stdout } = await run(findOpa(), ['eval', '-f', 'json', '-b', src, '-i', inputFile, query]);
  const out = JSON.parse(stdout) as { result?: Array<{ expressions: Array<{ value: unknown }> }> };
  return out.result?.[0]?.expressions[0]?.value;
}

export { writeTarGz, type TarFile } from '../../policies/tar-writer.ts';
import { writeTarGz, type TarFile } from '../../policies/tar-writer.ts';

/** The bundle's files, in order, as TarFiles (leading "/" kept, as opa writes them). */
export function bundleFiles(bundle: Uint8Array): TarFile[] {
  return [...readBundle(bundle).files].map(([name, data]) => ({ name, data: new Uint8Array(data) }));
}

/** Rewrites a bundle with `edit` applied to its file list. */
export function rewrite(bundle: Uint8Array, edit: (files: TarFile[]) => TarFile[]): Uint8Array {
  return writeTarGz(edit(bundleFiles(bundle)));
}

/** Flips one byte of file `name` (at `offset`, default the middle). */
export function flipByte(bundle: Uint8Array, name: string, offset?: number): Uint8Array {
  return rewrite(bundle, (files) =>
    files.map((f) => {
      if (f.name !== name) return f;
      const data = new Uint8Array(f.data);
      const i = offset ?? data.length >> 1;
      data[i] = data[i]! ^ 0x01;
      return { ...f, data };
    }),
  );
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);
