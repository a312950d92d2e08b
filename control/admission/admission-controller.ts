/**
 * Admission control: every resource of an incoming desired state goes through signed OPA
 * wasm bundles before the control plane accepts it, the way OPA Gatekeeper and the OPA
 * Kubernetes admission controller sit in front of the API server.
 *
 *   source ──state──▶ review(state, inForce) ──mutated state──▶ translate ▶ snapshots
 *                      per resource:
 *                        1. admission/patch of each bundle, in bundle order (RFC 6902 ops),
 *                           the result validated again against its kind's schema
 *                        2. admission/deny of each bundle on the mutated document
 *                      then the mutated resources are built into a state again (references)
 *
 * A denial anywhere refuses the whole change. Evaluation errors, malformed answers and
 * patches that do not apply or make the document invalid are denials (fail closed). Only
 * signed bundles are loaded: `load` verifies each against the configured keys first.
 *
 * Outcomes are cached per resource by the canonical JSON of its admission input, for one
 * review to the next: an edit to one file re-evaluates only what changed.
 */
import { readFile } from 'node:fs/promises';
import { readBundle, type Bundle } from '../../policies/bundle.ts';
import { BundleInvalidError, BundleSignatureError } from '../../policies/errors.ts';
import { PolicyEngine } from '../../policies/evaluator.ts';
import { syncVerificationKeys, verifyBundleSync, type SyncVerificationKeys } from '../../policies/signature.ts';
import type { ConfigError, SourceRef } from '../config/config-error.ts';
import { formatConfigError } from '../config/config-error.ts';
import type { Resource } from '../config/schema.ts';
import { buildState, canonicalJson, type DesiredState } from '../config/state.ts';
import { toDocument, validateDocument } from '../config/validate.ts';
import { AdmissionNoEntrypointError } from './errors.ts';
import { applyPatch, parsePatch, type PatchOperation } from './json-patch.ts';

/** The rule answering the reasons to deny a resource: a set (or array) of strings, empty when allowed. */
export const DENY_ENTRYPOINT = 'admission/deny';
/** The rule answering the RFC 6902 JSON Patch operations to apply to a resource: an array (or set) of operations. */
export const PATCH_ENTRYPOINT = 'admission/patch';

/** A resource as policies see it: the document with defaults applied, without its source. */
export type AdmissionDocument = Record<string, unknown>;

/** What `admission/deny` and `admission/patch` receive as `input`, per resource. */
export interface AdmissionInput {
  /** UPDATE when a resource of the same kind, namespace and name is in force, else CREATE. */
  readonly operation: 'CREATE' | 'UPDATE';
  readonly resource: AdmissionDocument;
  /** The version in force for an UPDATE (as admitted, mutations included), else null. */
  readonly oldResource: AdmissionDocument | null;
  /** Where the resource was read: file and 0-based document index. */
  readonly source: SourceRef;
}

/** One reason a bundle gave to refuse one resource. */
export interface AdmissionDenial {
  /** `Kind namespace/name`. */
  readonly resource: string;
  readonly source: SourceRef;
  /** The bundle's name (its file as configured). */
  readonly bundle: string;
  readonly reason: string;
}

/** The patch one bundle applied to one resource. */
export interface AdmissionMutation {
  readonly resource: string;
  readonly source: SourceRef;
  readonly bundle: string;
  readonly patch: readonly PatchOperation[];
  /** The resource after this patch (defaults applied). */
  readonly document: AdmissionDocument;
}

export interface AdmissionReview {
  /** Nothing denied and the mutated resources still form a consistent state. */
  readonly allowed: boolean;
  /** The state to serve when allowed (the input state when nothing was mutated); the input state otherwise. */
  readonly state: DesiredState;
  readonly denials: readonly AdmissionDenial[];
  readonly mutations: readonly AdmissionMutation[];
  /** One line per problem: each denial (`FILE#INDEX Kind ns/name: denied by BUNDLE: REASON`), then reference errors the mutations caused. */
  readonly errors: readonly string[];
}

/** One loaded bundle. */
interface AdmissionBundle {
  readonly name: string;
  readonly revision: string;
  readonly deny: PolicyEngine | null;
  readonly patch: PolicyEngine | null;
}

/** A resource's outcome, cached by its input. */
interface Outcome {
  readonly resource: Resource;
  readonly changed: boolean;
  readonly mutations: readonly AdmissionMutation[];
  readonly denials: readonly AdmissionDenial[];
}

/** `FILE#INDEX Kind ns/name: denied by BUNDLE: REASON`. */
export function formatDenial(d: AdmissionDenial): string {
  return `${d.source.file}#${d.source.index} ${d.resource}: denied by ${d.bundle}: ${d.reason.replace(/\s*\n\s*/g, ' ')}`;
}

/** Every resource of a state (whatever kinds it holds), in source order. */
export function stateResources(state: DesiredState): Resource[] {
  const out: Resource[] = [];
  for (const value of Object.values(state) as unknown[]) {
    if (isResource(value)) out.push(value);
    else if (value instanceof Map) for (const r of value.values() as Iterable<unknown>) if (isResource(r)) out.push(r);
  }
  return out.sort((a, b) => (a.source.file !== b.source.file ? (a.source.file < b.source.file ? -1 : 1) : a.source.index - b.source.index));
}

function isResource(v: unknown): v is Resource {
  return v !== null && typeof v === 'object' && typeof (v as { kind?: unknown }).kind === 'string' && typeof (v as { metadata?: unknown }).metadata === 'object';
}

function identity(r: Resource): string {
  return `${r.kind} ${r.metadata.namespace}/${r.metadata.name}`;
}

/** A plain, mutable JSON copy of a resource's document. */
function plain(r: Resource): AdmissionDocument {
  return JSON.parse(JSON.stringify(toDocument(r))) as AdmissionDocument;
}

export class AdmissionController {
  readonly #bundles: readonly AdmissionBundle[];
  #cache = new Map<string, Outcome>();

  private constructor(bundles: readonly AdmissionBundle[]) {
    this.#bundles = bundles;
  }

  /**
   * Reads, verifies and loads each bundle, in order (patches apply in this order). Throws
   * `PAL_ERR_POLICY_BUNDLE_INVALID` (not a bundle), `PAL_ERR_POLICY_BUNDLE_SIGNATURE`
   * (unsigned, or it does not verify with `keys`), `PAL_ERR_POLICY_LOAD` or
   * `PAL_ERR_ADMISSION_NO_ENTRYPOINT` (neither admission/deny nor admission/patch), each naming the bundle.
   */
  static async load(bundles: ReadonlyArray<{ readonly name: string; readonly bytes: Uint8Array }>, keys: SyncVerificationKeys): Promise<AdmissionController> {
    const loaded: AdmissionBundle[] = [];
    for (const { name, bytes } of bundles) {
      let bundle: Bundle;
      try {
        bundle = readBundle(bytes);
      } catch (cause) {
        throw new BundleInvalidError(`admission bundle ${name}: ${(cause as Error).message}`, { cause });
      }
      try {
        verifyBundleSync(bundle, keys);
      } catch (cause) {
        throw new BundleSignatureError(`admission bundle ${name} refused: ${(cause as Error).message}`, { cause });
      }
      const deny = await engineFor(bundle, DENY_ENTRYPOINT);
      const patch = await engineFor(bundle, PATCH_ENTRYPOINT);
      if (deny === null && patch === null) {
        throw new AdmissionNoEntrypointError(`admission bundle ${name} has neither ${DENY_ENTRYPOINT} nor ${PATCH_ENTRYPOINT} (build it with -e ${DENY_ENTRYPOINT} and/or -e ${PATCH_ENTRYPOINT})`);
      }
      loaded.push({ name, revision: bundle.revision, deny, patch });
    }
    return new AdmissionController(loaded);
  }

  /** `load` from bundle files (named as given) and one PEM public key (key id `default`, as `palisade policy build` signs). */
  static async fromFiles(files: readonly string[], verificationKeyFile: string): Promise<AdmissionController> {
    let pem: string;
    try {
      pem = await readFile(verificationKeyFile, 'utf8');
    } catch (cause) {
      throw new BundleSignatureError(`cannot read the admission verification key ${verificationKeyFile}: ${(cause as Error).message}`, { cause });
    }
    const keys = syncVerificationKeys({ keys: { default: { pem } }, defaultKeyId: 'default' });
    const bundles: Array<{ name: string; bytes: Uint8Array }> = [];
    for (const file of files) {
      try {
        bundles.push({ name: file, bytes: new Uint8Array(await readFile(file)) });
      } catch (cause) {
        throw new BundleInvalidError(`cannot read admission bundle ${file}: ${(cause as Error).message}`, { cause });
      }
    }
    return AdmissionController.load(bundles, keys);
  }

  /** The loaded bundles: name, revision and which rules each has. */
  get bundles(): ReadonlyArray<{ name: string; revision: string; deny: boolean; patch: boolean }> {
    return this.#bundles.map((b) => ({ name: b.name, revision: b.revision, deny: b.deny !== null, patch: b.patch !== null }));
  }

  /**
   * Runs every resource of `state` through the bundles. `inForce` is the state now served
   * (null for the first): a resource it holds (same kind, namespace, name) is an UPDATE.
   * Never throws.
   */
  review(state: DesiredState, inForce: DesiredState | null): AdmissionReview {
    const old = new Map<string, Resource>();
    if (inForce !== null) for (const r of stateResources(inForce)) old.set(identity(r), r);
    const cache = new Map<string, Outcome>();
    const resources: Resource[] = [];
    const denials: AdmissionDenial[] = [];
    const mutations: AdmissionMutation[] = [];
    let changed = false;
    for (const r of stateResources(state)) {
      const previous = old.get(identity(r));
      const input: AdmissionInput = {
        operation: previous === undefined ? 'CREATE' : 'UPDATE',
        resource: plain(r),
        oldResource: previous === undefined ? null : plain(previous),
        source: { file: r.source.file, index: r.source.index },
      };
      const key = canonicalJson(input);
      const outcome = this.#cache.get(key) ?? this.#admit(r, input);
      cache.set(key, outcome);
      resources.push(outcome.resource);
      denials.push(...outcome.denials);
      mutations.push(...outcome.mutations);
      changed ||= outcome.changed;
    }
    this.#cache = cache;
    const errors = denials.map(formatDenial);
    if (denials.length > 0) return { allowed: false, state, denials, mutations, errors };
    if (!changed) return { allowed: true, state, denials, mutations, errors };
    const built = buildState(resources, state.policyBundles);
    if (!built.valid) {
      return { allowed: false, state, denials, mutations, errors: built.errors.map((e: ConfigError) => `${formatConfigError(e)} (after admission mutations)`) };
    }
    return { allowed: true, state: built.result, denials, mutations, errors };
  }

  /** Drops the wasm instances. */
  close(): void {
    for (const b of this.#bundles) {
      b.deny?.close();
      b.patch?.close();
    }
    this.#cache.clear();
  }

  #admit(original: Resource, input: AdmissionInput): Outcome {
    const name = identity(original);
    const mutations: AdmissionMutation[] = [];
    const denials: AdmissionDenial[] = [];
    const deny = (bundle: string, reason: string) => denials.push({ resource: name, source: input.source, bundle, reason });
    let resource = original;
    let doc = input.resource;
    for (const b of this.#bundles) {
      if (b.patch === null) continue;
      const raw = b.patch.evaluateRaw({ ...input, resource: doc });
      if (!raw.ok) {
        deny(b.name, `${PATCH_ENTRYPOINT}: ${raw.reason}`);
        break;
      }
      if (raw.value === undefined) continue;
      const ops = parsePatch(raw.value);
      if (!ops.valid) {
        deny(b.name, `${PATCH_ENTRYPOINT} ${ops.errors}`);
        break;
      }
      if (ops.result.length === 0) continue;
      const applied = applyPatch(doc, ops.result);
      if (!applied.valid) {
        deny(b.name, `${PATCH_ENTRYPOINT} does not apply: ${applied.errors}`);
        break;
      }
      const checked = validateDocument(applied.result, input.source);
      if (!checked.valid) {
        deny(b.name, `${PATCH_ENTRYPOINT} makes the resource invalid: ${checked.errors.map((e) => (e.path === '' ? e.message : `${e.path}: ${e.message}`)).join('; ')}`);
        break;
      }
      if (identity(checked.result) !== name || checked.result.apiVersion !== original.apiVersion) {
        deny(b.name, `${PATCH_ENTRYPOINT} may not change apiVersion, kind, metadata.name or metadata.namespace (would make ${identity(checked.result)})`);
        break;
      }
      const next = plain(checked.result);
      if (canonicalJson(next) === canonicalJson(doc)) continue;
      mutations.push({ resource: name, source: input.source, bundle: b.name, patch: ops.result, document: next });
      resource = checked.result;
      doc = next;
    }
    if (denials.length === 0) {
      for (const b of this.#bundles) {
        if (b.deny === null) continue;
        const raw = b.deny.evaluateRaw({ ...input, resource: doc });
        if (!raw.ok) deny(b.name, `${DENY_ENTRYPOINT}: ${raw.reason}`);
        else if (raw.value === undefined) continue;
        else if (!Array.isArray(raw.value) || !raw.value.every((v) => typeof v === 'string')) {
          deny(b.name, `${DENY_ENTRYPOINT} must be a set of strings (the reasons), got ${JSON.stringify(raw.value)}`);
        } else for (const reason of raw.value as string[]) deny(b.name, reason);
      }
    }
    return { resource, changed: resource !== original, mutations, denials };
  }
}

/** The bundle's engine for `entrypoint`, or null when the bundle does not have that rule. */
async function engineFor(bundle: Bundle, entrypoint: string): Promise<PolicyEngine | null> {
  if (bundle.manifest.wasm.length > 0 && !bundle.manifest.wasm.some((w) => w.entrypoint === entrypoint)) return null;
  try {
    return await PolicyEngine.create(bundle, { entrypoint });
  } catch (err) {
    if ((err as { code?: string }).code === 'PAL_ERR_POLICY_LOAD' && /no (wasm module for )?entrypoint/.test((err as Error).message)) return null;
    throw err;
  }
}
