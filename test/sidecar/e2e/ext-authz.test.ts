/**
 * A sidecar started with the bootstrap's extAuthz section serves Envoy's Check on its own
 * port, over real gRPC; before any Policy is in force it denies (fail closed), and close()
 * stops it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import pino from 'pino';
import { parseBootstrap } from '../../../sidecar/bootstrap/bootstrap.ts';
import { Sidecar, type SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { AUTHORIZATION_SERVICE, CHECK_PERMISSION_DENIED, POLICY_METADATA_KEY } from '../../../sidecar/authz/ext-authz-server.ts';
import { CheckRequestSchema, type CheckResponse } from '../../../xds/gen/envoy/service/auth/v3/external_auth_pb.js';

let sidecar: Sidecar | undefined;
let client: Client | undefined;

afterEach(async () => {
  client?.close();
  await sidecar?.close();
  client = undefined;
  sidecar = undefined;
});

function start(extAuthz: Record<string, unknown> | undefined): Promise<SidecarAddresses> {
  const parsed = parseBootstrap({
    node: { id: 'web-1', service: 'web' },
    inbound: { address: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1' },
    workload: { address: '127.0.0.1:9' },
    outbound: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    // Nothing listens there: the sidecar starts and waits for its configuration.
    controlPlane: { address: '127.0.0.1:9' },
    ...(extAuthz !== undefined ? { extAuthz } : {}),
  });
  if (!parsed.valid) throw new Error(parsed.errors.join('\n'));
  sidecar = new Sidecar({ bootstrap: parsed.result, logger: pino({ level: 'silent' }), version: 'test', drainTimeoutMs: 500 });
  return sidecar.start();
}

describe('sidecar ext_authz server', () => {
  it('is not served without the bootstrap section', async () => {
    const addresses = await start(undefined);
    expect(addresses.extAuthz).toBeUndefined();
    expect(sidecar!.stats()).not.toHaveProperty('extAuthz');
  });

  it('serves Check on the bootstrap port and denies while no Policy is loaded', async () => {
    const addresses = await start({ address: '127.0.0.1', port: 0 });
    expect(addresses.extAuthz).toMatch(/^127\.0\.0\.1:\d+$/);
    client = new Client(addresses.extAuthz!, credentials.createInsecure());
    const md = new Metadata();
    md.set(POLICY_METADATA_KEY, 'default/backend-authz');
    const d = AUTHORIZATION_SERVICE.check;
    const req = create(CheckRequestSchema, { attributes: { request: { http: { method: 'GET', path: '/api', host: 'web' } } } });
    const res = await new Promise<CheckResponse>((resolve, reject) => {
      client!.makeUnaryRequest(d.path, d.requestSerialize, d.responseDeserialize, req, md, (err: ServiceError | null, r?: CheckResponse) => (err ? reject(err) : resolve(r!)));
    });
    expect(res.status?.code).toBe(CHECK_PERMISSION_DENIED);
    expect(res.httpResponse.case).toBe('deniedResponse');
    expect(res.httpResponse.case === 'deniedResponse' && [res.httpResponse.value.status?.code, res.httpResponse.value.body])
      .toEqual([403, 'policy default/backend-authz is not loaded on this authz server']);
    expect(sidecar!.stats()).toMatchObject({ extAuthz: { checks: 1, denied: 1, unknownPolicy: 1 } });
  });
});
