/**
 * ADS over mTLS with a stream authorizer: a client without a certificate never gets a stream
 * (the server requires one, as a STRICT mesh does), a client gets served only for the node
 * its certificate's SPIFFE ID may speak for, and cannot switch to another node mid-stream.
 * Certificates from the openssl CLI; real gRPC over a real TLS port on 127.0.0.1.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { credentials, ServerCredentials, status } from '@grpc/grpc-js';
import type { Node } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { SnapshotCache } from '../../xds/cache/snapshot-cache.ts';
import { AdsServer } from '../../xds/server/ads-server.ts';
import type { StreamInfo } from '../../xds/server/callbacks.ts';
import { CLUSTER_TYPE_URL } from '../../xds/resources/type-urls.ts';
import { makeTestPki, type TestPki } from '../helpers/openssl-pki.ts';
import { RawSotwStream, testNode } from '../helpers/raw-ads-client.ts';
import { meshSnapshot } from '../helpers/resources.ts';

const TRUST_DOMAIN = 'spiffe://test.local';

/** The test's policy: the node id must be the service account in the peer's SPIFFE ID. */
function authorize(node: Node, info: StreamInfo): string | null {
  const san = info.peerCertificate?.subjectaltname ?? '';
  const m = new RegExp(`^URI:${TRUST_DOMAIN}/ns/([^/]+)/sa/([^/,]+)$`).exec(san);
  if (m === null) return `no SPIFFE ID of ${TRUST_DOMAIN} in the client certificate`;
  return m[2] === node.id ? null : `${m[0].slice(4)} may not speak for node "${node.id}"`;
}

let pki: TestPki;
let server: AdsServer;
let address: string;
const streams: RawSotwStream[] = [];
const refused: string[] = [];

beforeAll(async () => {
  pki = makeTestPki();
  const cache = new SnapshotCache();
  cache.setSnapshot('default', meshSnapshot({ clusters: { a: [1] }, routeTo: 'a' }));
  server = new AdsServer({
    cache,
    nodeGroup: () => 'default',
    credentials: ServerCredentials.createSsl(pki.ca, [{ private_key: pki.server.key, cert_chain: pki.server.cert }], true),
    authorize,
    callbacks: { onIgnoredRequest: (_i, _t, reason) => refused.push(reason) },
  });
  address = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
});

afterEach(() => {
  for (const s of streams.splice(0)) s.close();
});

afterAll(async () => {
  await server?.close();
  pki?.dispose();
});

function open(client: { key: Buffer; cert: Buffer } | null): RawSotwStream {
  const creds = client === null ? credentials.createSsl(pki.ca) : credentials.createSsl(pki.ca, client.key, client.cert);
  const s = new RawSotwStream(address, creds);
  streams.push(s);
  return s;
}

function node(id: string): Node {
  return { ...testNode(), id } as Node;
}

describe('ADS stream authorization over mTLS', () => {
  it('serves a client whose SPIFFE ID speaks for its node', async () => {
    const s = open(pki.client(`${TRUST_DOMAIN}/ns/default/sa/web`));
    s.send({ node: node('web'), typeUrl: CLUSTER_TYPE_URL });
    const res = await s.next();
    expect(res.typeUrl).toBe(CLUSTER_TYPE_URL);
    expect(res.resources).toHaveLength(1);
  });

  it('gives no stream to a client without a certificate (the TLS handshake fails)', async () => {
    const s = open(null);
    s.send({ node: node('web'), typeUrl: CLUSTER_TYPE_URL });
    await expect(s.next()).rejects.toMatchObject({ code: status.UNAVAILABLE });
    expect(server.streamCount).toBe(0);
  });

  it('ends with PERMISSION_DENIED and the reason a stream asking for another identity\'s node', async () => {
    const s = open(pki.client(`${TRUST_DOMAIN}/ns/default/sa/web`));
    s.send({ node: node('payments'), typeUrl: CLUSTER_TYPE_URL });
    await expect(s.next()).rejects.toMatchObject({
      code: status.PERMISSION_DENIED,
      details: `${TRUST_DOMAIN}/ns/default/sa/web may not speak for node "payments"`,
    });
    expect(refused).toContain(`unauthorized: ${TRUST_DOMAIN}/ns/default/sa/web may not speak for node "payments"`);
  });

  it('refuses a certificate from another trust domain', async () => {
    const s = open(pki.client('spiffe://elsewhere.example/ns/default/sa/web'));
    s.send({ node: node('web'), typeUrl: CLUSTER_TYPE_URL });
    await expect(s.next()).rejects.toMatchObject({ code: status.PERMISSION_DENIED, details: `no SPIFFE ID of ${TRUST_DOMAIN} in the client certificate` });
  });

  it('ends a served stream that later sends another identity\'s node', async () => {
    const s = open(pki.client(`${TRUST_DOMAIN}/ns/default/sa/web`));
    s.send({ node: node('web'), typeUrl: CLUSTER_TYPE_URL });
    const first = await s.next();
    s.send({ node: node('payments'), typeUrl: CLUSTER_TYPE_URL, versionInfo: first.versionInfo, responseNonce: first.nonce });
    await expect(s.next()).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
  });
});
