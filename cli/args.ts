/** Flag parsing shared by the commands: node:util parseArgs with errors that name the flag. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { PalisadeError } from '../xds/errors.ts';

/** Bad flags or arguments: exit code 2 with the command's help. */
export class UsageError extends PalisadeError {
  constructor(message: string) {
    super('PAL_ERR_CLI_USAGE', message);
  }
}

export function parseFlags<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: false, strict: true }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** host:port with a numeric port 0..65535; IPv6 hosts in brackets. */
export function checkAddress(flag: string, value: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(value);
  if (!m || Number(m[2]) > 65535) throw new UsageError(`${flag} must be host:port (e.g. 127.0.0.1:18000), got ${JSON.stringify(value)}`);
  return value;
}

export const OUTPUTS = ['table', 'json'] as const;
export type Output = (typeof OUTPUTS)[number];

export function checkOutput(value: string): Output {
  if (!(OUTPUTS as readonly string[]).includes(value)) throw new UsageError(`-o/--output must be one of ${OUTPUTS.join(', ')}, got ${JSON.stringify(value)}`);
  return value as Output;
}

/** Runs a command body, turning usage errors into exit code 2 with the message. */
export async function guard(name: string, help: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if ((err as { code?: string }).code === 'PAL_ERR_CLI_USAGE') {
      process.stderr.write(`palisade ${name}: ${(err as Error).message}\n\n${help}`);
      return 2;
    }
    const e = err as Error & { code?: string };
    process.stderr.write(`palisade ${name}: ${e.code ? `${e.code}: ` : ''}${e.message}\n`);
    return 1;
  }
}
