/**
 * `palisade analyze`: what each Policy of a config directory becomes on each kind of node.
 * Reads the directory as the control plane does (loadDirectory) and each Policy's bundle,
 * and reports the Envoy translation recorded in the bundle by `palisade policy build`
 * (docs/envoy-authz.md): Envoy's RBAC filter, or ext_authz with the reason RBAC cannot
 * express the policy. Sidecars always run the wasm.
 */
import { formatConfigError } from '../../control/config/config-error.ts';
import { loadDirectory } from '../../control/config/load-directory.ts';
import { envoyAuthzClusterName, policyEnvoyAnalysis } from '../../control/translate/envoy-authz.ts';
import { envoyQuotaFilters } from '../../control/translate/envoy-ratelimit.ts';
import { readBundle } from '../../policies/bundle.ts';
import { describeEnvoyTranslation } from '../../policies/rbac-analysis.ts';
import { checkOutput, guard, parseFlags } from '../args.ts';
import { formatTable } from '../table.ts';

export const help = `Usage: palisade analyze [flags]

Loads a configuration directory as the control plane would and prints, for each Policy:
its name, mode, selector, bundle revision, whether the bundle is signed, how Envoy nodes
enforce it (RBAC with N policies, or ext_authz and why RBAC cannot express it) and how
sidecars do (wasm). The Envoy verdict is the one palisade policy build recorded in the
bundle. ext_authz goes to the Palisade authz server, which is not written yet: an Envoy
denies every request such a Policy judges (docs/envoy-authz.md).

For each Quota Envoy nodes cannot enforce (a principal or jwtClaim descriptor, a local
limit leaving a descriptor key open, ...), or enforce only in part (priority classes), a
warning line on stderr: "palisade analyze: warning: Quota NS/NAME ..." (docs/configuration.md).

Exit status: 0, or 1 with the errors when the configuration is invalid.

Flags:
  --config DIR               configuration directory   (default ./config)
  -o, --output table|json    output format              (default table)
  -h, --help                 this help
`;

/** One Policy as `analyze` reports it (`-o json` prints an array of these). */
export interface PolicyAnalysisRow {
  policy: string;
  mode: string;
  entrypoint: string;
  selector: { services: string[]; pathPrefixes: string[] };
  revision: string | null;
  signed: boolean | null;
  envoy: { translation: 'rbac'; policies: number } | { translation: 'ext_authz'; reason: string; cluster: string };
  sidecar: 'wasm';
}

export function run(argv: string[]): Promise<number> {
  return guard('analyze', help, async () => {
    const flags = parseFlags(argv, {
      config: { type: 'string', default: './config' },
      output: { type: 'string', short: 'o', default: 'table' },
    });
    const output = checkOutput(flags.output);
    const loaded = await loadDirectory(flags.config);
    if (!loaded.valid) {
      process.stderr.write(`palisade analyze: ${flags.config} is not a valid configuration:\n${loaded.errors.map((e) => `  ${formatConfigError(e)}\n`).join('')}`);
      return 1;
    }
    const state = loaded.result;
    const rows: PolicyAnalysisRow[] = [];
    for (const [key, p] of state.policies) {
      const bytes = state.policyBundles.get(key);
      let revision: string | null = null;
      let signed: boolean | null = null;
      let envoy: PolicyAnalysisRow['envoy'];
      try {
        if (bytes !== undefined) {
          const b = readBundle(bytes);
          revision = b.revision;
          signed = b.signatures !== null;
        }
        const a = policyEnvoyAnalysis(state, key, p);
        envoy = a?.expressible === true
          ? { translation: 'rbac', policies: Object.keys(a.rbac.policies).length }
          : { translation: 'ext_authz', reason: describeEnvoyTranslation(a).replace(/^ext_authz \((.*)\)$/s, '$1'), cluster: envoyAuthzClusterName(p.metadata.namespace) };
      } catch (err) {
        envoy = { translation: 'ext_authz', reason: `bundle unreadable: ${(err as Error).message}`, cluster: envoyAuthzClusterName(p.metadata.namespace) };
      }
      rows.push({
        policy: key,
        mode: p.spec.mode,
        entrypoint: p.spec.entrypoint,
        selector: { services: [...(p.spec.selector.services ?? [])], pathPrefixes: [...(p.spec.selector.pathPrefixes ?? [])] },
        revision,
        signed,
        envoy,
        sidecar: 'wasm',
      });
    }
    // What an Envoy fronting each Service would get; a Quota selecting several Services is reported once.
    const quotaWarnings = new Set<string>();
    for (const svc of state.services.values()) {
      for (const t of envoyQuotaFilters(state, svc.metadata.namespace, svc.metadata.name).translations) {
        if (t.kind === 'none') quotaWarnings.add(`Quota ${t.quota} is not enforced on Envoy nodes: ${t.reason}`);
        for (const w of t.warnings) quotaWarnings.add(`Quota ${t.quota} is enforced on Envoy nodes in part: ${w}`);
      }
    }
    for (const w of quotaWarnings) process.stderr.write(`palisade analyze: warning: ${w}\n`);
    if (output === 'json') process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    else process.stdout.write(formatAnalysis(rows));
    return 0;
  });
}

export function formatAnalysis(rows: readonly PolicyAnalysisRow[]): string {
  const table = [['POLICY', 'MODE', 'SELECTOR', 'REVISION', 'SIGNED', 'ENVOY', 'SIDECAR']];
  for (const r of rows) {
    const sel = [...r.selector.services.map((s) => `service=${s}`), ...r.selector.pathPrefixes.map((p) => `path=${p}*`)].join(',') || '*';
    const envoy = r.envoy.translation === 'rbac' ? `RBAC (${r.envoy.policies} ${r.envoy.policies === 1 ? 'policy' : 'policies'})` : `ext_authz: ${r.envoy.reason}`;
    table.push([r.policy, r.mode, sel, r.revision ?? '-', r.signed === null ? '-' : r.signed ? 'yes' : 'NO', envoy, r.sidecar]);
  }
  return formatTable(table, '(no policies)');
}
