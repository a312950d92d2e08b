/**
 * Admission fixtures: Rego admission policies built into signed wasm bundles by the real
 * `opa` (test/policies/support.ts opaBuild), written to files as an operator would pass them.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { keyPair, opaBuild, tempDir, type KeyMaterial } from '../../policies/support.ts';

export { cleanup, keyPair, tempDir } from '../../policies/support.ts';

/** Services must carry an `owner` label. */
export const REQUIRE_OWNER = `package admission

deny contains msg if {
  input.resource.kind == "Service"
  not input.resource.metadata.labels.owner
  msg := sprintf("Service %s must have an owner label", [input.resource.metadata.name])
}
`;

/** Labels every Service `team: platform` unless it has a team; gives Route rules without retries 2 attempts. */
export const DEFAULTS = `package admission

patch contains op if {
  input.resource.kind == "Service"
  not input.resource.metadata.labels
  op := {"op": "add", "path": "/metadata/labels", "value": {"team": "platform"}}
}

patch contains op if {
  input.resource.kind == "Service"
  input.resource.metadata.labels
  not input.resource.metadata.labels.team
  op := {"op": "add", "path": "/metadata/labels/team", "value": "platform"}
}

patch contains op if {
  input.resource.kind == "Route"
  some i
  rule := input.resource.spec.http[i]
  not rule.retries
  op := {"op": "add", "path": sprintf("/spec/http/%d/retries", [i]), "value": {"attempts": 2}}
}
`;

/** A patch that breaks the schema: a port out of range. */
export const BAD_PATCH = `package admission

patch := [{"op": "replace", "path": "/spec/port", "value": 70000}] if input.resource.kind == "Service"
`;

/** A Service's port may not change on UPDATE. */
export const FROZEN_PORT = `package admission

deny contains msg if {
  input.operation == "UPDATE"
  input.resource.kind == "Service"
  input.oldResource.spec.port != input.resource.spec.port
  msg := sprintf("port of %s may not change (%d -> %d)", [input.resource.metadata.name, input.oldResource.spec.port, input.resource.spec.port])
}
`;

/** Fails at evaluation time for Services: a conflict between two complete-rule values. */
export const BROKEN = `package admission

x := 1 if input.resource.kind == "Service"
x := 2 if input.resource.kind == "Service"

deny contains "never" if x == 3
`;

export interface Signed {
  key: KeyMaterial;
  /** The PEM public key's file. */
  keyFile: string;
  dir: string;
  /** Builds `rego` with `entrypoints`, signed unless `unsigned`; writes it as `<name>.tar.gz`; the file. */
  bundle(name: string, rego: string, entrypoints: string[], unsigned?: boolean): Promise<string>;
}

export async function signer(): Promise<Signed> {
  const key = keyPair('ec');
  const dir = await tempDir('admission');
  const keyFile = join(dir, 'admission.pub.pem');
  await writeFile(keyFile, key.publicPem);
  return {
    key, keyFile, dir,
    bundle: async (name, rego, entrypoints, unsigned = false) => {
      const bytes = await opaBuild({ 'admission.rego': rego }, { entrypoints, ...(unsigned ? {} : { signingKey: key, signingAlg: 'ES256' as const }) });
      const file = join(dir, `${name}.tar.gz`);
      await writeFile(file, bytes);
      return file;
    },
  };
}

export const service = (name: string, port: number, labels: Record<string, string> | null = null) => `apiVersion: palisade.dev/v1
kind: Service
metadata:
  name: ${name}${labels === null ? '' : `\n  labels: ${JSON.stringify(labels)}`}
spec:
  protocol: http
  port: ${port}
  endpoints: [{ address: 127.0.0.1, port: 7001 }]
`;

export const route = (name: string, backend: string) => `apiVersion: palisade.dev/v1
kind: Route
metadata: { name: ${name} }
spec:
  hosts: [${name}.example]
  http:
    - backends: [{ service: ${backend} }]
`;
