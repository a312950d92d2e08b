/**
 * The control plane's SVID rotated on a live xDS server: new handshakes get the new
 * certificate, a stream opened before keeps working, and a client without a certificate is
 * still refused. Real gRPC over TLS on 127.0.0.1, certificates from our CA.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentials, status } from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import pino from 'pino';
import { CertificateAuthority } from '../../../certs/ca.ts';
import { createCsr } from '../../../certs/csr.ts';
import { exportPrivateKeyPem, generateKeyPair } from '../../../certs/keys.ts';
import { FileKek } from '../../../certs/keyring.ts';
import { CA_DIR, CertsService, KEK_FILE } from '../../../control/certs/certs-service.ts';
import { IdentityProvider, keepIdentityFresh } from '../../../control/certs/server-identity.ts';
import { SnapshotCache } from '../../../xds/cache/snapshot-cache.ts';
import { AdsServer } from '../../../xds/server/ads-server.ts';
import { CLUSTER_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { RawSotwStream, testNode } from '../../helpers/raw-ads-client.ts';
import { meshSnapshot } from '../../helpers/resources.ts';

let dir: string;
let certs: CertsService;
let provider: IdentityProvider;
let cache: SnapshotCache;
let server: AdsServer;
let address: string;
let client: { key: string; chain: string };
const streams: RawSotwStream[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-server-identity-'));
  const root = await CertificateAuthority.initRoot({ trustDomain: 'mesh.local' });
  await CertificateAuthority.writeState(join(dir, CA_DIR), await FileKek.open(join(dir, KEK_FILE)), { root, intermediate: await CertificateAuthority.createIntermediate(root) });
  certs = await CertsService.open(dir);
  provider = new IdentityProvider(await certs.serverIdentity());
  cache = new SnapshotCache();
  cache.setSnapshot('g', meshSnapshot({ clusters: { a: [1] }, routeTo: 'a' }));
  server = new AdsServer({ cache, nodeGroup: () => 'g', credentials: provider.serverCredentials() });
  address = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
  const keys = await generateKeyPair();
  const svid = await certs.ca!.signCsr(await createCsr(keys, 'spiffe://mesh.local/ns/shop/sa/web'), { namespace: 'shop', serviceAccount: 'web' });
  if (!svid.valid) throw new Error(svid.errors.join('; '));
  client = { key: await exportPrivateKeyPem(keys.privateKey), chain: svid.result.chainPem };
});

afterAll(async () => {
  for (const s of streams) s.close();
  await server?.close();
  await certs?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Opens a stream as the workload; `seen` receives the serial of the certificate the server presented. */
function open(seen: string[], withCert = true): RawSotwStream {
  const verify = { checkServerIdentity: (_h: string, cert: PeerCertificate) => {
    seen.push(new X509Certificate(cert.raw).serialNumber);
    return undefined;
  } };
  const creds = withCert
    ? credentials.createSsl(Buffer.from(provider.identity.bundle), Buffer.from(client.key), Buffer.from(client.chain), verify)
    : credentials.createSsl(Buffer.from(provider.identity.bundle), null, null, verify);
  const s = new RawSotwStream(address, creds);
  streams.push(s);
  return s;
}

describe('control plane certificate rotation on the xDS port', () => {
  it('serves new handshakes with the renewed certificate while an older stream keeps working', async () => {
    const before: string[] = [];
    const old = open(before);
    old.send({ node: testNode(), typeUrl: CLUSTER_TYPE_URL });
    const first = await old.next();
    old.ack(first);

    const renewed = await certs.serverIdentity();
    provider.update(renewed);
    const after: string[] = [];
    const fresh = open(after);
    fresh.send({ node: testNode(), typeUrl: CLUSTER_TYPE_URL });
    expect((await fresh.next()).typeUrl).toBe(CLUSTER_TYPE_URL);
    expect(after[0]).toBe(new X509Certificate(renewed.chain).serialNumber);
    expect(before[0]).not.toBe(after[0]);

    // The stream from before the rotation still gets pushes.
    cache.setSnapshot('g', meshSnapshot({ clusters: { a: [1], b: [2] }, routeTo: 'a' }));
    expect((await old.next()).versionInfo).not.toBe(first.versionInfo);
  });

  it('still refuses a client without a certificate', async () => {
    const s = open([], false);
    s.send({ node: testNode(), typeUrl: CLUSTER_TYPE_URL });
    await expect(s.next()).rejects.toMatchObject({ code: status.UNAVAILABLE });
  });

  it('renews on schedule and hands the new identity on', async () => {
    const p = new IdentityProvider({ ...(await certs.serverIdentity()), renewAt: new Date(Date.now() - 1000) });
    const got = await new Promise<string>((resolve) => {
      const fresh = keepIdentityFresh(certs, p, pino({ level: 'silent' }), (next) => {
        fresh.stop();
        resolve(next.spiffeId);
      });
    });
    expect(got).toBe('spiffe://mesh.local/ns/palisade-system/sa/control-plane');
    expect(p.identity.renewAt.getTime()).toBeGreaterThan(Date.now());
  });
});
