import { describe, expect, it } from 'vitest';
import { equals } from '@bufbuild/protobuf';
import { compileSnapshot } from '../../../sidecar/config/sidecar-snapshot.ts';
import { decodeConfig, encodeConfig } from '../../../sidecar/workers/messages.ts';
import { getResourceType } from '../../../xds/resources/registry.ts';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { ECHO, fixtureInput, withExtraEndpoint } from '../config/fixtures.ts';

const TYPE_URLS = { listeners: LISTENER_TYPE_URL, routes: ROUTE_TYPE_URL, clusters: CLUSTER_TYPE_URL, endpoints: ENDPOINT_TYPE_URL } as const;

describe('the workers wire config', () => {
  it('round-trips every resource, name and version, and compiles to the primary snapshot version', () => {
    const input = { ...fixtureInput(), typeVersions: { listeners: '1', routes: '2', clusters: '3', endpoints: '4' } };
    const primary = compileSnapshot(input);
    expect(primary.valid).toBe(true);
    if (!primary.valid) return;
    const wire = encodeConfig(input, primary.result.version);
    expect(wire.version).toBe(primary.result.version);
    // What a worker gets through structured clone (serialization: 'advanced').
    const decoded = decodeConfig(structuredClone(wire));
    for (const kind of ['listeners', 'routes', 'clusters', 'endpoints'] as const) {
      expect([...decoded[kind].keys()]).toEqual([...input[kind].keys()]);
      const schema = getResourceType(TYPE_URLS[kind]).schema;
      for (const [name, r] of input[kind]) {
        const d = decoded[kind].get(name)!;
        expect(d.version).toBe(r.version);
        expect(equals(schema, d.message, r.message)).toBe(true);
      }
    }
    expect(decoded.typeVersions).toEqual({ listeners: '1', routes: '2', clusters: '3', endpoints: '4' });
    const worker = compileSnapshot(decoded);
    expect(worker.valid).toBe(true);
    if (worker.valid) expect(worker.result.version).toBe(primary.result.version);
  });

  it('encodes an unchanged resource once and a changed one again', () => {
    const input = fixtureInput();
    const a = encodeConfig(input, 'v1');
    const changed = withExtraEndpoint(input, ECHO, 1);
    const b = encodeConfig(changed, 'v2');
    const bytes = (w: typeof a, kind: 'listeners' | 'endpoints', name?: string) =>
      (name === undefined ? w.resources[kind][0]! : w.resources[kind].find((r) => r.name === name)!).bytes;
    expect(bytes(b, 'listeners')).toBe(bytes(a, 'listeners'));
    expect(bytes(b, 'endpoints', ECHO)).not.toBe(bytes(a, 'endpoints', ECHO));
    expect(b.resources.endpoints.find((r) => r.name === ECHO)!.version).toBe(changed.endpoints.get(ECHO)!.version);
  });
});
