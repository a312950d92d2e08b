import { describe, expect, it } from 'vitest';
import {
  create, createFileRegistry, createRegistry, setExtension,
  type DescMessage, type Message, type MessageInitShape,
} from '@bufbuild/protobuf';
import {
  anyPack, AnySchema, DurationSchema, FieldDescriptorProto_Label, FieldDescriptorProto_Type, FieldOptionsSchema,
  FileDescriptorProtoSchema, MessageOptionsSchema, file_google_protobuf_any, file_google_protobuf_duration, file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
} from '@bufbuild/protobuf/wkt';
import { disabled as disabledExt, FieldRulesSchema, rules as rulesExt } from '../../../xds/gen/validate/validate_pb.js';
import { ClusterSchema, Cluster_DiscoveryType, Cluster_LbPolicy } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ListenerSchema } from '../../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import { RouteConfigurationSchema } from '../../../xds/gen/envoy/config/route/v3/route_pb.js';
import { SecretSchema } from '../../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import { SubjectAltNameMatcher_SanType } from '../../../xds/gen/envoy/extensions/transport_sockets/tls/v3/common_pb.js';
import {
  HttpConnectionManagerSchema, file_envoy_extensions_filters_network_http_connection_manager_v3_http_connection_manager,
} from '../../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { RouterSchema, file_envoy_extensions_filters_http_router_v3_router } from '../../../xds/gen/envoy/extensions/filters/http/router/v3/router_pb.js';
import { validateMessage } from '../../../xds/validate/pgv.ts';
import { compileRe2 } from '../../../xds/validate/pgv-formats.ts';

const registry = createRegistry(
  file_envoy_extensions_filters_network_http_connection_manager_v3_http_connection_manager,
  file_envoy_extensions_filters_http_router_v3_router,
);

/** Field values for `create()`, as a plain object (not a message) so it can be spread. */
type Init<D extends DescMessage> = Exclude<MessageInitShape<D>, { $typeName: string }>;

const ads = { configSourceSpecifier: { case: 'ads' as const, value: {} } };
const socket = (address: string, port: number) => ({
  address: { case: 'socketAddress' as const, value: { address, portSpecifier: { case: 'portValue' as const, value: port } } },
});

function cluster(init: Init<typeof ClusterSchema> = {}) {
  return create(ClusterSchema, {
    name: 'backend',
    clusterDiscoveryType: { case: 'type' as const, value: Cluster_DiscoveryType.EDS },
    edsClusterConfig: { edsConfig: ads },
    connectTimeout: create(DurationSchema, { seconds: 1n }),
    lbPolicy: Cluster_LbPolicy.ROUND_ROBIN,
    ...init,
  });
}

function endpoints(lbEndpoint: Record<string, unknown> = {}, init: Init<typeof ClusterLoadAssignmentSchema> = {}) {
  return create(ClusterLoadAssignmentSchema, {
    clusterName: 'backend',
    endpoints: [{
      lbEndpoints: [{
        hostIdentifier: { case: 'endpoint', value: { address: socket('10.0.0.1', 8080) } },
        loadBalancingWeight: 1,
        ...lbEndpoint,
      }],
    }],
    ...init,
  });
}

function hcm(init: Init<typeof HttpConnectionManagerSchema> = {}) {
  return create(HttpConnectionManagerSchema, {
    statPrefix: 'ingress_http',
    routeSpecifier: { case: 'rds', value: { routeConfigName: 'local_route', configSource: ads } },
    httpFilters: [{ name: 'envoy.filters.http.router', configType: { case: 'typedConfig', value: anyPack(RouterSchema, create(RouterSchema)) } }],
    ...init,
  });
}

function listener(typedConfig = anyPack(HttpConnectionManagerSchema, hcm()), filterName = 'envoy.filters.network.http_connection_manager') {
  return create(ListenerSchema, {
    name: 'ingress',
    address: socket('0.0.0.0', 15001),
    filterChains: [{ filters: [{ name: filterName, configType: { case: 'typedConfig', value: typedConfig } }] }],
  });
}

function routes(virtualHost: Record<string, unknown> = {}) {
  return create(RouteConfigurationSchema, {
    name: 'local_route',
    virtualHosts: [{
      name: 'all',
      domains: ['*'],
      routes: [{
        match: { pathSpecifier: { case: 'prefix', value: '/' } },
        action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: 'backend' } } },
      }],
      ...virtualHost,
    }],
  });
}

function secret(type: MessageInitShape<typeof SecretSchema>['type']) {
  return create(SecretSchema, { name: 'server_cert', type });
}

const tlsCertificate = {
  case: 'tlsCertificate' as const,
  value: {
    certificateChain: { specifier: { case: 'inlineString' as const, value: '-----BEGIN CERTIFICATE-----' } },
    privateKey: { specifier: { case: 'filename' as const, value: '/etc/certs/key.pem' } },
  },
};

type Case = [name: string, schema: DescMessage, message: Message];

function validate(schema: DescMessage, message: Message) {
  return validateMessage(schema, message, { registry });
}

describe('validateMessage on Envoy resources', () => {
  it.each<Case>([
    ['a fully specified EDS cluster', ClusterSchema, cluster()],
    ['a cluster whose ignore_empty header field is empty', ClusterSchema, cluster({ upstreamHttpProtocolOptions: { overrideAutoSniHeader: '' } })],
    ['a header name with "," (inside PGV\'s +-. range)', ClusterSchema, cluster({ upstreamHttpProtocolOptions: { overrideAutoSniHeader: 'x-sni,alt' } })],
    ['a least-request cluster with choice_count 2', ClusterSchema, cluster({ lbConfig: { case: 'leastRequestLbConfig', value: { choiceCount: 2 } } })],
    ['a load assignment with weight 1', ClusterLoadAssignmentSchema, endpoints()],
    ['a load assignment with no weight (wrapper unset)', ClusterLoadAssignmentSchema, endpoints({ loadBalancingWeight: undefined })],
    ['a listener with an HttpConnectionManager', ListenerSchema, listener()],
    ['a listener whose Any type is unknown to the registry', ListenerSchema, listener(create(AnySchema, { typeUrl: 'type.googleapis.com/example.Unknown', value: new Uint8Array([1, 2]) }))],
    ['a route configuration', RouteConfigurationSchema, routes()],
    ['a non-strict header name with a space', RouteConfigurationSchema, routes({ requestHeadersToRemove: ['x foo'] })],
    ['a TLS certificate secret', SecretSchema, secret(tlsCertificate)],
    ['a validation context with a 44-character SPKI pin', SecretSchema, secret({ case: 'validationContext', value: { verifyCertificateSpki: ['NvqYIYSbgK2vCJpQhObf77vv+bQWtc5ek5RIOwPiC9A='] } })],
  ])('accepts %s', (_name, schema, message) => {
    expect(validate(schema, message)).toEqual({ valid: true });
  });

  it.each<[...Case, string[]]>([
    ['a cluster with an empty name', ClusterSchema, cluster({ name: '' }),
      ['name: value length must be at least 1 characters, got 0']],
    ['a cluster with a zero connect_timeout (duration gt 0s)', ClusterSchema, cluster({ connectTimeout: create(DurationSchema, {}) }),
      ['connect_timeout: value must be greater than 0s, got 0s']],
    ['a cluster with a malformed duration', ClusterSchema, cluster({ connectTimeout: create(DurationSchema, { seconds: 1n, nanos: -5 }) }),
      ['connect_timeout: value must be a valid duration, got seconds=1 nanos=-5']],
    ['a cluster whose discovery type is not a defined enum number', ClusterSchema, cluster({ clusterDiscoveryType: { case: 'type', value: 99 as Cluster_DiscoveryType } }),
      ['type: value must be one of the defined enum values, got 99']],
    ['a cluster with a bad character in a strict header name', ClusterSchema, cluster({ upstreamHttpProtocolOptions: { overrideAutoSniHeader: 'x sni' } }),
      ['upstream_http_protocol_options.override_auto_sni_header: value must be a valid HTTP header name, got "x sni"']],
    ['a least-request cluster with choice_count 1 (UInt32Value gte 2)', ClusterSchema, cluster({ lbConfig: { case: 'leastRequestLbConfig', value: { choiceCount: 1 } } }),
      ['least_request_lb_config.choice_count: value must be greater than or equal to 2, got 1']],
    ['a load assignment with weight 0 (UInt32Value gte 1)', ClusterLoadAssignmentSchema, endpoints({ loadBalancingWeight: 0 }),
      ['endpoints[0].lb_endpoints[0].load_balancing_weight: value must be greater than or equal to 1, got 0']],
    ['a load assignment with port 70000', ClusterLoadAssignmentSchema, endpoints({ hostIdentifier: { case: 'endpoint', value: { address: socket('10.0.0.1', 70000) } } }),
      ['endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: value must be less than or equal to 65535, got 70000']],
    ['a load assignment with overprovisioning_factor 0 (gt 0)', ClusterLoadAssignmentSchema, endpoints({}, { policy: { overprovisioningFactor: 0 } }),
      ['policy.overprovisioning_factor: value must be greater than 0, got 0']],
    ['a listener whose HttpConnectionManager has no stat_prefix', ListenerSchema, listener(anyPack(HttpConnectionManagerSchema, hcm({ statPrefix: '' }))),
      ['filter_chains[0].filters[0].typed_config.stat_prefix: value length must be at least 1 characters, got 0']],
    ['a listener whose HttpConnectionManager has no route_specifier', ListenerSchema, listener(anyPack(HttpConnectionManagerSchema, hcm({ routeSpecifier: { case: undefined } }))),
      ['filter_chains[0].filters[0].typed_config.route_specifier: value is required, set one of: rds, route_config, scoped_routes']],
    ['a listener with an unnamed filter and a nested unnamed HTTP filter', ListenerSchema,
      listener(anyPack(HttpConnectionManagerSchema, hcm({ httpFilters: [{ name: '' }] })), ''),
      ['filter_chains[0].filters[0].name: value length must be at least 1 characters, got 0',
        'filter_chains[0].filters[0].typed_config.http_filters[0].name: value length must be at least 1 characters, got 0']],
    ['a virtual host without domains (repeated min_items 1)', RouteConfigurationSchema, routes({ domains: [] }),
      ['virtual_hosts[0].domains: value must contain at least 1 item(s), got 0']],
    ['a route without a cluster specifier or a path specifier', RouteConfigurationSchema,
      routes({ routes: [{ match: {}, action: { case: 'route', value: {} } }] }),
      ['virtual_hosts[0].routes[0].match.path_specifier: value is required, set one of: prefix, path, safe_regex, connect_matcher, path_separated_prefix, path_match_policy',
        'virtual_hosts[0].routes[0].route.cluster_specifier: value is required, set one of: cluster, cluster_header, weighted_clusters, cluster_specifier_plugin, inline_cluster_specifier_plugin']],
    ['a non-strict header name containing CR LF', RouteConfigurationSchema, routes({ requestHeadersToRemove: ['x-ok', 'x-bad\r\n'] }),
      ['virtual_hosts[0].request_headers_to_remove[1]: value must not contain NUL, CR or LF characters, got "x-bad\\r\\n"']],
    ['a session ticket secret with no keys (repeated min_items 1)', SecretSchema, secret({ case: 'sessionTicketKeys', value: { keys: [] } }),
      ['session_ticket_keys.keys: value must contain at least 1 item(s), got 0']],
    ['a certificate whose data sources are empty or unset', SecretSchema,
      secret({ case: 'tlsCertificate', value: { certificateChain: {}, privateKey: { specifier: { case: 'filename', value: '' } } } }),
      ['tls_certificate.certificate_chain.specifier: value is required, set one of: filename, inline_bytes, inline_string, environment_variable',
        'tls_certificate.private_key.filename: value length must be at least 1 characters, got 0']],
    ['a SAN matcher with an unspecified type and no matcher', SecretSchema,
      secret({ case: 'validationContext', value: { matchTypedSubjectAltNames: [{ sanType: SubjectAltNameMatcher_SanType.SAN_TYPE_UNSPECIFIED }] } }),
      ['validation_context.match_typed_subject_alt_names[0].san_type: value must not be in list [SAN_TYPE_UNSPECIFIED], got SAN_TYPE_UNSPECIFIED',
        'validation_context.match_typed_subject_alt_names[0].matcher: value is required']],
    ['a short SPKI pin (repeated items string min_len)', SecretSchema, secret({ case: 'validationContext', value: { verifyCertificateSpki: ['c2hvcnQ='] } }),
      ['validation_context.verify_certificate_spki[0]: value length must be at least 44 characters, got 8']],
  ])('rejects %s', (_name, schema, message, errors) => {
    expect(validate(schema, message)).toEqual({ valid: false, errors });
  });

  it('reports every problem in a resource, in .proto declaration order', () => {
    const bad = cluster({
      name: '',
      clusterDiscoveryType: { case: 'type', value: 42 as Cluster_DiscoveryType },
      connectTimeout: create(DurationSchema, { nanos: 0 }),
      lbPolicy: 99 as Cluster_LbPolicy,
      lbConfig: { case: 'leastRequestLbConfig', value: { choiceCount: 0 } },
      upstreamHttpProtocolOptions: { overrideAutoSniHeader: 'a b' },
    });
    expect(validate(ClusterSchema, bad)).toEqual({
      valid: false,
      errors: [
        'name: value length must be at least 1 characters, got 0',
        'type: value must be one of the defined enum values, got 42',
        'connect_timeout: value must be greater than 0s, got 0s',
        'lb_policy: value must be one of the defined enum values, got 99',
        'upstream_http_protocol_options.override_auto_sni_header: value must be a valid HTTP header name, got "a b"',
        'least_request_lb_config.choice_count: value must be greater than or equal to 2, got 0',
      ],
    });
  });

  it('leaves Any payloads unchecked without a registry, as PGV does', () => {
    const bad = listener(anyPack(HttpConnectionManagerSchema, hcm({ statPrefix: '' })));
    expect(validateMessage(ListenerSchema, bad)).toEqual({ valid: true });
  });

  it('reports an Any payload that does not decode as its type', () => {
    const typedConfig = create(AnySchema, { typeUrl: `type.googleapis.com/${HttpConnectionManagerSchema.typeName}`, value: new Uint8Array([0x12, 0x05, 0x61]) });
    expect(validate(ListenerSchema, listener(typedConfig))).toEqual({
      valid: false,
      errors: ['filter_chains[0].filters[0].typed_config: value cannot be decoded as envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager: premature EOF'],
    });
  });

  it('validates an Any given as the root message', () => {
    const any = anyPack(HttpConnectionManagerSchema, hcm({ statPrefix: '' }));
    expect(validate(AnySchema, any)).toEqual({ valid: false, errors: ['stat_prefix: value length must be at least 1 characters, got 0'] });
  });

  it('gives the same answer when a schema is validated again (cached plan)', () => {
    const bad = endpoints({ loadBalancingWeight: 0 });
    expect(validate(ClusterLoadAssignmentSchema, bad)).toEqual(validate(ClusterLoadAssignmentSchema, bad));
    expect(validate(ClusterLoadAssignmentSchema, endpoints())).toEqual({ valid: true });
  });

  it('throws when the message is not of the schema', () => {
    expect(() => validateMessage(ClusterSchema, create(ListenerSchema) as never)).toThrow(TypeError);
  });
});

// Rule families Envoy's core resources do not exercise, on a message built for the test.
const T = FieldDescriptorProto_Type;
type RuleInit = MessageInitShape<typeof FieldRulesSchema>;
type FieldSpec = { type: FieldDescriptorProto_Type; typeName?: string; repeated?: boolean; oneof?: number; proto3Optional?: boolean; rules?: RuleInit };

/** A one-message proto3 file `pgvtest.M` whose fields carry the given `(validate.rules)`. */
function schemaWith(fields: Record<string, FieldSpec>, oneofs: string[] = [], disabled = false): DescMessage {
  const messageOptions = create(MessageOptionsSchema);
  if (disabled) setExtension(messageOptions, disabledExt, true);
  const file = create(FileDescriptorProtoSchema, {
    name: 'pgvtest.proto',
    package: 'pgvtest',
    syntax: 'proto3',
    dependency: ['google/protobuf/any.proto', 'google/protobuf/duration.proto', 'google/protobuf/timestamp.proto', 'google/protobuf/wrappers.proto'],
    messageType: [{
      name: 'M',
      options: messageOptions,
      oneofDecl: oneofs.map((name) => ({ name })),
      field: Object.entries(fields).map(([name, spec], i) => {
        const options = create(FieldOptionsSchema);
        if (spec.rules) setExtension(options, rulesExt, create(FieldRulesSchema, spec.rules));
        return {
          name, number: i + 1, jsonName: name, type: spec.type, typeName: spec.typeName, options,
          oneofIndex: spec.oneof, proto3Optional: spec.proto3Optional,
          label: spec.repeated ? FieldDescriptorProto_Label.REPEATED : FieldDescriptorProto_Label.OPTIONAL,
        };
      }),
    }],
  });
  const deps = [file_google_protobuf_any, file_google_protobuf_duration, file_google_protobuf_timestamp, file_google_protobuf_wrappers];
  return createFileRegistry(file, (name) => deps.find((d) => d.name === name.replace(/\.proto$/, ''))).getMessage('pgvtest.M')!;
}

describe('validateMessage rule families', () => {
  it.each<[string, FieldSpec, unknown, string[] | null]>([
    ['string prefix', { type: T.STRING, rules: { type: { case: 'string', value: { prefix: 'x-' } } } }, 'y-1', ['f: value does not have prefix "x-", got "y-1"']],
    ['string in', { type: T.STRING, rules: { type: { case: 'string', value: { in: ['a', 'b'] } } } }, 'c', ['f: value must be in list ["a", "b"], got "c"']],
    ['string len counts code points', { type: T.STRING, rules: { type: { case: 'string', value: { len: 2n } } } }, '😀😀', null],
    ['string max_bytes counts UTF-8', { type: T.STRING, rules: { type: { case: 'string', value: { maxBytes: 4n } } } }, '😀😀', ['f: value length must be at most 4 bytes, got 8']],
    ['string pattern', { type: T.STRING, rules: { type: { case: 'string', value: { pattern: '^[a-z]+$' } } } }, 'AB', ['f: value does not match regex pattern "^[a-z]+$"']],
    ['RE2 (?i) pattern', { type: T.STRING, rules: { type: { case: 'string', value: { pattern: '(?i)^ab\\z' } } } }, 'AB', null],
    ['string ignore_empty', { type: T.STRING, rules: { type: { case: 'string', value: { minLen: 3n, ignoreEmpty: true } } } }, '', null],
    ['hostname', { type: T.STRING, rules: { type: { case: 'string', value: { wellKnown: { case: 'hostname', value: true } } } } }, '-bad.example', ['f: value must be a valid hostname, got "-bad.example"']],
    ['ipv4 rejects IPv6', { type: T.STRING, rules: { type: { case: 'string', value: { wellKnown: { case: 'ipv4', value: true } } } } }, '::1', ['f: value must be a valid IPv4 address, got "::1"']],
    ['ipv6', { type: T.STRING, rules: { type: { case: 'string', value: { wellKnown: { case: 'ipv6', value: true } } } } }, 'fe80::1', null],
    ['address accepts an IP', { type: T.STRING, rules: { type: { case: 'string', value: { wellKnown: { case: 'address', value: true } } } } }, '10.1.2.3', null],
    ['uri must be absolute', { type: T.STRING, rules: { type: { case: 'string', value: { wellKnown: { case: 'uri', value: true } } } } }, '/relative', ['f: value must be a valid absolute URI, got "/relative"']],
    ['strict header value', { type: T.STRING, rules: { type: { case: 'string', value: { wellKnown: { case: 'wellKnownRegex', value: 2 } } } } }, 'a\u007f', ['f: value must be a valid HTTP header value, got "a\u007f"']],
    ['int64 range uses bigint', { type: T.INT64, rules: { type: { case: 'int64', value: { gt: 0n, lt: 10n } } } }, 10n, ['f: value must be inside range (0, 10), got 10']],
    ['uint32 outside range', { type: T.UINT32, rules: { type: { case: 'uint32', value: { lt: 10, gt: 20 } } } }, 15, ['f: value must be outside range [10, 20], got 15']],
    ['double closed range', { type: T.DOUBLE, rules: { type: { case: 'double', value: { gte: 1, lte: 3 } } } }, 3.5, ['f: value must be inside range [1, 3], got 3.5']],
    ['float const', { type: T.FLOAT, rules: { type: { case: 'float', value: { const: 0.1 } } } }, Math.fround(0.2), ['f: value must equal 0.1, got 0.2']],
    ['int32 not_in', { type: T.INT32, rules: { type: { case: 'int32', value: { notIn: [1, 2] } } } }, 2, ['f: value must not be in list [1, 2], got 2']],
    ['proto3 zero checked as set', { type: T.UINT32, rules: { type: { case: 'uint32', value: { gte: 1 } } } }, 0, ['f: value must be greater than or equal to 1, got 0']],
    ['uint32 ignore_empty', { type: T.UINT32, rules: { type: { case: 'uint32', value: { gte: 1, ignoreEmpty: true } } } }, 0, null],
    ['bool const', { type: T.BOOL, rules: { type: { case: 'bool', value: { const: true } } } }, false, ['f: value must equal true, got false']],
    ['bytes min_len', { type: T.BYTES, rules: { type: { case: 'bytes', value: { minLen: 2n } } } }, new Uint8Array([1]), ['f: value length must be at least 2 bytes, got 1']],
    ['repeated unique', { type: T.STRING, repeated: true, rules: { type: { case: 'repeated', value: { unique: true, maxItems: 2n } } } }, ['a', 'b', 'a'],
      ['f: value must contain no more than 2 item(s), got 3', 'f[2]: repeated value must contain unique items']],
    ['repeated items on Int32Value', { type: T.MESSAGE, typeName: '.google.protobuf.Int32Value', repeated: true, rules: { type: { case: 'repeated', value: { items: { type: { case: 'int32', value: { gt: 0 } } } } } } },
      [{ value: 1 }, { value: -1 }], ['f[1]: value must be greater than 0, got -1']],
    ['duration range', { type: T.MESSAGE, typeName: '.google.protobuf.Duration', rules: { type: { case: 'duration', value: { gte: { nanos: 1_000_000 }, lte: { seconds: 1n } } } } },
      { seconds: 1n, nanos: 500_000_000 }, ['f: value must be inside range [0.001s, 1s], got 1.5s']],
    ['duration required', { type: T.MESSAGE, typeName: '.google.protobuf.Duration', rules: { type: { case: 'duration', value: { required: true } } } }, undefined, ['f: value is required']],
    ['timestamp lt', { type: T.MESSAGE, typeName: '.google.protobuf.Timestamp', rules: { type: { case: 'timestamp', value: { lt: { seconds: 0n } } } } },
      { seconds: 1n, nanos: 5 }, ['f: value must be less than 1970-01-01T00:00:00Z, got 1970-01-01T00:00:01.000000005Z']],
    ['timestamp gt_now', { type: T.MESSAGE, typeName: '.google.protobuf.Timestamp', rules: { type: { case: 'timestamp', value: { gtNow: true } } } }, { seconds: 1n }, ['f: value must be greater than now']],
    ['any in', { type: T.MESSAGE, typeName: '.google.protobuf.Any', rules: { type: { case: 'any', value: { in: ['type.googleapis.com/a.B'] } } } },
      { typeUrl: 'type.googleapis.com/c.D' }, ['f: type URL must be in list ["type.googleapis.com/a.B"], got "type.googleapis.com/c.D"']],
    ['any required', { type: T.MESSAGE, typeName: '.google.protobuf.Any', rules: { type: { case: 'any', value: { required: true } } } }, undefined, ['f: value is required']],
    ['proto3 optional unset skips rules', { type: T.STRING, oneof: 0, proto3Optional: true, rules: { type: { case: 'string', value: { minLen: 1n } } } }, undefined, null],
  ])('%s', (_name, spec, value, errors) => {
    const schema = schemaWith({ f: spec }, spec.proto3Optional ? ['_f'] : []);
    const message = create(schema, value === undefined ? {} : { f: value });
    expect(validateMessage(schema, message)).toEqual(errors ? { valid: false, errors } : { valid: true });
  });

  it('checks map keys and values with the key in the path', () => {
    const schema = mapSchema();
    const message = create(schema, { m: { '': 5, ok: 0 } });
    expect(validateMessage(schema, message)).toEqual({
      valid: false,
      errors: ['m[""]: key length must be at least 1 characters, got 0', 'm["ok"]: value must be greater than 0, got 0'],
    });
  });

  it('checks nothing in a message marked (validate.disabled)', () => {
    const spec: FieldSpec = { type: T.STRING, rules: { type: { case: 'string', value: { minLen: 1n } } } };
    const on = schemaWith({ f: spec });
    expect(validateMessage(on, create(on))).toEqual({ valid: false, errors: ['f: value length must be at least 1 characters, got 0'] });
    const off = schemaWith({ f: spec }, [], true);
    expect(validateMessage(off, create(off))).toEqual({ valid: true });
  });

  it('skips a pattern JS cannot compile and lists it in skippedRules', () => {
    const schema = schemaWith({ f: { type: T.STRING, rules: { type: { case: 'string', value: { pattern: '(?U)a+', minLen: 5n } } } } });
    expect(validateMessage(schema, create(schema, { f: 'aa' }))).toEqual({
      valid: false,
      errors: ['f: value length must be at least 5 characters, got 2'],
      skippedRules: ['f: pattern "(?U)a+" not applied: RE2 flag U (ungreedy) has no JS equivalent'],
    });
  });
});

describe('compileRe2', () => {
  it.each([
    ['(?P<name>a)b', 'ab', true],
    ['^[[:digit:]]+$', '123', true],
    ['^\\pL+$', 'héllo', true],
    ['^\\Q.*\\E$', '.*', true],
    ['^\\Q.*\\E$', 'ab', false],
    ['a\\-b\\#', 'a-b#', true],
    ['[]a]', ']', true],
    ['\\x{41}', 'A', true],
    ['\\Aab\\z', 'ab\n', false],
    ['^[^?#]+[^?#/]$', '/a/b', true],
  ])('translates RE2 %j so it matches %j: %s', (pattern, subject, matches) => {
    const re = compileRe2(pattern);
    expect(typeof re).not.toBe('string');
    expect((re as RegExp).test(subject)).toBe(matches);
  });

  it.each(['(?U)a+', '\\1', '[[:^alpha:]]'])('reports %j as having no JS equivalent', (pattern) => {
    expect(typeof compileRe2(pattern)).toBe('string');
  });
});

/** `map<string, uint32> m` with keys min_len 1 and values gt 0, built by hand (maps need an entry type). */
function mapSchema(): DescMessage {
  const options = create(FieldOptionsSchema);
  setExtension(options, rulesExt, create(FieldRulesSchema, {
    type: { case: 'map', value: { keys: { type: { case: 'string', value: { minLen: 1n } } }, values: { type: { case: 'uint32', value: { gt: 0 } } } } },
  }));
  const file = create(FileDescriptorProtoSchema, {
    name: 'pgvmap.proto', package: 'pgvtest', syntax: 'proto3',
    messageType: [{
      name: 'WithMap',
      field: [{ name: 'm', number: 1, jsonName: 'm', type: T.MESSAGE, typeName: '.pgvtest.WithMap.MEntry', label: FieldDescriptorProto_Label.REPEATED, options }],
      nestedType: [{
        name: 'MEntry', options: { mapEntry: true },
        field: [
          { name: 'key', number: 1, jsonName: 'key', type: T.STRING, label: FieldDescriptorProto_Label.OPTIONAL },
          { name: 'value', number: 2, jsonName: 'value', type: T.UINT32, label: FieldDescriptorProto_Label.OPTIONAL },
        ],
      }],
    }],
  });
  return createFileRegistry(file, () => undefined).getMessage('pgvtest.WithMap')!;
}
