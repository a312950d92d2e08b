import { create, equals } from '@bufbuild/protobuf';
import { AnySchema, anyPack, DurationSchema, type Any } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { decodeResources, type RawResource } from '../../../xds/client/validate-resources.ts';
import type { ResourceValidator } from '../../../xds/client/options.ts';
import { ClusterSchema, type Cluster } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ListenerSchema } from '../../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import { HttpConnectionManagerSchema } from '../../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { getResourceType } from '../../../xds/resources/registry.ts';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { edsCluster, loadAssignment, rdsListener } from '../../helpers/resources.ts';

const CDS = getResourceType(CLUSTER_TYPE_URL);
const EDS = getResourceType(ENDPOINT_TYPE_URL);
const LDS = getResourceType(LISTENER_TYPE_URL);

const sotw = (...anys: Any[]): RawResource[] => anys.map((any) => ({ version: 'v1', any }));
const cluster = (name: string) => anyPack(ClusterSchema, edsCluster(name));

function zeroWeight(name: string) {
  const cla = loadAssignment(name, [1]);
  cla.endpoints[0]!.lbEndpoints[0]!.loadBalancingWeight = 0;
  return anyPack(ClusterLoadAssignmentSchema, cla);
}

function negativeTimeout(name: string) {
  const c = edsCluster(name);
  c.connectTimeout = create(DurationSchema, { seconds: -1n });
  return anyPack(ClusterSchema, c);
}

/** A listener whose HttpConnectionManager (inside an Any) has an empty stat_prefix. */
function listenerWithEmptyStatPrefix(name: string) {
  const l = rdsListener(name, 'routes');
  const filter = l.filterChains[0]!.filters[0]!;
  const hcm = create(HttpConnectionManagerSchema, {
    statPrefix: '',
    routeSpecifier: { case: 'rds', value: { routeConfigName: 'routes', configSource: { configSourceSpecifier: { case: 'ads', value: {} } } } },
  });
  filter.configType = { case: 'typedConfig', value: anyPack(HttpConnectionManagerSchema, hcm) };
  return anyPack(ListenerSchema, l);
}

describe('decodeResources', () => {
  it('decodes valid resources, keeping order, names and versions (round trip)', () => {
    const r = decodeResources(CDS, sotw(cluster('b'), cluster('a')));
    expect(r.valid).toBe(true);
    if (!r.valid) return;
    expect(r.result.map((x) => [x.name, x.version])).toEqual([['b', 'v1'], ['a', 'v1']]);
    expect(equals(ClusterSchema, r.result[1]!.message as Cluster, edsCluster('a'))).toBe(true);
  });

  it('takes delta resources by their own name and version', () => {
    const r = decodeResources(CDS, [{ name: 'a', version: 'h1', any: cluster('a') }]);
    expect(r).toMatchObject({ valid: true, result: [{ name: 'a', version: 'h1' }] });
  });

  it('accepts an empty response', () => {
    expect(decodeResources(CDS, [])).toEqual({ valid: true, result: [] });
  });

  it.each<[string, typeof CDS, RawResource[], string[]]>([
    ['a zero endpoint weight (PGV)', EDS, sotw(zeroWeight('a')),
      ['ClusterLoadAssignment "a": endpoints[0].lb_endpoints[0].load_balancing_weight: value must be greater than or equal to 1, got 0']],
    ['a negative connect_timeout (PGV)', CDS, sotw(negativeTimeout('x')),
      ['Cluster "x": connect_timeout: value must be greater than 0s, got -1s']],
    ['a bad field inside an Any payload (PGV through TYPE_REGISTRY)', LDS, sotw(listenerWithEmptyStatPrefix('l')),
      ['Listener "l": filter_chains[0].filters[0].typed_config.stat_prefix: value length must be at least 1 characters, got 0']],
    ['a resource of another type', CDS, sotw(cluster('a'), anyPack(ListenerSchema, rdsListener('l', 'r'))),
      [`Cluster #1: type URL "${LISTENER_TYPE_URL}" does not match the response's "${CLUSTER_TYPE_URL}"`]],
    ['bytes that do not decode', CDS, sotw(create(AnySchema, { typeUrl: CLUSTER_TYPE_URL, value: new Uint8Array([0x0a, 0x05, 0x61]) })),
      ['Cluster #0: cannot be decoded as envoy.config.cluster.v3.Cluster: premature EOF']],
    ['a name sent twice', CDS, sotw(cluster('a'), cluster('b'), cluster('a')),
      ['Cluster "a": name appears more than once in the response']],
    ['a delta Resource named unlike its resource', CDS, [{ name: 'x', version: 'h', any: cluster('a') }],
      ['Cluster "x": the Resource\'s name does not match the resource\'s own name "a"']],
    ['a delta Resource without a resource', CDS, [{ name: 'x', version: 'h', any: undefined }],
      ['Cluster "x": the Resource carries no resource']],
    ['problems in several resources: every one, in order', EDS, sotw(zeroWeight('a'), anyPack(ClusterLoadAssignmentSchema, loadAssignment('ok', [1])), zeroWeight('c')), [
      'ClusterLoadAssignment "a": endpoints[0].lb_endpoints[0].load_balancing_weight: value must be greater than or equal to 1, got 0',
      'ClusterLoadAssignment "c": endpoints[0].lb_endpoints[0].load_balancing_weight: value must be greater than or equal to 1, got 0',
    ]],
  ])('rejects %s', (_what, type, items, errors) => {
    expect(decodeResources(type, items)).toEqual({ valid: false, errors });
  });

  const onlyA: ResourceValidator = (r) => ((r as Cluster).name === 'a' ? [] : ['name: only "a" is allowed']);

  it.each<[string, ResourceValidator, string[]]>([
    ['the problems it returns', onlyA, ['Cluster "b": name: only "a" is allowed']],
    ['a validator that throws', () => {
      throw new Error('boom');
    }, ['Cluster "a": validator threw: boom', 'Cluster "b": validator threw: boom']],
    ['a validator that returns no array', (() => undefined) as unknown as ResourceValidator,
      ['Cluster "a": validator returned undefined, not an array of problems', 'Cluster "b": validator returned undefined, not an array of problems']],
  ])('rejects with %s of the extra validator', (_what, validator, errors) => {
    expect(decodeResources(CDS, sotw(cluster('a'), cluster('b')), validator)).toEqual({ valid: false, errors });
  });

  it('runs the validator only on resources that passed PGV', () => {
    const seen: string[] = [];
    const r = decodeResources(CDS, sotw(cluster('a'), negativeTimeout('bad')), (m) => {
      seen.push((m as Cluster).name);
      return [];
    });
    expect(r.valid).toBe(false);
    expect(seen).toEqual(['a']);
  });
});
