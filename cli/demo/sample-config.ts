/**
 * The demo's desired state, as YAML files an operator would write: a Mesh, the Service
 * `echo` (gRPC, one endpoint per demo backend, weighted) and a Route that sends the echo
 * method to it. The files are written the way editors save (temp file, then rename), so the
 * control plane's directory watcher sees each edit as one change.
 */
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The Service and Route name, and so the target a proxyless client dials: `xds:///echo`. */
export const ECHO_SERVICE_NAME = 'echo';
export const MESH_FILE = 'mesh.yaml';
export const SERVICE_FILE = 'echo.yaml';
export const ROUTE_FILE = 'route.yaml';
export const WORKLOADS_FILE = 'workloads.yaml';

/** The HTTP Services the demo's sidecars join, and the ports they are called on. */
export const HTTP_SERVICES = Object.freeze([
  { name: 'frontend', port: 8080 },
  { name: 'backend', port: 9090 },
]);

export interface SampleEndpoint {
  /** Backend name, written as the endpoint's `backend` label. */
  name: string;
  host: string;
  port: number;
  weight: number;
}

/** The demo's trust domain: the CA's and the Mesh's. */
export const DEMO_TRUST_DOMAIN = 'palisade.local';

export function meshYaml(): string {
  return `# Mesh-wide settings.
apiVersion: palisade.dev/v1
kind: Mesh
metadata:
  name: mesh
spec:
  trustDomain: ${DEMO_TRUST_DOMAIN}
  mtls:
    mode: STRICT   # sidecars accept mTLS only; PERMISSIVE would accept plaintext too
`;
}

export function serviceYaml(endpoints: readonly SampleEndpoint[]): string {
  return `# The gRPC Service the demo client calls: one endpoint per backend; weights split the traffic.
apiVersion: palisade.dev/v1
kind: Service
metadata:
  name: ${ECHO_SERVICE_NAME}
  namespace: default
spec:
  protocol: grpc
  port: 50051
  endpoints:
${endpoints.map((e) => `    - { address: ${e.host}, port: ${e.port}, weight: ${e.weight}, labels: { backend: ${e.name} } }`).join('\n')}
`;
}

export function routeYaml(): string {
  return `# Calls to xds:///${ECHO_SERVICE_NAME} for the Echo service go to the Service ${ECHO_SERVICE_NAME}, with a deadline and retries.
apiVersion: palisade.dev/v1
kind: Route
metadata:
  name: ${ECHO_SERVICE_NAME}
  namespace: default
spec:
  hosts: [${ECHO_SERVICE_NAME}]
  http:
    - name: echo-grpc
      match:
        - prefix: /palisade.echo.v1.Echo/
      backends:
        - service: ${ECHO_SERVICE_NAME}
          port: 50051
      timeout: 2s
      retries:
        attempts: 2
        on: [unavailable]
`;
}

export function workloadsYaml(): string {
  return HTTP_SERVICES.map((s) => `# HTTP Service ${s.name}: no static endpoints; its sidecar registers itself once ready.
apiVersion: palisade.dev/v1
kind: Service
metadata:
  name: ${s.name}
  namespace: default
spec:
  protocol: http
  port: ${s.port}
`).join('---\n');
}

/** Every sample file, by file name. */
export function sampleConfig(endpoints: readonly SampleEndpoint[]): Record<string, string> {
  return {
    [MESH_FILE]: meshYaml(), [SERVICE_FILE]: serviceYaml(endpoints), [ROUTE_FILE]: routeYaml(), [WORKLOADS_FILE]: workloadsYaml(),
  };
}

/** Replaces `dir/file` atomically: write a hidden temp file (not loaded), then rename it over. */
export async function writeConfigFile(dir: string, file: string, text: string): Promise<void> {
  const tmp = join(dir, `.${file}.tmp`);
  await writeFile(tmp, text);
  await rename(tmp, join(dir, file));
}
