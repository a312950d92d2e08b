/**
 * The benchmark mesh as Palisade config documents (palisade.dev/v1): one Mesh,
 * and per service i an HTTP Service `svc-i` on port 8080 with endpoints
 * 127.0.0.1:20000+2i and +1, and a Route sending hosts [svc-i] to it. This is
 * what gcp-server (bench/peers/gcp-server) serves as raw Envoy resources.
 *
 * Generation g sets svc-0's first endpoint weight to 1+g (g = 0: the initial
 * config), exactly as gcp-server's POST /change does.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const MESH = `apiVersion: palisade.dev/v1
kind: Mesh
metadata: { name: default }
spec: { trustDomain: cluster.local, mtls: { mode: PERMISSIVE } }
`;

export function serviceDoc(i: number, generation: number): string {
  const w0 = i === 0 ? 1 + generation : 1;
  const port = 20000 + 2 * i;
  return `apiVersion: palisade.dev/v1
kind: Service
metadata: { name: svc-${i}, namespace: default }
spec:
  protocol: http
  port: 8080
  endpoints:
    - { address: 127.0.0.1, port: ${port}, weight: ${w0} }
    - { address: 127.0.0.1, port: ${port + 1}, weight: 1 }
`;
}

export function routeDoc(i: number): string {
  return `apiVersion: palisade.dev/v1
kind: Route
metadata: { name: svc-${i}, namespace: default }
spec:
  hosts: [svc-${i}]
  http:
    - backends: [{ service: svc-${i} }]
`;
}

function serviceFile(dir: string, i: number): string {
  return join(dir, `service-svc-${i}.yaml`);
}

/** Writes the whole mesh (generation 0) into `dir`, one file per document. */
export function writeMesh(dir: string, services: number): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'mesh.yaml'), MESH);
  for (let i = 0; i < services; i++) {
    writeFileSync(serviceFile(dir, i), serviceDoc(i, 0));
    writeFileSync(join(dir, `route-svc-${i}.yaml`), routeDoc(i));
  }
}

/**
 * Rewrites svc-0's Service for `generation` atomically: the new text goes to a
 * hidden temp file (not *.yaml, so a loader never reads it half-written) that
 * is then renamed over the old one.
 */
export function writeServiceZero(dir: string, generation: number): void {
  const tmp = join(dir, `.service-svc-0.yaml.${process.pid}.tmp`);
  writeFileSync(tmp, serviceDoc(0, generation));
  renameSync(tmp, serviceFile(dir, 0));
}
