/**
 * Endpoints registered by connected sidecars. A Palisade sidecar names its Service and its
 * inbound address in node metadata; while its ADS stream is up and it says it is ready, it
 * is an endpoint of that Service. When the stream goes, or the sidecar says it is not
 * ready, the endpoint stays for a grace period (a restart or a blip should not make EDS
 * flap) and is then removed. The control plane merges these into the desired state, so EDS
 * follows without static endpoints.
 *
 * Node metadata (google.protobuf.Struct) a sidecar sets:
 *   palisade.io/kind             "sidecar"
 *   palisade.io/namespace        the Service's namespace (default "default")
 *   palisade.io/service          the Service's name
 *   palisade.io/inbound-address  IPv4 or IPv6 address peers reach it on
 *   palisade.io/inbound-port     1..65535 (number or numeric string)
 *   palisade.io/labels           object of string labels (optional; for subsets)
 *   palisade.io/ready            true once its first config is applied (default false)
 * node.locality gives the endpoint's locality. A stream authenticated with a client certificate
 * registers its endpoint with that certificate's SPIFFE ID (`identity`), so clients dial it
 * over mTLS and check that ID. A later request may carry the node again
 * with new metadata (readiness changes): the registration follows it.
 */
import { isIP } from 'node:net';
import type { Node } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { Endpoint } from '../config/schema.ts';
import { serviceKey } from '../config/state.ts';

import {
  INBOUND_ADDRESS_KEY, INBOUND_PORT_KEY, LABELS_KEY, NAMESPACE_KEY, READY_KEY, SERVICE_KEY,
} from '../../xds/resources/node-metadata.ts';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface Registration {
  nodeId: string;
  /** `namespace/name` of the Service. */
  service: string;
  endpoint: Endpoint;
  ready: boolean;
}

export type RegistrationResult = { valid: true; result: Registration | null } | { valid: false; errors: string[] };

/**
 * Reads a sidecar's registration from its node; null when the node registers nothing.
 * `identity` is the SPIFFE ID the node's stream authenticated with (its client certificate,
 * checked by the stream authorizer): the endpoint then serves mTLS as that identity.
 */
export function parseRegistration(node: Node, identity?: string | null): RegistrationResult {
  const md = node.metadata ?? {};
  if (md[SERVICE_KEY] === undefined) return { valid: true, result: null };
  const errors: string[] = [];
  const name = md[SERVICE_KEY];
  const ns = md[NAMESPACE_KEY] ?? 'default';
  if (typeof name !== 'string' || !DNS_LABEL.test(name)) errors.push(`${SERVICE_KEY} must be a Service name (DNS label), got ${JSON.stringify(name)}`);
  if (typeof ns !== 'string' || !DNS_LABEL.test(ns)) errors.push(`${NAMESPACE_KEY} must be a namespace (DNS label), got ${JSON.stringify(ns)}`);
  const address = md[INBOUND_ADDRESS_KEY];
  if (typeof address !== 'string' || isIP(address) === 0) errors.push(`${INBOUND_ADDRESS_KEY} must be an IPv4 or IPv6 address, got ${JSON.stringify(address)}`);
  const rawPort = md[INBOUND_PORT_KEY];
  const port = typeof rawPort === 'string' && /^\d+$/.test(rawPort) ? Number(rawPort) : rawPort;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    errors.push(`${INBOUND_PORT_KEY} must be an integer 1..65535, got ${JSON.stringify(rawPort)}`);
  }
  const rawLabels = md[LABELS_KEY] ?? {};
  const labels: Record<string, string> = {};
  if (typeof rawLabels !== 'object' || rawLabels === null || Array.isArray(rawLabels)) {
    errors.push(`${LABELS_KEY} must be an object of string labels, got ${JSON.stringify(rawLabels)}`);
  } else {
    for (const [k, v] of Object.entries(rawLabels)) {
      if (typeof v !== 'string') errors.push(`${LABELS_KEY}.${k} must be a string, got ${JSON.stringify(v)}`);
      else labels[k] = v;
    }
  }
  const ready = md[READY_KEY] === true || md[READY_KEY] === 'true';
  if (errors.length > 0) return { valid: false, errors };
  const loc = node.locality;
  const endpoint: Endpoint = {
    address: address as string,
    port: port as number,
    weight: 1,
    ...(Object.keys(labels).length > 0 ? { labels } : {}),
    ...(identity !== undefined && identity !== null ? { identity } : {}),
    ...(loc && (loc.region || loc.zone || loc.subZone)
      ? { locality: { ...(loc.region ? { region: loc.region } : {}), ...(loc.zone ? { zone: loc.zone } : {}), ...(loc.subZone ? { subZone: loc.subZone } : {}) } }
      : {}),
  };
  return { valid: true, result: { nodeId: node.id, service: serviceKey(ns as string, name as string), endpoint, ready } };
}

interface Entry {
  registration: Registration;
  /** Streams of this node currently open (a reconnect may overlap the old stream). */
  streams: Set<number>;
  /** An endpoint of its Service now: live, or no longer live but within its grace period. */
  serving: boolean;
  /** When it stopped being live, while within grace. */
  downSince: number | null;
  timer: NodeJS.Timeout | null;
}

export interface EndpointRegistryOptions {
  /** How long a gone or unready sidecar stays an endpoint, in ms. */
  graceMs: number;
  /** Called whenever the set of endpoints changes. */
  onChange: () => void;
}

export class EndpointRegistry {
  readonly #entries = new Map<string, Entry>();
  readonly #options: EndpointRegistryOptions;

  constructor(options: EndpointRegistryOptions) {
    if (!Number.isInteger(options.graceMs) || options.graceMs < 0) {
      throw new RangeError(`graceMs must be a non-negative integer, got ${options.graceMs}`);
    }
    this.#options = options;
  }

  /** A stream opened or re-sent its node. */
  update(streamId: number, registration: Registration): void {
    const before = this.#fingerprint();
    let e = this.#entries.get(registration.nodeId);
    if (!e) {
      e = { registration, streams: new Set(), serving: false, downSince: null, timer: null };
      this.#entries.set(registration.nodeId, e);
    }
    e.registration = registration;
    e.streams.add(streamId);
    this.#settle(e);
    if (this.#fingerprint() !== before) this.#options.onChange();
  }

  /** A stream closed. */
  remove(streamId: number, nodeId: string): void {
    const e = this.#entries.get(nodeId);
    if (!e || !e.streams.delete(streamId)) return;
    this.#settle(e);
  }

  /** Live (a stream open and ready) serves at once; losing liveness serves on for graceMs. */
  #settle(e: Entry): void {
    if (e.streams.size > 0 && e.registration.ready) {
      e.serving = true;
      e.downSince = null;
      if (e.timer) clearTimeout(e.timer);
      e.timer = null;
      return;
    }
    if (!e.serving) {
      if (e.streams.size === 0) this.#entries.delete(e.registration.nodeId);
      return;
    }
    if (e.timer) return;
    e.downSince = Date.now();
    e.timer = setTimeout(() => {
      e.timer = null;
      e.serving = false;
      e.downSince = null;
      if (e.streams.size === 0) this.#entries.delete(e.registration.nodeId);
      this.#options.onChange();
    }, this.#options.graceMs);
    e.timer.unref();
  }

  /** Serving endpoints per Service key, in node id order. */
  endpoints(): Map<string, Endpoint[]> {
    const out = new Map<string, Endpoint[]>();
    for (const e of [...this.#entries.values()].sort((a, b) => (a.registration.nodeId < b.registration.nodeId ? -1 : 1))) {
      if (!e.serving) continue;
      const list = out.get(e.registration.service) ?? [];
      list.push(e.registration.endpoint);
      out.set(e.registration.service, list);
    }
    return out;
  }

  list(): Array<Registration & { streams: number; serving: boolean; downSince: string | null }> {
    return [...this.#entries.values()].map((e) => ({
      ...e.registration,
      streams: e.streams.size,
      serving: e.serving,
      downSince: e.downSince === null ? null : new Date(e.downSince).toISOString(),
    }));
  }

  #fingerprint(): string {
    return JSON.stringify([...this.endpoints()]);
  }

  close(): void {
    for (const e of this.#entries.values()) if (e.timer) clearTimeout(e.timer);
    this.#entries.clear();
  }
}
