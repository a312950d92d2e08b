/**
 * The translated listeners' HttpConnectionManager upgrade settings (issue #4): WebSocket
 * upgrades on for sidecar and Envoy listeners, as Istio sets them, and absent from the
 * proxyless gRPC api_listeners.
 */
import { describe, expect, it } from 'vitest';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { translate } from '../../../control/translate/translator.ts';
import type { ClientKind } from '../../../control/translate/node-kind.ts';
import { fixtureFiles, stateFrom } from '../../helpers/desired-state.ts';
import { ListenerSchema, type Listener } from '../../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import {
  HttpConnectionManagerSchema, type HttpConnectionManager,
} from '../../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { TYPE_REGISTRY } from '../../../xds/resources/registry.ts';
import { LISTENER_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { validateMessage } from '../../../xds/validate/pgv.ts';

function hcms(kind: ClientKind): HttpConnectionManager[] {
  const listeners = translate(stateFrom(fixtureFiles()), { kind, namespace: 'default' })[LISTENER_TYPE_URL] as Listener[];
  expect(listeners.length).toBeGreaterThan(0);
  return listeners.map((l) => {
    const any = l.apiListener?.apiListener ?? l.filterChains[0]!.filters[0]!.configType.value;
    if (any === undefined || !('typeUrl' in any)) throw new Error(`listener ${l.name} has no HCM`);
    return anyUnpack(any, HttpConnectionManagerSchema)!;
  });
}

describe('listener upgrade_configs', () => {
  it.each<ClientKind>(['sidecar', 'envoy'])('a %s listener lets WebSocket upgrades through', (kind) => {
    for (const hcm of hcms(kind)) {
      expect(hcm.upgradeConfigs.map((u) => [u.upgradeType, u.enabled, u.filters.length])).toEqual([['websocket', undefined, 0]]);
    }
  });

  it('a proxyless gRPC api_listener has no upgrade_configs', () => {
    for (const hcm of hcms('grpc')) expect(hcm.upgradeConfigs).toEqual([]);
  });

  it.each<ClientKind>(['sidecar', 'envoy', 'grpc'])('the %s listeners pass protoc-gen-validate rules', (kind) => {
    const listeners = translate(stateFrom(fixtureFiles()), { kind, namespace: 'default' })[LISTENER_TYPE_URL] as Listener[];
    for (const l of listeners) expect(validateMessage(ListenerSchema, l, { registry: TYPE_REGISTRY })).toEqual({ valid: true });
  });
});
