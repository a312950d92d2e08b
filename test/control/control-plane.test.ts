/**
 * Bad input never reaches a proxy: each kind of broken edit is refused with file,
 * document, field and reason; nothing is pushed; the last good config stays in force; and
 * a later good edit goes out.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterLoadAssignmentSchema } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL } from '../../xds/resources/type-urls.ts';
import { RawSotwStream, testNode, unpackAll } from '../helpers/raw-ads-client.ts';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.ts';

const service = (port: number) => `apiVersion: palisade.dev/v1
kind: Service
metadata: { name: echo }
spec:
  protocol: grpc
  port: 50051
  endpoints: [{ address: 127.0.0.1, port: ${port} }]
`;

let tcp: TestControlPlane;
let stream: RawSotwStream;

async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

beforeEach(async () => {
  tcp = await startControlPlane({ 'echo.yaml': service(7001) });
  stream = new RawSotwStream(tcp.address);
  stream.send({ node: testNode('bad-input', 'test'), typeUrl: CLUSTER_TYPE_URL });
  stream.ack(await stream.next());
  stream.send({ typeUrl: ENDPOINT_TYPE_URL, resourceNames: ['outbound|50051||echo.default'] });
  const eds = await stream.next();
  stream.ack(eds, ['outbound|50051||echo.default']);
});

afterEach(async () => {
  stream.close();
  await tcp.close();
});

const BAD: Array<[string, string, string, RegExp]> = [
  ['malformed YAML', 'broken.yaml', 'kind: Service\nmetadata: { name: x\n', /\/broken\.yaml#0: malformed YAML: .*line 3, column 1/],
  ['an unknown kind', 'gateway.yaml', 'apiVersion: palisade.dev/v1\nkind: Gateway\nmetadata: { name: g }\nspec: {}\n', /\/gateway\.yaml#0 \/kind: unknown kind "Gateway"; known kinds: Mesh, Service, Route, Policy, RequestAuthentication, Quota$/],
  ['a schema violation', 'echo.yaml', service(70000), /\/echo\.yaml#0 \/spec\/endpoints\/0\/port: must be <= 65535, got 70000$/],
  ['a Route to a missing Service', 'route.yaml',
    'apiVersion: palisade.dev/v1\nkind: Route\nmetadata: { name: r }\nspec:\n  hosts: [r.example]\n  http:\n    - backends: [{ service: nope }]\n',
    /\/route\.yaml#0 \/spec\/http\/0\/backends\/0\/service: Service "nope" not found in namespace "default"$/],
];

describe('control plane with bad input', () => {
  it.each(BAD)('refuses %s, pushes nothing and keeps the last good config', async (_what, file, text, expected) => {
    const before = tcp.cp.status.rejections;
    await tcp.write(file, text);
    await waitFor(() => tcp.cp.status.rejections > before, 'the rejection');
    const errors = tcp.cp.status.lastRejection!.errors;
    expect(errors.some((e) => expected.test(e)), errors.join('\n')).toBe(true);
    expect(await stream.silentFor(300)).toBe(true);
    expect([...tcp.cp.state!.services.keys()]).toEqual(['default/echo']);

    // A good edit afterwards goes out.
    await tcp.write(file === 'echo.yaml' ? 'echo.yaml' : file, file === 'echo.yaml' ? service(7002) : '# fixed\n');
    if (file === 'echo.yaml') {
      const eds = await stream.next();
      const cla = unpackAll(eds, ClusterLoadAssignmentSchema)[0]!;
      const ep = cla.endpoints[0]!.lbEndpoints[0]!.hostIdentifier;
      expect(ep.case === 'endpoint' && ep.value.address?.address.case === 'socketAddress' && ep.value.address.address.value.portSpecifier.value).toBe(7002);
    } else {
      await waitFor(() => tcp.cp.status.lastRejection === null, 'the fix to apply');
    }
  });
});

describe('control plane publishing', () => {
  it('wakes only the node groups whose resources changed', async () => {
    const mesh = (td: string) => `apiVersion: palisade.dev/v1\nkind: Mesh\nmetadata: { name: mesh }\nspec: { trustDomain: ${td} }\n`;
    await tcp.write('mesh.yaml', mesh('one.example'));
    await waitFor(() => tcp.cp.state?.mesh?.spec.trustDomain === 'one.example', 'the mesh');
    const sidecar = new RawSotwStream(tcp.address);
    try {
      sidecar.send({ node: testNode('sidecar-1', 'test', 'palisade-sidecar'), typeUrl: 'type.googleapis.com/palisade.v1.MeshConfig' });
      const first = await sidecar.next();
      expect(first.resources).toHaveLength(1);
      sidecar.ack(first);
      const envoySnap = tcp.cp.cache.getSnapshot('envoy/default');
      const sidecarSnap = tcp.cp.cache.getSnapshot('sidecar/default');
      expect(envoySnap).toBeDefined();

      // Only sidecars receive the Mesh: Envoy's group keeps its snapshot and its stream stays silent.
      await tcp.write('mesh.yaml', mesh('two.example'));
      const next = await sidecar.next();
      expect(next.versionInfo).not.toBe(first.versionInfo);
      expect(tcp.cp.cache.getSnapshot('envoy/default')).toBe(envoySnap);
      expect(tcp.cp.cache.getSnapshot('sidecar/default')).not.toBe(sidecarSnap);
      expect(await stream.silentFor(200)).toBe(true);
    } finally {
      sidecar.close();
    }
  });
});
