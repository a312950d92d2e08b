/**
 * Configuration files of bench/authz's macro part, as text: the control plane's config
 * directory (Mesh PERMISSIVE without a CA, the upstream's Service and, for the `on`
 * topologies, the Policy selecting it) and the sidecar's bootstrap with the policy
 * verification key.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CACHE_KEYS, ENTRYPOINT, TRUST_DOMAIN } from './policy.ts';

export const NAMESPACE = 'default';
export const SERVICE = 'upstream';
export const SERVICE_PORT = 8080;
export const POLICY_NAME = 'bench-authz';

export interface PolicySpec {
  /** The signed bundle, copied next to the Policy document. */
  readonly bundleFile: string;
  /** With the decision cache (Policy.cacheKeys) or without. */
  readonly cached: boolean;
}

/** Mesh + the upstream's Service (+ the Policy, enforce mode, selecting it). */
export function writePalisadeConfig(dir: string, policy: PolicySpec | null): void {
  mkdirSync(dir, { recursive: true });
  let yaml = `apiVersion: palisade.dev/v1
kind: Mesh
metadata: { name: default }
spec: { trustDomain: ${TRUST_DOMAIN}, mtls: { mode: PERMISSIVE } }
---
apiVersion: palisade.dev/v1
kind: Service
metadata: { name: ${SERVICE}, namespace: ${NAMESPACE} }
spec: { protocol: http, port: ${SERVICE_PORT} }
`;
  if (policy !== null) {
    copyFileSync(policy.bundleFile, join(dir, 'authz.tar.gz'));
    yaml += `---
apiVersion: palisade.dev/v1
kind: Policy
metadata: { name: ${POLICY_NAME}, namespace: ${NAMESPACE} }
spec:
  entrypoint: ${ENTRYPOINT}
  bundle: { file: authz.tar.gz }
  mode: enforce
  selector: { services: [${SERVICE}] }
${policy.cached ? `  cacheKeys: [${CACHE_KEYS.join(', ')}]\n` : ''}`;
  }
  writeFileSync(join(dir, 'mesh.yaml'), yaml);
}

/** The sidecar's bootstrap: every listener on port 0 (bound ports read from its stdout), no identity, the policy key. */
export function sidecarBootstrap(xdsAddress: string, workloadPort: number, verificationKey: string): string {
  return `node: { id: ${SERVICE}-1, service: ${SERVICE}, namespace: ${NAMESPACE} }
controlPlane: { address: ${xdsAddress} }
inbound: { address: 127.0.0.1, port: 0, advertiseAddress: 127.0.0.1 }
workload: { address: 127.0.0.1:${workloadPort} }
outbound: { address: 127.0.0.1, port: 0 }
admin: { address: 127.0.0.1, port: 0 }
policy: { verificationKeys: [${verificationKey}] }
`;
}
