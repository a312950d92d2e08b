/** Runs the real `palisade policy build` (and so the pinned opa) on Rego sources; for tests that need real bundles. */
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const CLI = join(import.meta.dirname, '../../cli/main.ts');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `node cli/main.ts ...args`, never rejecting. */
export function palisade(args: readonly string[], cwd?: string): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000, cwd }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

/** Writes `files` under `srcDir` and builds them (unsigned unless `signingKeyFile`) into `out`; throws on failure. */
export async function buildPolicy(srcDir: string, files: Record<string, string>, out: string, entrypoint = 'envoy/authz/allow', signingKeyFile?: string): Promise<CliRun> {
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(srcDir, name)), { recursive: true });
    await writeFile(join(srcDir, name), text);
  }
  const r = await palisade(['policy', 'build', srcDir, '-e', entrypoint, '--out', out, ...(signingKeyFile === undefined ? ['--unsigned'] : ['--signing-key', signingKeyFile])]);
  if (r.code !== 0) throw new Error(`policy build failed (${r.code}): ${r.stderr}`);
  return r;
}
