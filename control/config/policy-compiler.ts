/**
 * Compiles a Policy's inline Rego (`spec.rego.inline`) into the same signed wasm bundle
 * `palisade policy build` writes, so the rest of the control plane (DesiredState.policyBundles,
 * translation) and the sidecars cannot tell the two apart:
 *
 *   Rego text ─▶ temp dir/src/policy.rego ─▶ opa parse (Envoy RBAC analysis, as policy build)
 *             ─▶ opa build -b -t wasm -e ENTRYPOINT --revision sha256(Rego)[:16] (cwd src, on '.')
 *             ─▶ signBundle(bundle, the control plane's --policy-signing-key)
 *
 * opa takes ~0.3 s per build and ECDSA signatures are randomized, so compiled bundles are
 * cached in memory by (Rego text, entrypoint, key fingerprint): a reload with unchanged Rego
 * runs no opa and yields the very same bytes, hence no new state to push.
 */
import { spawn } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findOpa } from '../../policies/opa-binary.ts';
import { analyzeDirectory, ENVOY_RBAC_DATA_PATH } from '../../policies/rbac-analysis.ts';
import { signBundle } from '../../policies/sign.ts';
import type { Result } from './config-error.ts';
import { InvalidOptionError } from './errors.ts';

export interface PolicyCompilerOptions {
  /** PKCS#8 PEM private key (EC P-256 or Ed25519) that signs compiled bundles; null: inline Rego is refused. */
  signingKeyPem: string | null;
  /** Most compiled bundles kept in memory (least recently used dropped first). Default 256. */
  maxCached?: number;
}

/** The message for inline Rego without a signing key. */
export const NO_SIGNING_KEY_MESSAGE = 'inline Rego needs --policy-signing-key: the control plane signs what it compiles';

/** Turns inline Rego into a signed OPA wasm bundle; one per control plane (or `palisade config validate` run). */
export class PolicyCompiler {
  /** sha256 of the signing key's SPKI, hex, or null without a key. */
  readonly keyFingerprint: string | null;
  #signingKeyPem: string | null;
  #maxCached: number;
  #cache = new Map<string, Promise<Result<Uint8Array, string[]>>>();
  #opaBuilds = 0;

  /** Throws `PAL_ERR_CONFIG_INVALID_OPTION` if the key is not an EC P-256 or Ed25519 private key. */
  constructor(options: PolicyCompilerOptions) {
    const pem = options.signingKeyPem;
    let key: KeyObject | null = null;
    if (pem !== null) {
      try {
        key = createPrivateKey(pem);
      } catch (cause) {
        throw new InvalidOptionError(`signingKeyPem is not a PEM private key: ${(cause as Error).message}`);
      }
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (!(key.asymmetricKeyType === 'ed25519' || (key.asymmetricKeyType === 'ec' && curve === 'prime256v1'))) {
        throw new InvalidOptionError(`signingKeyPem must be an EC P-256 or Ed25519 private key, got ${key.asymmetricKeyType ?? 'unknown'}${curve === undefined ? '' : ` ${curve}`}`);
      }
    }
    const max = options.maxCached ?? 256;
    if (!Number.isInteger(max) || max < 1) throw new InvalidOptionError(`maxCached must be a positive integer, got ${String(max)}`);
    this.#signingKeyPem = pem;
    this.#maxCached = max;
    this.keyFingerprint = key === null ? null : createHash('sha256').update(createPublicKey(key).export({ type: 'spki', format: 'der' })).digest('hex');
  }

  /** How many times `opa build` has run (cache misses that got as far as opa). */
  get opaBuilds(): number {
    return this.#opaBuilds;
  }

  /**
   * The signed bundle for `rego` with `entrypoint`, or a message for the config error at
   * /spec/rego/inline: no signing key, no opa, opa's compile error (policy.rego:LINE, lines
   * of the inline text) or an undefined entrypoint. Never throws for those.
   */
  compile(rego: string, entrypoint: string): Promise<Result<Uint8Array, string[]>> {
    if (this.#signingKeyPem === null) return Promise.resolve({ valid: false, errors: [NO_SIGNING_KEY_MESSAGE] });
    const key = createHash('sha256').update(`${rego.length}:${rego}\0${entrypoint}\0${this.keyFingerprint}`).digest('hex');
    const hit = this.#cache.get(key);
    if (hit !== undefined) {
      this.#cache.delete(key);
      this.#cache.set(key, hit); // most recently used last
      return hit;
    }
    const pending = this.#build(rego, entrypoint, this.#signingKeyPem);
    this.#cache.set(key, pending);
    // A failure is not kept: opa may be installed, or the file fixed, before the next reload.
    void pending.then((r) => {
      if (!r.valid && this.#cache.get(key) === pending) this.#cache.delete(key);
    });
    while (this.#cache.size > this.#maxCached) this.#cache.delete(this.#cache.keys().next().value!);
    return pending;
  }

  async #build(rego: string, entrypoint: string, signingKeyPem: string): Promise<Result<Uint8Array, string[]>> {
    let opa: string;
    try {
      opa = findOpa();
    } catch (err) {
      return { valid: false, errors: [(err as Error).message] };
    }
    const revision = createHash('sha256').update(rego).digest('hex').slice(0, 16);
    const root = await mkdtemp(join(tmpdir(), 'palisade-inline-rego-'));
    try {
      const src = join(root, 'src');
      await mkdir(src);
      await writeFile(join(src, 'policy.rego'), rego);
      // data.palisade.envoy_rbac, as palisade policy build writes it: Envoy nodes get RBAC where it can express the policy.
      const envoy = await analyzeDirectory(src, [entrypoint], opa);
      await mkdir(join(src, ENVOY_RBAC_DATA_PATH[0]));
      await writeFile(join(src, ENVOY_RBAC_DATA_PATH[0], 'data.json'), `${JSON.stringify({ [ENVOY_RBAC_DATA_PATH[1]]: envoy })}\n`);
      const out = join(root, 'bundle.tar.gz');
      this.#opaBuilds++;
      // opa runs in src on '.': bundle paths and error messages name policy.rego, lines of the inline text.
      const run = await runOpa(opa, ['build', '-b', '-t', 'wasm', '-e', entrypoint, '--revision', revision, '-o', out, '.'], src);
      if (run.code !== 0) return { valid: false, errors: [`opa build failed: ${opaMessage(run.output)}`] };
      return { valid: true, result: signBundle(new Uint8Array(await readFile(out)), signingKeyPem) };
    } catch (err) {
      return { valid: false, errors: [`cannot compile the inline Rego: ${(err as Error).message}`] };
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }
}

/** opa's error output as one line: the error lines, without opa's "error: load error: bundle .:" preamble and source excerpts. */
function opaMessage(output: string): string {
  const lines = output.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('\t'));
  const text = lines.map((l) => l.trim()).join('; ').replace(/^error: /i, '').replace(/^load error: bundle \.: /, '');
  return text === '' ? 'no message' : text;
}

function runOpa(opa: string, args: readonly string[], cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(opa, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => chunks.push(b));
    child.stderr.on('data', (b: Buffer) => chunks.push(b));
    child.on('error', (e) => reject(new Error(`could not run ${opa}: ${e.message}`, { cause: e })));
    child.on('close', (code) => resolve({ code: code ?? 1, output: Buffer.concat(chunks).toString('utf8') }));
  });
}
