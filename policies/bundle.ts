/**
 * Reads an OPA bundle as `opa build -b -t wasm -e <entrypoint> [--signing-key ...]` writes it:
 * a gzip tar of `/policy.wasm`, `/data.json`, `/.manifest`, `/.signatures.json` and the Rego
 * sources. Reading only parses and bounds-checks; it trusts nothing: call verifyBundle
 * (signature.ts) before evaluating, then PolicyEngine.create (evaluator.ts).
 *
 *   const bundle = readBundle(policy.bundle);          // throws PAL_ERR_POLICY_BUNDLE_INVALID
 *   await verifyBundle(bundle, keys);                  // throws PAL_ERR_POLICY_BUNDLE_SIGNATURE
 *   const engine = await PolicyEngine.create(bundle, { entrypoint: policy.entrypoint });
 *
 * Data must come as the single root `/data.json` `opa build` writes; nested `data.json` or
 * `data.yaml` files (which OPA would merge) are refused rather than half-supported.
 */
import { gunzipSync } from 'node:zlib';
import { BundleInvalidError } from './errors.ts';
import { readTar } from './tar-reader.ts';

/** Bounds on bundles; the defaults fit the 16 MiB Policy.bundle field with room for compression. */
export interface BundleLimits {
  /** Maximum uncompressed tar size, bytes. Default 64 MiB. */
  readonly maxUncompressedBytes: number;
  /** Maximum number of files. Default 10 000. */
  readonly maxFiles: number;
}

export const DEFAULT_BUNDLE_LIMITS: BundleLimits = Object.freeze({ maxUncompressedBytes: 64 * 1024 * 1024, maxFiles: 10_000 });

/** One `wasm` entry of the manifest: which module answers which entrypoint. */
export interface ManifestWasm {
  /** Slash-separated rule path, e.g. `envoy/authz/allow`. */
  readonly entrypoint: string;
  /** Bundle path of the module, e.g. `/policy.wasm`. */
  readonly module: string;
}

/** The parts of `.manifest` the runtime uses (unknown fields are ignored, as OPA does). */
export interface BundleManifest {
  readonly revision: string;
  readonly roots: readonly string[];
  readonly wasm: readonly ManifestWasm[];
  /** 0 (Rego v0) or 1 (Rego v1); null when absent. */
  readonly regoVersion: number | null;
}

/** A parsed, unverified bundle. */
export interface Bundle {
  /** `.manifest` revision, '' when absent. */
  readonly revision: string;
  readonly manifest: BundleManifest;
  /** Wasm modules by their manifest module path (`/policy.wasm`). */
  readonly wasm: ReadonlyMap<string, Uint8Array>;
  /** Parsed `/data.json`; `{}` when absent. */
  readonly data: Readonly<Record<string, unknown>>;
  /** Every regular file, including `.manifest` and `.signatures.json`, by normalized path (`/data.json`), in archive order. */
  readonly files: ReadonlyMap<string, Uint8Array>;
  /** The JWS compact tokens of `/.signatures.json`; null when the bundle is unsigned. */
  readonly signatures: readonly string[] | null;
}

const MANIFEST = '/.manifest';
const DATA = '/data.json';
const SIGNATURES = '/.signatures.json';

function parseJson(name: string, bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new BundleInvalidError(`${name}: not valid UTF-8 JSON`, { cause });
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseManifest(bytes: Uint8Array | undefined): BundleManifest {
  if (bytes === undefined) return { revision: '', roots: [''], wasm: [], regoVersion: null };
  const m = parseJson('.manifest', bytes);
  if (!isObject(m)) throw new BundleInvalidError('.manifest: not a JSON object');
  const problems: string[] = [];
  const revision = m.revision ?? '';
  if (typeof revision !== 'string') problems.push('revision must be a string');
  const roots = m.roots ?? [''];
  if (!Array.isArray(roots) || !roots.every((r) => typeof r === 'string')) problems.push('roots must be an array of strings');
  const wasm = m.wasm ?? [];
  if (!Array.isArray(wasm) || !wasm.every((w) => isObject(w) && typeof w.entrypoint === 'string' && typeof w.module === 'string')) {
    problems.push('wasm must be an array of {entrypoint: string, module: string}');
  }
  const regoVersion = m.rego_version ?? null;
  if (regoVersion !== null && regoVersion !== 0 && regoVersion !== 1) problems.push('rego_version must be 0 or 1');
  if (problems.length > 0) throw new BundleInvalidError(`.manifest: ${problems.join('; ')}`);
  return Object.freeze({
    revision: revision as string,
    roots: Object.freeze([...(roots as string[])]),
    wasm: Object.freeze((wasm as Array<{ entrypoint: string; module: string }>).map((w) => Object.freeze({ entrypoint: w.entrypoint, module: w.module }))),
    regoVersion: regoVersion as number | null,
  });
}

function parseSignatures(bytes: Uint8Array | undefined): string[] | null {
  if (bytes === undefined) return null;
  const s = parseJson('.signatures.json', bytes);
  if (!isObject(s) || !Array.isArray(s.signatures) || !s.signatures.every((t) => typeof t === 'string')) {
    throw new BundleInvalidError('.signatures.json: expected {"signatures": ["<JWS compact>", ...]}');
  }
  return [...(s.signatures as string[])];
}

function gunzip(bytes: Uint8Array, limit: number): Uint8Array {
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) throw new BundleInvalidError('bundle is not gzip-compressed');
  try {
    return gunzipSync(bytes, { maxOutputLength: limit });
  } catch (cause) {
    const tooBig = cause instanceof RangeError || (cause as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
    throw new BundleInvalidError(tooBig ? `bundle uncompresses to more than ${limit} bytes` : 'bundle: gzip stream is corrupt', { cause });
  }
}

/**
 * Parses a gzip tar OPA bundle. Throws BundleInvalidError (`PAL_ERR_POLICY_BUNDLE_INVALID`)
 * naming the problem: not gzip, too large, malformed tar, path traversal, duplicate or
 * non-regular entries, bad `.manifest` / `data.json` / `.signatures.json`, a manifest wasm
 * module that is missing. Does not verify signatures.
 */
export function readBundle(bytes: Uint8Array, limits: Partial<BundleLimits> = {}): Bundle {
  const { maxUncompressedBytes, maxFiles } = { ...DEFAULT_BUNDLE_LIMITS, ...limits };
  const entries = readTar(gunzip(bytes, maxUncompressedBytes), { maxEntries: maxFiles });
  const files = new Map<string, Uint8Array>();
  for (const e of entries) {
    const base = e.name.slice(e.name.lastIndexOf('/') + 1);
    if ((base === 'data.json' && e.name !== DATA) || base === 'data.yaml' || base === 'data.yml') {
      throw new BundleInvalidError(`${e.name}: only a root /data.json is supported (opa build merges data into it)`);
    }
    files.set(e.name, e.data);
  }
  const manifest = parseManifest(files.get(MANIFEST));
  const dataBytes = files.get(DATA);
  const data = dataBytes === undefined ? {} : parseJson('data.json', dataBytes);
  if (!isObject(data)) throw new BundleInvalidError('data.json: not a JSON object');
  const wasm = new Map<string, Uint8Array>();
  for (const w of manifest.wasm) {
    const module = files.get(normalizeModulePath(w.module));
    if (module === undefined) throw new BundleInvalidError(`.manifest: wasm module ${w.module} (entrypoint ${w.entrypoint}) is not in the bundle`);
    wasm.set(w.module, module);
  }
  return Object.freeze({
    revision: manifest.revision,
    manifest,
    wasm,
    data,
    files,
    signatures: parseSignatures(files.get(SIGNATURES)),
  });
}

function normalizeModulePath(p: string): string {
  return p.startsWith('/') ? p : `/${p}`;
}
