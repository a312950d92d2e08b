/**
 * The control plane, in this process: the config directory watcher, the translator and the
 * ADS server, plus the admin HTTP endpoint. It logs only warnings and errors (JSON on
 * stderr), so the demo's own output stays readable.
 */
import { AdminServer } from '../../../control/admin/admin-server.ts';
import { DirectorySource } from '../../../control/config/source.ts';
import { ControlPlane } from '../../../control/control-plane.ts';
import { createLogger } from '../../../control/log.ts';
import { chooseListenAddress } from '../ports.ts';
import type { DemoStep } from '../step.ts';

export const startControlPlane: DemoStep = {
  title: 'start the control plane',
  timeoutMs: 10_000,
  async run(ctx) {
    const dir = ctx.need(ctx.configDir, 'config directory');
    const xds = await chooseListenAddress(ctx.options.xdsAddress, ctx.options.xdsAddressIsDefault);
    const admin = await chooseListenAddress(ctx.options.adminAddress, ctx.options.adminAddressIsDefault);

    const logger = createLogger('warn', 'palisade-demo');
    ctx.defer('control plane log', () => logger.flush());
    const cp = new ControlPlane({ source: new DirectorySource({ dir, debounceMs: 50 }), xdsAddress: xds.address, logger });
    ctx.defer('control plane', () => cp.close());
    try {
      await cp.start();
    } catch (err) {
      throw new Error(`${(err as Error).message}${portHint(err, '--xds-address')}`, { cause: err });
    }
    const adminServer = new AdminServer(cp);
    let adminBound: string;
    try {
      adminBound = await adminServer.listen(admin.address);
    } catch (err) {
      throw new Error(`admin endpoint: ${(err as Error).message}${portHint(err, '--admin-address')}`, { cause: err });
    }
    ctx.defer('admin endpoint', () => adminServer.close());
    adminServer.markReady();
    ctx.controlPlane = cp;
    ctx.xdsAddress = cp.xdsAddress;
    ctx.adminAddress = adminBound;

    const url = `http://${adminBound}`;
    ctx.lookAround.push(
      `curl ${url}/ready`,
      `curl ${url}/api/v1/proxies      connected proxies, what each ACKed or NACKed`,
      `curl ${url}/api/v1/snapshots    xDS resources per node group, with versions`,
      `curl ${url}/api/v1/state        last applied and last refused configuration`,
      `npx palisade proxies --admin-address ${adminBound}`,
      `config: ${dir}  (watched: save a change and it is pushed at once)`,
    );
    return [
      `xDS (ADS)  ${cp.xdsAddress}${xds.note ? `  (${xds.note})` : ''}`,
      `admin      ${url}${admin.note ? `  (${admin.note})` : ''}`,
    ];
  },
};

function portHint(err: unknown, flag: string): string {
  const text = `${(err as Error).message} ${(err as NodeJS.ErrnoException).code ?? ''}`;
  return /EADDRINUSE|address already in use|No address added/i.test(text) ? ` (is the port taken? try ${flag} 127.0.0.1:0)` : '';
}
