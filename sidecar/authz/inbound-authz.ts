/**
 * Authorization on the sidecar's inbound listener: the Policies that select this workload,
 * applied in front of the forwarder (and of WebSocket upgrades).
 *
 *   Policy push (validated: signed, entrypoint present) → apply(): engines built off the
 *   request path, one at a time, then one reference swapped; retired engines closed after.
 *   request → gate(): Authorizer on the config in force → 403/500 local reply, or forward with
 *   the policy's header changes.
 *
 * Authentication comes first (sidecar/authn): the RequestAuthentications that select this
 * workload verify the request's JWT; a missing (when required) or invalid token is answered
 * 401 before any policy runs, and the verified payloads join the policy input next to the peer's
 * mTLS identity. A request without authentication config, or without a token, is judged
 * synchronously; verifying a token is async (jose; a JWKS fetch when the keys are not cached).
 *
 * `ready` turns true once the first Policy state (possibly empty) is in force, and, when the
 * owner subscribes RequestAuthentications (`authentication: true`), the first state of those
 * too: the sidecar reports ready only then, so no request reaches the workload before its
 * policies can judge it.
 *
 * With `namespacePolicies` (the bootstrap's extAuthz section) a second config is kept next to
 * the inbound one: every Policy pushed (the whole namespace, whatever it selects), for the
 * ext_authz server (ext-authz-server.ts) that judges for Envoys. It has engines of its own,
 * built in the same run; the inbound config and path are unchanged by it.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { Policy } from '../../xds/gen/palisade/v1/policy_pb.js';
import type { DownstreamRequest, DownstreamResponse } from '../listeners/http-listener.ts';
import { refuseUpgrade } from '../proxy/upgrade.ts';
import { buildAuthzConfig, EMPTY_AUTHZ, type AuthzConfig } from './authz-config.ts';
import { ALLOW_NOTHING, Authorizer, type AuthzOutcome } from './authorize.ts';
import { describeRequest, pathOnly, requestKeys, peerPrincipal, removeRequestHeader, setRequestHeader } from './request-description.ts';
import type { RequestAuthentication } from '../../xds/gen/palisade/v1/request_authentication_pb.js';
import { JwtAuthenticator, type AuthnOutcome, type JwtAuthenticatorOptions } from '../authn/jwt-authenticator.ts';
import { factsOf, type PolicyDecision } from '../telemetry/request-facts.ts';
import { buildInput } from '../../policies/input.ts';

export type InboundAuthzEvents = { applied: [config: AuthzConfig] };

export class InboundAuthz extends EventEmitter<InboundAuthzEvents> {
  readonly #service: string;
  readonly #log: Logger;
  readonly #ownPrincipal: () => string | null;
  readonly #authorizer: Authorizer;
  #config: AuthzConfig = EMPTY_AUTHZ;
  /** Every pushed Policy (namespacePolicies); null when not kept. */
  #namespaceConfig: AuthzConfig | null;
  #ready = false;
  #closed = false;
  /** Builds run one after another, in push order; the last push wins. */
  #queue: Promise<void> = Promise.resolve();
  #applies = 0;
  #failures = 0;
  /** Null: no RequestAuthentication selects this workload (nothing to verify). */
  #authn: JwtAuthenticator | null = null;
  #authnReady: boolean;
  readonly #authnOptions: JwtAuthenticatorOptions;
  #authnFailures = 0;

  constructor(options: {
    service: string; logger: Logger; ownPrincipal: () => string | null;
    /** True: readiness also waits for the first RequestAuthentication state (applyAuthentication). */
    authentication?: boolean;
    /** JWKS refetches on unknown kids, at most one per this many ms per provider (default 30 000). */
    jwksMinRefreshIntervalMs?: number;
    /** True: also keep every pushed Policy loaded, selected or not (namespaceConfig), for the ext_authz server. */
    namespacePolicies?: boolean;
  }) {
    super();
    this.#service = options.service;
    this.#log = options.logger;
    this.#ownPrincipal = options.ownPrincipal;
    this.#authorizer = new Authorizer(options.logger);
    this.#authnReady = options.authentication !== true;
    this.#namespaceConfig = options.namespacePolicies === true ? EMPTY_AUTHZ : null;
    const log = options.logger;
    this.#authnOptions = {
      ...(options.jwksMinRefreshIntervalMs !== undefined ? { minRefreshIntervalMs: options.jwksMinRefreshIntervalMs } : {}),
      onJwksError: (err, provider) => log.warn({ err, provider }, 'JWKS fetch failed; the last good keys stay in use'),
    };
  }

  /** True once the first pushed Policy state (and RequestAuthentication state, when expected) is in force. */
  get ready(): boolean {
    return this.#ready && this.#authnReady;
  }

  /**
   * A new accepted RequestAuthentication state (every one of the namespace): the providers of
   * those selecting this workload are in force for the next request. Cached remote JWKS of
   * unchanged providers are kept.
   */
  applyAuthentication(resources: readonly RequestAuthentication[]): void {
    if (this.#closed) return;
    try {
      this.#authn = JwtAuthenticator.build(resources, this.#service, this.#authn, this.#authnOptions);
      this.#log.info({ requestAuthentications: resources.map((r) => r.name), enforced: this.#authn !== null }, 'request authentication in force');
    } catch (err) {
      this.#authnFailures++;
      this.#log.error({ err }, 'loading the pushed request authentication failed; the previous one stays in force');
    }
    if (!this.#authnReady) {
      this.#authnReady = true;
      this.emit('applied', this.#config);
    }
  }

  get config(): AuthzConfig {
    return this.#config;
  }

  /** Every pushed Policy of the namespace, loaded (constructed with namespacePolicies); else null. */
  get namespaceConfig(): AuthzConfig | null {
    return this.#namespaceConfig;
  }

  /** A new accepted Policy state (every Policy of the namespace). Resolves when it is in force (or failed, logged). */
  apply(policies: readonly Policy[]): Promise<void> {
    const run = async () => {
      if (this.#closed) return;
      try {
        const { config, retired } = await buildAuthzConfig(policies, this.#service, this.#config);
        let all: Awaited<ReturnType<typeof buildAuthzConfig>> | null = null;
        if (this.#namespaceConfig !== null) {
          try {
            all = await buildAuthzConfig(policies, null, this.#namespaceConfig);
          } catch (err) {
            // Neither set changes: the two stay the same pushed state.
            for (const p of config.policies) if (!this.#config.policies.some((q) => q.engineKey === p.engineKey)) p.engine.close();
            throw err;
          }
        }
        if (this.#closed) {
          for (const p of config.policies) p.engine.close();
          for (const p of all?.config.policies ?? []) p.engine.close();
          return;
        }
        this.#config = config;
        for (const e of retired) e.close();
        if (all !== null) {
          this.#namespaceConfig = all.config;
          for (const e of all.retired) e.close();
        }
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

  /** Authenticates and judges a request; calls `next` with it when allowed, else answers it. */
  gate(req: DownstreamRequest, res: DownstreamResponse, next: () => void): void {
    const authn = this.#authn;
    if (authn === null) {
      this.#gateAuthenticated(req, res, next, null);
      return;
    }
    const outcome = authn.authenticate(req);
    if (!(outcome instanceof Promise)) {
      this.#gateAuthenticated(req, res, next, outcome);
      return;
    }
    outcome.then(
      (o) => {
        if (!req.destroyed) this.#gateAuthenticated(req, res, next, o);
      },
      (err: unknown) => {
        this.#log.error({ err }, 'authentication failed unexpectedly');
        if (!res.headersSent) reply(res, 500, 'authentication failed', []);
      },
    );
  }

  /** The same for a WebSocket upgrade: refused with the denial's status and body. */
  gateUpgrade(req: IncomingMessage, socket: Duplex, respond: (status: number) => void, next: () => void): void {
    const authn = this.#authn;
    const judge = (a: AuthnOutcome | null) => {
      if (a !== null && !a.authenticated) {
        refuseUpgrade(socket, respond, a.status, a.body);
        return;
      }
      if (a !== null) applyAuthn(req, a);
      const outcome = this.#judge(req, a?.payloads ?? null);
      if (outcome.allowed) {
        applyHeaderChanges(req, outcome);
        next();
        return;
      }
      refuseUpgrade(socket, respond, outcome.status, outcome.body);
    };
    if (authn === null) {
      judge(null);
      return;
    }
    const a = authn.authenticate(req);
    if (!(a instanceof Promise)) judge(a);
    else a.then((o) => { if (!socket.destroyed) judge(o); }, () => refuseUpgrade(socket, respond, 500, 'authentication failed'));
  }

  #gateAuthenticated(req: DownstreamRequest, res: DownstreamResponse, next: () => void, authn: AuthnOutcome | null): void {
    const facts = factsOf(req);
    if (facts !== undefined && req.socket !== null) facts.principal = peerPrincipal(req.socket);
    if (authn !== null && !authn.authenticated) {
      if (facts !== undefined) facts.policy = UNAUTHENTICATED;
      reply(res, authn.status, authn.body, authn.headers);
      return;
    }
    if (authn !== null) applyAuthn(req, authn);
    const outcome = this.#judge(req, authn?.payloads ?? null);
    if (outcome.allowed) {
      applyHeaderChanges(req, outcome);
      next();
      return;
    }
    reply(res, outcome.status, outcome.body, outcome.headers);
  }

  stats(): unknown {
    return {
      ready: this.ready, applies: this.#applies, failures: this.#failures, policies: this.#authorizer.stats(this.#config),
      authn: { failures: this.#authnFailures, ...(this.#authn === null ? { enforced: false } : { enforced: true, ...this.#authn.stats() }) },
    };
  }

  close(): void {
    this.#closed = true;
    for (const p of this.#config.policies) p.engine.close();
    this.#config = EMPTY_AUTHZ;
    if (this.#namespaceConfig !== null) {
      for (const p of this.#namespaceConfig.policies) p.engine.close();
      this.#namespaceConfig = EMPTY_AUTHZ;
    }
  }

  #judge(req: DownstreamRequest, jwtPayloads: Readonly<Record<string, unknown>> | null): AuthzOutcome {
    const config = this.#config;
    // No Policy: no closures and no principal lookup per request ("off is free").
    if (config.policies.length === 0) return ALLOW_NOTHING;
    const own = this.#ownPrincipal();
    return this.#authorizer.authorize(config, pathOnly(req.url), () => describeRequest(req, own, jwtPayloads), buildInput, factsOf(req), () => requestKeys(req, own));
  }
}

/** The telemetry facts' policy for a request refused 401 by request authentication (no Policy judged it). */
const UNAUTHENTICATED: { readonly name: string; readonly decision: PolicyDecision } = Object.freeze({ name: 'request-authentication', decision: 'unauthenticated' });

/** A local reply: status, headers (repeated names kept), text body. */
function reply(res: DownstreamResponse, status: number, body: string, entries: readonly (readonly [string, string])[]): void {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of entries) {
    const prev = headers[k];
    headers[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  res.writeHead(status, { ...headers, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * An authenticated request's header changes: provider-written headers stripped, then set from
 * the token; its verified payloads join the request's facts (the quota gate reads jwt_claim
 * descriptors from them).
 */
function applyAuthn(req: DownstreamRequest, outcome: AuthnOutcome & { authenticated: true }): void {
  const facts = factsOf(req);
  if (facts !== undefined) facts.jwt = outcome.payloads;
  for (const name of outcome.removeHeaders) removeRequestHeader(req, name);
  for (const [name, value] of outcome.setHeaders) setRequestHeader(req, name, value);
}

/** An allowed request's OPA-Envoy `headers` (added) and `request_headers_to_remove`. */
function applyHeaderChanges(req: DownstreamRequest, outcome: AuthzOutcome & { allowed: true }): void {
  for (const name of outcome.removeHeaders) removeRequestHeader(req, name);
  for (const [name, value] of outcome.addHeaders) setRequestHeader(req, name, value);
}
