/** docs/errors.md and the source list the same error codes (fastify's errors drift test). */
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '../..');
const SOURCE_DIRS = ['xds', 'control', 'sidecar', 'certs', 'policies', 'cli'];

function sourceCodes(): Set<string> {
  const codes = new Set<string>();
  for (const dir of SOURCE_DIRS) {
    let entries: string[];
    try {
      entries = readdirSync(join(ROOT, dir), { recursive: true }) as string[];
    } catch {
      continue;
    }
    for (const f of entries) {
      if (!f.endsWith('.ts') || f.startsWith('gen/')) continue;
      for (const m of readFileSync(join(ROOT, dir, f), 'utf8').matchAll(/'(PAL_ERR_[A-Z0-9_]+)'/g)) codes.add(m[1]!);
    }
  }
  return codes;
}

describe('docs/errors.md', () => {
  it('documents every error code the source uses, and no other', () => {
    const documented = new Set([...readFileSync(join(ROOT, 'docs/errors.md'), 'utf8').matchAll(/^### `(PAL_ERR_[A-Z0-9_]+)`$/gm)].map((m) => m[1]!));
    const used = sourceCodes();
    expect(used.size).toBeGreaterThan(5);
    expect([...used].filter((c) => !documented.has(c)).sort()).toEqual([]);
    expect([...documented].filter((c) => !used.has(c)).sort()).toEqual([]);
  });
});
