/**
 * Configuration files of bench/mtls-chain's processes, as text: the Palisade config directory
 * (Mesh, the upstream's Service and the client's), the two sidecars' bootstraps and the nginx
 * peer terminating (mutual) TLS in front of the upstream. nginx configs: 1 worker, keep-alive
 * on both sides, no access log, as bench/proxy's.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nginxMain } from '../proxy/configs.ts';

export const TRUST_DOMAIN = 'bench.local';
export const NAMESPACE = 'default';
/** Sidecar B's Service (and service account): the one called. */
export const SERVER_SERVICE = 'upstream';
export const SERVER_SERVICE_PORT = 8080;
/** Sidecar A's Service: the caller. */
export const CLIENT_SERVICE = 'bench-client';

/** Mesh + two Services with no static endpoints: sidecar B registers itself as `upstream`'s endpoint once ready. */
export function writePalisadeConfig(dir: string, mode: 'STRICT' | 'PERMISSIVE'): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'mesh.yaml'), `apiVersion: palisade.dev/v1
kind: Mesh
metadata: { name: default }
spec: { trustDomain: ${TRUST_DOMAIN}, mtls: { mode: ${mode} } }
---
apiVersion: palisade.dev/v1
kind: Service
metadata: { name: ${SERVER_SERVICE}, namespace: ${NAMESPACE} }
spec: { protocol: http, port: ${SERVER_SERVICE_PORT} }
---
apiVersion: palisade.dev/v1
kind: Service
metadata: { name: ${CLIENT_SERVICE}, namespace: ${NAMESPACE} }
spec: { protocol: http, port: 8081 }
`);
}

export interface BootstrapIdentity {
  caAddress: string;
  trustBundle: string;
  joinToken: string;
}

/** A sidecar's bootstrap, every listener on port 0 (the bound ports are read from its stdout). */
export function sidecarBootstrap(service: string, xdsAddress: string, workloadPort: number, identity: BootstrapIdentity | null): string {
  return `node: { id: ${service}-1, service: ${service}, namespace: ${NAMESPACE} }
controlPlane: { address: ${xdsAddress} }
inbound: { address: 127.0.0.1, port: 0, advertiseAddress: 127.0.0.1 }
workload: { address: 127.0.0.1:${workloadPort} }
outbound: { address: 127.0.0.1, port: 0 }
admin: { address: 127.0.0.1, port: 0 }
${identity === null ? '' : `identity: { caAddress: ${identity.caAddress}, trustBundle: ${identity.trustBundle}, joinToken: ${identity.joinToken} }\n`}`;
}

// The upstream is bench/proxy's (same nginx, same body), so the two benchmarks compare.

export interface NginxTlsFiles {
  readonly key: string;
  readonly chain: string;
  /** The mesh's root bundle: client certificates are verified against it. */
  readonly bundle: string;
}

/**
 * The peer: nginx terminating mutual TLS (TLS 1.3, the same SVID as sidecar B, client
 * certificate required and verified against the mesh bundle) and proxying to the upstream
 * over a keep-alive pool.
 */
export function nginxTlsProxyConf(prefix: string, port: number, upstreamPort: number, files: NginxTlsFiles): string {
  return nginxMain(prefix, 'nginx-tls', `  upstream up {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:${port} ssl backlog=4096;
    ssl_certificate ${files.chain};
    ssl_certificate_key ${files.key};
    ssl_protocols TLSv1.3;
    ssl_session_cache shared:SSL:1m;
    ssl_session_tickets on;
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_client_certificate ${files.bundle};
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }`);
}
