/** Service documents for a test's config directory. */
export interface TestService {
  readonly name: string;
  readonly port: number;
  readonly protocol?: 'http' | 'grpc';
  /** Static endpoints on 127.0.0.1; none: the Service's endpoints come from registration. */
  readonly endpointPorts?: readonly number[];
}

/** The YAML of `services`, one document each. */
export function servicesYaml(...services: TestService[]): string {
  return services.map((s) => {
    const endpoints = s.endpointPorts ?? [];
    const list = endpoints.length === 0 ? '' : `\n  endpoints:\n${endpoints.map((p) => `    - { address: 127.0.0.1, port: ${p} }`).join('\n')}`;
    return `apiVersion: palisade.dev/v1\nkind: Service\nmetadata: { name: ${s.name} }\nspec:\n  protocol: ${s.protocol ?? 'http'}\n  port: ${s.port}${list}\n`;
  }).join('---\n');
}

/** The usual pair: `web` (the sidecar's own Service, port 8080) and `api` on 9090 at `apiPort`. */
export function webAndApiYaml(apiPort: number): string {
  return servicesYaml({ name: 'web', port: 8080 }, { name: 'api', port: 9090, endpointPorts: [apiPort] });
}
