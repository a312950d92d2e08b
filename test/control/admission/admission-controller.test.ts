/**
 * AdmissionController with real bundles: Rego compiled to wasm and signed by the real opa,
 * verified, loaded and evaluated by Palisade's runtime on real desired states.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { AdmissionController } from '../../../control/admission/admission-controller.ts';
import { syncVerificationKeys } from '../../../policies/signature.ts';
import { stateFrom } from '../../helpers/desired-state.ts';
import { BAD_PATCH, BROKEN, DEFAULTS, FROZEN_PORT, REQUIRE_OWNER, cleanup, keyPair, route, service, signer, type Signed } from './support.ts';

let s: Signed;
const files: Record<string, string> = {};

beforeAll(async () => {
  s = await signer();
  files.owner = await s.bundle('owner', REQUIRE_OWNER, ['admission/deny']);
  files.defaults = await s.bundle('defaults', DEFAULTS, ['admission/patch']);
  files.badPatch = await s.bundle('bad-patch', BAD_PATCH, ['admission/patch']);
  files.frozen = await s.bundle('frozen', FROZEN_PORT, ['admission/deny']);
  files.broken = await s.bundle('broken', BROKEN, ['admission/deny']);
  files.both = await s.bundle('both', `${REQUIRE_OWNER}\n${DEFAULTS.replace('package admission\n', '')}`, ['admission/deny', 'admission/patch']);
  files.unsigned = await s.bundle('unsigned', REQUIRE_OWNER, ['admission/deny'], true);
  files.neither = await s.bundle('neither', 'package other\n\nallow := true\n', ['other/allow']);
}, 60_000);

afterAll(cleanup);

describe('AdmissionController', () => {
  it('denies a Service without an owner label, naming file, document, resource, bundle and reason', async () => {
    const ctl = await AdmissionController.fromFiles([files.owner!], s.keyFile);
    const state = stateFrom({ 'svc.yaml': `${service('ok', 80, { owner: 'ana' })}---\n${service('echo', 81)}` });
    const review = ctl.review(state, null);
    expect(review.allowed).toBe(false);
    expect(review.state).toBe(state);
    expect(review.errors).toEqual([`svc.yaml#1 Service default/echo: denied by ${files.owner}: Service echo must have an owner label`]);
    expect(review.denials).toEqual([{ resource: 'Service default/echo', source: { file: 'svc.yaml', index: 1 }, bundle: files.owner, reason: 'Service echo must have an owner label' }]);
    ctl.close();
  });

  it('applies patches, validates the result, and returns the mutated state', async () => {
    const ctl = await AdmissionController.fromFiles([files.defaults!], s.keyFile);
    const state = stateFrom({ 'a.yaml': `${service('echo', 80, { app: 'echo' })}---\n${route('web', 'echo')}` });
    const review = ctl.review(state, null);
    expect(review.allowed).toBe(true);
    expect(review.errors).toEqual([]);
    expect(review.state.services.get('default/echo')!.metadata.labels).toEqual({ app: 'echo', team: 'platform' });
    expect(review.state.routes.get('default/web')!.spec.http[0]!.retries).toEqual({ attempts: 2 });
    expect(review.mutations.map((m) => [m.resource, m.patch])).toEqual([
      ['Service default/echo', [{ op: 'add', path: '/metadata/labels/team', value: 'platform' }]],
      ['Route default/web', [{ op: 'add', path: '/spec/http/0/retries', value: { attempts: 2 } }]],
    ]);
    expect(state.services.get('default/echo')!.metadata.labels).toEqual({ app: 'echo' }); // the input is not changed
    ctl.close();
  });

  it('runs the validating rules on the mutated document (patch first, then deny)', async () => {
    const ctl = await AdmissionController.fromFiles([files.both!], s.keyFile);
    const review = ctl.review(stateFrom({ 'a.yaml': service('echo', 80) }), null);
    expect(review.mutations).toHaveLength(1);
    expect(review.errors).toEqual([`a.yaml#0 Service default/echo: denied by ${files.both}: Service echo must have an owner label`]);
    ctl.close();
  });

  it('denies a patch that makes the resource invalid, naming the bundle and the field', async () => {
    const ctl = await AdmissionController.fromFiles([files.badPatch!], s.keyFile);
    const review = ctl.review(stateFrom({ 'a.yaml': service('echo', 80) }), null);
    expect(review.allowed).toBe(false);
    expect(review.errors).toEqual([`a.yaml#0 Service default/echo: denied by ${files.badPatch}: admission/patch makes the resource invalid: /spec/port: must be <= 65535, got 70000`]);
    ctl.close();
  });

  it('gives UPDATE and the version in force as oldResource when the resource exists', async () => {
    const ctl = await AdmissionController.fromFiles([files.frozen!], s.keyFile);
    const before = stateFrom({ 'a.yaml': service('echo', 80) });
    expect(ctl.review(before, null).allowed).toBe(true);
    expect(ctl.review(stateFrom({ 'a.yaml': service('echo', 80) }), before).allowed).toBe(true);
    const review = ctl.review(stateFrom({ 'a.yaml': service('echo', 81) }), before);
    expect(review.errors).toEqual([`a.yaml#0 Service default/echo: denied by ${files.frozen}: port of echo may not change (80 -> 81)`]);
    // Another name is a CREATE: nothing to compare with.
    expect(ctl.review(stateFrom({ 'a.yaml': service('other', 81) }), before).allowed).toBe(true);
    ctl.close();
  });

  it('fails closed: an evaluation error is a denial with the error as reason', async () => {
    const ctl = await AdmissionController.fromFiles([files.broken!], s.keyFile);
    const review = ctl.review(stateFrom({ 'a.yaml': service('echo', 80) }), null);
    expect(review.allowed).toBe(false);
    expect(review.errors).toHaveLength(1);
    expect(review.errors[0]).toMatch(new RegExp(`^a\\.yaml#0 Service default/echo: denied by ${files.broken}: admission/deny: policy evaluation failed: .*conflict`));
    ctl.close();
  });

  it('refuses an unsigned bundle', async () => {
    await expect(AdmissionController.fromFiles([files.unsigned!], s.keyFile)).rejects.toMatchObject({
      code: 'PAL_ERR_POLICY_BUNDLE_SIGNATURE',
      message: `admission bundle ${files.unsigned} refused: bundle is unsigned (no .signatures.json) and verification keys are configured`,
    });
  });

  it('refuses a bundle signed with another key', async () => {
    const other = keyPair('ec');
    const keys = syncVerificationKeys({ keys: { default: { pem: other.publicPem } }, defaultKeyId: 'default' });
    const bytes = new Uint8Array(await readFile(files.owner!));
    await expect(AdmissionController.load([{ name: 'owner', bytes }], keys)).rejects.toMatchObject({ code: 'PAL_ERR_POLICY_BUNDLE_SIGNATURE', message: expect.stringMatching(/^admission bundle owner refused: signature does not verify/) as unknown });
  });

  it('refuses a bundle with neither admission rule', async () => {
    await expect(AdmissionController.fromFiles([files.neither!], s.keyFile)).rejects.toMatchObject({ code: 'PAL_ERR_ADMISSION_NO_ENTRYPOINT' });
  });
});
