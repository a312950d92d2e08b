/**
 * `palisade <command> [flags]`. Each command lives in cli/commands/ and exports
 * `run(argv): Promise<number>` (the exit code) and its help text.
 */
import { pathToFileURL } from 'node:url';

interface Command {
  help: string;
  run(argv: string[]): Promise<number>;
}

/** Commands load on demand, so `palisade proxies` does not pay for the control plane's imports. */
const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  control: { summary: 'run the control plane: watch a config directory, serve xDS', load: () => import('./commands/control.ts') },
  config: { summary: 'check a config directory and what admission control would deny or mutate', load: () => import('./commands/config.ts') },
  proxies: { summary: 'list connected proxies and what they ACKed or NACKed', load: () => import('./commands/proxies.ts') },
  slo: { summary: 'SLOs of the Routes: error budget left, burn rates, firing alerts', load: () => import('./commands/slo.ts') },
  sidecar: { summary: 'run the sidecar for one workload from a bootstrap file', load: () => import('./commands/sidecar.ts') },
  certs: { summary: 'workload identity: CA (init-root), join tokens, inspect certificates', load: () => import('./commands/certs.ts') },
  policy: { summary: 'authorization policies: build signed wasm bundles, test Rego, signing keys', load: () => import('./commands/policy.ts') },
  usage: { summary: 'usage per tenant and route of a day (requests, bytes, denials, errors)', load: () => import('./commands/usage.ts') },
  analyze: { summary: 'how each Policy is enforced: Envoy RBAC or ext_authz (and why), sidecar wasm', load: () => import('./commands/analyze.ts') },
  demo: { summary: 'run the whole system on embedded defaults and show it working', load: () => import('./commands/demo.ts') },
  bench: { summary: 'run the benchmark suite; write docs/benchmarks.md with a table and an SVG chart per scenario', load: () => import('./commands/bench.ts') },
};

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
  const entry = COMMANDS[name];
  if (!entry) {
    process.stderr.write(`palisade: unknown command ${JSON.stringify(name)}\n\n${USAGE}`);
    return 2;
  }
  const cmd = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(cmd.help);
    return 0;
  }
  return cmd.run(rest);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exitCode = await main(process.argv.slice(2));
}
