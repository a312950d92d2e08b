/**
 * A pass-through ADS proxy for client tests: every stream a client opens is forwarded to an
 * upstream ADS server, and each request is recorded as the server receives it, so a test
 * can assert the exact requests a client wrote (the ADS server has no per-request hook).
 * An upstream stream that ends ends the client's stream with the same status; an upstream
 * that is down fails the client's stream with UNAVAILABLE, as the server itself would.
 */
import {
  credentials, makeGenericClientConstructor, Server, ServerCredentials, status,
  type ClientDuplexStream, type ServerDuplexStream, type StatusObject,
} from '@grpc/grpc-js';
import type {
  DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
} from '../../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { ADS_SERVICE } from '../../../xds/transport/ads-service.ts';

const AdsGrpcClient = makeGenericClientConstructor(ADS_SERVICE, 'AggregatedDiscoveryService');

export interface RecordedStream<Req> {
  readonly requests: Req[];
}

export class RecordingProxy {
  readonly sotw: RecordedStream<DiscoveryRequest>[] = [];
  readonly delta: RecordedStream<DeltaDiscoveryRequest>[] = [];
  readonly #server = new Server();
  readonly #upstream: InstanceType<typeof AdsGrpcClient>;

  constructor(upstreamAddress: string) {
    this.#upstream = new AdsGrpcClient(upstreamAddress, credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': 10,
      'grpc.max_reconnect_backoff_ms': 50,
    });
    this.#server.addService(ADS_SERVICE, {
      streamAggregatedResources: (down: ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => {
        const up = this.#upstream.streamAggregatedResources!() as ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
        pipe(down, up, this.sotw);
      },
      deltaAggregatedResources: (down: ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>) => {
        const up = this.#upstream.deltaAggregatedResources!() as ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;
        pipe(down, up, this.delta);
      },
    });
  }

  /** Binds 127.0.0.1 on a free port; resolves with `host:port`. */
  listen(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) =>
        (err ? reject(err) : resolve(`127.0.0.1:${port}`)));
    });
  }

  close(): void {
    this.#upstream.close();
    this.#server.forceShutdown();
  }
}

function pipe<Req, Res>(down: ServerDuplexStream<Req, Res>, up: ClientDuplexStream<Req, Res>, log: RecordedStream<Req>[]): void {
  const rec: RecordedStream<Req> = { requests: [] };
  log.push(rec);
  let over = false;
  down.on('data', (req: Req) => {
    rec.requests.push(req);
    if (!over) up.write(req);
  });
  down.on('end', () => up.end());
  down.on('cancelled', () => up.cancel());
  down.on('error', () => up.cancel());
  up.on('data', (res: Res) => {
    if (!over) down.write(res);
  });
  up.on('error', () => {});
  up.on('status', (s: StatusObject) => {
    if (over) return;
    over = true;
    if (s.code === status.OK) down.end();
    else down.emit('error', Object.assign(new Error(s.details), { code: s.code, details: s.details }));
  });
}
