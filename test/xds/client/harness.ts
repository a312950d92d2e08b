/**
 * Shared set-up for AdsClient tests: a real SnapshotCache and AdsServer on 127.0.0.1:0 with
 * callbacks recorded, a restart on the same port, and clients whose events are recorded.
 */
import { AdsClient, type ResourceMap, type UpdateInfo } from '../../../xds/client/ads-client.ts';
import type { AdsClientOptions } from '../../../xds/client/options.ts';
import { SnapshotCache } from '../../../xds/cache/snapshot-cache.ts';
import { AdsServer } from '../../../xds/server/ads-server.ts';
import type { ServerCallbacks } from '../../../xds/server/callbacks.ts';
import type { Node } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';

export const GROUP = 'test';
export const NODE = { id: 'client-under-test', cluster: GROUP, userAgentName: 'palisade-test' };
/** Short reconnect delays, so a test waits milliseconds for a reconnect. */
export const FAST_BACKOFF = { initialMs: 20, maxMs: 200 };

export interface ServerLog {
  acks: Array<{ typeUrl: string; version: string; nonce: string }>;
  nacks: Array<{ typeUrl: string; version: string; nonce: string; error: string }>;
  responses: Array<{ typeUrl: string; version: string; nonce: string; count: number }>;
  /** Streams that sent their node, in order (one per client stream that reached the server). */
  streams: number;
  closed: string[];
  /** The node of each stream's first request (onStreamNode), in order. */
  nodes: Node[];
  /** Nodes sent again on a later request of a stream (onStreamNodeUpdate), in order. */
  nodeUpdates: Node[];
}

export class Harness {
  readonly cache = new SnapshotCache();
  readonly log: ServerLog = { acks: [], nacks: [], responses: [], streams: 0, closed: [], nodes: [], nodeUpdates: [] };
  server!: AdsServer;
  port = 0;
  readonly #clients: AdsClient[] = [];

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts an AdsServer over the cache; the first start picks a port, a restart reuses it. */
  async start(): Promise<void> {
    const callbacks: ServerCallbacks = {
      onAck: (_i, typeUrl, version, nonce) => this.log.acks.push({ typeUrl, version, nonce }),
      onNack: (_i, typeUrl, version, nonce, error) => this.log.nacks.push({ typeUrl, version, nonce, error }),
      onResponse: (_i, typeUrl, version, nonce, count) => this.log.responses.push({ typeUrl, version, nonce, count }),
      onStreamNode: (i) => {
        this.log.streams++;
        this.log.nodes.push(i.node!);
      },
      onStreamNodeUpdate: (i) => void this.log.nodeUpdates.push(i.node!),
      onStreamClosed: (_i, reason) => this.log.closed.push(reason),
    };
    this.server = new AdsServer({ cache: this.cache, callbacks });
    this.port = await this.server.listen(`127.0.0.1:${this.port}`);
  }

  client(options: Partial<AdsClientOptions> = {}): AdsClient {
    const c = new AdsClient({ address: this.address, node: NODE, backoff: FAST_BACKOFF, ...options });
    this.#clients.push(c);
    return c;
  }

  async close(): Promise<void> {
    for (const c of this.#clients) c.close();
    await this.server.close(200);
  }
}

export interface ClientLog {
  updates: Array<{ typeUrl: string; resources: ResourceMap; info: UpdateInfo }>;
  nacks: Array<{ typeUrl: string; error: string }>;
  /** 'connected' and 'disconnected: <reason>' in order. */
  events: string[];
}

export function record(client: AdsClient): ClientLog {
  const log: ClientLog = { updates: [], nacks: [], events: [] };
  client.on('update', (typeUrl, resources, info) => log.updates.push({ typeUrl, resources, info }));
  client.on('nack', (typeUrl, error) => log.nacks.push({ typeUrl, error }));
  client.on('connected', () => log.events.push('connected'));
  client.on('disconnected', (reason) => log.events.push(`disconnected: ${reason}`));
  return log;
}

/** Updates of one type, in order. */
export const updatesOf = (log: ClientLog, typeUrl: string) => log.updates.filter((u) => u.typeUrl === typeUrl);

/** Sorted names of a state. */
export const namesOf = (resources: ResourceMap): string[] => [...resources.keys()].sort();

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
