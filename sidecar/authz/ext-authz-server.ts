/**
 * Envoy's external authorization API (`envoy.service.auth.v3.Authorization/Check`, gRPC)
 * served by a sidecar, so Envoys whose Policies are not expressible as RBAC delegate to it
 * (docs/envoy-authz.md). The control plane's ext_authz filter names the Policy in gRPC
 * metadata (`x-palisade-policy: <ns>/<name>`, control/translate/envoy-authz.ts).
 *
 *   Check(CheckRequest, metadata)
 *     → the named Policy among the loaded ones (every Policy of the sidecar's namespace:
 *       InboundAuthz namespaceConfig); none or unknown → denied 403 (fail closed)
 *     → its selector: `services` against the request's :authority (name, name.ns,
 *       name.ns.svc, any port), path prefixes as inbound; unselected → OK, nothing judged
 *     → Authorizer (the inbound path's, same modes, caches and logs) on the CheckRequest's
 *       OPA-Envoy input (check-request.ts)
 *     → OK + ok_response{headers (append false), headers_to_remove}, or PERMISSION_DENIED +
 *       denied_response{status, headers, body} (an evaluation error: 500)
 *
 * Denials are answered in the CheckResponse, not as gRPC errors: the RPC fails only for
 * a malformed message. Envoy's filter runs with failure_mode_allow false, so an RPC
 * failure denies too.
 */
import { shutdownGracefully } from '../../xds/server/shutdown.ts';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { Server, ServerCredentials, status as GrpcStatus, type sendUnaryData, type ServerUnaryCall, type ServiceDefinition } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  CheckRequestSchema, CheckResponseSchema, type CheckRequest, type CheckResponse,
} from '../../xds/gen/envoy/service/auth/v3/external_auth_pb.js';
import type { HeaderValueOption } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { HeaderEntry } from '../../policies/decision.ts';
import type { AuthzConfig, CompiledPolicy } from './authz-config.ts';
import { Authorizer } from './authorize.ts';
import { checkRequestInput, describeCheckRequest } from './check-request.ts';
import { pathOnly } from './request-description.ts';

/** gRPC metadata naming the Policy (`<namespace>/<name>`), as the control plane's ext_authz filter sends it. */
export const POLICY_METADATA_KEY = 'x-palisade-policy';
/** google.rpc.Code values of CheckResponse.status. */
export const CHECK_OK = 0;
export const CHECK_PERMISSION_DENIED = 7;

const bytes = (u: Uint8Array): Buffer => (Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength));

/** grpc-js definition of envoy.service.auth.v3.Authorization, with protobuf-es (de)serializers. */
export const AUTHORIZATION_SERVICE = {
  check: {
    path: '/envoy.service.auth.v3.Authorization/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: CheckRequest) => bytes(toBinary(CheckRequestSchema, m)),
    requestDeserialize: (b: Buffer) => fromBinary(CheckRequestSchema, b),
    responseSerialize: (m: CheckResponse) => bytes(toBinary(CheckResponseSchema, m)),
    responseDeserialize: (b: Buffer) => fromBinary(CheckResponseSchema, b),
  },
} satisfies ServiceDefinition;

export interface ExtAuthzServerOptions {
  /** The loaded Policies Check may name, read per call (InboundAuthz namespaceConfig). */
  config: () => AuthzConfig;
  logger: Logger;
  /** Insecure (plaintext) by default: the server is meant for loopback, next to the Envoy. */
  credentials?: ServerCredentials;
}

export interface ExtAuthzStats {
  checks: number;
  ok: number;
  denied: number;
  /** Denied because the metadata named no loaded Policy (or none at all). */
  unknownPolicy: number;
  /** Passed without judgement: outside the Policy's selector. */
  unselected: number;
}

function headerOptions(entries: readonly HeaderEntry[]): HeaderValueOption[] {
  return entries.map(([key, value]) => ({ $typeName: 'envoy.config.core.v3.HeaderValueOption', header: { $typeName: 'envoy.config.core.v3.HeaderValue', key, value, rawValue: new Uint8Array() }, append: false, appendAction: 0, keepEmptyValue: false }));
}

/** A denial CheckResponse: PERMISSION_DENIED, the HTTP status, headers and body Envoy answers with. */
export function deniedResponse(httpStatus: number, body: string, headers: readonly HeaderEntry[] = []): CheckResponse {
  return create(CheckResponseSchema, {
    status: { code: CHECK_PERMISSION_DENIED, message: body },
    httpResponse: { case: 'deniedResponse', value: { status: { code: httpStatus }, headers: headerOptions(headers), body } },
  });
}

/** An allowing CheckResponse: OK, headers set (overwriting) and removed on the upstream request. */
export function okResponse(addHeaders: readonly HeaderEntry[] = [], removeHeaders: readonly string[] = []): CheckResponse {
  return create(CheckResponseSchema, {
    status: { code: CHECK_OK },
    httpResponse: { case: 'okResponse', value: { headers: headerOptions(addHeaders), headersToRemove: [...removeHeaders] } },
  });
}

/** Whether a request to `host` (`:authority`, port optional) is for one of `services` of `namespace`. */
function hostSelected(host: string, services: readonly string[], namespace: string): boolean {
  const m = /^(.*?)(?::\d+)?$/.exec(host.toLowerCase());
  const h = m?.[1] ?? host;
  return services.some((s) => h === s || h === `${s}.${namespace}` || h === `${s}.${namespace}.svc`);
}

export class ExtAuthzServer {
  readonly #config: () => AuthzConfig;
  readonly #log: Logger;
  readonly #authorizer: Authorizer;
  readonly #server: Server;
  readonly #credentials: ServerCredentials;
  /** Per config in force: Policies by name, and one single-Policy config each (built once per swap, not per call). */
  readonly #index = new WeakMap<AuthzConfig, Map<string, { policy: CompiledPolicy; alone: AuthzConfig }>>();
  readonly #stats: ExtAuthzStats = { checks: 0, ok: 0, denied: 0, unknownPolicy: 0, unselected: 0 };

  constructor(options: ExtAuthzServerOptions) {
    this.#config = options.config;
    this.#log = options.logger;
    this.#authorizer = new Authorizer(options.logger);
    this.#credentials = options.credentials ?? ServerCredentials.createInsecure();
    this.#server = new Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
    this.#server.addService(AUTHORIZATION_SERVICE, {
      check: (call: ServerUnaryCall<CheckRequest, CheckResponse>, callback: sendUnaryData<CheckResponse>) => {
        const named = call.metadata.get(POLICY_METADATA_KEY)[0];
        try {
          callback(null, this.check(call.request, typeof named === 'string' ? named : null));
        } catch (err) {
          this.#log.error({ err }, 'ext_authz check failed');
          callback({ code: GrpcStatus.INTERNAL, details: 'check failed' });
        }
      },
    });
  }

  /** Binds `address:port` (port 0 picks one); resolves with the bound port. */
  listen(address: string, port: number): Promise<number> {
    const target = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
    return new Promise((resolve, reject) => {
      this.#server.bindAsync(target, this.#credentials, (err, bound) => (err ? reject(err) : resolve(bound)));
    });
  }

  /** Judges one CheckRequest by the Policy named `policyName` (`<ns>/<name>`); null: none named (denied). */
  check(req: CheckRequest, policyName: string | null): CheckResponse {
    this.#stats.checks++;
    const entry = policyName === null ? undefined : this.#lookup(this.#config(), policyName);
    if (entry === undefined) {
      this.#stats.unknownPolicy++;
      this.#stats.denied++;
      const body = policyName === null ? `no ${POLICY_METADATA_KEY} metadata: no policy to judge by` : `policy ${policyName} is not loaded on this authz server`;
      this.#log.warn({ policy: policyName, path: req.attributes?.request?.http?.path }, `ext_authz: ${body}; denied (fail closed)`);
      return deniedResponse(403, body);
    }
    const { policy, alone } = entry;
    const desc = describeCheckRequest(req);
    if (policy.services.length > 0 && !hostSelected(desc.host, policy.services, policy.name.slice(0, policy.name.indexOf('/')))) {
      this.#stats.unselected++;
      this.#stats.ok++;
      return okResponse();
    }
    const outcome = this.#authorizer.authorize(alone, pathOnly(desc.path), () => desc, (d) => checkRequestInput(req, d));
    if (outcome.allowed) {
      this.#stats.ok++;
      return okResponse(outcome.addHeaders, outcome.removeHeaders);
    }
    this.#stats.denied++;
    return deniedResponse(outcome.status, outcome.body, outcome.headers);
  }

  /** Checks answered, and per Policy the Authorizer's counters. */
  stats(): unknown {
    return { ...this.#stats, policies: this.#authorizer.stats(this.#config()) };
  }

  /** Stops accepting; calls in flight get up to `graceMs`, then the server is cut. */
  close(graceMs = 1000): Promise<void> {
    return shutdownGracefully(this.#server, graceMs);
  }

  #lookup(config: AuthzConfig, name: string): { policy: CompiledPolicy; alone: AuthzConfig } | undefined {
    let index = this.#index.get(config);
    if (index === undefined) {
      index = new Map(config.policies.map((p) => [p.name, { policy: p, alone: Object.freeze({ policies: Object.freeze([p]) }) }]));
      this.#index.set(config, index);
    }
    return index.get(name);
  }
}
