/**
 * `palisade config validate`: what the control plane would say about a configuration
 * directory, without running one (kubectl's `--dry-run=server`, Gatekeeper's `gator test`).
 * The directory is loaded exactly as `palisade control` loads it (control/config/load-directory.ts),
 * then reviewed by the admission bundles (control/admission) as the first state of a control
 * plane: every resource is a CREATE. Nothing is applied anywhere.
 */
import { resolve } from 'node:path';
import { AdmissionController, stateResources, type AdmissionReview } from '../../control/admission/admission-controller.ts';
import { formatConfigError } from '../../control/config/config-error.ts';
import { loadDirectory } from '../../control/config/load-directory.ts';
import { checkOutput, guard, UsageError } from '../args.ts';
import { formatTable } from '../table.ts';
import { policyCompilerFor } from './control.ts';
import { parseCommand } from './policy-opa.ts';

export const help = `Usage: palisade config validate DIR [flags]

Loads DIR exactly as 'palisade control --config DIR' does (schemas, references, Policy
bundles), then runs the admission bundles on every resource as a control plane starting on
DIR would: prints the schema and reference errors, what would be denied (with the reasons)
and what would be mutated (the JSON Patch per resource and bundle; -o json adds the resulting
documents). Nothing is applied: validate is a dry run by nature.

Exit status: 0 the configuration would be accepted, 1 it is invalid or would be denied
(or a bundle cannot be used), 2 bad flags.

Flags:
  --admission-bundle FILE   signed admission bundle (admission/deny, admission/patch);
                            repeatable, patches apply in the order given
  --admission-verification-key FILE
                            PEM public key the bundles must be signed with (required
                            with --admission-bundle; unsigned bundles are refused)
  --policy-signing-key FILE PEM private key (EC P-256 or Ed25519) to compile and sign
                            Policies with inline Rego, as 'palisade control' does
                            (needs opa); without it inline Rego is reported invalid
  --dry-run                 accepted for symmetry with 'palisade control --admission-dry-run';
                            validate never applies anything
  -o, --output table|json   output format                                  (default table)
  -h, --help                this help

See docs/admission.md.
`;

interface Report {
  config: string;
  accepted: boolean;
  resources: number;
  admission: { bundles: ReadonlyArray<{ name: string; revision: string; deny: boolean; patch: boolean }> } | null;
  /** Schema, YAML and reference errors (`FILE#INDEX /path: message`). */
  invalid: string[];
  denied: Array<{ resource: string; source: string; bundle: string; reason: string }>;
  mutated: Array<{ resource: string; source: string; bundle: string; patch: unknown[]; document: unknown }>;
  /** Problems the mutations caused between resources (a dangling reference). */
  errors: string[];
}

async function validate(argv: string[]): Promise<number> {
  const { values: flags, positionals } = parseCommand(argv, {
    'admission-bundle': { type: 'string', multiple: true },
    'admission-verification-key': { type: 'string' },
    'dry-run': { type: 'boolean', default: false },
    'policy-signing-key': { type: 'string' },
    output: { type: 'string', short: 'o', default: 'table' },
  });
  const output = checkOutput(flags.output);
  if (positionals.length !== 1) throw new UsageError(`validate needs one configuration directory, got ${positionals.length === 0 ? 'none' : JSON.stringify(positionals.join(' '))}`);
  const bundles = flags['admission-bundle'] ?? [];
  const keyFile = flags['admission-verification-key'];
  if (bundles.length > 0 && keyFile === undefined) throw new UsageError('--admission-bundle needs --admission-verification-key PUB.pem: unsigned admission bundles are refused');
  if (bundles.length === 0 && keyFile !== undefined) throw new UsageError('--admission-verification-key is given but no --admission-bundle');

  const dir = resolve(positionals[0]!);
  const policyCompiler = await policyCompilerFor(flags['policy-signing-key']);
  const admission = keyFile === undefined ? null : await AdmissionController.fromFiles(bundles, keyFile);
  const report: Report = { config: dir, accepted: false, resources: 0, admission: admission === null ? null : { bundles: admission.bundles }, invalid: [], denied: [], mutated: [], errors: [] };
  try {
    const loaded = await loadDirectory(dir, { policyCompiler });
    if (!loaded.valid) report.invalid = loaded.errors.map(formatConfigError);
    else {
      report.resources = stateResources(loaded.result).length;
      const review: AdmissionReview | null = admission === null ? null : admission.review(loaded.result, null);
      if (review !== null) {
        const at = (s: { file: string; index: number }) => `${s.file}#${s.index}`;
        report.denied = review.denials.map((d) => ({ resource: d.resource, source: at(d.source), bundle: d.bundle, reason: d.reason }));
        report.mutated = review.mutations.map((m) => ({ resource: m.resource, source: at(m.source), bundle: m.bundle, patch: [...m.patch], document: m.document }));
        if (review.denials.length === 0) report.errors = [...review.errors];
      }
      report.accepted = review === null || review.allowed;
    }
  } finally {
    admission?.close();
  }

  if (output === 'json') process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(table(report));
  return report.accepted ? 0 : 1;
}

function table(r: Report): string {
  const verdict = r.invalid.length > 0 ? 'INVALID' : r.accepted ? 'ACCEPTED' : 'DENIED';
  const admission = r.admission === null ? 'none' : r.admission.bundles.map((b) => `${b.name} (${[b.patch ? 'patch' : '', b.deny ? 'deny' : ''].filter(Boolean).join(', ')})`).join(', ');
  let out = `config     ${r.config} (${r.resources} resources)\nadmission  ${admission}\nresult     ${verdict}${r.admission === null ? '' : ' (dry run: nothing applied)'}\n`;
  if (r.invalid.length > 0) out += `\nINVALID\n${r.invalid.map((e) => `  ${e}\n`).join('')}`;
  if (r.denied.length > 0) out += `\nDENIED\n${formatTable([['SOURCE', 'RESOURCE', 'BUNDLE', 'REASON'], ...r.denied.map((d) => [d.source, d.resource, d.bundle, d.reason])], '')}`;
  if (r.mutated.length > 0) {
    const rows = r.mutated.flatMap((m) => m.patch.map((op) => {
      const o = op as { op: string; path: string; value?: unknown; from?: string };
      const what = o.from !== undefined ? `${o.op} ${o.from} -> ${o.path}` : `${o.op} ${o.path}${o.value === undefined ? '' : ` ${JSON.stringify(o.value)}`}`;
      return [m.source, m.resource, m.bundle, what];
    }));
    out += `\nMUTATED\n${formatTable([['SOURCE', 'RESOURCE', 'BUNDLE', 'PATCH'], ...rows], '')}`;
  }
  if (r.errors.length > 0) out += `\nAFTER MUTATION\n${r.errors.map((e) => `  ${e}\n`).join('')}`;
  return out;
}

export function run(argv: string[]): Promise<number> {
  return guard('config', help, async () => {
    const [sub, ...rest] = argv;
    if (sub === 'validate') return validate(rest);
    throw new UsageError(sub === undefined ? 'a subcommand is required: validate' : `unknown subcommand ${JSON.stringify(sub)}: use validate`);
  });
}
