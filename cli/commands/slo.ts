/** `palisade slo`: each SLO objective's budget, burn rates and alerts, from the control plane's admin endpoint. */
import type { ObjectiveStatus, SloStatus } from '../../control/slo/slo-engine.ts';
import { getAdminJson } from '../admin-client.ts';
import { WINDOW_LABELS } from '../../control/slo/burn-rate.ts';
import { checkAddress, checkOutput, guard, parseFlags } from '../args.ts';
import { formatTable } from '../table.ts';

export const help = `Usage: palisade slo [flags]

Reads the control plane's SLO engine (GET /api/v1/slo) and prints one line per objective
of every Route rule with an slo: the SLO (namespace/route.rule), the objective
(availability or latency), its target, the share of the error budget left over the SLO
window, the burn rate over each window (5m/30m/1h/6h/3d; 1 spends the budget exactly over
the window) and the alerts firing: page (2% of the budget in 1h, or 5% in 6h) or ticket
(10% in 3d). See docs/operations.md, "SLOs and burn-rate alerts".

Flags:
  --admin-address HOST:PORT  the control plane's admin address  (default 127.0.0.1:18001)
  -o, --output table|json    output format                       (default table)
  -h, --help                 this help
`;

export function run(argv: string[]): Promise<number> {
  return guard('slo', help, async () => {
    const flags = parseFlags(argv, {
      'admin-address': { type: 'string', default: '127.0.0.1:18001' },
      output: { type: 'string', short: 'o', default: 'table' },
    });
    const output = checkOutput(flags.output);
    const admin = checkAddress('--admin-address', flags['admin-address']);
    const status = await getAdminJson<SloStatus>(admin, '/api/v1/slo');
    if (output === 'json') {
      process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      return 0;
    }
    process.stdout.write(formatSlo(status));
    return 0;
  });
}

/** The table: SLO, OBJECTIVE, TARGET, BUDGET LEFT, BURN 5m/30m/1h/6h/3d, ALERT. */
export function formatSlo(status: SloStatus): string {
  const rows = [['SLO', 'OBJECTIVE', 'TARGET', 'BUDGET LEFT', `BURN ${WINDOW_LABELS.join('/')}`, 'ALERT']];
  for (const o of status.objectives) {
    rows.push([o.route, o.objective, target(o), `${(o.budgetRemaining * 100).toFixed(1)}%`, WINDOW_LABELS.map((w) => rate(o.burnRates[w])).join('/'), alerts(o)]);
  }
  const table = formatTable(rows, '(no Route rule has an slo)');
  return status.timeScale === 1 ? table : `${table}(time scale ${status.timeScale}: every window is ${status.timeScale} times shorter than its label)\n`;
}

function target(o: ObjectiveStatus): string {
  return o.objective === 'latency' ? `${o.target}% < ${o.thresholdMs}ms` : `${o.target}%`;
}

function rate(r: number): string {
  return r === 0 ? '0' : r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2);
}

function alerts(o: ObjectiveStatus): string {
  const firing = o.alerts.filter((a) => a.firing);
  return firing.length === 0 ? '-' : firing.map((a) => `${a.severity.toUpperCase()} (${a.rule})`).join(', ');
}
