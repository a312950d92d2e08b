/** Desired state from YAML texts, as the control plane would load it; throws on any error. */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../../control/config/parse.ts';
import { buildState, type DesiredState } from '../../control/config/state.ts';
import type { Resource } from '../../control/config/schema.ts';

export const FIXTURE_CONFIG_DIR = join(import.meta.dirname, '../fixtures/config');

export function stateFrom(texts: Record<string, string>): DesiredState {
  const resources: Resource[] = [];
  for (const [file, text] of Object.entries(texts)) {
    const r = parseConfig(text, file);
    if (!r.valid) throw new Error(JSON.stringify(r.errors));
    resources.push(...r.result);
  }
  const s = buildState(resources);
  if (!s.valid) throw new Error(JSON.stringify(s.errors));
  return s.result;
}

/** The files of test/fixtures/config, by name. */
export function fixtureFiles(): Record<string, string> {
  return Object.fromEntries(readdirSync(FIXTURE_CONFIG_DIR).map((f) => [f, readFileSync(join(FIXTURE_CONFIG_DIR, f), 'utf8')]));
}
