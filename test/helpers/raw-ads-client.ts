/**
 * A raw ADS client for protocol tests: sends exactly the requests a test writes and hands
 * back each response in order, decoded, so tests assert the protocol, not a library.
 */
import { credentials, makeGenericClientConstructor, type ChannelCredentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { create, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import {
  DeltaDiscoveryRequestSchema, DiscoveryRequestSchema,
  type DeltaDiscoveryRequest, type DeltaDiscoveryResponse, type DiscoveryRequest, type DiscoveryResponse,
} from '../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { NodeSchema } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { ADS_SERVICE } from '../../xds/transport/ads-service.ts';

const AdsClient = makeGenericClientConstructor(ADS_SERVICE, 'AggregatedDiscoveryService');

export function testNode(id = 'test-node', cluster = 'test', userAgent = 'envoy') {
  return create(NodeSchema, { id, cluster, userAgentName: userAgent });
}

class Queue<T> {
  readonly items: T[] = [];
  readonly waiters: Array<{ resolve: (v: T) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }> = [];
  ended: Error | undefined;

  push(v: T): void {
    const w = this.waiters.shift();
    if (w) {
      clearTimeout(w.timer);
      w.resolve(v);
    } else this.items.push(v);
  }

  fail(e: Error): void {
    this.ended = e;
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(e);
    }
  }

  next(timeoutMs: number): Promise<T> {
    const v = this.items.shift();
    if (v !== undefined) return Promise.resolve(v);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.findIndex((w) => w.timer === timer), 1);
        reject(new Error(`no response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push({ resolve, reject, timer });
    });
  }
}

abstract class RawStream<Req, Res> {
  protected readonly queue = new Queue<Res>();
  readonly status: Promise<{ code: number; details: string }>;
  protected readonly call: ClientDuplexStream<Req, Res>;
  readonly #client: InstanceType<typeof AdsClient>;

  protected constructor(client: InstanceType<typeof AdsClient>, call: ClientDuplexStream<Req, Res>) {
    this.#client = client;
    this.call = call;
    call.on('data', (r: Res) => this.queue.push(r));
    this.status = new Promise((resolve) => {
      call.on('status', (s) => resolve({ code: s.code, details: s.details }));
    });
    call.on('error', (e: Error) => this.queue.fail(e));
    call.on('end', () => this.queue.fail(new Error('stream ended')));
  }

  /** The next response; rejects after timeoutMs. */
  next(timeoutMs = 3000): Promise<Res> {
    return this.queue.next(timeoutMs);
  }

  /** Resolves true if no response arrives within ms. */
  async silentFor(ms: number): Promise<boolean> {
    try {
      await this.queue.next(ms);
      return false;
    } catch {
      return true;
    }
  }

  /** Stops reading from the stream (flow control then holds the server back). */
  pause(): void {
    this.call.pause();
  }

  resume(): void {
    this.call.resume();
  }

  close(): void {
    this.call.cancel();
    this.#client.close();
  }
}

export class RawSotwStream extends RawStream<DiscoveryRequest, DiscoveryResponse> {
  /** Plaintext unless `channelCredentials` says otherwise (TLS, mTLS). */
  constructor(address: string, channelCredentials: ChannelCredentials = credentials.createInsecure()) {
    // No SNI from an IP address (Node's DEP0123); test certificates name localhost.
    const client = new AdsClient(address, channelCredentials, { 'grpc.ssl_target_name_override': 'localhost' });
    super(client, client.streamAggregatedResources!() as ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>);
  }

  send(init: MessageInitShape<typeof DiscoveryRequestSchema>): void {
    this.call.write(create(DiscoveryRequestSchema, init));
  }

  /** ACKs a response: same version, nonce and names. */
  ack(res: DiscoveryResponse, resourceNames: string[] = []): void {
    this.send({ typeUrl: res.typeUrl, versionInfo: res.versionInfo, responseNonce: res.nonce, resourceNames });
  }
}

export class RawDeltaStream extends RawStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse> {
  constructor(address: string) {
    const client = new AdsClient(address, credentials.createInsecure());
    super(client, client.deltaAggregatedResources!() as ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>);
  }

  send(init: MessageInitShape<typeof DeltaDiscoveryRequestSchema>): void {
    this.call.write(create(DeltaDiscoveryRequestSchema, init));
  }
}

/** Decodes every Any of a SotW response with the given schema. */
export function unpackAll<D extends DescMessage>(res: DiscoveryResponse, schema: D): MessageShape<D>[] {
  return res.resources.map((a) => {
    const m = anyUnpack(a, schema);
    if (!m) throw new Error(`resource of type ${a.typeUrl} is not ${schema.typeName}`);
    return m;
  });
}


