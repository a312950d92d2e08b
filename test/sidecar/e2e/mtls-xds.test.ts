/**
 * A sidecar that enrolls at start and holds its xDS stream over mTLS with its SVID, against
 * a control plane whose xDS port requires one (as `palisade control` runs with a CA). A
 * client without a certificate gets no stream; one whose SVID is another identity's is
 * refused PERMISSION_DENIED. Everything real on 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentials, status } from '@grpc/grpc-js';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { CertificateAuthority } from '../../../certs/ca.ts';
import { FileKek } from '../../../certs/keyring.ts';
import { DirectorySource } from '../../../control/config/source.ts';
import { ControlPlane } from '../../../control/control-plane.ts';
import { CA_DIR, CertsService, KEK_FILE } from '../../../control/certs/certs-service.ts';
import { EnrollServer } from '../../../control/certs/enroll-server.ts';
import { IdentityProvider } from '../../../control/certs/server-identity.ts';
import { createLogger } from '../../../control/log.ts';
import { createStreamAuthorizer } from '../../../control/security/stream-authorizer.ts';
import { parseBootstrap } from '../../../sidecar/bootstrap/bootstrap.ts';
import { Sidecar } from '../../../sidecar/sidecar.ts';
import { CLUSTER_TYPE_URL, SECRET_TYPE_URL } from '../../../xds/resources/type-urls.ts';
import { RawSotwStream, testNode } from '../../helpers/raw-ads-client.ts';
import { httpGet } from '../../helpers/http.ts';
import { webAndApiYaml } from '../../helpers/services-yaml.ts';

let dir: string;
let certs: CertsService;
let enroll: EnrollServer;
let cp: ControlPlane;
let api: Server;
let web: Server;
let sidecar: Sidecar | null = null;
let caAddress: string;

function listen(s: Server): Promise<number> {
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-mtls-xds-'));
  api = createServer((_q, r) => r.end('api'));
  web = createServer((_q, r) => r.end('web'));
  const apiPort = await listen(api);
  await listen(web);
  const config = join(dir, 'config');
  await mkdir(config);
  await mkdir(join(dir, 'state'));
  await writeFile(join(config, 'services.yaml'), `apiVersion: palisade.dev/v1\nkind: Mesh\nmetadata: { name: mesh }\nspec: { trustDomain: mesh.local }\n---\n${webAndApiYaml(apiPort)}`);
  const root = await CertificateAuthority.initRoot({ trustDomain: 'mesh.local' });
  await CertificateAuthority.writeState(join(dir, 'state', CA_DIR), await FileKek.open(join(dir, 'state', KEK_FILE)), { root, intermediate: await CertificateAuthority.createIntermediate(root) });
  certs = await CertsService.open(join(dir, 'state'));
  const identity = await certs.serverIdentity();
  cp = new ControlPlane({
    source: new DirectorySource({ dir: config, debounceMs: 20 }), xdsAddress: '127.0.0.1:0', logger: createLogger('silent'),
    // As palisade control does: the control plane's SVID through a provider that renewals update.
    xdsCredentials: new IdentityProvider(identity).serverCredentials(),
    authorizeStream: createStreamAuthorizer({ trustDomain: 'mesh.local', mode: 'STRICT' }),
    trustBundle: identity.bundle,
  });
  await cp.start();
  enroll = new EnrollServer(certs, identity);
  caAddress = await enroll.listen('127.0.0.1:0');
  await writeFile(join(dir, 'bundle.pem'), identity.bundle);
}, 30_000);

afterAll(async () => {
  await sidecar?.close();
  await enroll?.close();
  await cp?.close();
  await certs?.close();
  for (const s of [api, web]) if (s?.listening) await new Promise<void>((r) => s.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

describe('xDS over mTLS with the sidecar\'s own SVID', () => {
  it('enrolls with a join token, connects over mTLS, becomes ready and proxies', async () => {
    const token = (await certs.tokens.mint({ namespace: 'default', serviceAccount: 'web', ttlMs: 600_000 })).token;
    const parsed = parseBootstrap({
      node: { id: 'web-1', service: 'web' },
      controlPlane: { address: cp.xdsAddress },
      inbound: { address: '127.0.0.1', port: 0 }, outbound: { address: '127.0.0.1', port: 0 }, admin: { address: '127.0.0.1', port: 0 },
      workload: { address: `127.0.0.1:${(web.address() as AddressInfo).port}` },
      identity: { caAddress, trustBundle: join(dir, 'bundle.pem'), joinToken: token },
    });
    if (!parsed.valid) throw new Error(parsed.errors.join('; '));
    sidecar = new Sidecar({ bootstrap: parsed.result, logger: pino({ level: 'silent' }), version: 'test', drainTimeoutMs: 1000 });
    const addresses = await sidecar.start();
    expect(sidecar.identity?.spiffeId).toBe('spiffe://mesh.local/ns/default/sa/web');
    await sidecar.whenReady();
    expect(await httpGet(addresses.outbound, '/', { host: 'api:9090' })).toEqual({ status: 200, body: 'api' });
    const proxy = cp.inventory.list().find((p) => p.nodeId === 'web-1');
    expect(proxy?.kind).toBe('sidecar');
    // The trust bundle is published for the group over SDS (ROOTCA), as for Envoy nodes.
    expect([...cp.cache.getSnapshot('sidecar/default')!.resources(SECRET_TYPE_URL).keys()]).toEqual(['ROOTCA']);
  });

  it('gives no stream to a client without a certificate', async () => {
    const s = new RawSotwStream(cp.xdsAddress, credentials.createSsl(Buffer.from(certs.ca!.trustBundle())));
    try {
      s.send({ node: testNode(), typeUrl: CLUSTER_TYPE_URL });
      await expect(s.next()).rejects.toMatchObject({ code: status.UNAVAILABLE });
    } finally {
      s.close();
    }
  });
});
