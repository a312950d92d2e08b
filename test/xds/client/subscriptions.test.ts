import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { SubscriptionStore } from '../../../xds/client/subscriptions.ts';
import { ClusterSchema } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL } from '../../../xds/resources/type-urls.ts';

const hold = (store: SubscriptionStore, typeUrl: string, names: string[]) => {
  store.get(typeUrl)!.resources = new Map(names.map((name) => [name, { version: 'v', message: create(ClusterSchema, { name }) }]));
};

describe('SubscriptionStore', () => {
  it('reports only the names a subscribe adds', () => {
    const s = new SubscriptionStore();
    expect(s.subscribe(ROUTE_TYPE_URL, ['b', 'a'])).toEqual({ subscribe: ['b', 'a'], unsubscribe: [] });
    expect(s.subscribe(ROUTE_TYPE_URL, ['a', 'c'])).toEqual({ subscribe: ['c'], unsubscribe: [] });
    expect(s.subscribe(ROUTE_TYPE_URL, '*')).toEqual({ subscribe: ['*'], unsubscribe: [] });
    expect(s.subscribe(ROUTE_TYPE_URL, ['*'])).toEqual({ subscribe: [], unsubscribe: [] });
    expect(s.get(ROUTE_TYPE_URL)!.resourceNames()).toEqual(['*', 'a', 'b', 'c']);
  });

  it('keeps types in push order, CDS → EDS → LDS → RDS, whatever the subscription order', () => {
    const s = new SubscriptionStore();
    for (const t of [ROUTE_TYPE_URL, LISTENER_TYPE_URL, ENDPOINT_TYPE_URL, CLUSTER_TYPE_URL]) s.subscribe(t, ['x']);
    expect([...s.records()].map((r) => r.type.shortName)).toEqual(['CDS', 'EDS', 'LDS', 'RDS']);
  });

  it('drops held resources the subscription no longer covers', () => {
    const s = new SubscriptionStore();
    s.subscribe(CLUSTER_TYPE_URL, '*');
    s.subscribe(CLUSTER_TYPE_URL, ['a']);
    hold(s, CLUSTER_TYPE_URL, ['a', 'b', 'c']);
    // Still covered by the wildcard: nothing goes.
    expect(s.unsubscribe(CLUSTER_TYPE_URL, ['a'])).toEqual({ subscribe: [], unsubscribe: ['a'] });
    expect([...s.get(CLUSTER_TYPE_URL)!.resources.keys()]).toEqual(['a', 'b', 'c']);
    s.subscribe(CLUSTER_TYPE_URL, ['b']);
    expect(s.unsubscribe(CLUSTER_TYPE_URL, '*')).toEqual({ subscribe: [], unsubscribe: ['*'] });
    expect([...s.get(CLUSTER_TYPE_URL)!.resources.keys()]).toEqual(['b']);
    expect(s.get(CLUSTER_TYPE_URL)!.heldVersions()).toEqual({ b: 'v' });
  });

  it('forgets a type with nothing subscribed, version and all', () => {
    const s = new SubscriptionStore();
    s.subscribe(ENDPOINT_TYPE_URL, ['a']);
    s.get(ENDPOINT_TYPE_URL)!.version = 'v9';
    expect(s.unsubscribe(ENDPOINT_TYPE_URL, ['a', 'zzz'])).toEqual({ subscribe: [], unsubscribe: ['a'] });
    expect(s.get(ENDPOINT_TYPE_URL)).toBeUndefined();
    expect(s.unsubscribe(ENDPOINT_TYPE_URL, ['a'])).toEqual({ subscribe: [], unsubscribe: [] });
  });
});
