/**
 * AdsClient options: their types, the defaults (one object), and the one-time check that
 * turns what a caller passes into a frozen config. Every problem is reported at once, each
 * naming the option and the value, in a PAL_ERR_XDS_CLIENT_INVALID_OPTION error.
 */
import { ChannelCredentials, credentials as grpcCredentials } from '@grpc/grpc-js';
import { create, type Message, type MessageInitShape } from '@bufbuild/protobuf';
import { NodeSchema, type Node } from '../gen/envoy/config/core/v3/base_pb.js';
import { findResourceType } from '../resources/registry.ts';
import { ExponentialBackoff, type BackoffOptions } from './backoff.ts';
import { InvalidOptionError } from './errors.ts';

/**
 * An extra semantic check for one resource type, run after PGV on every resource of a
 * response. Returns the problems found (field path first, as PGV does), `[]` when valid.
 */
export type ResourceValidator = (resource: Message) => string[];

export interface AdsClientOptions {
  /** The management server, `host:port` (IPv6 in brackets: `[::1]:18000`). */
  address: string;
  /** Identifies this client to the server; sent on the first request of every stream. Replace it with AdsClient.setNode(). */
  node: MessageInitShape<typeof NodeSchema>;
  /** `sotw` (StreamAggregatedResources, default) or `delta` (DeltaAggregatedResources). */
  protocol?: 'sotw' | 'delta';
  /** Channel credentials; insecure (plaintext) by default. */
  credentials?: ChannelCredentials;
  /** Reconnect backoff; see ExponentialBackoff. */
  backoff?: Partial<BackoffOptions>;
  /** Extra checks per type URL, beyond the PGV rules of Envoy's protos. */
  validators?: Partial<Record<string, ResourceValidator>>;
}

export interface AdsClientConfig {
  readonly address: string;
  readonly node: Node;
  readonly protocol: 'sotw' | 'delta';
  readonly credentials: ChannelCredentials;
  readonly backoff: BackoffOptions;
  readonly validators: Readonly<Record<string, ResourceValidator>>;
}

export const DEFAULT_BACKOFF: BackoffOptions = Object.freeze({ initialMs: 500, maxMs: 30_000, multiplier: 2, jitter: 0.2 });

export const DEFAULTS = Object.freeze({ protocol: 'sotw' as const, backoff: DEFAULT_BACKOFF });

const KNOWN = new Set(['address', 'node', 'protocol', 'credentials', 'backoff', 'validators']);
const BACKOFF_KEYS = new Set(Object.keys(DEFAULT_BACKOFF));
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):(\d{1,5})$/;

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'function') return 'a function';
  return String(v);
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The node option as a Node message, or the problem with it (the text of an option error). */
export function resolveNode(value: unknown): Node | string {
  if (!isPlainObject(value)) return `node must be an object (envoy.config.core.v3.Node), got ${show(value)}`;
  try {
    return create(NodeSchema, value as MessageInitShape<typeof NodeSchema>);
  } catch (err) {
    return `node is not a valid envoy.config.core.v3.Node: ${(err as Error).message}`;
  }
}

/**
 * Validates options and returns the frozen config plus the backoff it describes. Throws
 * PAL_ERR_XDS_CLIENT_INVALID_OPTION listing every problem.
 */
export function resolveOptions(options: AdsClientOptions): { config: AdsClientConfig; backoff: ExponentialBackoff } {
  if (!isPlainObject(options)) throw new InvalidOptionError(`options must be an object, got ${show(options)}`);
  const errors: string[] = [];
  for (const key of Object.keys(options)) if (!KNOWN.has(key)) errors.push(`unknown option ${JSON.stringify(key)}`);

  const { address } = options;
  if (typeof address !== 'string' || !HOST_PORT.test(address)) {
    errors.push(`address must be "host:port", got ${show(address)}`);
  } else {
    const port = Number(HOST_PORT.exec(address)![1]);
    if (port < 1 || port > 65535) errors.push(`address port must be 1 to 65535, got ${port}`);
  }

  const nodeResult = resolveNode(options.node);
  const node = typeof nodeResult === 'string' ? undefined : nodeResult;
  if (typeof nodeResult === 'string') errors.push(nodeResult);

  const protocol = options.protocol ?? DEFAULTS.protocol;
  if (protocol !== 'sotw' && protocol !== 'delta') errors.push(`protocol must be "sotw" or "delta", got ${show(protocol)}`);

  const creds = options.credentials ?? grpcCredentials.createInsecure();
  if (!(creds instanceof ChannelCredentials)) errors.push(`credentials must be a grpc-js ChannelCredentials, got ${show(creds)}`);

  let backoff: ExponentialBackoff | undefined;
  if (options.backoff !== undefined && !isPlainObject(options.backoff)) {
    errors.push(`backoff must be an object, got ${show(options.backoff)}`);
  } else {
    const given = options.backoff ?? {};
    for (const key of Object.keys(given)) if (!BACKOFF_KEYS.has(key)) errors.push(`unknown option ${JSON.stringify(`backoff.${key}`)}`);
    const r = ExponentialBackoff.tryNew({ ...DEFAULT_BACKOFF, ...given });
    if (r.valid) backoff = r.result;
    else for (const e of r.errors) errors.push(`backoff.${e}`);
  }

  const validators: Record<string, ResourceValidator> = {};
  if (options.validators !== undefined && !isPlainObject(options.validators)) {
    errors.push(`validators must be an object keyed by type URL, got ${show(options.validators)}`);
  } else {
    for (const [typeUrl, fn] of Object.entries(options.validators ?? {})) {
      if (fn === undefined) continue;
      if (!findResourceType(typeUrl)) errors.push(`validators[${JSON.stringify(typeUrl)}]: not a known resource type URL`);
      else if (typeof fn !== 'function') errors.push(`validators[${JSON.stringify(typeUrl)}] must be a function, got ${show(fn)}`);
      else validators[typeUrl] = fn;
    }
  }

  if (errors.length > 0) throw new InvalidOptionError(`invalid AdsClient options: ${errors.join('; ')}`);
  const config: AdsClientConfig = Object.freeze({
    address: address as string,
    node: node!,
    protocol,
    credentials: creds,
    backoff: backoff!.options,
    validators: Object.freeze(validators),
  });
  return { config, backoff: backoff! };
}
