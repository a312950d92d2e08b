/**
 * `palisade <command> [flags]`. Each command lives in cli/commands/ and exports
 * `run(argv): Promise<number>` (the exit code) and its help text.
 */
import * as control from './commands/control.ts';
import * as proxies from './commands/proxies.ts';
import * as demo from './commands/demo.ts';
import { pathToFileURL } from 'node:url';

interface Command {
  summary: string;
  help: string;
  run(argv: string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = { control, proxies, demo };

const USAGE = `palisade: a zero-trust service-mesh edge

Usage: palisade <command> [flags]

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)}${c.summary}`).join('\n')}

Run 'palisade <command> --help' for a command's flags.
`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`palisade: unknown command ${JSON.stringify(name)}\n\n${USAGE}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(cmd.help);
    return 0;
  }
  return cmd.run(rest);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exitCode = await main(process.argv.slice(2));
}
