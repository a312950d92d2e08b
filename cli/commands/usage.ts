/** `palisade usage`: a UTC day's usage per tenant and route, from the control plane's admin endpoint. */
import { getAdminJson } from '../admin-client.ts';
import { checkQuery, type UsageReport } from '../../control/metering/usage-store.ts';
import { checkAddress, checkOutput, guard, parseFlags, UsageError } from '../args.ts';
import { formatTable } from '../table.ts';

export const help = `Usage: palisade usage [--tenant T] [--day YYYY-MM-DD] [flags]

Prints what the sidecars metered (issue #7) for one UTC day: per tenant and route, the
requests, bytes received from callers (IN) and sent back (OUT), requests refused by policy,
authentication or quota (DENIED) and 5xx answers (ERRORS), with a total per tenant.
DIR is the side that counted: inbound (the route's workload was called) or outbound (a
workload called out). A call between two sidecars is counted once on each side.

Sidecars report every Mesh spec.metering.reportInterval (default 10s); the control plane
writes the day to its state dir every 2s.

Flags:
  --tenant T                 one tenant only                     (default every tenant)
  --day YYYY-MM-DD           the UTC day                         (default today)
  --admin-address HOST:PORT  the control plane's admin address  (default 127.0.0.1:18001)
  -o, --output table|json    output format                       (default table)
  -h, --help                 this help
`;

export function run(argv: string[]): Promise<number> {
  return guard('usage', help, async () => {
    const flags = parseFlags(argv, {
      tenant: { type: 'string' },
      day: { type: 'string' },
      'admin-address': { type: 'string', default: '127.0.0.1:18001' },
      output: { type: 'string', short: 'o', default: 'table' },
    });
    const output = checkOutput(flags.output);
    const admin = checkAddress('--admin-address', flags['admin-address']);
    try {
      checkQuery({ tenant: flags.tenant ?? null, day: flags.day ?? null });
    } catch (err) {
      throw new UsageError(`--${(err as { parameter: string }).parameter} ${(err as Error).message.replace(/^\w+ /, '')}`);
    }
    const query = new URLSearchParams();
    if (flags.tenant !== undefined) query.set('tenant', flags.tenant);
    if (flags.day !== undefined) query.set('day', flags.day);
    const body = await getAdminJson<UsageReport>(admin, `/api/v1/usage?${query}`);
    process.stdout.write(output === 'json' ? `${JSON.stringify(body, null, 2)}\n` : formatUsage(body));
    return 0;
  });
}

/** The human table: one line per tenant, route and direction, then the tenant's TOTAL. */
export function formatUsage(report: UsageReport): string {
  const rows = [['TENANT', 'ROUTE', 'DIR', 'REQUESTS', 'IN', 'OUT', 'DENIED', 'ERRORS']];
  const n = (v: number) => String(Math.round(v));
  for (const t of report.tenants) {
    for (const r of t.routes) rows.push([t.tenant, r.route, r.direction, n(r.requests), n(r.bytesIn), n(r.bytesOut), n(r.denied), n(r.errors)]);
    const s = t.totals;
    rows.push([t.tenant, 'TOTAL', '', n(s.requests), n(s.bytesIn), n(s.bytesOut), n(s.denied), n(s.errors)]);
  }
  return `Usage on ${report.day} (UTC)\n${formatTable(rows, '(no usage recorded)')}`;
}
