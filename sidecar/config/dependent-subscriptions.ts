/**
 * The sidecar's xDS subscriptions that follow from what it holds: EDS for the EDS clusters
 * CDS has, RDS for the route configurations the listeners name. Used by the single-process
 * Sidecar and by the primary of a `--workers N` sidecar, which holds the only xDS stream.
 */
import type { AdsClient } from '../../xds/client/ads-client.ts';
import { edsServiceName, listenerHcms } from '../../xds/cache/consistency.ts';
import type { Cluster } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { Listener } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL } from '../../xds/resources/type-urls.ts';

export class DependentSubscriptions {
  readonly #eds = new Set<string>();
  readonly #rds = new Set<string>();

  /** Subscribes to the EDS and RDS names `client`'s CDS and LDS state needs now, and drops the others. */
  sync(client: AdsClient): void {
    const eds = new Set<string>();
    for (const r of client.state(CLUSTER_TYPE_URL).resources.values()) {
      const name = edsServiceName(r.message as Cluster);
      if (name !== null) eds.add(name);
    }
    const rds = new Set<string>();
    for (const r of client.state(LISTENER_TYPE_URL).resources.values()) {
      for (const hcm of listenerHcms(r.message as Listener)) {
        if (hcm.routeSpecifier.case === 'rds') rds.add(hcm.routeSpecifier.value.routeConfigName);
      }
    }
    syncSet(client, ENDPOINT_TYPE_URL, this.#eds, eds);
    syncSet(client, ROUTE_TYPE_URL, this.#rds, rds);
  }
}

function syncSet(client: AdsClient, typeUrl: string, have: Set<string>, want: Set<string>): void {
  const add = [...want].filter((n) => !have.has(n));
  const remove = [...have].filter((n) => !want.has(n));
  if (add.length > 0) client.subscribe(typeUrl, add);
  if (remove.length > 0) client.unsubscribe(typeUrl, remove);
  have.clear();
  for (const n of want) have.add(n);
}
