/**
 * Upstream mTLS from CDS, shaped as Istio's auto-mTLS: `transport_socket_matches` picks TLS for
 * endpoints labelled `tlsMode: mtls` and plaintext for the rest; the sidecar's certificate and
 * trust bundle come from TlsSecrets at each new connection; the server is checked by chain,
 * SAN and revocation; sessions resume; a renewal reaches new connections while pooled ones
 * keep going. Real sockets on 127.0.0.1, SVIDs from certs/ca.ts, an HttpListener terminating
 * mTLS as the upstream.
 */
import { UPSTREAM_CONNECT_FAILURE } from '../../sidecar/proxy/local-reply.ts';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { create, type JsonObject } from '@bufbuild/protobuf';
import { anyPack } from '@bufbuild/protobuf/wkt';
import type { TLSSocket } from 'node:tls';
import { RawBufferSchema } from '../../xds/gen/envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer_pb.js';
import { SubjectAltNameMatcher_SanType } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/common_pb.js';
import { UpstreamTlsContextSchema } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { connectionSecurity, HttpListener } from '../../sidecar/listeners/http-listener.ts';
import { createForwarder } from '../../sidecar/proxy/forward.ts';
import { compileCluster } from '../../sidecar/upstream/compile-cluster.ts';
import { UpstreamCluster } from '../../sidecar/upstream/upstream-cluster.ts';
import { classifyUpstreamError } from '../../sidecar/upstream/upstream-result.ts';
import type { TlsSecrets, CertificateSecret } from '../../sidecar/tls/secrets.ts';
import { compile, routeConfig, toCluster } from './routing/fixtures.ts';
import { compiled, ep, http2Options, locality, staticCluster, type ClusterInit, type LbEndpointInit } from './upstream/fixtures.ts';
import { makeMeshPki, secretsWith, serialOf, type MeshPki } from './tls-fixtures.ts';

const API_ID = 'spiffe://mesh.local/ns/shop/sa/api';

let pki: MeshPki;
let server: CertificateSecret;
let client: CertificateSecret;
let listener: HttpListener;
let port: number;
const held: Array<() => void> = [];
const clusters: UpstreamCluster[] = [];

beforeAll(async () => {
  pki = await makeMeshPki();
  server = await pki.svid('shop', 'api');
  client = await pki.svid('shop', 'web');
  // The upstream: mTLS inbound, PERMISSIVE so that plaintext endpoints can be told apart.
  listener = new HttpListener('inbound', (req, res) => {
    const socket = req.socket as TLSSocket;
    const peer = socket.encrypted === true ? socket.getPeerCertificate() : null;
    const body = `${connectionSecurity(req)} ${peer === null ? '-' : serialOf(peer.raw)} ${req.httpVersion}`;
    if (req.url === '/hold') held.push(() => res.end(body));
    else res.end(body);
  }, { tls: { key: server.keyPem, cert: server.chainPem, ca: pki.bundle }, plaintext: 'accept' });
  port = await listener.listen('127.0.0.1', 0);
});

afterEach(async () => {
  for (const f of held.splice(0)) f();
  await Promise.all(clusters.splice(0).map((c) => c.destroy()));
});

afterAll(async () => {
  await listener?.close();
});

interface TlsOpts {
  readonly sni?: string;
  readonly alpn?: string[];
  readonly sans?: Array<{ type: SubjectAltNameMatcher_SanType; exact?: string; prefix?: string }>;
}

/** Istio's `tlsMode-mtls` UpstreamTlsContext. */
function istioTls(o: TlsOpts = {}) {
  return anyPack(UpstreamTlsContextSchema, create(UpstreamTlsContextSchema, {
    sni: o.sni ?? '',
    commonTlsContext: {
      tlsCertificateSdsSecretConfigs: [{ name: 'default', sdsConfig: { configSourceSpecifier: { case: 'ads', value: {} } } }],
      validationContextType: {
        case: 'combinedValidationContext',
        value: {
          defaultValidationContext: {
            matchTypedSubjectAltNames: (o.sans ?? [{ type: SubjectAltNameMatcher_SanType.URI, exact: API_ID }]).map((s) => ({
              sanType: s.type,
              matcher: { matchPattern: s.exact !== undefined ? { case: 'exact' as const, value: s.exact } : { case: 'prefix' as const, value: s.prefix! } },
            })),
          },
          validationContextSdsSecretConfig: { name: 'ROOTCA', sdsConfig: { configSourceSpecifier: { case: 'ads', value: {} } } },
        },
      },
      alpnProtocols: o.alpn ?? ['http/1.1'],
    },
  }));
}

function istioMatches(o: TlsOpts = {}): ClusterInit['transportSocketMatches'] {
  return [
    { name: 'tlsMode-mtls', match: { tlsMode: 'mtls' }, transportSocket: { name: 'envoy.transport_sockets.tls', configType: { case: 'typedConfig', value: istioTls(o) } } },
    { name: 'tlsMode-disabled', match: {}, transportSocket: { name: 'envoy.transport_sockets.raw_buffer', configType: { case: 'typedConfig', value: anyPack(RawBufferSchema, create(RawBufferSchema)) } } },
  ];
}

function labelled(p: number, md: JsonObject | null): LbEndpointInit {
  const e = ep('127.0.0.1', p);
  return md === null ? e : ({ ...(e as object), metadata: { filterMetadata: { 'envoy.transport_socket_match': md } } } as LbEndpointInit);
}

function mtlsCluster(secrets: TlsSecrets | undefined, o: TlsOpts = {}, extra: ClusterInit = {}, md: JsonObject | null = { tlsMode: 'mtls' }): UpstreamCluster {
  const c = new UpstreamCluster(compiled(staticCluster('api', [locality([labelled(port, md)])], { transportSocketMatches: istioMatches(o), ...(extra as object) })), secrets === undefined ? {} : { secrets });
  clusters.push(c);
  return c;
}

/** One GET through the cluster's (only) host; the body, or the error's code and its outlier class. */
async function get(c: UpstreamCluster, path = '/', reset = false): Promise<string> {
  const h = c.pick()!;
  try {
    const r = await h.pool.request({ path, method: 'GET', headers: { host: 'api' }, reset });
    return await r.body.text();
  } catch (e) {
    return `${(e as { code?: string }).code ?? (e as Error).message} ${classifyUpstreamError(e)}`;
  }
}

describe('compiling transport_socket_matches', () => {
  it('gives TLS to endpoints labelled tlsMode: mtls and plaintext to the others', () => {
    const r = compileCluster(staticCluster('api', [locality([labelled(1001, { tlsMode: 'mtls' }), labelled(1002, null), labelled(1003, { tlsMode: 'disabled' })])], {
      transportSocketMatches: istioMatches({ sni: 'outbound_.80_._.api.shop.svc.cluster.local' }),
    }), undefined);
    expect(r.valid).toBe(true);
    const eps = r.valid ? r.result.localities[0]!.endpoints : [];
    const tls = eps[0]!.tls!;
    expect({ name: tls.name, sni: tls.sni, alpn: tls.alpn, certificate: tls.certificate, minVersion: tls.minVersion, maxVersion: tls.maxVersion, sds: tls.validation?.sdsName, sans: tls.validation?.sanMatchers.map((m) => [m.sanType, m.matcher.value]) }).toEqual({
      name: 'tlsMode-mtls', sni: 'outbound_.80_._.api.shop.svc.cluster.local', alpn: ['http/1.1'], certificate: { kind: 'sds', name: 'default' },
      minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', sds: 'ROOTCA', sans: [['URI', API_ID]],
    });
    expect(['tls' in eps[1]!, 'tls' in eps[2]!]).toEqual([false, false]);
  });

  it('uses the cluster transport_socket for every endpoint when there are no matches', () => {
    const r = compileCluster(staticCluster('api', [locality([labelled(1001, null)])], {
      transportSocket: { name: 'envoy.transport_sockets.tls', configType: { case: 'typedConfig', value: istioTls() } },
    }), undefined);
    expect(r.valid && r.result.localities[0]!.endpoints[0]!.tls?.name).toBe('transport_socket');
  });

  const unsupportedTls = (common: object) => ({
    transportSocket: { name: 'envoy.transport_sockets.tls', configType: { case: 'typedConfig' as const, value: anyPack(UpstreamTlsContextSchema, create(UpstreamTlsContextSchema, { commonTlsContext: common })) } },
  });
  it.each([
    ['an unknown transport socket', { transportSocket: { name: 'envoy.transport_sockets.alts', configType: { case: 'typedConfig' as const, value: { typeUrl: 'type.googleapis.com/envoy.extensions.transport_sockets.alts.v3.Alts', value: new Uint8Array() } } } },
      'transport_socket.typed_config: transport socket "envoy.transport_sockets.alts" of type "type.googleapis.com/envoy.extensions.transport_sockets.alts.v3.Alts" is not supported (supported: type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer)'],
    ['an unknown transport socket name without typed_config', { transportSocket: { name: 'envoy.transport_sockets.tap' } },
      'transport_socket.name: transport socket "envoy.transport_sockets.tap" is not supported (supported: envoy.transport_sockets.tls, envoy.transport_sockets.raw_buffer)'],
    ['TLS without typed_config', { transportSocket: { name: 'envoy.transport_sockets.tls' } },
      'transport_socket.typed_config: is required for envoy.transport_sockets.tls (an UpstreamTlsContext)'],
    ['a certificate provider instance', unsupportedTls({ tlsCertificateProviderInstance: { instanceName: 'x' } }),
      'transport_socket.typed_config.common_tls_context.tls_certificate_provider_instance: certificate provider instances are not supported'],
    ['a custom validator', unsupportedTls({ validationContextType: { case: 'validationContext', value: { customValidatorConfig: { name: 'envoy.tls.cert_validator.spiffe' }, trustedCa: { specifier: { case: 'inlineString', value: 'x' } } } } }),
      'transport_socket.typed_config.common_tls_context.validation_context.custom_validator_config: custom certificate validators are not supported'],
    ['a certificate from a file', unsupportedTls({ tlsCertificates: [{ certificateChain: { specifier: { case: 'filename', value: '/c.pem' } }, privateKey: { specifier: { case: 'inlineString', value: 'k' } } }] }),
      'transport_socket.typed_config.common_tls_context.tls_certificates[0].certificate_chain.filename: only inline_string and inline_bytes are supported'],
    ['SAN matchers without a trust anchor', unsupportedTls({ validationContextType: { case: 'validationContext', value: { matchSubjectAltNames: [{ matchPattern: { case: 'exact', value: API_ID } }] } } }),
      'transport_socket.typed_config.common_tls_context.validation_context.trusted_ca: is required with SAN matchers (matching SANs of an unverified certificate is insecure; Envoy refuses it too)'],
  ])('refuses %s, naming the field', (_what, init, error) => {
    const r = compileCluster(staticCluster('api', [locality([labelled(1001, null)])], init as ClusterInit), undefined);
    expect(r).toEqual({ valid: false, errors: [error] });
  });

  it('names the transport_socket_matches entry of an unsupported socket', () => {
    const r = compileCluster(staticCluster('api', [locality([labelled(1001, null)])], {
      transportSocketMatches: [{ name: 'm', match: {}, transportSocket: { name: 'envoy.transport_sockets.starttls' } }],
    }), undefined);
    expect(r).toEqual({ valid: false, errors: ['transport_socket_matches[0].transport_socket.name: transport socket "envoy.transport_sockets.starttls" is not supported (supported: envoy.transport_sockets.tls, envoy.transport_sockets.raw_buffer)'] });
  });
});

describe('upstream mTLS connections', () => {
  it('connects with mTLS to an endpoint labelled tlsMode: mtls, presenting the sidecar certificate', async () => {
    const c = mtlsCluster(secretsWith(pki, client));
    expect(await get(c)).toBe(`mtls ${client.serial} 1.1`);
    expect(c.stats().tls).toEqual({ handshakes: 1, resumed: 0, failures: 0 });
  });

  it('speaks plaintext to an endpoint without the label', async () => {
    const c = mtlsCluster(secretsWith(pki, client), {}, {}, null);
    expect(await get(c)).toBe('plaintext - 1.1');
  });

  it('resumes the TLS session on the next connection to the host', async () => {
    const c = mtlsCluster(secretsWith(pki, client));
    const before = listener.stats().tls!.resumed;
    expect(await get(c, '/', true)).toBe(`mtls ${client.serial} 1.1`);
    expect(await get(c, '/', true)).toBe(`mtls ${client.serial} 1.1`);
    expect(c.stats().tls).toEqual({ handshakes: 2, resumed: 1, failures: 0 });
    expect(listener.stats().tls!.resumed).toBe(before + 1);
  });

  it('speaks HTTP/2 over TLS to an HTTP/2 cluster with ALPN h2', async () => {
    const c = mtlsCluster(secretsWith(pki, client), { alpn: ['h2'] }, { typedExtensionProtocolOptions: http2Options() });
    expect(await get(c)).toBe(`mtls ${client.serial} 2.0`);
  });

  it('accepts a server whose SAN matches any of the matchers (prefix)', async () => {
    const c = mtlsCluster(secretsWith(pki, client), { sans: [{ type: SubjectAltNameMatcher_SanType.DNS, exact: 'api' }, { type: SubjectAltNameMatcher_SanType.URI, prefix: 'spiffe://mesh.local/ns/shop/' }] });
    expect(await get(c)).toBe(`mtls ${client.serial} 1.1`);
  });

  it('fails the connection to a server whose SAN matches no matcher, as a connect failure', async () => {
    const c = mtlsCluster(secretsWith(pki, client), { sans: [{ type: SubjectAltNameMatcher_SanType.URI, exact: 'spiffe://mesh.local/ns/shop/sa/other' }] });
    expect(await get(c)).toBe('PAL_ERR_SIDECAR_UPSTREAM_TLS connect-failure');
    expect(c.stats().tls).toEqual({ handshakes: 0, resumed: 0, failures: 1 });
  });

  it('fails the connection to a server whose serial is revoked', async () => {
    const c = mtlsCluster(secretsWith(pki, client, [server.serial]));
    expect(await get(c)).toBe('PAL_ERR_SIDECAR_UPSTREAM_TLS connect-failure');
  });

  it('fails the connection to a server whose certificate does not chain to the bundle', async () => {
    const other = await makeMeshPki();
    const secrets = secretsWith(other, client);
    const c = mtlsCluster(secrets);
    expect(await get(c)).toBe('PAL_ERR_SIDECAR_UPSTREAM_TLS connect-failure');
  });

  it('fails with a clear error while the certificate secret is missing, and without TLS secrets at all', async () => {
    const c = mtlsCluster(secretsWith(pki, null));
    expect(await get(c)).toBe('PAL_ERR_SIDECAR_UPSTREAM_TLS_SECRET connect-failure');
    const h = c.pick()!;
    await expect(h.pool.request({ path: '/', method: 'GET' })).rejects.toThrow('cluster "api", transport socket "tlsMode-mtls" needs the SDS certificate secret "default", which is not available yet');
    const bare = mtlsCluster(undefined);
    await expect(bare.pick()!.pool.request({ path: '/', method: 'GET' })).rejects.toThrow('cluster "api", transport socket "tlsMode-mtls" needs the SDS certificate secret "default", but the sidecar has no TLS secrets');
  });

  it('answers 503 with Envoy\'s upstream connect error through the forwarder when the server fails verification', async () => {
    const c = mtlsCluster(secretsWith(pki, client, [server.serial]));
    const table = compile(routeConfig([{ name: 'all', domains: ['*'], routes: [toCluster('api')] }]));
    const forwarder = createForwarder({ getCluster: (n) => (n === 'api' ? c : undefined) });
    const outbound = new HttpListener('outbound', (req, res) => forwarder.handle(req, res, table), { http2: false });
    const outPort = await outbound.listen('127.0.0.1', 0);
    try {
      const res = await fetch(`http://127.0.0.1:${outPort}/`);
      expect([res.status, await res.text()]).toEqual([503, UPSTREAM_CONNECT_FAILURE]);
    } finally {
      await outbound.close();
    }
  });

  it('presents a renewed certificate on the next new connection while a pooled connection keeps working', async () => {
    const secrets = secretsWith(pki, client);
    const c2 = mtlsCluster(secrets);
    // Connection A is busy with a held request; the renewal happens meanwhile.
    const first = get(c2, '/hold');
    await new Promise<void>((resolve) => {
      const wait = () => (held.length > 0 ? resolve() : setImmediate(wait));
      wait();
    });
    const renewed = await pki.svid('shop', 'web');
    secrets.setCertificate('default', renewed);
    // A new connection (A is busy) carries the renewed certificate.
    expect(await get(c2)).toBe(`mtls ${renewed.serial} 1.1`);
    held.shift()!();
    expect(await first).toBe(`mtls ${client.serial} 1.1`);
    expect(c2.stats().tls!.handshakes).toBe(2);
  });
});
