/**
 * `palisade slo` and `palisade control --slo-time-scale` as real processes: usage errors name
 * the flag and value, an unreachable admin endpoint is exit 1, a configuration without SLOs
 * prints an empty table.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminServer } from '../../control/admin/admin-server.ts';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.ts';
import { servicesYaml } from '../helpers/services-yaml.ts';
import { palisade } from '../helpers/policy-build.ts';

describe('palisade slo', () => {
  let cp: TestControlPlane;
  let admin: AdminServer;
  let address: string;

  beforeAll(async () => {
    cp = await startControlPlane({ 'services.yaml': servicesYaml({ name: 'web', port: 8080 }) });
    admin = new AdminServer(cp.cp);
    address = await admin.listen('127.0.0.1:0');
  });

  afterAll(async () => {
    await admin?.close();
    await cp?.close();
  });

  it('prints the header and an empty-table line when no Route rule has an slo', async () => {
    const run = await palisade(['slo', '--admin-address', address]);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout.split('\n').map((l) => l.trimEnd())).toEqual([
      'SLO  OBJECTIVE  TARGET  BUDGET LEFT  BURN 5m/30m/1h/6h/3d  ALERT',
      '(no Route rule has an slo)',
      '',
    ]);
  });

  it('prints the engine status as JSON with -o json', async () => {
    const run = await palisade(['slo', '--admin-address', address, '-o', 'json']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ timeScale: 1, objectives: [] });
  });

  it('exits 1 naming the address when the admin endpoint is unreachable', async () => {
    const run = await palisade(['slo', '--admin-address', '127.0.0.1:1']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^palisade slo: cannot reach the control plane's admin endpoint at 127\.0\.0\.1:1/);
  });

  it.each([
    [['slo', '-o', 'yaml'], '-o/--output must be one of table, json, got "yaml"'],
    [['slo', '--admin-address', 'nowhere'], '--admin-address must be host:port (e.g. 127.0.0.1:18000), got "nowhere"'],
    [['control', '--slo-time-scale', '0'], '--slo-time-scale must be a number from 1 to 100000, got "0"'],
    [['control', '--slo-time-scale', 'fast'], '--slo-time-scale must be a number from 1 to 100000, got "fast"'],
  ])('refuses %j with exit 2 and the reason', async (args, message) => {
    const run = await palisade(args);
    expect(run.code).toBe(2);
    expect(run.stderr.split('\n')[0]).toBe(`palisade ${args[0]}: ${message}`);
  });
});
