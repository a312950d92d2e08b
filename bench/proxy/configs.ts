/**
 * Configuration files of bench/proxy's processes, as text: the nginx upstream, the nginx and
 * HAProxy peers, and the Palisade config directory and sidecar bootstrap. Every peer keeps
 * connections alive on both sides, runs one worker / one thread, and logs nothing per
 * request.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Keep-alive settings shared by the nginx configurations: never close a busy connection. */
function nginxHttpCommon(prefix: string): string {
  const tmp = join(prefix, 'tmp');
  return `  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;`;
}

/** A whole nginx.conf: 1 worker, files under `prefix`, the `http` block's servers. Shared with bench/mtls-chain. */
export function nginxMain(prefix: string, name: string, http: string): string {
  mkdirSync(join(prefix, 'tmp'), { recursive: true });
  return `# bench/proxy: ${name}
worker_processes 1;
pid ${join(prefix, `${name}.pid`)};
error_log ${join(prefix, `${name}-error.log`)} warn;
events { worker_connections 4096; }
http {
${nginxHttpCommon(prefix)}
${http}
}
`;
}

/** The upstream: nginx, 1 worker, answering every request with 200 and `body` from memory. */
export function nginxUpstreamConf(prefix: string, port: number, body: string): string {
  if (!/^[A-Za-z0-9-]*$/.test(body)) throw new Error('the upstream body must be letters, digits and - only (it is inlined in nginx.conf)');
  return nginxMain(prefix, 'upstream', `  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      default_type text/plain;
      return 200 "${body}";
    }
  }`);
}

/** nginx as the reverse proxy: 1 worker, keep-alive upstream pool (HTTP/1.1, no Connection header). */
export function nginxProxyConf(prefix: string, port: number, upstreamPort: number): string {
  return nginxMain(prefix, 'nginx-proxy', `  upstream up {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }`);
}

/** HAProxy, one thread, HTTP mode, keep-alive both sides, upstream connections always reused. */
export function haproxyConf(port: number, upstreamPort: number): string {
  return `# bench/proxy: haproxy
global
  nbthread 1
  maxconn 4096

defaults
  mode http
  option http-keep-alive
  option forwardfor
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 300s

frontend fe
  bind 127.0.0.1:${port}
  default_backend be

backend be
  server up1 127.0.0.1:${upstreamPort}
`;
}

/** The Service the sidecar routes to (Host `upstream:8080`) and the one the sidecar's own workload belongs to. */
export const UPSTREAM_SERVICE = 'upstream';
export const UPSTREAM_SERVICE_PORT = 8080;
export const CLIENT_SERVICE = 'bench-client';

/**
 * The Palisade config directory: a Mesh, the Service `upstream` with one static endpoint
 * (the upstream process), and `bench-client`, the Service of the workload whose sidecar is
 * measured (no static endpoints; the sidecar registers itself once ready).
 */
export function writePalisadeConfig(dir: string, upstreamPort: number): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'mesh.yaml'), `apiVersion: palisade.dev/v1
kind: Mesh
metadata: { name: default }
spec: { trustDomain: cluster.local, mtls: { mode: PERMISSIVE } }
`);
  writeFileSync(join(dir, 'services.yaml'), `apiVersion: palisade.dev/v1
kind: Service
metadata: { name: ${UPSTREAM_SERVICE}, namespace: default }
spec:
  protocol: http
  port: ${UPSTREAM_SERVICE_PORT}
  endpoints:
    - { address: 127.0.0.1, port: ${upstreamPort} }
---
apiVersion: palisade.dev/v1
kind: Service
metadata: { name: ${CLIENT_SERVICE}, namespace: default }
spec:
  protocol: http
  port: 8081
`);
}

/** The sidecar's bootstrap; every listener on port 0 (the bound ports are read from its stdout). */
export function sidecarBootstrap(xdsAddress: string, workloadPort: number): string {
  return `node: { id: ${CLIENT_SERVICE}-1, service: ${CLIENT_SERVICE}, namespace: default }
controlPlane: { address: ${xdsAddress} }
inbound: { address: 127.0.0.1, port: 0, advertiseAddress: 127.0.0.1 }
workload: { address: 127.0.0.1:${workloadPort} }
outbound: { address: 127.0.0.1, port: 0 }
admin: { address: 127.0.0.1, port: 0 }
`;
}
