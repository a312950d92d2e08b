/**
 * Running the pinned `opa` for `palisade policy build|test`: found by policies/opa-binary.ts
 * findOpa() (PALISADE_OPA, then the pinned build, then PATH), so a missing binary is a
 * `PAL_ERR_POLICY_OPA_NOT_FOUND` refusal saying how to install it.
 */
import { spawn } from 'node:child_process';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { findOpa } from '../../policies/opa-binary.ts';
import { UsageError } from '../args.ts';

/** What one `opa` run left: its exit code (1 when killed by a signal) and, when captured, its output. */
export interface OpaRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `opa args…`. `inherit` passes opa's stdout and stderr straight through (`policy test`);
 * otherwise both are captured for the caller to print verbatim.
 */
export function runOpa(args: readonly string[], options: { inherit?: boolean; cwd?: string } = {}): Promise<OpaRun> {
  const opa = findOpa();
  return new Promise((resolve, reject) => {
    const child = spawn(opa, args, { cwd: options.cwd, stdio: options.inherit === true ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new Error(`could not run ${opa}: ${e.message}`, { cause: e })));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
  });
}

/** node:util parseArgs with positionals allowed anywhere; parse errors become `UsageError` (exit 2). */
export function parseCommand<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
