/**
 * grpc-js service definition of envoy.service.discovery.v3.AggregatedDiscoveryService,
 * with protobuf-es (de)serializers. Responses may also be handed over as ready bytes
 * (the server's pre-assembled responses), which the serializer passes through.
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  DeltaDiscoveryRequestSchema, DeltaDiscoveryResponseSchema, DiscoveryRequestSchema, DiscoveryResponseSchema,
  type DeltaDiscoveryRequest, type DeltaDiscoveryResponse, type DiscoveryRequest, type DiscoveryResponse,
} from '../gen/envoy/service/discovery/v3/discovery_pb.js';

const SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService';
export const SOTW_METHOD_PATH = `${SERVICE}/StreamAggregatedResources`;
export const DELTA_METHOD_PATH = `${SERVICE}/DeltaAggregatedResources`;

type Wire<T> = T | Uint8Array;

const bytes = (u: Uint8Array): Buffer => (Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength));

export const ADS_SERVICE = {
  streamAggregatedResources: {
    path: SOTW_METHOD_PATH,
    requestStream: true,
    responseStream: true,
    requestSerialize: (m: Wire<DiscoveryRequest>) => (m instanceof Uint8Array ? bytes(m) : bytes(toBinary(DiscoveryRequestSchema, m))),
    requestDeserialize: (b: Buffer) => fromBinary(DiscoveryRequestSchema, b),
    responseSerialize: (m: Wire<DiscoveryResponse>) => (m instanceof Uint8Array ? bytes(m) : bytes(toBinary(DiscoveryResponseSchema, m))),
    responseDeserialize: (b: Buffer) => fromBinary(DiscoveryResponseSchema, b),
  },
  deltaAggregatedResources: {
    path: DELTA_METHOD_PATH,
    requestStream: true,
    responseStream: true,
    requestSerialize: (m: Wire<DeltaDiscoveryRequest>) =>
      (m instanceof Uint8Array ? bytes(m) : bytes(toBinary(DeltaDiscoveryRequestSchema, m))),
    requestDeserialize: (b: Buffer) => fromBinary(DeltaDiscoveryRequestSchema, b),
    responseSerialize: (m: Wire<DeltaDiscoveryResponse>) =>
      (m instanceof Uint8Array ? bytes(m) : bytes(toBinary(DeltaDiscoveryResponseSchema, m))),
    responseDeserialize: (b: Buffer) => fromBinary(DeltaDiscoveryResponseSchema, b),
  },
} satisfies ServiceDefinition;
