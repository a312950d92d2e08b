/** The environment the policy tooling reads (the only place it reads process.env). */
import { homedir } from 'node:os';
import { join } from 'node:path';

/** `PALISADE_OPA`: the `opa` binary to run, overriding the pinned one and PATH. */
export function opaOverride(): string | null {
  const v = process.env.PALISADE_OPA;
  return v === undefined || v === '' ? null : v;
}

/** Where scripts/install-opa.sh puts the pinned `opa`: `${XDG_CACHE_HOME:-~/.cache}/palisade`. */
export function toolCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache'), 'palisade');
}

/** The PATH entries, in order. */
export function pathEntries(): string[] {
  return (process.env.PATH ?? '').split(':').filter((p) => p !== '');
}
