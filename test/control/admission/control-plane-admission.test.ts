/**
 * Admission control in a running control plane: a watched config directory, real signed
 * bundles, edits written as editors save them. Denials refuse the change and keep the last
 * good config; mutations are what gets translated and served; dry run reports only.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AdmissionController } from '../../../control/admission/admission-controller.ts';
import { DirectorySource } from '../../../control/config/source.ts';
import { ControlPlane } from '../../../control/control-plane.ts';
import { createLogger } from '../../../control/log.ts';
import { translate } from '../../../control/translate/translator.ts';
import type { RouteConfiguration } from '../../../xds/gen/envoy/config/route/v3/route_pb.js';
import { ROUTE_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { DEFAULTS, FROZEN_PORT, REQUIRE_OWNER, cleanup, route, service, signer, tempDir, type Signed } from './support.ts';

let s: Signed;
const bundles: Record<string, string> = {};
const open: ControlPlane[] = [];

beforeAll(async () => {
  s = await signer();
  bundles.owner = await s.bundle('owner', REQUIRE_OWNER, ['admission/deny']);
  bundles.defaults = await s.bundle('defaults', DEFAULTS, ['admission/patch']);
  bundles.frozen = await s.bundle('frozen', FROZEN_PORT, ['admission/deny']);
  return cleanup;
}, 60_000);

afterEach(async () => {
  for (const cp of open.splice(0)) await cp.close();
});

interface Running {
  cp: ControlPlane;
  dir: string;
  write(file: string, text: string): Promise<void>;
}

async function start(files: Record<string, string>, admission: string[], dryRun = false): Promise<Running> {
  const dir = await tempDir('cp-admission');
  const write = async (file: string, text: string) => {
    await writeFile(join(dir, `.${file}.tmp`), text);
    await rename(join(dir, `.${file}.tmp`), join(dir, file));
  };
  for (const [f, t] of Object.entries(files)) await write(f, t);
  const cp = new ControlPlane({
    source: new DirectorySource({ dir, debounceMs: 10 }),
    xdsAddress: '127.0.0.1:0',
    logger: createLogger('silent'),
    admission: await AdmissionController.fromFiles(admission.map((b) => bundles[b]!), s.keyFile),
    admissionDryRun: dryRun,
  });
  open.push(cp);
  await cp.start();
  return { cp, dir, write };
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('control plane with admission control', () => {
  it('refuses an edit a validating policy denies, shows the reason, and keeps the last good config', async () => {
    const { cp, dir, write } = await start({ 'svc.yaml': service('echo', 80, { owner: 'ana' }) }, ['owner']);
    const before = cp.state;
    await write('svc.yaml', service('echo', 80));
    await waitFor(() => cp.status.rejections === 1, 'the denial');
    expect(cp.status.lastRejection?.errors).toEqual([`${join(dir, 'svc.yaml')}#0 Service default/echo: denied by ${bundles.owner}: Service echo must have an owner label`]);
    expect(cp.state).toBe(before);
    expect(cp.status.admission).toMatchObject({ dryRun: false, allowed: false, denied: cp.status.lastRejection?.errors });
    await write('svc.yaml', service('echo', 80, { owner: 'bo' }));
    await waitFor(() => cp.status.publishes === 1, 'the fixed edit');
    expect(cp.status.lastRejection).toBeNull();
    expect(cp.state?.services.get('default/echo')?.metadata.labels).toEqual({ owner: 'bo' });
  });

  it('serves the mutated state: a default label and default retries reach the translated routes', async () => {
    const { cp, dir } = await start({ 'app.yaml': `${service('echo', 80)}---\n${route('web', 'echo')}` }, ['defaults']);
    expect(cp.state?.services.get('default/echo')?.metadata.labels).toEqual({ team: 'platform' });
    const rc = (translate(cp.state!, { kind: 'envoy', namespace: 'default' })[ROUTE_TYPE_URL] as RouteConfiguration[])[0]!;
    const action = rc.virtualHosts.find((v) => v.domains.includes('web.example'))!.routes[0]!.action;
    expect(action.case).toBe('route');
    if (action.case === 'route') expect(action.value.retryPolicy?.numRetries).toBe(2);
    expect(cp.status.admission?.mutated).toEqual([
      { resource: 'Service default/echo', source: `${join(dir, 'app.yaml')}#0`, bundle: bundles.defaults, patch: [{ op: 'add', path: '/metadata/labels', value: { team: 'platform' } }] },
      { resource: 'Route default/web', source: `${join(dir, 'app.yaml')}#1`, bundle: bundles.defaults, patch: [{ op: 'add', path: '/spec/http/0/retries', value: { attempts: 2 } }] },
    ]);
  });

  it('reviews an edit as an UPDATE of the resource in force', async () => {
    const { cp, dir, write } = await start({ 'svc.yaml': service('echo', 80) }, ['frozen']);
    await write('svc.yaml', service('echo', 81));
    await waitFor(() => cp.status.rejections === 1, 'the denial');
    expect(cp.status.lastRejection?.errors).toEqual([`${join(dir, 'svc.yaml')}#0 Service default/echo: denied by ${bundles.frozen}: port of echo may not change (80 -> 81)`]);
    expect(cp.state?.services.get('default/echo')?.spec.port).toBe(80);
    await write('more.yaml', service('other', 90));
    await write('svc.yaml', service('echo', 80));
    await waitFor(() => cp.state?.services.has('default/other') === true, 'the accepted edit');
    expect(cp.status.lastRejection).toBeNull();
  });

  it('refuses to start when the first configuration is denied', async () => {
    await expect(start({ 'svc.yaml': service('echo', 80) }, ['owner'])).rejects.toMatchObject({
      code: 'PAL_ERR_ADMISSION_DENIED',
      message: expect.stringContaining(`Service default/echo: denied by ${bundles.owner}: Service echo must have an owner label`) as unknown,
    });
  });

  it('in a dry run reports denials and mutations but applies the configuration as read', async () => {
    const { cp, dir, write } = await start({ 'svc.yaml': service('echo', 80) }, ['defaults', 'owner'], true);
    expect(cp.state?.services.get('default/echo')?.metadata.labels).toBeUndefined();
    expect(cp.status.admission).toMatchObject({
      dryRun: true,
      allowed: false,
      denied: [`${join(dir, 'svc.yaml')}#0 Service default/echo: denied by ${bundles.owner}: Service echo must have an owner label`],
      mutated: [{ resource: 'Service default/echo', bundle: bundles.defaults, patch: [{ op: 'add', path: '/metadata/labels', value: { team: 'platform' } }] }],
    });
    await write('svc.yaml', service('echo', 81));
    await waitFor(() => cp.status.publishes === 1, 'the edit');
    expect(cp.state?.services.get('default/echo')?.spec.port).toBe(81);
    expect(cp.status.rejections).toBe(0);
    expect(cp.status.admission?.allowed).toBe(false);
  });
});
