// Writes docs/schemas/<kind>.json, the JSON Schema of each resource kind, from the same
// TypeBox schemas that validate configuration. Usage: node scripts/write-schemas.ts [OUT_DIR]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JSON_SCHEMAS } from '../control/config/schema.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = resolve(process.argv[2] ?? join(ROOT, 'docs/schemas'));

export function schemaFiles(): Record<string, string> {
  return Object.fromEntries(Object.entries(JSON_SCHEMAS).map(([kind, schema]) => [`${kind.toLowerCase()}.json`, `${JSON.stringify(schema, null, 2)}\n`]));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  mkdirSync(OUT, { recursive: true });
  for (const [file, text] of Object.entries(schemaFiles())) writeFileSync(join(OUT, file), text);
  console.log(`wrote ${Object.keys(JSON_SCHEMAS).length} JSON Schemas into ${OUT}`);
}
