/** A sidecar's registration carries the SPIFFE ID its stream authenticated with (issue #5). */
import { describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { parseRegistration } from '../../../control/registry/endpoint-registry.ts';
import { EndpointRegistry } from '../../../control/registry/endpoint-registry.ts';
import { NodeSchema } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import { INBOUND_ADDRESS_KEY, INBOUND_PORT_KEY, READY_KEY, SERVICE_KEY } from '../../../xds/resources/node-metadata.ts';

const ID = 'spiffe://td.local/ns/default/sa/web';

function node() {
  return create(NodeSchema, { id: 'web-1', metadata: { [SERVICE_KEY]: 'web', [INBOUND_ADDRESS_KEY]: '10.0.0.1', [INBOUND_PORT_KEY]: 8080, [READY_KEY]: true } });
}

describe('registration identity', () => {
  it.each([
    ['an authenticated stream', ID, { address: '10.0.0.1', port: 8080, weight: 1, identity: ID }],
    ['a stream without a certificate', null, { address: '10.0.0.1', port: 8080, weight: 1 }],
    ['no identity given', undefined, { address: '10.0.0.1', port: 8080, weight: 1 }],
  ])('registers the endpoint of %s', (_what, identity, endpoint) => {
    const r = parseRegistration(node(), identity);
    expect(r).toEqual({ valid: true, result: { nodeId: 'web-1', service: 'default/web', endpoint, ready: true } });
  });

  it('reports a change of identity as a change of endpoints', () => {
    let changes = 0;
    const registry = new EndpointRegistry({ graceMs: 0, onChange: () => changes++ });
    const plain = parseRegistration(node(), null);
    const withId = parseRegistration(node(), ID);
    if (!plain.valid || !withId.valid || !plain.result || !withId.result) throw new Error('registration refused');
    registry.update(1, plain.result);
    registry.update(2, withId.result);
    expect(changes).toBe(2);
    expect(registry.endpoints().get('default/web')).toEqual([{ address: '10.0.0.1', port: 8080, weight: 1, identity: ID }]);
    registry.close();
  });
});
