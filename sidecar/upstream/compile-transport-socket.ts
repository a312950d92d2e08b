/**
 * A cluster's `transport_socket` and `transport_socket_matches` → the TLS (or plaintext) of
 * each endpoint, with Envoy's semantics: an endpoint takes the first `transport_socket_matches`
 * entry whose `match` fields all equal its `filter_metadata["envoy.transport_socket_match"]`
 * (an empty `match` matches every endpoint); when none matches, the cluster's
 * `transport_socket`; without one, plaintext.
 *
 * Supported transport sockets: `envoy.transport_sockets.tls` (an `UpstreamTlsContext`) and
 * `envoy.transport_sockets.raw_buffer`; the type URL of `typed_config` decides, the name only
 * when there is none. Within `UpstreamTlsContext`, every field that changes what is sent or
 * how the server is trusted and that the sidecar cannot honour is refused with its field
 * path (certificate providers, custom validators, pinning, CRLs, cipher lists…), as the rest
 * of compile-cluster.ts refuses what it cannot do rather than doing something weaker.
 */
import type { JsonObject, JsonValue } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import type { Cluster } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { DataSource, TransportSocket } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { LbEndpoint } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_components_pb.js';
import {
  CertificateValidationContext_TrustChainVerification, SubjectAltNameMatcher_SanType, TlsParameters_TlsProtocol,
  type CertificateValidationContext, type TlsCertificate,
} from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/common_pb.js';
import type { SdsSecretConfig } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import { UpstreamTlsContextSchema, type CommonTlsContext } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { compileStringMatcher } from '../routing/string-matcher.ts';
import type { SanMatcherConfig, TlsVersion, UpstreamCertificateSource, UpstreamTlsConfig, UpstreamValidationConfig } from './cluster-config.ts';

export const TLS_TRANSPORT_SOCKET = 'envoy.transport_sockets.tls';
export const RAW_BUFFER_TRANSPORT_SOCKET = 'envoy.transport_sockets.raw_buffer';
export const UPSTREAM_TLS_CONTEXT_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
export const RAW_BUFFER_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer';
/** The endpoint metadata namespace `transport_socket_matches` match against. */
export const TRANSPORT_SOCKET_MATCH_METADATA = 'envoy.transport_socket_match';

type Err = (path: string, problem: string) => void;

/** Plaintext, or the TLS of an endpoint. */
export type EndpointTransport = UpstreamTlsConfig | null;

/** What every endpoint of a cluster is matched against. */
export interface TransportSockets {
  /** The cluster's `transport_socket` (null: plaintext). */
  readonly fallback: EndpointTransport;
  readonly matches: ReadonlyArray<{ readonly match: JsonObject; readonly transport: EndpointTransport }>;
}

const VERSIONS: Readonly<Record<number, TlsVersion>> = {
  [TlsParameters_TlsProtocol.TLSv1_0]: 'TLSv1',
  [TlsParameters_TlsProtocol.TLSv1_1]: 'TLSv1.1',
  [TlsParameters_TlsProtocol.TLSv1_2]: 'TLSv1.2',
  [TlsParameters_TlsProtocol.TLSv1_3]: 'TLSv1.3',
};
const VERSION_ORDER: readonly TlsVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];
const SAN_TYPES: Readonly<Record<number, SanMatcherConfig['sanType']>> = {
  [SubjectAltNameMatcher_SanType.URI]: 'URI',
  [SubjectAltNameMatcher_SanType.DNS]: 'DNS',
  [SubjectAltNameMatcher_SanType.EMAIL]: 'EMAIL',
  [SubjectAltNameMatcher_SanType.IP_ADDRESS]: 'IP_ADDRESS',
};

/** Compiles the cluster's transport sockets; problems go to `err` with their field paths. */
export function compileTransportSockets(cluster: Cluster, err: Err): TransportSockets {
  const fallback = cluster.transportSocket ? compileTransportSocket(cluster.transportSocket, 'transport_socket', 'transport_socket', err) : null;
  const names = new Set<string>();
  const matches = cluster.transportSocketMatches.map((m, i) => {
    const path = `transport_socket_matches[${i}]`;
    if (m.name === '') err(`${path}.name`, 'must not be empty');
    else if (names.has(m.name)) err(`${path}.name`, `duplicate name ${JSON.stringify(m.name)}`);
    names.add(m.name);
    if (!m.transportSocket) {
      err(`${path}.transport_socket`, 'is required');
      return { match: m.match ?? {}, transport: null };
    }
    return { match: m.match ?? {}, transport: compileTransportSocket(m.transportSocket, `${path}.transport_socket`, m.name, err) };
  });
  return { fallback, matches };
}

/** The transport of one endpoint, by its `envoy.transport_socket_match` metadata. */
export function endpointTransport(sockets: TransportSockets, e: LbEndpoint): EndpointTransport {
  if (sockets.matches.length === 0) return sockets.fallback;
  const md = e.metadata?.filterMetadata[TRANSPORT_SOCKET_MATCH_METADATA];
  for (const m of sockets.matches) {
    let all = true;
    for (const [k, v] of Object.entries(m.match)) {
      if (md === undefined || !(k in md) || !jsonEqual(md[k]!, v)) {
        all = false;
        break;
      }
    }
    if (all) return m.transport;
  }
  return sockets.fallback;
}

function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]!));
  }
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => k in b && jsonEqual(a[k]!, b[k]!));
}

function compileTransportSocket(ts: TransportSocket, path: string, name: string, err: Err): EndpointTransport {
  const any = ts.configType.case === 'typedConfig' ? ts.configType.value : undefined;
  if (any === undefined) {
    if (ts.name === RAW_BUFFER_TRANSPORT_SOCKET) return null;
    if (ts.name === TLS_TRANSPORT_SOCKET) err(`${path}.typed_config`, `is required for ${TLS_TRANSPORT_SOCKET} (an UpstreamTlsContext)`);
    else err(`${path}.name`, `transport socket ${JSON.stringify(ts.name)} is not supported (supported: ${TLS_TRANSPORT_SOCKET}, ${RAW_BUFFER_TRANSPORT_SOCKET})`);
    return null;
  }
  if (any.typeUrl === RAW_BUFFER_TYPE_URL) return null;
  if (any.typeUrl !== UPSTREAM_TLS_CONTEXT_TYPE_URL) {
    err(`${path}.typed_config`, `transport socket ${JSON.stringify(ts.name)} of type ${JSON.stringify(any.typeUrl)} is not supported (supported: ${UPSTREAM_TLS_CONTEXT_TYPE_URL}, ${RAW_BUFFER_TYPE_URL})`);
    return null;
  }
  let ctx;
  try {
    ctx = anyUnpack(any, UpstreamTlsContextSchema);
  } catch (e) {
    err(`${path}.typed_config`, `cannot be decoded: ${(e as Error).message}`);
    return null;
  }
  if (!ctx) return null;
  const tpath = `${path}.typed_config`;
  let ok = true;
  const fail: Err = (p, problem) => {
    ok = false;
    err(p, problem);
  };
  const common = ctx.commonTlsContext;
  const cpath = `${tpath}.common_tls_context`;
  const certificate = common ? compileCertificate(common, cpath, fail) : null;
  const validation = common ? compileValidation(common, cpath, fail) : null;
  let minVersion: TlsVersion = 'TLSv1.2';
  let maxVersion: TlsVersion = 'TLSv1.2';
  const params = common?.tlsParams;
  if (params) {
    const ppath = `${cpath}.tls_params`;
    if (params.tlsMinimumProtocolVersion !== TlsParameters_TlsProtocol.TLS_AUTO) {
      const v = VERSIONS[params.tlsMinimumProtocolVersion];
      if (v === undefined) fail(`${ppath}.tls_minimum_protocol_version`, `unknown value ${params.tlsMinimumProtocolVersion}`);
      else minVersion = v;
    }
    if (params.tlsMaximumProtocolVersion !== TlsParameters_TlsProtocol.TLS_AUTO) {
      const v = VERSIONS[params.tlsMaximumProtocolVersion];
      if (v === undefined) fail(`${ppath}.tls_maximum_protocol_version`, `unknown value ${params.tlsMaximumProtocolVersion}`);
      else maxVersion = v;
    } else if (VERSION_ORDER.indexOf(minVersion) > VERSION_ORDER.indexOf(maxVersion)) {
      maxVersion = minVersion;
    }
    if (VERSION_ORDER.indexOf(minVersion) > VERSION_ORDER.indexOf(maxVersion)) {
      fail(`${ppath}.tls_minimum_protocol_version`, `${minVersion} is above tls_maximum_protocol_version ${maxVersion}`);
    }
    if (params.cipherSuites.length > 0) fail(`${ppath}.cipher_suites`, 'custom cipher suites are not supported');
    if (params.ecdhCurves.length > 0) fail(`${ppath}.ecdh_curves`, 'custom ECDH curves are not supported');
    if (params.signatureAlgorithms.length > 0) fail(`${ppath}.signature_algorithms`, 'custom signature algorithms are not supported');
  }
  if (common?.customHandshaker) fail(`${cpath}.custom_handshaker`, 'custom handshakers are not supported');
  if (common?.keyLog) fail(`${cpath}.key_log`, 'TLS key logging is not supported');
  const alpn = common?.alpnProtocols ?? [];
  alpn.forEach((p, i) => {
    if (p === '' || Buffer.byteLength(p) > 255) fail(`${cpath}.alpn_protocols[${i}]`, `must be 1-255 bytes, got ${JSON.stringify(p)}`);
  });
  const maxSessionKeys = ctx.maxSessionKeys ?? 1;
  if (!ok) return null;
  const config = { name, sni: ctx.sni, alpn: [...alpn], certificate, validation, minVersion, maxVersion, maxSessionKeys };
  return { ...config, key: transportKey(config) };
}

function transportKey(c: Omit<UpstreamTlsConfig, 'key'>): string {
  return JSON.stringify({
    ...c,
    validation: c.validation === null ? null : {
      ...c.validation,
      sanMatchers: c.validation.sanMatchers.map((m) => [m.sanType, m.matcher.kind, m.matcher.value, m.matcher.ignoreCase, m.matcher.regex?.source ?? null]),
    },
  });
}

/** Inline PEM (inline_string / inline_bytes); files, environment variables and the rest are refused. */
function inlinePem(ds: DataSource | undefined, path: string, err: Err): string | null {
  const s = ds?.specifier;
  if (s === undefined || s.case === undefined) {
    err(path, 'is required');
    return null;
  }
  if (s.case === 'inlineString') return s.value;
  if (s.case === 'inlineBytes') return Buffer.from(s.value).toString('utf8');
  err(`${path}.${s.case === 'filename' ? 'filename' : 'environment_variable'}`, 'only inline_string and inline_bytes are supported');
  return null;
}

function checkSds(sds: SdsSecretConfig, path: string, err: Err): string | null {
  if (sds.name === '') {
    err(`${path}.name`, 'must not be empty');
    return null;
  }
  const src = sds.sdsConfig?.configSourceSpecifier.case;
  if (src !== undefined && src !== 'ads') {
    err(`${path}.sds_config`, `only ADS secrets are supported, got ${src}`);
    return null;
  }
  return sds.name;
}

function compileCertificate(common: CommonTlsContext, path: string, err: Err): UpstreamCertificateSource | null {
  if (common.tlsCertificateProviderInstance) err(`${path}.tls_certificate_provider_instance`, 'certificate provider instances are not supported');
  if (common.tlsCertificateCertificateProvider) err(`${path}.tls_certificate_certificate_provider`, 'certificate providers are not supported');
  if (common.tlsCertificateCertificateProviderInstance) err(`${path}.tls_certificate_certificate_provider_instance`, 'certificate provider instances are not supported');
  const sdsList = common.tlsCertificateSdsSecretConfigs;
  const inline = common.tlsCertificates;
  if (sdsList.length > 0 && inline.length > 0) {
    err(`${path}.tls_certificates`, 'cannot be set together with tls_certificate_sds_secret_configs');
    return null;
  }
  if (sdsList.length > 1) err(`${path}.tls_certificate_sds_secret_configs`, `at most one certificate is supported, got ${sdsList.length}`);
  if (inline.length > 1) err(`${path}.tls_certificates`, `at most one certificate is supported, got ${inline.length}`);
  if (sdsList.length === 1) {
    const name = checkSds(sdsList[0]!, `${path}.tls_certificate_sds_secret_configs[0]`, err);
    return name === null ? null : { kind: 'sds', name };
  }
  if (inline.length === 1) return compileInlineCertificate(inline[0]!, `${path}.tls_certificates[0]`, err);
  return null;
}

function compileInlineCertificate(c: TlsCertificate, path: string, err: Err): UpstreamCertificateSource | null {
  if (c.privateKeyProvider) err(`${path}.private_key_provider`, 'private key providers are not supported');
  if (c.pkcs12) err(`${path}.pkcs12`, 'PKCS#12 is not supported; use certificate_chain and private_key');
  if (c.password) err(`${path}.password`, 'encrypted private keys are not supported');
  if (c.watchedDirectory) err(`${path}.watched_directory`, 'is not supported (inline certificates only)');
  const chainPem = inlinePem(c.certificateChain, `${path}.certificate_chain`, err);
  const keyPem = inlinePem(c.privateKey, `${path}.private_key`, err);
  return chainPem === null || keyPem === null ? null : { kind: 'inline', keyPem, chainPem };
}

function compileValidation(common: CommonTlsContext, path: string, err: Err): UpstreamValidationConfig | null {
  const v = common.validationContextType;
  switch (v.case) {
    case undefined:
      return null;
    case 'validationContext':
      return compileValidationContext(v.value, null, `${path}.validation_context`, err);
    case 'validationContextSdsSecretConfig': {
      const name = checkSds(v.value, `${path}.validation_context_sds_secret_config`, err);
      return name === null ? null : { sdsName: name, trustedCaPem: null, sanMatchers: [] };
    }
    case 'combinedValidationContext': {
      const cpath = `${path}.combined_validation_context`;
      const c = v.value;
      if (c.validationContextCertificateProvider) err(`${cpath}.validation_context_certificate_provider`, 'certificate providers are not supported');
      if (c.validationContextCertificateProviderInstance) err(`${cpath}.validation_context_certificate_provider_instance`, 'certificate provider instances are not supported');
      if (!c.validationContextSdsSecretConfig) {
        err(`${cpath}.validation_context_sds_secret_config`, 'is required');
        return null;
      }
      const name = checkSds(c.validationContextSdsSecretConfig, `${cpath}.validation_context_sds_secret_config`, err);
      if (name === null) return null;
      if (!c.defaultValidationContext) return { sdsName: name, trustedCaPem: null, sanMatchers: [] };
      return compileValidationContext(c.defaultValidationContext, name, `${cpath}.default_validation_context`, err);
    }
    default:
      err(`${path}.${v.case === 'validationContextCertificateProvider' ? 'validation_context_certificate_provider' : 'validation_context_certificate_provider_instance'}`, 'certificate providers are not supported');
      return null;
  }
}

function compileValidationContext(vc: CertificateValidationContext, sdsName: string | null, path: string, err: Err): UpstreamValidationConfig | null {
  let ok = true;
  const fail: Err = (p, problem) => {
    ok = false;
    err(p, problem);
  };
  if (vc.caCertificateProviderInstance) fail(`${path}.ca_certificate_provider_instance`, 'certificate provider instances are not supported');
  if (vc.systemRootCerts) fail(`${path}.system_root_certs`, 'system root certificates are not supported');
  if (vc.verifyCertificateSpki.length > 0) fail(`${path}.verify_certificate_spki`, 'certificate pinning is not supported');
  if (vc.verifyCertificateHash.length > 0) fail(`${path}.verify_certificate_hash`, 'certificate pinning is not supported');
  if (vc.requireSignedCertificateTimestamp === true) fail(`${path}.require_signed_certificate_timestamp`, 'is not supported');
  if (vc.crl) fail(`${path}.crl`, 'CRLs are not supported (the SDS validation secret carries the revoked serials)');
  if (vc.allowExpiredCertificate) fail(`${path}.allow_expired_certificate`, 'is not supported');
  if (vc.trustChainVerification !== CertificateValidationContext_TrustChainVerification.VERIFY_TRUST_CHAIN) {
    fail(`${path}.trust_chain_verification`, 'only VERIFY_TRUST_CHAIN is supported');
  }
  if (vc.customValidatorConfig) fail(`${path}.custom_validator_config`, 'custom certificate validators are not supported');
  if (vc.maxVerifyDepth !== undefined) fail(`${path}.max_verify_depth`, 'is not supported');
  let trustedCaPem: string | null = null;
  if (vc.trustedCa) trustedCaPem = inlinePem(vc.trustedCa, `${path}.trusted_ca`, fail);
  const sanMatchers: SanMatcherConfig[] = [];
  const errors: string[] = [];
  vc.matchTypedSubjectAltNames.forEach((m, i) => {
    const mpath = `${path}.match_typed_subject_alt_names[${i}]`;
    const sanType = SAN_TYPES[m.sanType];
    if (sanType === undefined) {
      fail(`${mpath}.san_type`, `${SubjectAltNameMatcher_SanType[m.sanType] ?? m.sanType} is not supported (supported: URI, DNS, EMAIL, IP_ADDRESS)`);
      return;
    }
    if (!m.matcher) {
      fail(`${mpath}.matcher`, 'is required');
      return;
    }
    const matcher = compileStringMatcher(m.matcher, `${mpath}.matcher`, errors);
    if (matcher !== null) sanMatchers.push({ sanType, matcher });
  });
  vc.matchSubjectAltNames.forEach((m, i) => {
    const matcher = compileStringMatcher(m, `${path}.match_subject_alt_names[${i}]`, errors);
    if (matcher !== null) sanMatchers.push({ sanType: 'ANY', matcher });
  });
  for (const e of errors) {
    const at = e.indexOf(': ');
    fail(e.slice(0, at), e.slice(at + 2));
  }
  if (sdsName === null && trustedCaPem === null && sanMatchers.length > 0) {
    fail(`${path}.trusted_ca`, 'is required with SAN matchers (matching SANs of an unverified certificate is insecure; Envoy refuses it too)');
  }
  if (!ok) return null;
  if (sdsName === null && trustedCaPem === null) return null;
  return { sdsName, trustedCaPem, sanMatchers };
}
