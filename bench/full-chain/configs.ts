/**
 * Configuration files of bench/full-chain, as text: the control plane's config directory and
 * the sidecar's bootstrap, for the two topologies.
 *
 *   none: Mesh PERMISSIVE (no CA: plaintext inbound), the upstream's Service; no Policy, no
 *         Quota; bootstrap without identity, telemetry at its defaults (access log off).
 *   mtls: Mesh STRICT and the identity, as full, but no Policy, no Quota, access log off: what
 *         TLS termination alone costs (a diagnostic topology, not in the default run).
 *   full: Mesh STRICT (the sidecar enrolls and its inbound requires mTLS), the Service, the
 *         bench/authz Policy with cacheKeys (enforce), a LOCAL Quota keyed by the caller's
 *         SPIFFE ID whose limit is never reached; bootstrap with identity, the policy
 *         verification key, and telemetry.accessLog to a file.
 * Metrics are on in both: the sidecar always serves admin /metrics (telemetry.metrics only
 * sets the label budget).
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CACHE_KEYS, ENTRYPOINT, TRUST_DOMAIN } from '../authz/policy.ts';

export const NAMESPACE = 'default';
export const SERVICE = 'upstream';
export const SERVICE_PORT = 8080;
export const POLICY_NAME = 'bench-authz';
export const QUOTA_NAME = 'bench-quota';
/** Tokens per second of the bench Quota's limit: far above any rate this box reaches, so it never refuses. */
export const QUOTA_TOKENS = 1_000_000_000;

export interface FullChainFiles {
  /** The signed policy bundle, copied next to the Policy document. */
  readonly bundleFile: string;
}

/** `strict`: Mesh STRICT (mtls, full); `full`: the Policy and the Quota too (full only). */
export function writePalisadeConfig(dir: string, strict: boolean, full: FullChainFiles | null): void {
  mkdirSync(dir, { recursive: true });
  let yaml = `apiVersion: palisade.dev/v1
kind: Mesh
metadata: { name: default }
spec: { trustDomain: ${TRUST_DOMAIN}, mtls: { mode: ${strict ? 'STRICT' : 'PERMISSIVE'} } }
---
apiVersion: palisade.dev/v1
kind: Service
metadata: { name: ${SERVICE}, namespace: ${NAMESPACE} }
spec: { protocol: http, port: ${SERVICE_PORT} }
`;
  if (full !== null) {
    copyFileSync(full.bundleFile, join(dir, 'authz.tar.gz'));
    yaml += `---
apiVersion: palisade.dev/v1
kind: Policy
metadata: { name: ${POLICY_NAME}, namespace: ${NAMESPACE} }
spec:
  entrypoint: ${ENTRYPOINT}
  bundle: { file: authz.tar.gz }
  mode: enforce
  selector: { services: [${SERVICE}] }
  cacheKeys: [${CACHE_KEYS.join(', ')}]
---
apiVersion: palisade.dev/v1
kind: Quota
metadata: { name: ${QUOTA_NAME}, namespace: ${NAMESPACE} }
spec:
  selector: { services: [${SERVICE}] }
  descriptors: [{ key: caller, from: { principal: true }, default: anonymous }]
  limits: [{ name: per-caller, tokens: ${QUOTA_TOKENS}, interval: 1s }]
  scope: local
`;
  }
  writeFileSync(join(dir, 'mesh.yaml'), yaml);
}

export interface BootstrapIdentity {
  readonly caAddress: string;
  readonly trustBundle: string;
  readonly joinToken: string;
}

/** The sidecar's bootstrap: every listener on port 0 (bound ports read from its stdout); `accessLog` null: off. */
export function sidecarBootstrap(xdsAddress: string, workloadPort: number, verificationKey: string, full: { identity: BootstrapIdentity; accessLog: string | null } | null): string {
  return `node: { id: ${SERVICE}-1, service: ${SERVICE}, namespace: ${NAMESPACE} }
controlPlane: { address: ${xdsAddress} }
inbound: { address: 127.0.0.1, port: 0, advertiseAddress: 127.0.0.1 }
workload: { address: 127.0.0.1:${workloadPort} }
outbound: { address: 127.0.0.1, port: 0 }
admin: { address: 127.0.0.1, port: 0 }
policy: { verificationKeys: [${verificationKey}] }
${full === null ? '' : `identity: { caAddress: ${full.identity.caAddress}, trustBundle: ${full.identity.trustBundle}, joinToken: ${full.identity.joinToken} }
${full.accessLog === null ? '' : `telemetry: { accessLog: { enabled: true, path: ${full.accessLog} } }
`}`}`;
}
