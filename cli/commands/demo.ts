/**
 * `palisade demo` (what `npm start` runs): the whole system on embedded defaults, in this
 * process, on loopback, as a list of steps (cli/demo/demo-steps.ts) that each print ✓ or ✗.
 * Nothing to install, nothing left behind: the sample config lives in a temporary directory
 * that is removed at exit.
 */
import { resolve } from 'node:path';
import { DemoContext, type DemoOptions } from '../demo/context.ts';
import { DEMO_STEPS } from '../demo/demo-steps.ts';
import { runSteps } from '../demo/step.ts';
import { checkAddress, guard, parseFlags, UsageError } from '../args.ts';

export const summary = 'run the whole system on embedded defaults and show it working';

export const DEFAULTS = Object.freeze({
  xdsAddress: '127.0.0.1:18000',
  adminAddress: '127.0.0.1:18001',
  calls: 200,
});

const MAX_CALLS = 10_000;

export const help = `Usage: palisade demo [flags]

Runs Palisade on loopback, all in this process, and shows each part working:
two gRPC echo backends, a sample configuration (Mesh, Service echo weighted 3:1, Route),
the control plane serving it over xDS, and a proxyless gRPC client (grpc-js-xds) that
resolves xds:///echo through it. It counts how the client's calls split across the
backends, edits the weights to 1:3 and shows the client follow without a restart. Then
two HTTP workloads (frontend, backend) start, each behind a Palisade sidecar that the
control plane registers as its Service's endpoint, and frontend calls backend through
both sidecars. Last, it lists the connected proxies. Each step prints ✓ or ✗ with the
reason.

Then it keeps running, so you can look around (admin URLs are printed), until Ctrl-C.

Flags:
  --once                  run the steps and exit: 0 if every step worked, else 1
  --xds-address HOST:PORT ADS listen address; if the default port is taken,
                          a free one is picked                          (default ${DEFAULTS.xdsAddress})
  --admin-address HOST:PORT
                          admin HTTP listen address; likewise           (default ${DEFAULTS.adminAddress})
  --calls N               calls per measured split, 1..${MAX_CALLS}            (default ${DEFAULTS.calls})
  --config DIR            use this configuration directory as is instead of the sample:
                          it needs a Service echo (protocol grpc) whose endpoints serve
                          /palisade.echo.v1.Echo/Echo; no backends are started and the
                          weight edit is skipped
  -h, --help              this help

The control plane logs warnings and errors as JSON lines on stderr.
`;

export function run(argv: string[]): Promise<number> {
  return guard('demo', help, async () => {
    const options = parseOptions(argv);
    const out = (line: string) => process.stdout.write(`${line}\n`);

    // Ctrl-C (or SIGTERM) stops the steps, or the running demo, and shuts down cleanly;
    // a second one stops waiting for the shutdown.
    const stop = new AbortController();
    const onSignal = (signal: NodeJS.Signals) => {
      if (stop.signal.aborted) {
        process.stderr.write(`palisade demo: second ${signal}, exiting without finishing the shutdown\n`);
        process.exit(130);
      }
      stop.abort(new Error(`interrupted (${signal})`));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);

    const ctx = new DemoContext(options, out);
    try {
      out('palisade demo: a control plane, a proxyless gRPC client and two sidecars, in this process, on loopback\n');
      const result = await runSteps(DEMO_STEPS, ctx, stop.signal);
      out('');
      if (!result.ok) {
        out(`Stopped: "${result.failed}" did not work (${result.worked} of ${DEMO_STEPS.length} steps worked).`);
        return 1;
      }
      if (ctx.lookAround.length > 0) {
        out(options.once ? 'Where to look, when it runs without --once:' : 'Where to look:');
        for (const line of ctx.lookAround) out(`  ${line}`);
        out('');
      }
      if (options.once) {
        out(`All ${result.worked} steps worked. Stopping (--once).`);
        return 0;
      }
      out('Running. Press Ctrl-C to stop.');
      await new Promise<void>((done) => {
        if (stop.signal.aborted) done();
        else stop.signal.addEventListener('abort', () => done(), { once: true });
      });
      out('\nStopping.');
      return 0;
    } finally {
      const problems = await ctx.close();
      for (const p of problems) process.stderr.write(`palisade demo: could not stop ${p}\n`);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  });
}

function parseOptions(argv: string[]): DemoOptions {
  const flags = parseFlags(argv, {
    once: { type: 'boolean', default: false },
    'xds-address': { type: 'string' },
    'admin-address': { type: 'string' },
    calls: { type: 'string', default: String(DEFAULTS.calls) },
    config: { type: 'string' },
  });
  const calls = Number(flags.calls);
  if (!/^\d+$/.test(flags.calls) || calls < 1 || calls > MAX_CALLS) {
    throw new UsageError(`--calls must be an integer from 1 to ${MAX_CALLS}, got ${JSON.stringify(flags.calls)}`);
  }
  if (flags.config === '') throw new UsageError('--config must be a directory, got ""');
  return {
    once: flags.once,
    calls,
    xdsAddress: checkAddress('--xds-address', flags['xds-address'] ?? DEFAULTS.xdsAddress),
    xdsAddressIsDefault: flags['xds-address'] === undefined,
    adminAddress: checkAddress('--admin-address', flags['admin-address'] ?? DEFAULTS.adminAddress),
    adminAddressIsDefault: flags['admin-address'] === undefined,
    configDir: flags.config === undefined ? null : resolve(flags.config),
  };
}
