import { describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { NodeSchema } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import { clientKind, groupKey, nodeTarget, parseGroupKey } from '../../../control/translate/node-kind.ts';

const node = (userAgentName: string, metadata: Record<string, string> = {}) => create(NodeSchema, { id: 'n', userAgentName, metadata });

describe('node kind and group', () => {
  it.each([
    ['envoy', {}, 'envoy'],
    ['', {}, 'envoy'],
    ['grpc-node-js', {}, 'grpc'],
    ['gRPC Go', {}, 'grpc'],
    ['gRPC Java', {}, 'grpc'],
    ['palisade-sidecar', {}, 'sidecar'],
    ['envoy', { 'palisade.io/kind': 'sidecar' }, 'sidecar'],
    ['gRPC Go', { 'palisade.io/kind': 'bogus' }, 'grpc'],
  ] as const)('user agent %j with metadata %j is %s', (agent, metadata, kind) => {
    expect(clientKind(node(agent, metadata))).toBe(kind);
  });

  it.each([
    [{}, 'default'],
    [{ NAMESPACE: 'shop' }, 'shop'],
    [{ 'palisade.io/namespace': 'a', NAMESPACE: 'b' }, 'a'],
  ] as const)('namespace from metadata %j is %s', (metadata, ns) => {
    expect(nodeTarget(node('envoy', metadata)).namespace).toBe(ns);
  });

  it.each([['envoy', 'default'], ['grpc', 'odd/name']] as const)('round-trips the group key of %s in %j', (kind, namespace) => {
    expect(parseGroupKey(groupKey({ kind, namespace }))).toEqual({ kind, namespace });
  });
});
