import { describe, expect, it } from 'vitest';
import { fromBinary } from '@bufbuild/protobuf';
import { DeltaDiscoveryResponseSchema, DiscoveryResponseSchema } from '../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { CachedResource } from '../../xds/cache/cached-resource.ts';
import { encodeDelta, encodeSotwBody, withNonce } from '../../xds/cache/response-bytes.ts';
import { ClusterSchema } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { CLUSTER_TYPE_URL } from '../../xds/resources/type-urls.ts';
import { edsCluster } from '../helpers/resources.ts';

const a = new CachedResource('a', ClusterSchema, edsCluster('a'));
const b = new CachedResource('b', ClusterSchema, edsCluster('b'));

describe('hand-assembled responses', () => {
  it.each(['1', 'zz', 'x'.repeat(127)])('decode as a DiscoveryResponse with nonce %j', (nonce) => {
    const res = fromBinary(DiscoveryResponseSchema, withNonce(encodeSotwBody(CLUSTER_TYPE_URL, 'v1', [a, b]), nonce));
    expect(res).toMatchObject({ versionInfo: 'v1', typeUrl: CLUSTER_TYPE_URL, nonce });
    expect(res.resources.map((r) => r.typeUrl)).toEqual([CLUSTER_TYPE_URL, CLUSTER_TYPE_URL]);
    expect(fromBinary(ClusterSchema, res.resources[1]!.value).name).toBe('b');
  });

  it('refuses a nonce longer than one length byte allows', () => {
    expect(() => withNonce(new Uint8Array(0), 'x'.repeat(128))).toThrow(RangeError);
  });

  it('decodes as a DeltaDiscoveryResponse with versions, resources and removals', () => {
    const res = fromBinary(DeltaDiscoveryResponseSchema, encodeDelta(CLUSTER_TYPE_URL, 'sys', [a], ['gone'], 'n1'));
    expect(res).toMatchObject({ systemVersionInfo: 'sys', typeUrl: CLUSTER_TYPE_URL, nonce: 'n1', removedResources: ['gone'] });
    expect(res.resources[0]).toMatchObject({ name: 'a', version: a.version });
    expect(fromBinary(ClusterSchema, res.resources[0]!.resource!.value).name).toBe('a');
  });
});
