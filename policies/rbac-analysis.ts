/**
 * Decides, at `palisade policy build` time, whether a policy's entrypoint can be enforced by
 * Envoy's own RBAC filter, and if so writes the RBAC rules. The control plane has no opa at
 * runtime, so the verdict travels inside the signed bundle as data:
 * `data.palisade.envoy_rbac["<entrypoint>"]` (ENVOY_RBAC_DATA_PATH).
 *
 * The input is OPA's own AST (`opa parse --format json --json-include locations`), not a
 * Rego parser of ours. Only one shape is recognised, the common OPA-Envoy one:
 *
 *   default allow := false
 *   allow if { <cond>; <cond>; … }      ← one RBAC policy per body (OR of ANDs)
 *
 * where each <cond> is one of (either operand order for ==):
 *
 *   input.attributes.source.principal == "<id>"           principal authenticated.principal_name exact
 *   input.attributes.request.http.method == "GET"         header ":method" exact
 *   input.attributes.request.http.method in {"GET", …}    or_rules of header ":method" exact
 *   input.attributes.request.http.path == "/x"            header ":path" exact (query included, as in Rego)
 *   startswith(input.attributes.request.http.path, "/p")  header ":path" prefix
 *   input.parsed_path[0] == "api"                         url_path exact "/api" or prefix "/api/"
 *   input.attributes.request.http.headers["x-h"] == "v"   header "x-h" exact
 *
 * A variable naming a complete rule of the same package that is a plain alias of one of these
 * input fields (`caller := input.attributes.source.principal`) is followed. Anything else —
 * data references, other functions, object results, negation, comprehensions, `with`,
 * `else`, local variables — is refused with the first offending file:line.
 */
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { findOpa } from './opa-binary.ts';

/** Where the verdicts live in the bundle's data: `data.palisade.envoy_rbac[entrypoint]`. */
export const ENVOY_RBAC_DATA_PATH = ['palisade', 'envoy_rbac'] as const;

/**
 * Envoy's `envoy.config.rbac.v3.RBAC` as proto-JSON with Envoy's field names (snake_case,
 * as in Envoy's docs and YAML): `{action: "ALLOW", policies: {name: {permissions, principals}}}`.
 */
export type EnvoyRbacJson = { action: 'ALLOW'; policies: Record<string, { permissions: JsonObject[]; principals: JsonObject[] }> };
type JsonObject = Record<string, unknown>;

/** The analysis of one entrypoint. */
export type RbacAnalysis =
  | { readonly expressible: true; readonly rbac: EnvoyRbacJson }
  | { readonly expressible: false; readonly reason: string };

/** One `opa parse` output: the module's AST as OPA's JSON. */
export interface ParsedModule {
  /** The file name (relative to the policy directory) for messages. */
  readonly file: string;
  readonly ast: unknown;
}

interface Term {
  type: string;
  value: unknown;
  location?: { file?: string; row?: number; text?: string };
}
interface Expr {
  terms: Term | Term[];
  negated?: boolean;
  generated?: boolean;
  with?: unknown[];
  location?: { file?: string; row?: number; text?: string };
}
interface Rule {
  head: { name?: string; ref?: Term[]; value?: Term; key?: Term; args?: Term[]; assign?: boolean };
  body: Expr[];
  default?: boolean;
  else?: unknown;
  location?: { row?: number; text?: string };
}
interface Module {
  package: { path: Term[] };
  rules?: Rule[];
}

/** Thrown inside the analysis to stop at the first refusal. */
class Refusal {
  readonly reason: string;
  constructor(reason: string) {
    this.reason = reason;
  }
}

const PRINCIPAL = 'attributes.source.principal';
const METHOD = 'attributes.request.http.method';
const PATH = 'attributes.request.http.path';
const HEADERS = 'attributes.request.http.headers';

function text(loc: { text?: string } | undefined): string {
  return loc?.text === undefined ? '' : Buffer.from(loc.text, 'base64').toString('utf8');
}

function where(file: string, loc: { row?: number } | undefined): string {
  return `${file}:${loc?.row ?? 0}`;
}

/** The path of a ref term as strings/numbers when it is `input.<constants…>`, else null. */
function inputPath(t: Term): Array<string | number> | null {
  if (t.type !== 'ref' || !Array.isArray(t.value)) return null;
  const [head, ...rest] = t.value as Term[];
  if (head?.type !== 'var' || head.value !== 'input') return null;
  const out: Array<string | number> = [];
  for (const p of rest) {
    if (p.type === 'string' && typeof p.value === 'string') out.push(p.value);
    else if (p.type === 'number' && typeof p.value === 'number') out.push(p.value);
    else return null;
  }
  return out;
}

function refRoot(t: Term): string | null {
  if (t.type !== 'ref' || !Array.isArray(t.value)) return null;
  const head = (t.value as Term[])[0];
  return head?.type === 'var' && typeof head.value === 'string' ? head.value : null;
}

function operatorName(t: Term): string {
  if (t.type !== 'ref' || !Array.isArray(t.value)) return '?';
  return (t.value as Term[]).map((p) => String(p.value)).join('.');
}

function exact(value: string): JsonObject {
  return { exact: value };
}

function header(name: string, match: JsonObject): JsonObject {
  return { header: { name, string_match: match } };
}

/** A condition becomes a principal or a permission. */
type Condition = { principal: JsonObject } | { permission: JsonObject };

class Analyzer {
  readonly #file: string;
  readonly #aliases: ReadonlyMap<string, Term>;

  constructor(file: string, aliases: ReadonlyMap<string, Term>) {
    this.#file = file;
    this.#aliases = aliases;
  }

  #refuse(expr: Expr, what: string): never {
    throw new Refusal(`${where(this.#file, expr.location)}: \`${text(expr.location)}\`: ${what}`);
  }

  /** Follows an alias rule; returns the term's input path, a string constant, or the raw term. */
  #operand(expr: Expr, t: Term): { path: Array<string | number> } | { str: string } | { set: string[] } {
    if (t.type === 'string' && typeof t.value === 'string') return { str: t.value };
    if ((t.type === 'set' || t.type === 'array') && Array.isArray(t.value)) {
      const items = t.value as Term[];
      if (items.every((i) => i.type === 'string')) return { set: items.map((i) => i.value as string) };
      this.#refuse(expr, `a ${t.type} of non-strings has no RBAC form`);
    }
    let term = t;
    if (term.type === 'var' && typeof term.value === 'string') {
      const alias = this.#aliases.get(term.value);
      if (alias === undefined) this.#refuse(expr, `variable or rule \`${term.value}\` is not an alias of an input field (only \`name := input.…\` rules are followed)`);
      term = alias;
    }
    const path = inputPath(term);
    if (path !== null) return { path };
    const root = refRoot(term);
    if (root === 'data') this.#refuse(expr, 'reads data (RBAC cannot see bundle data)');
    this.#refuse(expr, `operand of type ${term.type} has no RBAC form`);
  }

  condition(expr: Expr): Condition {
    if (expr.negated === true) this.#refuse(expr, 'negation (`not`) has no RBAC form');
    if (expr.with !== undefined && expr.with.length > 0) this.#refuse(expr, '`with` has no RBAC form');
    if (!Array.isArray(expr.terms)) {
      const t = expr.terms;
      if (t.type === 'every') this.#refuse(expr, '`every` has no RBAC form');
      if (t.type === 'someDecl') this.#refuse(expr, '`some` has no RBAC form');
      if (refRoot(t) === 'data') this.#refuse(expr, 'reads data (RBAC cannot see bundle data)');
      this.#refuse(expr, 'a bare term (truthiness test) has no RBAC form');
    }
    const [op, ...args] = expr.terms;
    const name = operatorName(op!);
    if (name === 'equal' || name === 'eq') {
      const [a, b] = args.map((t) => this.#operand(expr, t));
      const pair = 'path' in a! && 'str' in b! ? { path: a.path, str: b.str } : 'path' in b! && 'str' in a! ? { path: b.path, str: a.str } : null;
      if (pair === null) this.#refuse(expr, 'only an input field compared with a string constant has an RBAC form');
      return this.#equality(expr, pair.path, pair.str);
    }
    if (name === 'internal.member_2') {
      const [a, b] = args.map((t) => this.#operand(expr, t));
      if (!('path' in a!) || !('set' in b!) || a.path.join('.') !== METHOD) this.#refuse(expr, 'only `input.attributes.request.http.method in {…}` has an RBAC form among `in` tests');
      if (b.set.length === 0) this.#refuse(expr, 'an empty set never matches');
      const rules = [...new Set(b.set)].map((m) => this.#method(expr, m));
      return { permission: rules.length === 1 ? rules[0]! : { or_rules: { rules } } };
    }
    if (name === 'startswith') {
      const [a, b] = args.map((t) => this.#operand(expr, t));
      if (!('path' in a!) || !('str' in b!) || a.path.join('.') !== PATH) this.#refuse(expr, 'only `startswith(input.attributes.request.http.path, "<prefix>")` has an RBAC form among startswith tests');
      if (b.str === '') this.#refuse(expr, 'an empty prefix is not a useful path condition');
      return { permission: header(':path', { prefix: b.str }) };
    }
    if (name === 'assign') this.#refuse(expr, 'local variables (`:=`) have no RBAC form');
    this.#refuse(expr, `function \`${name}\` has no RBAC form`);
  }

  #method(expr: Expr, m: string): JsonObject {
    if (m === '') this.#refuse(expr, 'an empty method never matches');
    return header(':method', exact(m));
  }

  #equality(expr: Expr, path: Array<string | number>, value: string): Condition {
    const key = path.join('.');
    if (key === PRINCIPAL) {
      if (value === '') this.#refuse(expr, 'an empty principal is a plaintext caller, which RBAC cannot name');
      return { principal: { authenticated: { principal_name: exact(value) } } };
    }
    if (key === METHOD) return { permission: this.#method(expr, value) };
    if (key === PATH) {
      if (value === '') this.#refuse(expr, 'an empty path never matches');
      return { permission: header(':path', exact(value)) };
    }
    if (path.length === 2 && path[0] === 'parsed_path' && path[1] === 0) {
      if (value === '' || /[/?#%]/.test(value)) this.#refuse(expr, 'a first path segment that is empty or holds / ? # % has no exact url_path form');
      return { permission: { or_rules: { rules: [{ url_path: { path: exact(`/${value}`) } }, { url_path: { path: { prefix: `/${value}/` } } }] } } };
    }
    if (path.length === 5 && key.startsWith(`${HEADERS}.`) && typeof path[4] === 'string') {
      const name = path[4];
      if (name !== name.toLowerCase()) this.#refuse(expr, `header names in the input are lowercase, \`${name}\` never matches`);
      if (name === '') this.#refuse(expr, 'an empty header name never matches');
      return { permission: header(name, exact(value)) };
    }
    this.#refuse(expr, `input.${path.join('.')} has no RBAC form`);
  }
}

function termsOf(path: Term[]): string[] {
  return path.map((t) => String(t.value));
}

/**
 * Analyzes `entrypoint` (slash separated: `envoy/authz/allow`) over parsed modules. Pure:
 * the same ASTs always give the same verdict and the same RBAC JSON.
 */
export function analyzeModules(modules: readonly ParsedModule[], entrypoint: string): RbacAnalysis {
  try {
    return { expressible: true, rbac: analyze(modules, entrypoint) };
  } catch (err) {
    if (err instanceof Refusal) return { expressible: false, reason: err.reason };
    throw err;
  }
}

function analyze(modules: readonly ParsedModule[], entrypoint: string): EnvoyRbacJson {
  const want = entrypoint.split('/');
  const rules: Array<{ file: string; rule: Rule }> = [];
  const aliases = new Map<string, Term>();
  for (const { file, ast } of modules) {
    const m = ast as Module;
    const pkg = termsOf(m.package.path).slice(1); // drop `data`
    if (pkg.length >= want.length || pkg.join('/') !== want.slice(0, pkg.length).join('/')) continue;
    const rest = want.slice(pkg.length);
    for (const rule of m.rules ?? []) {
      const ref = termsOf(rule.head.ref ?? []);
      if (ref.join('/') === rest.join('/')) rules.push({ file, rule });
      else if (pkg.length === want.length - 1 && ref.length === 1 && rule.default !== true && rule.head.value !== undefined && isAliasBody(rule) && inputPath(rule.head.value) !== null) {
        // `caller := input.attributes.source.principal`: followed when the body names it.
        if (aliases.has(ref[0]!)) aliases.delete(ref[0]!);
        else aliases.set(ref[0]!, rule.head.value);
      }
    }
  }
  if (rules.length === 0) throw new Refusal(`no rule ${entrypoint.replaceAll('/', '.')} in the Rego sources`);
  const defaults = rules.filter((r) => r.rule.default === true);
  const bodies = rules.filter((r) => r.rule.default !== true);
  if (defaults.length === 0) throw new Refusal(`${where(bodies[0]!.file, bodies[0]!.rule.location)}: no \`default ${want.at(-1)} := false\`: RBAC denies what matches no policy, OPA would be undefined`);
  const def = defaults[0]!;
  if (def.rule.head.value?.type !== 'boolean' || def.rule.head.value.value !== false) {
    throw new Refusal(`${where(def.file, def.rule.location)}: \`${text(def.rule.location)}\`: the default must be false (an object or true result has no RBAC form)`);
  }
  const policies: EnvoyRbacJson['policies'] = {};
  bodies.forEach(({ file, rule }, i) => {
    const at = `${where(file, rule.location)}: \`${text(rule.location).split('\n')[0]}\``;
    if (rule.head.args !== undefined && rule.head.args.length > 0) throw new Refusal(`${at}: a function has no RBAC form`);
    if (rule.head.key !== undefined) throw new Refusal(`${at}: a partial set/object rule has no RBAC form`);
    if (rule.else !== undefined) throw new Refusal(`${at}: \`else\` has no RBAC form`);
    const v = rule.head.value;
    if (v?.type !== 'boolean' || v.value !== true) throw new Refusal(`${at}: only \`true\` results have an RBAC form (this rule's value is a ${v?.type ?? 'missing'})`);
    const analyzer = new Analyzer(file, aliases);
    const principals: JsonObject[] = [];
    const permissions: JsonObject[] = [];
    for (const expr of rule.body) {
      if (expr.generated === true && !Array.isArray(expr.terms) && expr.terms.type === 'boolean' && expr.terms.value === true) continue;
      const c = analyzer.condition(expr);
      if ('principal' in c) principals.push(c.principal);
      else permissions.push(c.permission);
    }
    policies[`${want.at(-1)}[${i}]`] = {
      permissions: [permissions.length === 0 ? { any: true } : permissions.length === 1 ? permissions[0]! : { and_rules: { rules: permissions } }],
      principals: [principals.length === 0 ? { any: true } : principals.length === 1 ? principals[0]! : { and_ids: { ids: principals } }],
    };
  });
  return { action: 'ALLOW', policies };
}

function isAliasBody(rule: Rule): boolean {
  return rule.body.length === 1 && rule.body[0]!.generated === true && !Array.isArray(rule.body[0]!.terms) && rule.body[0]!.terms.type === 'boolean';
}

function runParse(opa: string, file: string, cwd: string): Promise<{ ok: true; ast: unknown } | { ok: false; message: string }> {
  return new Promise((resolve) => {
    execFile(opa, ['parse', '--format', 'json', '--json-include', 'locations,-comments', file], { cwd, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null) resolve({ ok: false, message: parseError(stdout) ?? parseError(stderr) ?? (stderr || err.message).trim() });
      else resolve({ ok: true, ast: JSON.parse(stdout) as unknown });
    });
  });
}

/** opa parse prints `{"errors": [{message, code, location}]}` on stdout; the first, as `row: code: message`. */
function parseError(stdout: string): string | null {
  try {
    const e = (JSON.parse(stdout) as { errors?: Array<{ message?: string; code?: string; location?: { row?: number } }> }).errors?.[0];
    return e === undefined ? null : `${e.location?.row ?? 0}: ${e.code ?? 'error'}: ${e.message ?? ''}`;
  } catch {
    return null;
  }
}

/** The `.rego` files under `dir` that `opa build` compiles into the policy (tests excluded), relative, sorted. */
async function regoFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.rego') && !e.name.endsWith('_test.rego'))
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

/**
 * Runs `opa parse` (the pinned opa, findOpa()) on each Rego file of `dir` and analyzes each
 * entrypoint. A file opa cannot parse makes every entrypoint inexpressible (opa build then
 * reports the error itself).
 */
export async function analyzeDirectory(dir: string, entrypoints: readonly string[], opa: string = findOpa()): Promise<Record<string, RbacAnalysis>> {
  const modules: ParsedModule[] = [];
  for (const file of await regoFiles(dir)) {
    const r = await runParse(opa, file, dir);
    if (!r.ok) return Object.fromEntries(entrypoints.map((e) => [e, { expressible: false, reason: `${file}:${r.message.split('\n')[0]} (opa parse)` }]));
    modules.push({ file, ast: r.ast });
  }
  return Object.fromEntries(entrypoints.map((e) => [e, analyzeModules(modules, e)]));
}

/**
 * The verdict for `entrypoint` recorded in a bundle's data, or null when the bundle carries
 * none (built before this analysis, or by plain `opa build`).
 */
export function envoyRbacFromData(data: Readonly<Record<string, unknown>>, entrypoint: string): RbacAnalysis | null {
  const ns = data[ENVOY_RBAC_DATA_PATH[0]];
  if (typeof ns !== 'object' || ns === null) return null;
  const table = (ns as Record<string, unknown>)[ENVOY_RBAC_DATA_PATH[1]];
  if (typeof table !== 'object' || table === null) return null;
  const v = (table as Record<string, unknown>)[entrypoint];
  if (typeof v !== 'object' || v === null) return null;
  const r = v as Record<string, unknown>;
  if (r.expressible === true && typeof r.rbac === 'object' && r.rbac !== null) return { expressible: true, rbac: r.rbac as EnvoyRbacJson };
  if (r.expressible === false && typeof r.reason === 'string') return { expressible: false, reason: r.reason };
  return null;
}

/** "RBAC (N policies)" or "ext_authz (reason)", as `policy build` and `analyze` print it. */
export function describeEnvoyTranslation(a: RbacAnalysis | null): string {
  if (a === null) return 'ext_authz (the bundle carries no Envoy analysis: rebuild it with palisade policy build)';
  if (a.expressible) {
    const n = Object.keys(a.rbac.policies).length;
    return `RBAC (${n} ${n === 1 ? 'policy' : 'policies'})`;
  }
  return `ext_authz (${a.reason})`;
}
