/**
 * The client side of DeltaAggregatedResources (incremental).
 * - Opening: one request per subscribed type with resource_names_subscribe = the
 *   subscription ('*' for wildcard) and initial_resource_versions = name → version of every
 *   resource held, so the server sends only what changed while we were away.
 * - Subscription changes send just the names added and removed.
 * - A response adds or replaces its resources and drops its removed_resources; the state
 *   after it is the full set held.
 * - A new node (AdsClient.setNode) goes on a request naming only the first subscribed type:
 *   no names, no nonce, so nothing changes on the server but the node.
 * - ACK: the nonce alone. NACK: the nonce and error_detail INVALID_ARGUMENT.
 */
import { create } from '@bufbuild/protobuf';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import {
  DeltaDiscoveryRequestSchema, type DeltaDiscoveryRequest, type DeltaDiscoveryResponse,
} from '../gen/envoy/service/discovery/v3/discovery_pb.js';
import { findResourceType } from '../resources/registry.ts';
import { NACK_CODE, StreamSession, type SessionHost } from './stream-session.ts';
import type { SubscriptionChange, XdsResource } from './subscriptions.ts';
import { decodeResources } from './validate-resources.ts';

export class DeltaSession extends StreamSession<DeltaDiscoveryRequest, DeltaDiscoveryResponse> {
  constructor(host: SessionHost, call: ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>) {
    super(host, call);
  }

  open(): void {
    for (const rec of this.host.store.records()) {
      if (!rec.active) continue;
      this.send(create(DeltaDiscoveryRequestSchema, {
        typeUrl: rec.type.typeUrl, resourceNamesSubscribe: rec.resourceNames(), initialResourceVersions: rec.heldVersions(),
      }));
    }
  }

  subscriptionChanged(typeUrl: string, change: SubscriptionChange): void {
    this.send(create(DeltaDiscoveryRequestSchema, {
      typeUrl, resourceNamesSubscribe: [...change.subscribe], resourceNamesUnsubscribe: [...change.unsubscribe],
    }));
  }

  protected nodeRequest(): DeltaDiscoveryRequest | undefined {
    for (const rec of this.host.store.records()) {
      if (rec.active) return create(DeltaDiscoveryRequestSchema, { typeUrl: rec.type.typeUrl });
    }
    return undefined;
  }

  protected onResponse(res: DeltaDiscoveryResponse): void {
    const { typeUrl, nonce } = res;
    const type = findResourceType(typeUrl);
    const rec = this.host.store.get(typeUrl);
    if (!type) {
      this.#nack(res, `unknown resource type URL ${JSON.stringify(typeUrl)}`);
      return;
    }
    if (!rec) return;
    const decoded = decodeResources(
      type, res.resources.map((r) => ({ name: r.name, version: r.version, any: r.resource })), this.host.validators[typeUrl],
    );
    if (!decoded.valid) {
      this.#nack(res, decoded.errors.join('\n'));
      return;
    }
    const next = new Map<string, XdsResource>(rec.resources);
    for (const name of res.removedResources) next.delete(name);
    for (const r of decoded.result) {
      if (rec.covers(r.name)) next.set(r.name, Object.freeze({ version: r.version, message: r.message }));
    }
    rec.resources = next;
    rec.version = res.systemVersionInfo;
    this.send(create(DeltaDiscoveryRequestSchema, { typeUrl, responseNonce: nonce }));
    this.host.accepted(this, typeUrl, next, { version: res.systemVersionInfo, nonce });
  }

  #nack(res: DeltaDiscoveryResponse, message: string): void {
    this.send(create(DeltaDiscoveryRequestSchema, {
      typeUrl: res.typeUrl, responseNonce: res.nonce, errorDetail: { code: NACK_CODE, message },
    }));
    this.host.rejected(this, res.typeUrl, message);
  }
}
