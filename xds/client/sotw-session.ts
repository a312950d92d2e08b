/**
 * The client side of StreamAggregatedResources (state of the world).
 * - Opening: one request per subscribed type, resource_names = the subscription ('*' for
 *   wildcard) and version_info = the last accepted version, so a server can tell what the
 *   client already holds.
 * - Subscription changes repeat the whole set of names with the latest nonce received for
 *   the type, as Envoy does; a stale nonce makes the server answer once it has our ACK.
 * - LDS/CDS (fullState) responses carry the whole set: what is absent is deleted. RDS/EDS
 *   responses are merged by name: absent just means "not sent".
 * - A new node (AdsClient.setNode) goes on a request that repeats the first subscribed
 *   type's names and last accepted version with an EMPTY response_nonce: the server takes
 *   the node and neither counts an ACK/NACK nor, the names being unchanged, answers it.
 * - ACK: version_info and nonce of the response. NACK: version_info of the last accepted
 *   response, this nonce, and error_detail INVALID_ARGUMENT listing every problem.
 */
import { create } from '@bufbuild/protobuf';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import {
  DiscoveryRequestSchema, type DiscoveryRequest, type DiscoveryResponse,
} from '../gen/envoy/service/discovery/v3/discovery_pb.js';
import { findResourceType } from '../resources/registry.ts';
import { NACK_CODE, StreamSession, type SessionHost } from './stream-session.ts';
import type { SubscriptionChange, TypeRecord, XdsResource } from './subscriptions.ts';
import { decodeResources } from './validate-resources.ts';

export class SotwSession extends StreamSession<DiscoveryRequest, DiscoveryResponse> {
  /** Latest nonce received per type on this stream. */
  readonly #nonces = new Map<string, string>();

  constructor(host: SessionHost, call: ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>) {
    super(host, call);
  }

  open(): void {
    for (const rec of this.host.store.records()) {
      if (!rec.active) continue;
      this.send(create(DiscoveryRequestSchema, {
        typeUrl: rec.type.typeUrl, versionInfo: rec.version, resourceNames: rec.resourceNames(),
      }));
    }
  }

  subscriptionChanged(typeUrl: string, _change: SubscriptionChange, rec: TypeRecord | undefined): void {
    this.send(create(DiscoveryRequestSchema, {
      typeUrl,
      versionInfo: rec?.version ?? '',
      responseNonce: this.#nonces.get(typeUrl) ?? '',
      resourceNames: rec?.resourceNames() ?? [],
    }));
  }

  protected nodeRequest(): DiscoveryRequest | undefined {
    for (const rec of this.host.store.records()) {
      if (!rec.active) continue;
      return create(DiscoveryRequestSchema, { typeUrl: rec.type.typeUrl, versionInfo: rec.version, resourceNames: rec.resourceNames() });
    }
    return undefined;
  }

  protected onResponse(res: DiscoveryResponse): void {
    const { typeUrl, nonce } = res;
    this.#nonces.set(typeUrl, nonce);
    const type = findResourceType(typeUrl);
    const rec = this.host.store.get(typeUrl);
    if (!type) {
      this.#nack(res, '', [], `unknown resource type URL ${JSON.stringify(typeUrl)}`);
      return;
    }
    // A type we no longer subscribe to (a response that crossed our unsubscribe): nothing to hold.
    if (!rec) return;
    const decoded = decodeResources(
      type, res.resources.map((any) => ({ version: res.versionInfo, any })), this.host.validators[typeUrl],
    );
    if (!decoded.valid) {
      this.#nack(res, rec.version, rec.resourceNames(), decoded.errors.join('\n'));
      return;
    }
    const next = new Map<string, XdsResource>(type.fullState ? [] : rec.resources);
    for (const r of decoded.result) {
      if (rec.covers(r.name)) next.set(r.name, Object.freeze({ version: r.version, message: r.message }));
    }
    rec.resources = next;
    rec.version = res.versionInfo;
    this.send(create(DiscoveryRequestSchema, {
      typeUrl, versionInfo: res.versionInfo, responseNonce: nonce, resourceNames: rec.resourceNames(),
    }));
    this.host.accepted(this, typeUrl, next, { version: res.versionInfo, nonce });
  }

  #nack(res: DiscoveryResponse, version: string, names: string[], message: string): void {
    this.send(create(DiscoveryRequestSchema, {
      typeUrl: res.typeUrl, versionInfo: version, responseNonce: res.nonce, resourceNames: names,
      errorDetail: { code: NACK_CODE, message },
    }));
    this.host.rejected(this, res.typeUrl, message);
  }
}
