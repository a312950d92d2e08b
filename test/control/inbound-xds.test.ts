/**
 * The Envoy inbound listener over real gRPC (issue #6): an Envoy-kind client authenticated by
 * its SVID as ns/default sa/backend, with a Service `backend` and a Policy selecting it, gets
 * LDS with `inbound_15006` (mTLS, the Policy as RBAC before the router) and CDS with the local
 * workload's cluster; an Envoy without a client certificate (the shared group) does not.
 * Certificates from the openssl CLI; the bundle from the real `palisade policy build`.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { credentials, experimental } from '@grpc/grpc-js';
import { pino } from 'pino';
import { DirectorySource } from '../../control/config/source.ts';
import { ControlPlane, type IssuedWorkloadCertificate } from '../../control/control-plane.ts';
import { IdentityProvider } from '../../control/certs/server-identity.ts';
import type { ServerIdentity } from '../../control/certs/certs-service.ts';
import { createStreamAuthorizer } from '../../control/security/stream-authorizer.ts';
import { NodeSchema, type Node } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { ClusterSchema } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ListenerSchema } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import { HttpConnectionManagerSchema } from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { DownstreamTlsContextSchema } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import type { DiscoveryResponse } from '../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { KIND_KEY, NAMESPACE_KEY, SERVICE_ACCOUNT_KEY } from '../../xds/resources/node-metadata.ts';
import { CLUSTER_TYPE_URL, LISTENER_TYPE_URL } from '../../xds/resources/type-urls.ts';
import { makeTestPki, type Pem, type TestPki } from '../helpers/openssl-pki.ts';
import { buildPolicy } from '../helpers/policy-build.ts';
import { RawSotwStream, unpackAll } from '../helpers/raw-ads-client.ts';
import { servicesYaml } from '../helpers/services-yaml.ts';

const TD = 'test.local';
const BACKEND = `spiffe://${TD}/ns/default/sa/backend`;
const RBAC_REGO = `package envoy.authz

default allow := false

allow if input.attributes.source.principal == "spiffe://test.local/ns/default/sa/web"
`;

let pki: TestPki;
let dir: string;
let src: string;
let cp: ControlPlane;
const streams: RawSotwStream[] = [];

async function issueCertificate(namespace: string, serviceAccount: string): Promise<IssuedWorkloadCertificate> {
  const pem = pki.client(`spiffe://${TD}/ns/${namespace}/sa/${serviceAccount}`);
  return { keyPem: pem.key.toString(), chainPem: pem.cert.toString(), renewAt: new Date(Date.now() + 3_600_000), notAfter: new Date(Date.now() + 7_200_000), serial: 's1' };
}

beforeAll(async () => {
  pki = makeTestPki();
  dir = await mkdtemp(join(tmpdir(), 'palisade-inbound-xds-'));
  src = await mkdtemp(join(tmpdir(), 'palisade-inbound-xds-src-'));
  await buildPolicy(join(src, 'rbac'), { 'authz.rego': RBAC_REGO }, join(dir, 'rbac.tar.gz'));
  await writeFile(join(dir, 'config.yaml'), [
    `apiVersion: palisade.dev/v1\nkind: Mesh\nmetadata: { name: mesh }\nspec: { trustDomain: ${TD}, mtls: { mode: STRICT } }\n---\n`,
    servicesYaml({ name: 'backend', port: 8080 }),
    '---\napiVersion: palisade.dev/v1\nkind: Policy\nmetadata: { name: backend-authz }\nspec:\n  entrypoint: envoy/authz/allow\n  bundle: { file: rbac.tar.gz }\n  selector: { services: [backend] }\n',
  ].join(''));
  const provider = new IdentityProvider({ key: pki.server.key.toString(), chain: pki.server.cert.toString(), bundle: pki.ca.toString() } as unknown as ServerIdentity);
  cp = new ControlPlane({
    source: new DirectorySource({ dir, debounceMs: 20 }),
    xdsAddress: '127.0.0.1:0',
    logger: pino({ level: 'silent' }),
    xdsCredentials: experimental.createCertificateProviderServerCredentials(provider, provider, false),
    authorizeStream: createStreamAuthorizer({ trustDomain: TD, mode: 'PERMISSIVE' }),
    trustBundle: pki.ca.toString(),
    issueCertificate,
  });
  await cp.start();
}, 120_000);

afterEach(() => {
  for (const s of streams.splice(0)) s.close();
});

afterAll(async () => {
  await cp?.close();
  await rm(dir, { recursive: true, force: true });
  await rm(src, { recursive: true, force: true });
  pki?.dispose();
});

function open(client: Pem | null): RawSotwStream {
  const creds = client === null ? credentials.createSsl(pki.ca) : credentials.createSsl(pki.ca, client.key, client.cert);
  const s = new RawSotwStream(cp.xdsAddress, creds);
  streams.push(s);
  return s;
}

function envoyNode(id: string, serviceAccount?: string): Node {
  return create(NodeSchema, {
    id, userAgentName: 'envoy',
    metadata: { [KIND_KEY]: 'envoy', [NAMESPACE_KEY]: 'default', ...(serviceAccount ? { [SERVICE_ACCOUNT_KEY]: serviceAccount } : {}) },
  });
}

async function first(s: RawSotwStream, typeUrl: string): Promise<DiscoveryResponse> {
  for (;;) {
    const res = await s.next(10_000);
    s.ack(res);
    if (res.typeUrl === typeUrl) return res;
  }
}

describe('inbound listener over xDS', () => {
  it('gives an Envoy authenticated as ns/default sa/backend inbound_15006 enforcing the Policy that selects backend', async () => {
    const envoy = open(pki.client(BACKEND));
    envoy.send({ typeUrl: LISTENER_TYPE_URL, node: envoyNode('envoy-backend', 'backend') });
    const lds = await first(envoy, LISTENER_TYPE_URL);
    const listeners = unpackAll(lds, ListenerSchema);
    expect(listeners.map((l) => l.name).sort()).toEqual(['127.0.0.1_15001', 'inbound_15006']);
    const chain = listeners.find((l) => l.name === 'inbound_15006')!.filterChains[0]!;
    const ts = chain.transportSocket!.configType;
    const tls = ts.case === 'typedConfig' ? anyUnpack(ts.value, DownstreamTlsContextSchema) : undefined;
    expect(tls?.requireClientCertificate).toBe(true);
    expect(tls?.commonTlsContext?.tlsCertificateSdsSecretConfigs.map((c) => c.name)).toEqual(['default']);
    const f = chain.filters[0]!.configType;
    const hcm = f.case === 'typedConfig' ? anyUnpack(f.value, HttpConnectionManagerSchema) : undefined;
    expect(hcm?.httpFilters.map((x) => x.name)).toEqual(['envoy.filters.http.rbac.default.backend-authz', 'envoy.filters.http.router']);

    envoy.send({ typeUrl: CLUSTER_TYPE_URL });
    const cds = await first(envoy, CLUSTER_TYPE_URL);
    expect(unpackAll(cds, ClusterSchema).map((c) => c.name)).toContain('inbound|8080||backend');
    expect(cp.cache.groups()).toContain('envoy@test.local:default:backend/default');
  });

  it('gives an Envoy without a client certificate no inbound listener', async () => {
    const anon = open(null);
    anon.send({ typeUrl: LISTENER_TYPE_URL, node: envoyNode('envoy-anon') });
    const lds = await first(anon, LISTENER_TYPE_URL);
    expect(unpackAll(lds, ListenerSchema).map((l) => l.name)).toEqual(['127.0.0.1_15001']);
  });
});
