import { stringify } from 'yaml';
import type { Resource } from './schema.ts';
import { toDocument } from './validate.ts';

/**
 * Resources back to YAML text, one document each, separated by `---`, `source` dropped and
 * defaults written out. `parseConfig` of the output yields the same resources (with new
 * sources): the round trip is exact.
 */
export function serializeConfig(resources: readonly Resource[]): string {
  return resources.map((r) => stringify(toDocument(r), { lineWidth: 0 })).join('---\n');
}
