/** `palisade sidecar`: one workload's proxy, configured by the control plane over xDS. */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { parseDuration } from '../../control/config/schema.ts';
import { createLogger, LOG_LEVELS, type LogLevel } from '../../control/log.ts';
import { loadBootstrap } from '../../sidecar/bootstrap/bootstrap.ts';
import { Sidecar } from '../../sidecar/sidecar.ts';
import { SidecarPrimary } from '../../sidecar/workers/sidecar-primary.ts';
import { guard, parseFlags, UsageError } from '../args.ts';

export const DEFAULTS = Object.freeze({
  drainTimeout: '5s',
  logLevel: 'info' as LogLevel,
  workers: '1',
});

/** The most `--workers` accepts. */
export const MAX_WORKERS = 256;

export const help = `Usage: palisade sidecar --bootstrap FILE [flags]

Runs the Palisade sidecar for one workload. The bootstrap file (YAML or JSON) says who the
workload is and where the control plane is; everything else (listeners, routes, clusters,
endpoints) comes over xDS. See docs/sidecar.md.

  inbound listener   peers → the workload (bootstrap inbound → workload.address)
  outbound listener  the workload → the mesh, by Host header or as an HTTP proxy
                     (bootstrap outbound); answers 503 until the sidecar is ready
  admin              /ready, /config_dump, /clusters, /stats, POST /drain (bootstrap admin)

/ready answers 200 once the first complete configuration is applied; the control plane
then lists this sidecar as an endpoint of its Service.

Flags:
  --bootstrap FILE        the bootstrap file (required)
  --drain-timeout DURATION
                          on SIGTERM/SIGINT or POST /drain, how long requests in flight
                          may take to finish, e.g. 500ms, 10s; 0 cuts them   (default ${DEFAULTS.drainTimeout})
  --log-level LEVEL       ${LOG_LEVELS.join('|')}  (default ${DEFAULTS.logLevel})
  --workers N|auto        worker processes sharing the inbound and outbound ports
                          (SO_REUSEPORT, Linux); the primary holds the xDS stream and the
                          admin listener and feeds every worker the same configuration;
                          auto = one per CPU; 1 runs in one process   (default ${DEFAULTS.workers})
  -h, --help              this help

Logs are JSON lines on stderr. SIGTERM/SIGINT: stop accepting, drain, close the xDS
stream, exit 0. An invalid bootstrap exits 1 listing every problem; bad flags exit 2.
`;

export function run(argv: string[]): Promise<number> {
  return guard('sidecar', help, async () => {
    const flags = parseFlags(argv, {
      bootstrap: { type: 'string' },
      'drain-timeout': { type: 'string', default: DEFAULTS.drainTimeout },
      'log-level': { type: 'string', default: DEFAULTS.logLevel },
      workers: { type: 'string', default: DEFAULTS.workers },
    });
    if (flags.bootstrap === undefined || flags.bootstrap === '') throw new UsageError('--bootstrap FILE is required');
    const level = flags['log-level'] as LogLevel;
    if (!LOG_LEVELS.includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(level)}`);
    let drainTimeoutMs: number;
    try {
      drainTimeoutMs = flags['drain-timeout'] === '0' ? 0 : Math.round(parseDuration(flags['drain-timeout']));
    } catch {
      throw new UsageError(`--drain-timeout must be a duration like 5s or 500ms, got ${JSON.stringify(flags['drain-timeout'])}`);
    }
    if (drainTimeoutMs > 600_000) throw new UsageError(`--drain-timeout must be at most 10m, got ${JSON.stringify(flags['drain-timeout'])}`);
    const workers = parseWorkers(flags.workers);

    const bootstrap = await loadBootstrap(flags.bootstrap);
    const logger = createLogger(level, 'palisade-sidecar');
    const version = await packageVersion();
    // --workers 1 is the single-process sidecar, unchanged; more fork workers (sidecar/workers/).
    const sidecar = workers === 1
      ? new Sidecar({ bootstrap, logger, version, drainTimeoutMs })
      : new SidecarPrimary({ bootstrap, logger, version, drainTimeoutMs, workers, logLevel: level });
    sidecar.on('ready', () => process.stdout.write('palisade sidecar: ready\n'));
    const addresses = await sidecar.start();
    process.stdout.write(`palisade sidecar: ${bootstrap.node.namespace}/${bootstrap.node.service} (${bootstrap.node.id}), inbound ${addresses.inbound}, outbound ${addresses.outbound}, admin http://${addresses.admin}, control plane ${bootstrap.controlPlane.address}${workers === 1 ? '' : `, ${workers} workers`}\n`);

    const signal = await new Promise<string>((done) => {
      process.once('SIGINT', () => done('SIGINT'));
      process.once('SIGTERM', () => done('SIGTERM'));
    });
    logger.info({ signal, drainTimeoutMs }, 'shutting down');
    const finished = await sidecar.drain(drainTimeoutMs);
    if (!finished) logger.warn({ drainTimeoutMs }, 'requests still in flight at the drain deadline were cut');
    await sidecar.close();
    logger.flush();
    return 0;
  });
}

/** `--workers`: a positive integer up to MAX_WORKERS, or `auto` (os.availableParallelism()). */
export function parseWorkers(value: string): number {
  if (value === 'auto') return Math.min(MAX_WORKERS, availableParallelism());
  if (!/^[0-9]+$/.test(value) || Number(value) < 1 || Number(value) > MAX_WORKERS) {
    throw new UsageError(`--workers must be a positive integer up to ${MAX_WORKERS} or auto, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

async function packageVersion(): Promise<string> {
  try {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'dev';
  } catch {
    return 'dev';
  }
}
