/**
 * Evaluates a bundle's wasm policy with @open-policy-agent/opa-wasm. A PolicyEngine serves
 * one bundle revision and one entrypoint: its module is compiled once (WebAssembly.Module)
 * and instantiated into a fixed pool of LoadedPolicy instances, each given the bundle's
 * data.json once. A request then costs one synchronous opa_eval: no compilation, no
 * instantiation, no promise.
 *
 *   const engine = await PolicyEngine.create(bundle, { entrypoint: 'envoy/authz/allow' });
 *   const decision = engine.evaluate(buildInput(req));   // never throws; error → fail closed 500
 *   engine.close();                                       // when the Policy is replaced
 *
 * Pool size: evaluate is synchronous and Node runs one request handler at a time per
 * thread, so one instance per engine per thread is never contended; that is the default.
 * `instances` > 1 only matters if evaluation becomes re-entrant (a custom builtin that
 * evaluates); an engine with no free instance answers an error decision, never waits.
 * Each worker thread builds its own engine (instances are not shareable across threads).
 *
 * Memory: each instance's linear memory starts at `initialMemoryPages` and may grow, for
 * large inputs, up to `maxMemoryPages` (64 KiB pages); past it evaluation fails closed.
 */
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import type { Bundle } from './bundle.ts';
import { errorDecision, toDecision, type Decision } from './decision.ts';
import { PolicyInvalidOptionError, PolicyLoadError } from './errors.ts';

type LoadedPolicy = Awaited<ReturnType<typeof loadPolicy>>;
type CompiledModule = Parameters<typeof loadPolicy>[0];

/** The one WebAssembly call made here: tsconfig's lib (es2024) declares no WebAssembly types. */
declare const WebAssembly: { compile(bytes: Uint8Array): Promise<CompiledModule> };

export interface PolicyEngineOptions {
  /** The entrypoint the decision is read from, as in Policy.entrypoint: `envoy/authz/allow`. */
  readonly entrypoint: string;
  /** Loaded instances, 1..64. Default 1 (see the module comment). */
  readonly instances?: number;
  /** Initial linear memory per instance, 64 KiB pages. Default 5 (opa-wasm's default). */
  readonly initialMemoryPages?: number;
  /** Maximum linear memory per instance, 64 KiB pages. Default 1024 (64 MiB). */
  readonly maxMemoryPages?: number;
}

const DEFAULTS = Object.freeze({ instances: 1, initialMemoryPages: 5, maxMemoryPages: 1024 });

function validate(options: PolicyEngineOptions): Required<PolicyEngineOptions> {
  const o = { ...DEFAULTS, ...options };
  const problems: string[] = [];
  if (typeof o.entrypoint !== 'string' || o.entrypoint === '') problems.push(`entrypoint must be a non-empty string, got ${JSON.stringify(o.entrypoint)}`);
  if (!Number.isInteger(o.instances) || o.instances < 1 || o.instances > 64) problems.push(`instances must be an integer in 1..64, got ${o.instances}`);
  if (!Number.isInteger(o.initialMemoryPages) || o.initialMemoryPages < 2) problems.push(`initialMemoryPages must be an integer >= 2, got ${o.initialMemoryPages}`);
  if (!Number.isInteger(o.maxMemoryPages) || o.maxMemoryPages < o.initialMemoryPages || o.maxMemoryPages > 65536) {
    problems.push(`maxMemoryPages must be an integer in initialMemoryPages..65536, got ${o.maxMemoryPages}`);
  }
  if (problems.length > 0) throw new PolicyInvalidOptionError(problems.join('; '));
  return Object.freeze(o);
}

/** The bundle's module for `entrypoint`: the manifest's `wasm` entry naming it, else a lone module. */
function moduleFor(bundle: Bundle, entrypoint: string): Uint8Array {
  const entry = bundle.manifest.wasm.find((w) => w.entrypoint === entrypoint);
  if (entry !== undefined) return bundle.wasm.get(entry.module)!;
  if (bundle.wasm.size === 1) return bundle.wasm.values().next().value!;
  const known = bundle.manifest.wasm.map((w) => w.entrypoint).join(', ') || 'none';
  throw new PolicyLoadError(`bundle revision ${JSON.stringify(bundle.revision)} has no wasm module for entrypoint ${JSON.stringify(entrypoint)} (manifest entrypoints: ${known})`);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** An entrypoint's raw value (undefined: the rule is undefined), or why there is none. */
export type RawResult = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly reason: string };

export class PolicyEngine {
  /** The bundle's manifest revision. */
  readonly revision: string;
  readonly entrypoint: string;
  readonly #entrypointId: number;
  readonly #free: LoadedPolicy[];
  #closed = false;

  private constructor(revision: string, entrypoint: string, entrypointId: number, instances: LoadedPolicy[]) {
    this.revision = revision;
    this.entrypoint = entrypoint;
    this.#entrypointId = entrypointId;
    this.#free = instances;
  }

  /**
   * Compiles the bundle's module and loads the instance pool with its data. Call after
   * verifyBundle. Throws PolicyInvalidOptionError (`PAL_ERR_POLICY_INVALID_OPTION`) or
   * PolicyLoadError (`PAL_ERR_POLICY_LOAD`: no module for the entrypoint, compile or
   * instantiation failure, entrypoint not exported by the module).
   */
  static async create(bundle: Bundle, options: PolicyEngineOptions): Promise<PolicyEngine> {
    const o = validate(options);
    const bytes = moduleFor(bundle, o.entrypoint);
    let module: CompiledModule;
    try {
      module = await WebAssembly.compile(bytes);
    } catch (cause) {
      throw new PolicyLoadError(`bundle revision ${JSON.stringify(bundle.revision)}: wasm module does not compile: ${message(cause)}`, { cause });
    }
    const json = new TextEncoder().encode(JSON.stringify(bundle.data));
    const data = json.buffer.slice(json.byteOffset, json.byteOffset + json.byteLength); // exactly the JSON: opa-wasm reads the whole buffer
    const instances: LoadedPolicy[] = [];
    for (let i = 0; i < o.instances; i++) {
      try {
        const policy = await loadPolicy(module, { initial: o.initialMemoryPages, maximum: o.maxMemoryPages });
        policy.setData(data);
        instances.push(policy);
      } catch (cause) {
        throw new PolicyLoadError(`bundle revision ${JSON.stringify(bundle.revision)}: wasm module does not load: ${message(cause)}`, { cause });
      }
    }
    const entrypoints = instances[0]!.entrypoints as Record<string, number>;
    if (!Object.hasOwn(entrypoints, o.entrypoint)) {
      throw new PolicyLoadError(`bundle revision ${JSON.stringify(bundle.revision)}: wasm module has no entrypoint ${JSON.stringify(o.entrypoint)} (has ${Object.keys(entrypoints).join(', ') || 'none'})`);
    }
    return new PolicyEngine(bundle.revision, o.entrypoint, entrypoints[o.entrypoint]!, instances);
  }

  /**
   * Evaluates the entrypoint on `input` (buildInput's document, or any JSON value).
   * Synchronous, never throws: a failure is a Decision with `error: true` (fail closed, 500).
   */
  evaluate(input: unknown): Decision {
    if (this.#closed) return errorDecision('policy engine is closed');
    const policy = this.#free.pop();
    if (policy === undefined) return errorDecision('no free policy instance (re-entrant evaluation)');
    try {
      const rs: unknown = policy.evaluate(input, this.#entrypointId);
      if (!Array.isArray(rs) || rs.length === 0) return errorDecision(`policy result is undefined (${this.entrypoint})`);
      return toDecision((rs[0] as { result?: unknown }).result);
    } catch (e) {
      return errorDecision(`policy evaluation failed: ${message(e)}`);
    } finally {
      this.#free.push(policy);
    }
  }

  /**
   * Evaluates the entrypoint on `input` and returns the rule's value as OPA computed it, not
   * read as an authorization Decision (admission rules answer sets and arrays). `value` is
   * undefined when the rule is undefined for this input. Synchronous, never throws.
   */
  evaluateRaw(input: unknown): RawResult {
    if (this.#closed) return { ok: false, reason: 'policy engine is closed' };
    const policy = this.#free.pop();
    if (policy === undefined) return { ok: false, reason: 'no free policy instance (re-entrant evaluation)' };
    try {
      const rs: unknown = policy.evaluate(input, this.#entrypointId);
      if (!Array.isArray(rs) || rs.length === 0) return { ok: true, value: undefined };
      return { ok: true, value: (rs[0] as { result?: unknown }).result };
    } catch (e) {
      return { ok: false, reason: `policy evaluation failed: ${message(e)}` };
    } finally {
      this.#free.push(policy);
    }
  }

  /** Drops the instances (their memory is freed with them); later evaluate calls answer an error decision. */
  close(): void {
    this.#closed = true;
    this.#free.length = 0;
  }
}
