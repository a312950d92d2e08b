/**
 * xds/gen/ is only ever written by `npm run generate`: regenerating from the pinned
 * proto sources must reproduce it byte for byte (fastify's test:validator:integrity).
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const ROOT = join(import.meta.dirname, '../..');

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => relative(dir, join(d.parentPath, d.name)))
    .sort();
}

describe('generated Envoy types', () => {
  it('are exactly what npm run generate produces', () => {
    const out = mkdtempSync(join(tmpdir(), 'palisade-gen-'));
    try {
      execFileSync(process.execPath, [join(ROOT, 'scripts/generate.ts'), out], { cwd: ROOT, stdio: 'pipe', timeout: 120_000 });
      const committed = join(ROOT, 'xds/gen');
      expect(files(out)).toEqual(files(committed));
      const differing = files(out).filter((f) => !readFileSync(join(out, f)).equals(readFileSync(join(committed, f))));
      expect(differing).toEqual([]);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 180_000);
});
