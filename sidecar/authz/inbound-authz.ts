/**
 * Authorization on the sidecar's inbound listener: the Policies that select this workload,
 * applied in front of the forwarder (and of WebSocket upgrades).
 *
 *   Policy push (validated: signed, entrypoint present) → apply(): engines built off the
 *   request path, one at a time, then one reference swapped; retired engines closed after.
 *   request → gate(): Authorizer on the config in force → 403/500 local reply, or forward with
 *   the policy's header changes.
 *
 * `ready` turns true once the first Policy state (possibly empty) is in force: the sidecar
 * reports ready only then, so no request reaches the workload before its policies can judge it.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { Policy } from '../../xds/gen/palisade/v1/policy_pb.js';
import type { DownstreamRequest, DownstreamResponse } from '../listeners/http-listener.ts';
import { refuseUpgrade } from '../proxy/upgrade.ts';
import { buildAuthzConfig, EMPTY_AUTHZ, type AuthzConfig } from './authz-config.ts';
import { Authorizer, type AuthzOutcome } from './authorize.ts';
import { describeRequest, pathOnly, removeRequestHeader, setRequestHeader } from './request-description.ts';

export type InboundAuthzEvents = { applied: [config: AuthzConfig] };

export class InboundAuthz extends EventEmitter<InboundAuthzEvents> {
  readonly #service: string;
  readonly #log: Logger;
  readonly #ownPrincipal: () => string | null;
  readonly #authorizer: Authorizer;
  #config: AuthzConfig = EMPTY_AUTHZ;
  #ready = false;
  #closed = false;
  /** Builds run one after another, in push order; the last push wins. */
  #queue: Promise<void> = Promise.resolve();
  #applies = 0;
  #failures = 0;

  constructor(options: { service: string; logger: Logger; ownPrincipal: () => string | null }) {
    super();
    this.#service = options.service;
    this.#log = options.logger;
    this.#ownPrincipal = options.ownPrincipal;
    this.#authorizer = new Authorizer(options.logger);
  }

  /** True once the first pushed Policy state is in force. */
  get ready(): boolean {
    return this.#ready;
  }

  get config(): AuthzConfig {
    return this.#config;
  }

  /** A new accepted Policy state (every Policy of the namespace). Resolves when it is in force (or failed, logged). */
  apply(policies: readonly Policy[]): Promise<void> {
    const run = async () => {
      if (this.#closed) return;
      try {
        const { config, retired } = await buildAuthzConfig(policies, this.#service, this.#config);
        if (this.#closed) {
          for (const p of config.policies) p.engine.close();
          return;
        }
        this.#config = config;
        for (const e of retired) e.close();
        this.#applies++;
        this.#log.info({ policies: config.policies.map((p) => `${p.name}@${p.revision} (${p.mode})`) }, 'policies in force');
      } catch (err) {
        this.#failures++;
        this.#log.error({ err }, 'loading the pushed policies failed; the previous ones stay in force');
      }
      if (!this.#ready) {
        this.#ready = true;
      }
      this.emit('applied', this.#config);
    };
    this.#queue = this.#queue.then(run);
    return this.#queue;
  }

  /** Judges a request; calls `next` with it when allowed, else answers it. */
  gate(req: DownstreamRequest, res: DownstreamResponse, next: () => void): void {
    const outcome = this.#judge(req);
    if (outcome.allowed) {
      applyHeaderChanges(req, outcome);
      next();
      return;
    }
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of outcome.headers) {
      const prev = headers[k];
      headers[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    res.writeHead(outcome.status, { ...headers, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(outcome.body) });
    res.end(outcome.body);
  }

  /** The same for a WebSocket upgrade: refused with the denial's status and body. */
  gateUpgrade(req: IncomingMessage, socket: Duplex, respond: (status: number) => void, next: () => void): void {
    const outcome = this.#judge(req);
    if (outcome.allowed) {
      applyHeaderChanges(req, outcome);
      next();
      return;
    }
    refuseUpgrade(socket, respond, outcome.status, outcome.body);
  }

  stats(): unknown {
    return { ready: this.#ready, applies: this.#applies, failures: this.#failures, policies: this.#authorizer.stats(this.#config) };
  }

  close(): void {
    this.#closed = true;
    for (const p of this.#config.policies) p.engine.close();
    this.#config = EMPTY_AUTHZ;
  }

  #judge(req: DownstreamRequest): AuthzOutcome {
    return this.#authorizer.authorize(this.#config, pathOnly(req.url), () => describeRequest(req, this.#ownPrincipal()));
  }
}

/** An allowed request's OPA-Envoy `headers` (added) and `request_headers_to_remove`. */
function applyHeaderChanges(req: DownstreamRequest, outcome: AuthzOutcome & { allowed: true }): void {
  for (const name of outcome.removeHeaders) removeRequestHeader(req, name);
  for (const [name, value] of outcome.addHeaders) setRequestHeader(req, name, value);
}
