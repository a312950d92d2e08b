/**
 * `palisade policy`: authoring authorization policies. Rego is compiled and tested by the
 * pinned OPA (policies/opa-binary.ts); sidecars run the compiled wasm and never need opa.
 *
 *   palisade policy build DIR -e ENTRYPOINT --signing-key KEY.pem   signed wasm bundle (policy-build.ts)
 *   palisade policy test DIR [-v]                                  opa test
 *   palisade policy keygen --out KEY.pem [--type T]                signing key pair (policy-keys.ts)
 *   palisade policy verify BUNDLE --verification-key PUB.pem       as a sidecar verifies (policy-bundle.ts)
 *   palisade policy inspect BUNDLE                                 manifest, files, signature
 */
import { guard, UsageError } from '../args.ts';
import { build, buildFlagsHelp, buildHelp } from './policy-build.ts';
import { bundleFlagsHelp, bundleHelp, inspect, verify } from './policy-bundle.ts';
import { keygen, keygenFlagsHelp, keygenHelp } from './policy-keys.ts';
import { parseCommand, runOpa } from './policy-opa.ts';

const SUBCOMMANDS = 'build, test, keygen, verify or inspect';

export const help = `Usage: palisade policy <subcommand> [flags]

Subcommands:
${buildHelp}  test DIR [-v]      run the Rego unit tests (*_test.rego) in DIR with opa test; prints opa's
                     report, exits with opa's code (0 when every test passes)
${keygenHelp}${bundleHelp}
Flags:
${buildFlagsHelp}${keygenFlagsHelp}${bundleFlagsHelp}  -v, --verbose              list every test, with its output (test)
  -o, --output table|json    output format (all but test)               (default table)
  -h, --help                 this help

opa: PALISADE_OPA, else the pinned OPA built by scripts/install-opa.sh into
~/.cache/palisade/opa-<version>/opa, else opa on PATH. See docs/policies.md.
`;

async function test(argv: string[]): Promise<number> {
  const { values: flags, positionals } = parseCommand(argv, { verbose: { type: 'boolean', short: 'v', default: false } });
  if (positionals.length === 0) throw new UsageError('test needs the policy directory');
  const run = await runOpa(['test', ...(flags.verbose ? ['-v'] : []), ...positionals], { inherit: true });
  return run.code;
}

export function run(argv: string[]): Promise<number> {
  return guard('policy', help, async () => {
    const [sub, ...rest] = argv;
    switch (sub) {
      case 'build':
        return build(rest);
      case 'test':
        return test(rest);
      case 'keygen':
        return keygen(rest);
      case 'verify':
        return verify(rest);
      case 'inspect':
        return inspect(rest);
      default:
        throw new UsageError(sub === undefined ? `a subcommand is required: ${SUBCOMMANDS}` : `unknown subcommand ${JSON.stringify(sub)}: use ${SUBCOMMANDS}`);
    }
  });
}
