/**
 * `palisade policy build`: compiles a directory of Rego to a signed wasm bundle with the
 * pinned OPA's own `opa build -b -t wasm --signing-key …`, so the bundle is exactly what
 * OPA writes (`/policy.wasm`, `/data.json`, `/.manifest`, `/.signatures.json`) and OPA's
 * `opa run --verification-key` accepts it as well as Palisade's sidecars do.
 *
 * The default revision is a content hash, not a timestamp: the same sources and entrypoints
 * give the same revision, so a rebuild that changes nothing is not a new policy to push.
 *
 * Before compiling, each entrypoint is analyzed for Envoy (policies/rbac-analysis.ts, over
 * `opa parse` ASTs): the verdict, Envoy RBAC rules or the reason they cannot express the
 * policy, goes into the bundle as `data.palisade.envoy_rbac` and is signed with the rest, so
 * the control plane, which has no opa, can translate the Policy for Envoy nodes
 * (docs/envoy-authz.md).
 */
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, extname, join, relative, resolve } from 'node:path';
import { checkOutput, UsageError } from '../args.ts';
import { algorithmOfKey, keyFingerprint, readSigningKey, SIGNING_ALGS, type SigningAlg } from './policy-keys.ts';
import { parseCommand, runOpa } from './policy-opa.ts';
import { analyzeDirectory, describeEnvoyTranslation, ENVOY_RBAC_DATA_PATH, type RbacAnalysis } from '../../policies/rbac-analysis.ts';
import { findOpa } from '../../policies/opa-binary.ts';

/** The key id OPA writes into a bundle signature, and the one `opa run` and sidecars look up by default. */
export const OPA_DEFAULT_KEY_ID = 'default';

export const buildHelp = `  build DIR -e ENTRYPOINT [-e ENTRYPOINT …] (--signing-key KEY.pem | --unsigned)
        [--signing-alg ES256|EdDSA] [--revision R] [--out FILE] [--data FILE …]
                     compile the Rego (and data) in DIR to a wasm bundle with opa build -b -t wasm,
                     signed with KEY.pem (keyid "${OPA_DEFAULT_KEY_ID}"): writes FILE and prints its path,
                     revision, entrypoints, size and signing key. Sidecars NACK an unsigned
                     bundle, so a missing --signing-key is refused; --unsigned builds one anyway
                     (for opa run or tests, never for the mesh). opa's compile errors are printed
                     as opa wrote them (file:line), exit 1. Each entrypoint is also analyzed
                     for Envoy nodes and the verdict stored in the bundle as data.palisade.envoy_rbac:
                     prints "Envoy: RBAC (N policies)" or "Envoy: ext_authz (why not RBAC)".
`;

export const buildFlagsHelp = `  -e, --entrypoint PATH      a rule to compile, slash separated: envoy/authz/allow (build; repeatable, at least one)
  --signing-key FILE         PEM private key to sign the bundle with: ECDSA P-256 or Ed25519 (build)
  --signing-alg ALG          ${SIGNING_ALGS.join(' or ')} (build)   (default: from the key: P-256 ES256, Ed25519 EdDSA)
  --unsigned                 build without a signature: sidecars refuse such a bundle (build)
  --revision R               the manifest revision (build)   (default: first 16 hex digits of the SHA-256
                             of DIR's .rego/.json/.yaml files, the --data files and the entrypoints)
  --data FILE                a JSON or YAML file served as data.<file name without extension>, e.g.
                             --data roles.json is data.roles (build; repeatable)
`;

/** The files `opa build -b` loads from a directory: Rego, data and a manifest. */
const SOURCE_FILE = /(\.rego|\.json|\.ya?ml|^\.manifest)$/;

/** Every regular source file under `dir`, as paths relative to it, sorted (a bundle written into DIR is not one). */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && SOURCE_FILE.test(e.name))
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

/** The default revision: SHA-256 over each source file's relative path and bytes, the data files and the entrypoints. */
export async function contentRevision(dir: string, dataFiles: readonly string[], entrypoints: readonly string[]): Promise<string> {
  const h = createHash('sha256');
  const field = (b: string | Buffer) => {
    const buf = typeof b === 'string' ? Buffer.from(b) : b;
    h.update(`${buf.length}:`).update(buf);
  };
  for (const f of await filesUnder(dir)) {
    field(f);
    field(await readFile(join(dir, f)));
  }
  for (const f of dataFiles) {
    field(`data:${basename(f)}`);
    field(await readFile(f));
  }
  for (const e of entrypoints) field(`entrypoint:${e}`);
  return h.digest('hex').slice(0, 16);
}

const DATA_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Copies DIR to a temporary directory with each data file at `<name>/data.json|yaml` (opa merges them into /data.json). */
async function stage(dir: string, dataFiles: readonly string[]): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'palisade-policy-build-'));
  await cp(dir, root, { recursive: true });
  for (const f of dataFiles) {
    const ext = extname(f);
    const name = basename(f, ext);
    const target = join(root, name, ext === '.json' ? 'data.json' : 'data.yaml');
    const exists = await stat(target).then(
      () => true,
      () => false,
    );
    if (exists) {
      await rm(root, { recursive: true, force: true });
      if (name === ENVOY_RBAC_DATA_PATH[0]) throw new Error(`DIR has ${join(name, basename(target))}: data.${name} is reserved for Palisade (the Envoy analysis, docs/envoy-authz.md)`);
      throw new Error(`--data ${f}: DIR already has ${join(name, basename(target))}, data.${name} would be defined twice`);
    }
    await cp(f, target);
  }
  return root;
}

/** `palisade policy build`. */
export async function build(argv: string[]): Promise<number> {
  const { values: flags, positionals } = parseCommand(argv, {
    entrypoint: { type: 'string', short: 'e', multiple: true },
    'signing-key': { type: 'string' },
    'signing-alg': { type: 'string' },
    unsigned: { type: 'boolean', default: false },
    revision: { type: 'string' },
    out: { type: 'string', default: 'bundle.tar.gz' },
    data: { type: 'string', multiple: true },
    output: { type: 'string', short: 'o', default: 'table' },
  });
  const output = checkOutput(flags.output);
  if (positionals.length !== 1) throw new UsageError(`build needs one policy directory, got ${positionals.length === 0 ? 'none' : JSON.stringify(positionals.join(' '))}`);
  const entrypoints = flags.entrypoint ?? [];
  if (entrypoints.length === 0) throw new UsageError('at least one -e/--entrypoint is required, e.g. -e envoy/authz/allow');
  for (const e of entrypoints) {
    if (e === '' || e.startsWith('/') || e.endsWith('/') || /\s/.test(e)) throw new UsageError(`-e/--entrypoint must be a slash-separated rule path like envoy/authz/allow, got ${JSON.stringify(e)}`);
  }
  const keyFile = flags['signing-key'];
  if (keyFile === undefined && !flags.unsigned) {
    throw new UsageError('--signing-key KEY.pem is required: sidecars NACK an unsigned bundle (make a key with palisade policy keygen); pass --unsigned to build one anyway');
  }
  if (keyFile !== undefined && flags.unsigned) throw new UsageError('--unsigned and --signing-key exclude each other');
  if (flags['signing-alg'] !== undefined && flags.unsigned) throw new UsageError('--signing-alg needs --signing-key, not --unsigned');
  if (flags['signing-alg'] !== undefined && !(SIGNING_ALGS as readonly string[]).includes(flags['signing-alg'])) {
    throw new UsageError(`--signing-alg must be one of ${SIGNING_ALGS.join(', ')}, got ${JSON.stringify(flags['signing-alg'])}`);
  }
  const dataFiles = (flags.data ?? []).map((f) => resolve(f));
  for (const f of dataFiles) {
    const ext = extname(f);
    if (!['.json', '.yaml', '.yml'].includes(ext)) throw new UsageError(`--data takes .json, .yaml or .yml files, got ${JSON.stringify(f)}`);
    if (!DATA_NAME.test(basename(f, ext))) throw new UsageError(`--data ${f}: the file name (without extension) becomes data.<name> and must be an identifier`);
    if (basename(f, ext) === ENVOY_RBAC_DATA_PATH[0]) throw new UsageError(`--data ${f}: data.${ENVOY_RBAC_DATA_PATH[0]} is reserved for Palisade (the Envoy analysis, docs/envoy-authz.md)`);
  }

  const dir = positionals[0]!;
  const dirStat = await stat(dir).catch((err: unknown) => {
    throw new Error(`cannot read policy directory ${dir}: ${(err as Error).message}`, { cause: err });
  });
  if (!dirStat.isDirectory()) throw new Error(`${dir} is not a directory`);

  let signing: { keyFile: string; alg: SigningAlg; fingerprint: string } | null = null;
  if (keyFile !== undefined) {
    const key = await readSigningKey(keyFile);
    const alg = algorithmOfKey(key);
    if (alg === null) throw new Error(`${keyFile}: bundles are signed with ECDSA P-256 (ES256) or Ed25519 (EdDSA) keys, this is ${key.asymmetricKeyType ?? 'unknown'}${key.asymmetricKeyDetails?.namedCurve ? ` ${key.asymmetricKeyDetails.namedCurve}` : ''}`);
    if (flags['signing-alg'] !== undefined && flags['signing-alg'] !== alg) throw new UsageError(`--signing-alg ${flags['signing-alg']} does not fit the key in ${keyFile}, which signs ${alg}`);
    signing = { keyFile: resolve(keyFile), alg, fingerprint: keyFingerprint(key) };
  }

  for (const f of dataFiles) {
    await stat(f).catch((err: unknown) => {
      throw new Error(`cannot read --data ${f}: ${(err as Error).message}`, { cause: err });
    });
  }
  const revision = flags.revision ?? (await contentRevision(dir, dataFiles, entrypoints));
  const bundlePath = resolve(flags.out);
  const envoy = await analyzeDirectory(dir, entrypoints, findOpa());
  // data.palisade.envoy_rbac: the analysis travels as one more --data file, signed like the rest.
  const analysisDir = await mkdtemp(join(tmpdir(), 'palisade-envoy-analysis-'));
  const analysisFile = join(analysisDir, `${ENVOY_RBAC_DATA_PATH[0]}.json`);
  await writeFile(analysisFile, `${JSON.stringify({ [ENVOY_RBAC_DATA_PATH[1]]: envoy })}\n`);
  let staged: string;
  try {
    staged = await stage(dir, [...dataFiles, analysisFile]);
  } finally {
    await rm(analysisDir, { recursive: true, force: true });
  }
  // opa runs in DIR on '.': bundle paths are DIR-relative (/authz.rego), never the build machine's.
  const args = ['build', '-b', '-t', 'wasm', ...entrypoints.flatMap((e) => ['-e', e]), '--revision', revision, '-o', bundlePath];
  if (signing !== null) args.push('--signing-key', signing.keyFile, '--signing-alg', signing.alg);
  args.push('.');
  let run;
  try {
    run = await runOpa(args, { cwd: staged });
  } finally {
    await rm(staged, { recursive: true, force: true });
  }
  if (run.code !== 0) {
    process.stderr.write(run.stderr + run.stdout);
    process.stderr.write(`palisade policy build: opa build failed (exit ${run.code}) in ${dir} (file names above are relative to it); no bundle written\n`);
    return 1;
  }
  const size = (await stat(bundlePath)).size;
  const result = {
    bundle: bundlePath,
    revision,
    entrypoints,
    size,
    signed: signing !== null,
    signingAlg: signing?.alg ?? null,
    keyId: signing === null ? null : OPA_DEFAULT_KEY_ID,
    keyFingerprint: signing?.fingerprint ?? null,
    envoy: Object.fromEntries(entrypoints.map((e) => [e, envoyJson(envoy[e]!)])),
  };
  if (output === 'json') process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    process.stdout.write(
      `bundle       ${result.bundle}\n` +
        `revision     ${result.revision}\n` +
        `entrypoints  ${result.entrypoints.join(', ')}\n` +
        `size         ${result.size} bytes\n` +
        `signature    ${signing === null ? 'none (--unsigned: sidecars will refuse this bundle)' : `${signing.alg}, keyid "${OPA_DEFAULT_KEY_ID}", key ${signing.fingerprint}`}\n` +
        entrypoints.map((e) => `Envoy: ${describeEnvoyTranslation(envoy[e]!)}${entrypoints.length > 1 ? ` [${e}]` : ''}\n`).join(''),
    );
  }
  return 0;
}


/** The `-o json` form of a verdict: `{translation: "rbac", policies: N}` or `{translation: "ext_authz", reason}`. */
function envoyJson(a: RbacAnalysis): { translation: 'rbac'; policies: number } | { translation: 'ext_authz'; reason: string } {
  return a.expressible ? { translation: 'rbac', policies: Object.keys(a.rbac.policies).length } : { translation: 'ext_authz', reason: a.reason };
}
