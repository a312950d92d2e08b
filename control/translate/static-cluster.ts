/**
 * A STATIC cluster of one endpoint (the local workload of an inbound listener, the ext_authz
 * server next to an Envoy), optionally speaking HTTP/2 upstream (gRPC).
 */
import { create } from '@bufbuild/protobuf';
import { anyPack, DurationSchema } from '@bufbuild/protobuf/wkt';
import { ClusterSchema, Cluster_DiscoveryType, Cluster_LbPolicy, type Cluster } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { HttpProtocolOptionsSchema } from '../../xds/gen/envoy/extensions/upstreams/http/v3/http_protocol_options_pb.js';

const HTTP_PROTOCOL_OPTIONS_KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

export function staticCluster(o: { name: string; address: string; port: number; connectTimeoutSeconds: number; http2: boolean }): Cluster {
  const cluster = create(ClusterSchema, {
    name: o.name,
    connectTimeout: create(DurationSchema, { seconds: BigInt(o.connectTimeoutSeconds) }),
    lbPolicy: Cluster_LbPolicy.ROUND_ROBIN,
    clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.STATIC },
    loadAssignment: {
      clusterName: o.name,
      endpoints: [{
        lbEndpoints: [{
          hostIdentifier: {
            case: 'endpoint',
            value: { address: { address: { case: 'socketAddress', value: { address: o.address, portSpecifier: { case: 'portValue', value: o.port } } } } },
          },
        }],
      }],
    },
  });
  if (o.http2) {
    cluster.typedExtensionProtocolOptions[HTTP_PROTOCOL_OPTIONS_KEY] = anyPack(HttpProtocolOptionsSchema, create(HttpProtocolOptionsSchema, {
      upstreamProtocolOptions: { case: 'explicitHttpConfig', value: { protocolConfig: { case: 'http2ProtocolOptions', value: {} } } },
    }));
  }
  return cluster;
}
