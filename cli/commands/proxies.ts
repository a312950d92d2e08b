/** `palisade proxies`: every connected proxy and its sync status, like istioctl proxy-status. */
import { getAdminJson } from '../admin-client.ts';
import { syncStatus, type ProxyRecord } from '../../control/inventory/inventory.ts';
import { checkAddress, checkOutput, guard, parseFlags } from '../args.ts';
import { formatTable } from '../table.ts';


export const help = `Usage: palisade proxies [flags]

Reads the control plane's admin endpoint and prints one line per connected proxy:
node id, kind (envoy, grpc, sidecar), client version, and for each xDS type whether the
proxy is SYNCED (ACKed the last response), STALE (response not yet answered), NACKED
(refused it: see -o json for the error) or NOT SENT.

Flags:
  --admin-address HOST:PORT  the control plane's admin address  (default 127.0.0.1:18001)
  -o, --output table|json    output format                       (default table)
  -h, --help                 this help
`;

const TYPES = ['CDS', 'LDS', 'EDS', 'RDS', 'SDS'] as const;

export function run(argv: string[]): Promise<number> {
  return guard('proxies', help, async () => {
    const flags = parseFlags(argv, {
      'admin-address': { type: 'string', default: '127.0.0.1:18001' },
      output: { type: 'string', short: 'o', default: 'table' },
    });
    const output = checkOutput(flags.output);
    const admin = checkAddress('--admin-address', flags['admin-address']);
    const { proxies } = await getAdminJson<{ proxies: ProxyRecord[] }>(admin, '/api/v1/proxies');
    if (output === 'json') {
      process.stdout.write(`${JSON.stringify(proxies, null, 2)}\n`);
      return 0;
    }
    process.stdout.write(formatProxies(proxies));
    return 0;
  });
}

export function formatProxies(proxies: readonly ProxyRecord[]): string {
  const rows = [['NAME', 'KIND', 'VERSION', ...TYPES, 'STREAM']];
  for (const p of proxies) {
    rows.push([p.nodeId, p.kind, p.clientVersion || '-', ...TYPES.map((t) => syncStatus(p.types[t])), `${p.protocol}#${p.streamId}`]);
  }
  return formatTable(rows, '(no proxies connected)');
}
