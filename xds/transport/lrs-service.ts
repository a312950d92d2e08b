/**
 * grpc-js service definition of envoy.service.load_stats.v3.LoadReportingService (LRS) with
 * protobuf-es (de)serializers: the control plane serves it (control/metering/lrs-server.ts),
 * sidecars call it (sidecar/telemetry/load-reporter.ts).
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  LoadStatsRequestSchema, LoadStatsResponseSchema, type LoadStatsRequest, type LoadStatsResponse,
} from '../gen/envoy/service/load_stats/v3/lrs_pb.js';

export const LRS_METHOD_PATH = '/envoy.service.load_stats.v3.LoadReportingService/StreamLoadStats';

const bytes = (u: Uint8Array): Buffer => (Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength));

export const LRS_SERVICE = {
  streamLoadStats: {
    path: LRS_METHOD_PATH,
    requestStream: true,
    responseStream: true,
    requestSerialize: (m: LoadStatsRequest) => bytes(toBinary(LoadStatsRequestSchema, m)),
    requestDeserialize: (b: Buffer) => fromBinary(LoadStatsRequestSchema, b),
    responseSerialize: (m: LoadStatsResponse) => bytes(toBinary(LoadStatsResponseSchema, m)),
    responseDeserialize: (b: Buffer) => fromBinary(LoadStatsResponseSchema, b),
  },
} satisfies ServiceDefinition;
