/**
 * The sidecar's check of a pushed palisade.v1.Policy before it ACKs (an AdsClient resource
 * validator, synchronous): the name, the bundle (a strict tar), its signature against the
 * bootstrap's verification keys, and the entrypoint in the bundle's manifest. A problem NACKs
 * the whole response, so the policies in force stay as they were. Without keys every Policy
 * is refused: an unverifiable bundle is never evaluated.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Message } from '@bufbuild/protobuf';
import type { Policy } from '../../xds/gen/palisade/v1/policy_pb.js';
import type { ResourceValidator } from '../../xds/client/options.ts';
import { readBundle } from '../../policies/bundle.ts';
import { syncVerificationKeys, verifyBundleSync, type SyncVerificationKeys } from '../../policies/signature.ts';

/**
 * The bootstrap's key files as a key set: the first is key id `default` (what
 * `opa build --signing-key` and `palisade policy build` sign with), every file also under its
 * base name without extension, for bundles signed with an explicit key id during a key rollover.
 */
export async function loadVerificationKeys(files: readonly string[]): Promise<SyncVerificationKeys | null> {
  if (files.length === 0) return null;
  const keys: Record<string, { pem: string }> = {};
  for (const [i, file] of files.entries()) {
    let pem: string;
    try {
      pem = await readFile(file, 'utf8');
    } catch (err) {
      throw new Error(`policy.verificationKeys[${i}]: cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
    if (i === 0) keys.default = { pem };
    keys[basename(file).replace(/\.pub\.pem$|\.pem$/, '')] = { pem };
  }
  return syncVerificationKeys({ keys });
}

export function createPolicyValidator(keys: SyncVerificationKeys | null): ResourceValidator {
  return (resource: Message): string[] => {
    const p = resource as Policy;
    if (!/^[a-z0-9-]+\/[a-z0-9-]+$/.test(p.name)) return [`name: must be <namespace>/<name>, got ${JSON.stringify(p.name)}`];
    if (keys === null) return ['bundle: no policy verification keys are configured (bootstrap policy.verificationKeys), so no Policy bundle can be accepted'];
    try {
      const bundle = readBundle(p.bundle);
      verifyBundleSync(bundle, keys);
      if (!bundle.manifest.wasm.some((w) => w.entrypoint === p.entrypoint)) {
        return [`entrypoint: ${JSON.stringify(p.entrypoint)} is not compiled into the bundle (its manifest has ${bundle.manifest.wasm.map((w) => w.entrypoint).join(', ') || 'no wasm entrypoint'})`];
      }
    } catch (err) {
      return [`bundle: ${(err as Error).message}`];
    }
    return [];
  };
}
