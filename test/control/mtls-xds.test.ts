/**
 * mTLS on every hop over real gRPC (issue #5): a control plane whose xDS port takes client
 * certificates (PERMISSIVE: a stream without one is served too) with the stream authorizer,
 * a trust bundle and a certificate issuer. A sidecar authenticated by its SVID registers as an
 * endpoint with its SPIFFE ID, so Envoy groups dial it over auto-mTLS; an Envoy authenticated
 * as ns/a sa/x gets exactly its identity's key and SVID as SDS `default`, renewed at renewAt;
 * no stream gets another identity's, and one without a certificate gets ROOTCA only.
 * Certificates from the openssl CLI.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate, createPrivateKey } from 'node:crypto';
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
import { SecretSchema, type Secret } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import { UpstreamTlsContextSchema } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import type { DiscoveryResponse } from '../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import {
  INBOUND_ADDRESS_KEY, INBOUND_PORT_KEY, KIND_KEY, NAMESPACE_KEY, READY_KEY, SERVICE_ACCOUNT_KEY, SERVICE_KEY,
} from '../../xds/resources/node-metadata.ts';
import { CLUSTER_TYPE_URL, SECRET_TYPE_URL } from '../../xds/resources/type-urls.ts';
import { makeTestPki, type Pem, type TestPki } from '../helpers/openssl-pki.ts';
import { RawSotwStream, unpackAll } from '../helpers/raw-ads-client.ts';
import { servicesYaml } from '../helpers/services-yaml.ts';
import { until } from '../helpers/until.ts';

const TD = 'test.local';
const A_X = `spiffe://${TD}/ns/a/sa/x`;
const B_Y = `spiffe://${TD}/ns/b/sa/y`;
const WEB = `spiffe://${TD}/ns/default/sa/web`;

let pki: TestPki;
let dir: string;
let cp: ControlPlane;
const logs: Array<Record<string, unknown>> = [];
const issues: Array<{ namespace: string; serviceAccount: string; serial: string }> = [];
/** renewAt of the next certificates issued, ms from now, per identity `ns/sa`. */
const renewIn = new Map<string, number>();
const streams: RawSotwStream[] = [];
let serial = 0;

async function issueCertificate(namespace: string, serviceAccount: string): Promise<IssuedWorkloadCertificate> {
  const pem = pki.client(`spiffe://${TD}/ns/${namespace}/sa/${serviceAccount}`);
  const s = `s${++serial}`;
  issues.push({ namespace, serviceAccount, serial: s });
  const renew = renewIn.get(`${namespace}/${serviceAccount}`) ?? 3_600_000;
  return { keyPem: pem.key.toString(), chainPem: pem.cert.toString(), renewAt: new Date(Date.now() + renew), notAfter: new Date(Date.now() + 7_200_000), serial: s };
}

beforeAll(async () => {
  pki = makeTestPki();
  dir = await mkdtemp(join(tmpdir(), 'palisade-mtls-hop-'));
  await writeFile(join(dir, 'services.yaml'), `apiVersion: palisade.dev/v1\nkind: Mesh\nmetadata: { name: mesh }\nspec: { trustDomain: ${TD}, mtls: { mode: PERMISSIVE } }\n---\n${servicesYaml({ name: 'web', port: 8080 })}`);
  const provider = new IdentityProvider({ key: pki.server.key.toString(), chain: pki.server.cert.toString(), bundle: pki.ca.toString() } as unknown as ServerIdentity);
  cp = new ControlPlane({
    source: new DirectorySource({ dir, debounceMs: 20 }),
    xdsAddress: '127.0.0.1:0',
    logger: pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }),
    // Asks for a client certificate, serves streams without one (PERMISSIVE).
    xdsCredentials: experimental.createCertificateProviderServerCredentials(provider, provider, false),
    authorizeStream: createStreamAuthorizer({ trustDomain: TD, mode: 'PERMISSIVE' }),
    trustBundle: pki.ca.toString(),
    issueCertificate,
  });
  await cp.start();
});

afterEach(() => {
  for (const s of streams.splice(0)) s.close();
});

afterAll(async () => {
  await cp?.close();
  await rm(dir, { recursive: true, force: true });
  pki?.dispose();
});

function open(client: Pem | null): RawSotwStream {
  const creds = client === null ? credentials.createSsl(pki.ca) : credentials.createSsl(pki.ca, client.key, client.cert);
  const s = new RawSotwStream(cp.xdsAddress, creds);
  streams.push(s);
  return s;
}

function envoyNode(id: string, namespace: string, serviceAccount?: string): Node {
  return create(NodeSchema, {
    id, userAgentName: 'envoy',
    metadata: { [KIND_KEY]: 'envoy', [NAMESPACE_KEY]: namespace, ...(serviceAccount ? { [SERVICE_ACCOUNT_KEY]: serviceAccount } : {}) },
  });
}

/** Reads responses of `typeUrl` (ACKing each) until `done` says one is the one. */
async function nextMatching(s: RawSotwStream, typeUrl: string, done: (res: DiscoveryResponse) => boolean, names: string[] = []): Promise<DiscoveryResponse> {
  for (;;) {
    const res = await s.next(10_000);
    s.ack(res, names);
    if (res.typeUrl === typeUrl && done(res)) return res;
  }
}

function secrets(res: DiscoveryResponse): Map<string, Secret> {
  return new Map(unpackAll(res, SecretSchema).map((x) => [x.name, x]));
}

function tlsCertificate(secret: Secret | undefined): { chain: string; key: string } {
  if (secret?.type.case !== 'tlsCertificate') throw new Error('not a tls_certificate');
  const chain = secret.type.value.certificateChain?.specifier;
  const key = secret.type.value.privateKey?.specifier;
  if (chain?.case !== 'inlineString' || key?.case !== 'inlineString') throw new Error('not inline');
  return { chain: chain.value, key: key.value };
}

describe('endpoints carry their identity', () => {
  it('registers an mTLS-authenticated sidecar with its SPIFFE ID, and Envoys dial it over auto-mTLS', async () => {
    const sidecar = open(pki.client(WEB));
    sidecar.send({
      typeUrl: CLUSTER_TYPE_URL,
      node: create(NodeSchema, {
        id: 'web-1', userAgentName: 'palisade-sidecar',
        metadata: { [KIND_KEY]: 'sidecar', [NAMESPACE_KEY]: 'default', [SERVICE_KEY]: 'web', [INBOUND_ADDRESS_KEY]: '127.0.0.1', [INBOUND_PORT_KEY]: 18080, [READY_KEY]: true },
      }),
    });
    await sidecar.next();
    const envoy = open(null);
    envoy.send({ typeUrl: CLUSTER_TYPE_URL, node: envoyNode('envoy-1', 'default') });
    const res = await nextMatching(envoy, CLUSTER_TYPE_URL, (r) => unpackAll(r, ClusterSchema).some((c) => c.transportSocketMatches.length > 0));
    const web = unpackAll(res, ClusterSchema).find((c) => c.name === 'outbound|8080||web.default')!;
    expect(web.transportSocketMatches.map((m) => m.name)).toEqual(['tlsMode-mtls', 'tlsMode-disabled']);
    const ts = web.transportSocketMatches[0]!.transportSocket!.configType;
    const tls = ts.case === 'typedConfig' ? anyUnpack(ts.value, UpstreamTlsContextSchema) : undefined;
    const ctx = tls?.commonTlsContext?.validationContextType;
    expect(ctx?.case === 'combinedValidationContext' && ctx.value.defaultValidationContext?.matchTypedSubjectAltNames.map((m) => m.matcher?.matchPattern.value)).toEqual([WEB]);
    expect(cp.registry.list().map((r) => [r.nodeId, r.endpoint.identity])).toEqual([['web-1', WEB]]);
  });
});

describe('SDS default for Envoys', () => {
  it('gives an Envoy authenticated as ns/a sa/x its own key and SVID', async () => {
    const envoy = open(pki.client(A_X));
    const names = ['default', 'ROOTCA'];
    envoy.send({ typeUrl: SECRET_TYPE_URL, node: envoyNode('envoy-a', 'a', 'x'), resourceNames: names });
    const res = await nextMatching(envoy, SECRET_TYPE_URL, (r) => secrets(r).has('default'), names);
    const got = secrets(res);
    expect([...got.keys()].sort()).toEqual(['ROOTCA', 'default']);
    const { chain, key } = tlsCertificate(got.get('default'));
    const leaf = new X509Certificate(chain);
    expect(leaf.subjectAltName).toBe(`URI:${A_X}`);
    expect(leaf.checkPrivateKey(createPrivateKey(key))).toBe(true);
    expect(issues.filter((i) => i.namespace === 'a' && i.serviceAccount === 'x')).toHaveLength(1);
  });

  it('never gives one identity another\'s secret, and logs the request for it', async () => {
    const other = open(pki.client(B_Y));
    const names = ['default', 'ROOTCA', A_X];
    other.send({ typeUrl: SECRET_TYPE_URL, node: envoyNode('envoy-b', 'b', 'y'), resourceNames: names });
    const res = await nextMatching(other, SECRET_TYPE_URL, (r) => secrets(r).has('default'), names);
    const got = secrets(res);
    expect([...got.keys()].sort()).toEqual(['ROOTCA', 'default']);
    expect(new X509Certificate(tlsCertificate(got.get('default')).chain).subjectAltName).toBe(`URI:${B_Y}`);
    expect(logs.filter((l) => l.msg === 'SDS request for secrets this node may not have; they are not sent').map((l) => [l.node, l.secrets]))
      .toContainEqual(['envoy-b', [A_X]]);
  });

  it('gives a stream without a client certificate ROOTCA only', async () => {
    const anon = open(null);
    const names = ['default', 'ROOTCA'];
    anon.send({ typeUrl: SECRET_TYPE_URL, node: envoyNode('envoy-anon', 'a'), resourceNames: names });
    const res = await nextMatching(anon, SECRET_TYPE_URL, () => true, names);
    expect([...secrets(res).keys()]).toEqual(['ROOTCA']);
    // Its group is the shared one of its namespace, which holds no default.
    expect([...cp.cache.getSnapshot('envoy/a')!.resources(SECRET_TYPE_URL).keys()]).toEqual(['ROOTCA']);
    expect(logs.filter((l) => l.msg === 'SDS request for secrets this node may not have; they are not sent').map((l) => [l.node, l.secrets]))
      .toContainEqual(['envoy-anon', ['default']]);
  });

  it('gives a sidecar no default (it enrolls with a CSR)', async () => {
    const sidecar = open(pki.client(WEB));
    const names = ['default', 'ROOTCA'];
    sidecar.send({
      typeUrl: SECRET_TYPE_URL, resourceNames: names,
      node: create(NodeSchema, { id: 'web-2', userAgentName: 'palisade-sidecar', metadata: { [KIND_KEY]: 'sidecar', [NAMESPACE_KEY]: 'default', [SERVICE_ACCOUNT_KEY]: 'web' } }),
    });
    const res = await nextMatching(sidecar, SECRET_TYPE_URL, () => true, names);
    expect([...secrets(res).keys()]).toEqual(['ROOTCA']);
  });

  it('forgets an identity\'s key once its last stream closes, and issues a fresh one on return', async () => {
    const id = `spiffe://${TD}/ns/q/sa/w`;
    const group = 'envoy@test.local:q:w/q';
    const names = ['default'];
    const first = open(pki.client(id));
    first.send({ typeUrl: SECRET_TYPE_URL, node: envoyNode('envoy-q', 'q', 'w'), resourceNames: names });
    const a = tlsCertificate(secrets(await nextMatching(first, SECRET_TYPE_URL, (r) => secrets(r).has('default'), names)).get('default'));
    expect(cp.cache.groups()).toContain(group);
    first.close();
    await until('the group dropped', () => !cp.cache.groups().includes(group));
    const again = open(pki.client(id));
    again.send({ typeUrl: SECRET_TYPE_URL, node: envoyNode('envoy-q', 'q', 'w'), resourceNames: names });
    const b = tlsCertificate(secrets(await nextMatching(again, SECRET_TYPE_URL, (r) => secrets(r).has('default'), names)).get('default'));
    expect(b.key).not.toBe(a.key);
    expect(issues.filter((i) => i.namespace === 'q')).toHaveLength(2);
  });

  it('renews at renewAt and publishes the new certificate as a new version', async () => {
    renewIn.set('r/z', 0);
    const id = `spiffe://${TD}/ns/r/sa/z`;
    const envoy = open(pki.client(id));
    const names = ['default'];
    envoy.send({ typeUrl: SECRET_TYPE_URL, node: envoyNode('envoy-r', 'r', 'z'), resourceNames: names });
    const first = await nextMatching(envoy, SECRET_TYPE_URL, (r) => secrets(r).has('default'), names);
    renewIn.set('r/z', 3_600_000);
    const second = await nextMatching(envoy, SECRET_TYPE_URL, (r) => r.versionInfo !== first.versionInfo && secrets(r).has('default'), names);
    const a = tlsCertificate(secrets(first).get('default'));
    const b = tlsCertificate(secrets(second).get('default'));
    expect(new X509Certificate(b.chain).serialNumber).not.toBe(new X509Certificate(a.chain).serialNumber);
    expect(new X509Certificate(b.chain).subjectAltName).toBe(`URI:${id}`);
    expect(new X509Certificate(b.chain).checkPrivateKey(createPrivateKey(b.key))).toBe(true);
    expect(issues.filter((i) => i.namespace === 'r').length).toBeGreaterThanOrEqual(2);
    expect(logs.some((l) => l.msg === 'Envoy identity certificate renewed' && l.identity === id)).toBe(true);
  });
});
