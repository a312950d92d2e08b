/** Builds the small Go programs of the interop tests (test/interop/<name>/) with the default Go caches. */
import { execFile, spawnSync } from 'node:child_process';

/** A cold build fetches modules from the proxy: generous. */
export const GO_BUILD_TIMEOUT_MS = 300_000;

/** Fails (never skips) when Go is missing: CI machines have it and these suites must run. */
export function requireGo(what: string): void {
  const r = spawnSync('go', ['version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error || r.status !== 0) {
    throw new Error(`${what} needs the Go toolchain on PATH (go version failed: ${r.error?.message ?? r.stderr.trim()}); install Go >= 1.26`);
  }
}

/** `go build -o out .` in moduleDir. */
export function goBuild(moduleDir: string, out: string, timeoutMs = GO_BUILD_TIMEOUT_MS): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('go', ['build', '-buildvcs=false', '-o', out, '.'], { cwd: moduleDir, timeout: timeoutMs, maxBuffer: 16 << 20 },
      (err, _stdout, stderr) => (err ? reject(new Error(`go build in ${moduleDir} failed: ${err.message}\n${stderr}`)) : resolve()));
  });
}
