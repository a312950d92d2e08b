/** docs/schemas/*.json are what the validating schemas say (regenerate: node scripts/write-schemas.ts). */
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { schemaFiles } from '../../scripts/write-schemas.ts';

const DIR = join(import.meta.dirname, '../../docs/schemas');

describe('docs/schemas', () => {
  it('match the schemas configuration is validated with', () => {
    const want = schemaFiles();
    expect(readdirSync(DIR).sort()).toEqual(Object.keys(want).sort());
    for (const [file, text] of Object.entries(want)) expect(readFileSync(join(DIR, file), 'utf8'), file).toBe(text);
  });
});
