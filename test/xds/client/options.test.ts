import { credentials } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { AdsClient } from '../../../xds/client/ads-client.ts';
import { DEFAULT_BACKOFF, resolveOptions, type AdsClientOptions } from '../../../xds/client/options.ts';
import { CLUSTER_TYPE_URL } from '../../../xds/resources/type-urls.ts';

const VALID: AdsClientOptions = { address: '127.0.0.1:18000', node: { id: 'n1', cluster: 'c1' } };
const CODE = 'PAL_ERR_XDS_CLIENT_INVALID_OPTION';

describe('AdsClient options', () => {
  it.each([
    ['a missing address', { address: undefined }, 'address must be "host:port", got undefined'],
    ['an address without a port', { address: 'localhost' }, 'address must be "host:port", got "localhost"'],
    ['a URL', { address: 'http://cp:18000' }, 'address must be "host:port", got "http://cp:18000"'],
    ['port 0', { address: '127.0.0.1:0' }, 'address port must be 1 to 65535, got 0'],
    ['port 70000', { address: '127.0.0.1:70000' }, 'address port must be 1 to 65535, got 70000'],
    ['a missing node', { node: undefined }, 'node must be an object (envoy.config.core.v3.Node), got undefined'],
    ['a string node', { node: 'n1' }, 'node must be an object (envoy.config.core.v3.Node), got "n1"'],
    ['an unknown protocol', { protocol: 'grpc' }, 'protocol must be "sotw" or "delta", got "grpc"'],
    ['plain-object credentials', { credentials: {} }, 'credentials must be a grpc-js ChannelCredentials, got an object'],
    ['a negative backoff.initialMs', { backoff: { initialMs: -1 } }, 'backoff.initialMs must be a positive number, got -1'],
    ['backoff.maxMs below the default initialMs', { backoff: { maxMs: 100 } }, 'backoff.maxMs must be at least initialMs (500), got 100'],
    ['a misspelt backoff option', { backoff: { initalMs: 5 } }, 'unknown option "backoff.initalMs"'],
    ['a backoff that is not an object', { backoff: 5 }, 'backoff must be an object, got 5'],
    ['a validator for an unknown type', { validators: { 'type.googleapis.com/x.Y': () => [] } },
      'validators["type.googleapis.com/x.Y"]: not a known resource type URL'],
    ['a validator that is not a function', { validators: { [CLUSTER_TYPE_URL]: 'no' } },
      `validators["${CLUSTER_TYPE_URL}"] must be a function, got "no"`],
    ['a misspelt option', { protocl: 'delta' }, 'unknown option "protocl"'],
    ['several problems at once', { address: 'x', protocol: 'v2', backoff: { jitter: 3 } },
      'address must be "host:port", got "x"; protocol must be "sotw" or "delta", got "v2"; backoff.jitter must be a number from 0 to 1, got 3'],
  ])('rejects %s, naming the option and the value', (_what, change, message) => {
    const options = { ...VALID, ...change } as unknown as AdsClientOptions;
    expect(() => new AdsClient(options)).toThrow(expect.objectContaining({ code: CODE, message: `invalid AdsClient options: ${message}` }));
  });

  it('rejects options that are not an object', () => {
    expect(() => new AdsClient(null as unknown as AdsClientOptions))
      .toThrow(expect.objectContaining({ code: CODE, message: 'options must be an object, got null' }));
  });

  it('fills in the defaults and freezes the config', () => {
    const { config, backoff } = resolveOptions(VALID);
    expect(config.protocol).toBe('sotw');
    expect(config.backoff).toEqual({ initialMs: 500, maxMs: 30_000, multiplier: 2, jitter: 0.2 });
    expect(config.backoff).toEqual(DEFAULT_BACKOFF);
    expect(backoff.options).toBe(config.backoff);
    expect(config.credentials._isSecure()).toBe(false);
    expect(config.node.$typeName).toBe('envoy.config.core.v3.Node');
    expect(config.node.id).toBe('n1');
    expect(config.node.cluster).toBe('c1');
    expect(config.validators).toEqual({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.backoff)).toBe(true);
    expect(Object.isFrozen(config.validators)).toBe(true);
  });

  it.each([
    ['an IPv6 address', { address: '[::1]:18000' }],
    ['a host name', { address: 'control-plane.mesh.svc:18000' }],
    ['delta with a partial backoff', { protocol: 'delta' as const, backoff: { initialMs: 10, maxMs: 100 } }],
    ['TLS credentials', { credentials: credentials.createSsl() }],
    ['a validator per known type', { validators: { [CLUSTER_TYPE_URL]: () => [] } }],
  ])('accepts %s', (_what, change) => {
    const { config } = resolveOptions({ ...VALID, ...change });
    expect(config).toMatchObject(Object.fromEntries(Object.entries(change).filter(([k]) => k !== 'backoff' && k !== 'validators')));
  });

  it('merges a partial backoff over the defaults', () => {
    expect(resolveOptions({ ...VALID, backoff: { initialMs: 10, maxMs: 100 } }).config.backoff)
      .toEqual({ initialMs: 10, maxMs: 100, multiplier: 2, jitter: 0.2 });
  });
});
