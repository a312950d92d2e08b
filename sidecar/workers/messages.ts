/**
 * The IPC protocol between the primary of a `--workers N` sidecar and its worker processes
 * (child_process.fork, `serialization: 'advanced'`, so bytes travel as Uint8Array).
 *
 *   primary → worker                          worker → primary
 *   init   {index, bootstrap, ports, config}  listening {inboundPort, outboundPort}  | failed {code, message}
 *   config {config}                           applied   {version, complete, errors}
 *   query  {id, what}                         reply     {id, body}
 *   drain  {deadlineMs}                       drained   {finished}   then the worker exits 0
 *
 * A configuration travels as the xDS resources themselves (protobuf bytes per resource, with
 * its name and version) and the primary's snapshot version: every worker compiles it with the
 * same code the single-process sidecar uses (compileSnapshot), so it arrives at the same
 * snapshot and the same version, which it reports back in `applied`.
 */
import { fromBinary, toBinary, type Message } from '@bufbuild/protobuf';
import type { ResourceMap, XdsResource } from '../../xds/client/subscriptions.ts';
import { getResourceType } from '../../xds/resources/registry.ts';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL } from '../../xds/resources/type-urls.ts';
import type { SidecarBootstrap } from '../bootstrap/bootstrap.ts';
import type { SnapshotInput, SnapshotResourceKind } from '../config/sidecar-snapshot.ts';

const KIND_TYPE_URLS: Readonly<Record<SnapshotResourceKind, string>> = {
  listeners: LISTENER_TYPE_URL,
  routes: ROUTE_TYPE_URL,
  clusters: CLUSTER_TYPE_URL,
  endpoints: ENDPOINT_TYPE_URL,
};
const KINDS = Object.keys(KIND_TYPE_URLS) as SnapshotResourceKind[];

/** One resource on the wire. */
export interface WireResource {
  readonly name: string;
  readonly version: string;
  readonly bytes: Uint8Array;
}

/** A whole configuration on the wire: what the primary's snapshot was compiled from. */
export interface WireConfig {
  /** The primary's snapshot version; a worker compiling the same input arrives at the same one. */
  readonly version: string;
  readonly resources: Readonly<Record<SnapshotResourceKind, readonly WireResource[]>>;
  readonly typeVersions: Readonly<Partial<Record<SnapshotResourceKind, string>>>;
}

/** What a worker is told to be. */
export interface WorkerInit {
  readonly type: 'init';
  /** 0-based slot; a restarted worker keeps its slot's index. */
  readonly index: number;
  readonly bootstrap: SidecarBootstrap;
  /** 0 asks the kernel for a port: only the first worker's first start does that. */
  readonly inboundPort: number;
  readonly outboundPort: number;
  readonly drainTimeoutMs: number;
  readonly logLevel: string;
  readonly version: string;
  /** The current configuration, applied before the worker binds; null before the first. */
  readonly config: WireConfig | null;
}

/** `metrics`: the worker's prom-client registry as JSON (getMetricsAsJSON), for the primary's /metrics. */
export type AdminQuery = 'stats' | 'clusters' | 'config_dump' | 'metrics';

export type ToWorker =
  | WorkerInit
  | { readonly type: 'config'; readonly config: WireConfig }
  | { readonly type: 'query'; readonly id: number; readonly what: AdminQuery }
  | { readonly type: 'drain'; readonly deadlineMs: number };

export type FromWorker =
  | { readonly type: 'listening'; readonly inboundPort: number; readonly outboundPort: number }
  | { readonly type: 'failed'; readonly code: string; readonly message: string }
  | { readonly type: 'applied'; readonly version: string | null; readonly complete: boolean; readonly errors: readonly string[] }
  | { readonly type: 'reply'; readonly id: number; readonly body: unknown }
  | { readonly type: 'drained'; readonly finished: boolean };

/** Serialized once per message object: unchanged resources are not re-encoded on every update. */
const encoded = new WeakMap<Message, Uint8Array>();

/** The configuration `input` (compiled by the primary to `version`) for the wire. */
export function encodeConfig(input: SnapshotInput, version: string): WireConfig {
  const resources = {} as Record<SnapshotResourceKind, WireResource[]>;
  for (const kind of KINDS) {
    const schema = getResourceType(KIND_TYPE_URLS[kind]).schema;
    const list: WireResource[] = [];
    for (const [name, r] of input[kind]) {
      let bytes = encoded.get(r.message);
      if (bytes === undefined) {
        bytes = toBinary(schema, r.message);
        encoded.set(r.message, bytes);
      }
      list.push({ name, version: r.version, bytes });
    }
    resources[kind] = list;
  }
  return { version, resources, typeVersions: { ...input.typeVersions } };
}

/** The snapshot input a wire configuration carries. Throws on bytes that do not decode (a bug). */
export function decodeConfig(config: WireConfig): SnapshotInput {
  const maps = {} as Record<SnapshotResourceKind, ResourceMap>;
  for (const kind of KINDS) {
    const schema = getResourceType(KIND_TYPE_URLS[kind]).schema;
    const map = new Map<string, XdsResource>();
    for (const r of config.resources[kind]) map.set(r.name, { version: r.version, message: fromBinary(schema, r.bytes) });
    maps[kind] = map;
  }
  return { ...maps, typeVersions: config.typeVersions };
}
