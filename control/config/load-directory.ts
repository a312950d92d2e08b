/**
 * Reads a config directory in one pass: every `*.yaml`, `*.yml` and `*.json` below it, in
 * sorted order, parsed, validated and built into a `DesiredState`.
 *
 * Entries whose name starts with '.' are skipped, files and directories alike. That keeps
 * out editor droppings (`.app.yaml.swp`, Emacs `.#app.yaml` lock links, temp files written
 * before an atomic rename) and the `..data` / `..2024_…` directories of a Kubernetes
 * ConfigMap volume, whose visible files are symlinks into them (symlinks are followed).
 */
import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { ConfigError, Result } from './config-error.ts';
import { pointer } from './config-error.ts';
import { parseConfig } from './parse.ts';
import type { PolicyCompiler } from './policy-compiler.ts';
import type { Resource } from './schema.ts';
import { jwksProblem } from './schema.ts';
import { buildState, jwksFileKey } from './state.ts';
import type { DesiredState } from './state.ts';

/** File name endings read as configuration (case-insensitive). */
export const CONFIG_EXTENSIONS: readonly string[] = ['.yaml', '.yml', '.json'];

/** How a directory is loaded. */
export interface LoadOptions {
  /** Compiles and signs Policies given as inline Rego (spec.rego.inline); without one such a Policy is an error. */
  policyCompiler?: PolicyCompiler | null;
}

/**
 * Loads `dir` into a desired state, or every problem: a missing directory, unreadable
 * files, malformed or invalid documents, then (only if every document is valid) the rules
 * between resources. Never throws for I/O; the failure is a `ConfigError` on the file (index 0).
 * A file that disappears between listing and reading is treated as deleted.
 */
export async function loadDirectory(dir: string, options: LoadOptions = {}): Promise<Result<DesiredState, ConfigError[]>> {
  return (await readConfigDirectory(dir, options)).result;
}

/** What one pass over a config directory found. */
export interface DirectoryRead {
  /** The state, or every problem (as `loadDirectory`). */
  result: Result<DesiredState, ConfigError[]>;
  /** Every directory that was listed, `dir` first: what a watcher has to watch. */
  directories: string[];
}

/** `loadDirectory`, also returning the directories it walked. */
export async function readConfigDirectory(dir: string, options: LoadOptions = {}): Promise<DirectoryRead> {
  const directories: string[] = [];
  const result = await load(dir, directories, options.policyCompiler ?? null);
  return { result, directories };
}

async function load(dir: string, directories: string[], compiler: PolicyCompiler | null): Promise<Result<DesiredState, ConfigError[]>> {
  const errors: ConfigError[] = [];
  const fail = (file: string, message: string) => errors.push({ file, index: 0, path: '', message });

  try {
    const st = await stat(dir);
    if (!st.isDirectory()) fail(dir, 'config path is not a directory');
  } catch (err) {
    fail(dir, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'config directory does not exist' : `cannot read config directory: ${(err as Error).message}`);
  }
  if (errors.length > 0) return { valid: false, errors };

  const files: string[] = [];
  await walk(dir, '', new Set(), { files, directories }, fail);
  files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

  const resources: Resource[] = [];
  for (const rel of files) {
    const file = join(dir, rel);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') fail(file, `cannot read file: ${(err as Error).message}`);
      continue;
    }
    const parsed = parseConfig(text, file);
    if (parsed.valid) resources.push(...parsed.result);
    else errors.push(...parsed.errors);
  }
  if (errors.length > 0) return { valid: false, errors };
  const bundles = await readPolicyBundles(resources, errors, compiler);
  const jwksFiles = await readJwksFiles(resources, errors);
  if (errors.length > 0) return { valid: false, errors };
  return buildState(resources, { policyBundles: bundles, jwksFiles });
}

/** Largest Policy bundle read, bytes (the palisade.v1.Policy proto's limit). */
export const MAX_POLICY_BUNDLE_BYTES = 16 * 1024 * 1024;

/**
 * Reads each Policy's bundle file (relative to its document's file), or compiles its inline
 * Rego with `compiler`; problems go to `errors` at spec.bundle.file or spec.rego.inline.
 */
async function readPolicyBundles(resources: readonly Resource[], errors: ConfigError[], compiler: PolicyCompiler | null): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const r of resources) {
    if (r.kind !== 'Policy') continue;
    const policyKey = `${r.metadata.namespace}/${r.metadata.name}`;
    if (r.spec.rego !== undefined) {
      const at = { file: r.source.file, index: r.source.index, path: '/spec/rego/inline' };
      if (compiler === null) {
        errors.push({ ...at, message: 'inline Rego cannot be used here: this loader has no policy compiler' });
        continue;
      }
      const compiled = await compiler.compile(r.spec.rego.inline, r.spec.entrypoint);
      if (compiled.valid) out.set(policyKey, compiled.result);
      else errors.push(...compiled.errors.map((message) => ({ ...at, message })));
      continue;
    }
    if (r.spec.bundle === undefined) continue; // refused by the schema check
    const file = resolve(dirname(r.source.file), r.spec.bundle.file);
    const at = { file: r.source.file, index: r.source.index, path: '/spec/bundle/file' };
    try {
      const st = await stat(file);
      if (!st.isFile()) errors.push({ ...at, message: `${file} is not a file` });
      else if (st.size > MAX_POLICY_BUNDLE_BYTES) errors.push({ ...at, message: `${file} is ${st.size} bytes; a bundle may be at most ${MAX_POLICY_BUNDLE_BYTES}` });
      else if (st.size === 0) errors.push({ ...at, message: `${file} is empty` });
      else out.set(policyKey, new Uint8Array(await readFile(file)));
    } catch (err) {
      errors.push({ ...at, message: (err as NodeJS.ErrnoException).code === 'ENOENT' ? `bundle file ${file} does not exist (build it with palisade policy build)` : `cannot read bundle file ${file}: ${(err as Error).message}` });
    }
  }
  return out;
}

/** Largest JWKS file read, bytes. */
export const MAX_JWKS_FILE_BYTES = 1024 * 1024;

/** Reads each RequestAuthentication provider's jwks.file (relative to its document); problems go to `errors` at the field. */
async function readJwksFiles(resources: readonly Resource[], errors: ConfigError[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const r of resources) {
    if (r.kind !== 'RequestAuthentication') continue;
    for (const [provider, p] of Object.entries(r.spec.providers)) {
      if (p.jwks.file === undefined) continue;
      const file = resolve(dirname(r.source.file), p.jwks.file);
      const at = { file: r.source.file, index: r.source.index, path: pointer('spec', 'providers', provider, 'jwks', 'file') };
      try {
        const st = await stat(file);
        if (!st.isFile()) {
          errors.push({ ...at, message: `${file} is not a file` });
          continue;
        }
        if (st.size > MAX_JWKS_FILE_BYTES) {
          errors.push({ ...at, message: `${file} is ${st.size} bytes; a JWKS file may be at most ${MAX_JWKS_FILE_BYTES}` });
          continue;
        }
        const text = await readFile(file, 'utf8');
        const problem = jwksProblem(text);
        if (problem !== null) errors.push({ ...at, message: `${file} ${problem}` });
        else out.set(jwksFileKey(`${r.metadata.namespace}/${r.metadata.name}`, provider), text);
      } catch (err) {
        errors.push({ ...at, message: (err as NodeJS.ErrnoException).code === 'ENOENT' ? `JWKS file ${file} does not exist` : `cannot read JWKS file ${file}: ${(err as Error).message}` });
      }
    }
  }
  return out;
}

/** True if `name` ends in one of CONFIG_EXTENSIONS. */
export function isConfigFile(name: string): boolean {
  const lower = name.toLowerCase();
  return !name.startsWith('.') && CONFIG_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

async function walk(
  root: string,
  rel: string,
  visited: Set<string>,
  out: { files: string[]; directories: string[] },
  fail: (file: string, message: string) => void,
): Promise<void> {
  const abs = rel === '' ? root : join(root, rel);
  let entries;
  try {
    const real = await realpath(abs);
    if (visited.has(real)) return; // a symlink loop, or a directory linked twice
    visited.add(real);
    entries = await readdir(abs, { withFileTypes: true });
    out.directories.push(abs);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') fail(abs, `cannot read directory: ${(err as Error).message}`);
    return;
  }
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const childRel = rel === '' ? entry.name : join(rel, entry.name);
    let isDirectory = entry.isDirectory();
    let isFile = entry.isFile();
    if (entry.isSymbolicLink()) {
      try {
        const target = await stat(join(root, childRel));
        isDirectory = target.isDirectory();
        isFile = target.isFile();
      } catch {
        continue; // dangling link: nothing to read
      }
    }
    if (isDirectory) await walk(root, childRel, visited, out, fail);
    else if (isFile && isConfigFile(entry.name)) out.files.push(childRel);
  }
}
