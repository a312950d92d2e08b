/**
 * Finds the `opa` binary that compiles Rego to wasm. Palisade pins one OPA version
 * (OPA_VERSION), built from the Go module proxy by scripts/install-opa.sh into the tool
 * cache; `PALISADE_OPA` overrides it, and an `opa` on PATH is the last resort. Only
 * `palisade policy build|test` and the tests need it: the sidecar evaluates wasm without Go.
 */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { PalisadeError } from '../xds/errors.ts';
import { opaOverride, pathEntries, toolCacheDir } from './environment.ts';

/** The OPA release Palisade builds and tests against. */
export const OPA_VERSION = 'v1.22.3';

export class OpaNotFoundError extends PalisadeError {
  constructor(message: string) {
    super('PAL_ERR_POLICY_OPA_NOT_FOUND', message);
  }
}

/** Where scripts/install-opa.sh installs the pinned version. */
export function pinnedOpaPath(): string {
  return join(toolCacheDir(), `opa-${OPA_VERSION}`, 'opa');
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The `opa` to run: PALISADE_OPA, else the pinned build, else `opa` on PATH. Throws OpaNotFoundError saying how to get it. */
export function findOpa(): string {
  const override = opaOverride();
  if (override !== null) {
    if (!executable(override)) throw new OpaNotFoundError(`PALISADE_OPA=${override} is not an executable file`);
    return override;
  }
  const pinned = pinnedOpaPath();
  if (executable(pinned)) return pinned;
  for (const dir of pathEntries()) {
    const candidate = join(dir, 'opa');
    if (executable(candidate)) return candidate;
  }
  throw new OpaNotFoundError(`no opa binary: run scripts/install-opa.sh (builds OPA ${OPA_VERSION} into ${pinned} with go install), or set PALISADE_OPA to one`);
}
