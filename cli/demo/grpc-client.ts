/**
 * The demo's proxyless gRPC client: a plain @grpc/grpc-js channel to `xds:///echo`, resolved
 * by @grpc/grpc-js-xds through the control plane (LDS → RDS → CDS → EDS), with no proxy in
 * the path.
 *
 * The xDS bootstrap (which control plane, which node) travels as a channel option instead of
 * the GRPC_XDS_BOOTSTRAP / GRPC_XDS_BOOTSTRAP_CONFIG environment variables: the control
 * plane's port may only be known at run time, grpc-js-xds caches the environment's bootstrap
 * for the whole process, and the user's own environment stays untouched. With the option the
 * channel gets its own xDS client, which ends with the channel. The option's name says it is
 * not a stable API: @grpc/grpc-js-xds is pinned to an exact version, and
 * test/e2e/demo.test.ts fails if an upgrade drops it.
 */
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import * as grpcJsXds from '@grpc/grpc-js-xds';
import { ECHO_PATH } from './echo-backend.ts';

const BOOTSTRAP_OPTION = 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config';
/** Deadline of each call, ms. */
const CALL_DEADLINE_MS = 5000;
const identity = (b: Buffer): Buffer => b;
const PING = Buffer.from('ping');

let registered = false;

export interface DemoClientOptions {
  /** `xds:///<host>`. */
  target: string;
  /** The control plane's ADS address, host:port. */
  xdsServer: string;
  /** Node id the control plane lists the client under. */
  nodeId: string;
  /** Namespace the client's short names resolve in. */
  namespace: string;
}

export class DemoClient {
  readonly options: Readonly<DemoClientOptions>;
  readonly #client: Client;

  constructor(options: DemoClientOptions) {
    if (!registered) {
      grpcJsXds.register();
      registered = true;
    }
    this.options = Object.freeze({ ...options });
    const bootstrap = {
      xds_servers: [{ server_uri: options.xdsServer, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
      node: { id: options.nodeId, cluster: 'palisade-demo', locality: {}, metadata: { 'palisade.io/namespace': options.namespace } },
    };
    this.#client = new Client(options.target, credentials.createInsecure(), { [BOOTSTRAP_OPTION]: JSON.stringify(bootstrap) });
  }

  /** One Echo call; resolves with the reply (the name of the backend that served it). */
  call(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest(ECHO_PATH, identity, identity, PING, new Metadata(), { deadline: Date.now() + CALL_DEADLINE_MS },
        (err, reply) => (err ? reject(err) : resolve(reply!.toString())));
    });
  }

  /**
   * `n` calls one after the other; resolves with the count per reply. Rejects on the first
   * failed call, naming it, or when `signal` aborts.
   */
  async calls(n: number, signal: AbortSignal): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (let i = 1; i <= n; i++) {
      signal.throwIfAborted();
      let reply: string;
      try {
        reply = await this.call();
      } catch (err) {
        throw new Error(`call ${i} of ${n} failed: ${describeCallError(err)}`, { cause: err });
      }
      counts.set(reply, (counts.get(reply) ?? 0) + 1);
    }
    return counts;
  }

  close(): void {
    this.#client.close();
  }
}

/** A failed call's message, trimmed of grpc-js's empty "Resolution note:", with a hint when no backend answers. */
export function describeCallError(err: unknown): string {
  const message = (err as Error).message.replace(/\.?\s*Resolution note:\s*$/, '');
  return /ECONNREFUSED/.test(message) ? `${message} (is something serving the endpoints of the Service?)` : message;
}
