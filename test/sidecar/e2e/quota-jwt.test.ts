/**
 * A quota keyed by a verified JWT claim: a RequestAuthentication (inline JWKS) and a Quota
 * whose descriptor is `jwt_claim: idp.org.tenant`, pushed by a real ADS server to an
 * in-process sidecar. Tokens signed with jose; each tenant gets its own bucket; a request
 * without a token has no descriptor value and is not counted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Server } from 'node:http';
import { create } from '@bufbuild/protobuf';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { RequestAuthenticationSchema } from '../../../xds/gen/palisade/v1/request_authentication_pb.js';
import type { Sidecar, SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { httpRequest } from '../../helpers/http.ts';
import { quota } from '../quota/fixtures.ts';
import { closeServer, QuotaXds, startSidecar, startWorkload } from '../quota/quota-mesh.ts';

const ISSUER = 'https://idp.test';
let xds: QuotaXds;
let workload: { server: Server; port: number; hits: () => number };
let sc: { sidecar: Sidecar; addresses: SidecarAddresses };
let key: CryptoKey;

function token(tenant: string): Promise<string> {
  return new SignJWT({ sub: 'alice', org: { tenant } }).setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(ISSUER).setAudience('web').setIssuedAt().setExpirationTime('5m').sign(key);
}

const call = (bearer: string | null) => httpRequest(sc.addresses.inbound, { method: 'GET', path: '/api', headers: bearer === null ? {} : { authorization: `Bearer ${bearer}` } });

beforeAll(async () => {
  const pair = await generateKeyPair('ES256', { extractable: true });
  key = pair.privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
  const authn = create(RequestAuthenticationSchema, {
    name: 'default/web-jwt',
    providers: {
      idp: { issuer: ISSUER, audiences: ['web'], jwksSourceSpecifier: { case: 'localJwks', value: { specifier: { case: 'inlineString', value: JSON.stringify({ keys: [jwk] }) } } } },
    },
  });
  workload = await startWorkload();
  xds = await QuotaXds.start();
  xds.push([quota('per-tenant', { tokens: 2 }, { descriptors: [{ key: 'tenant', value: { source: { case: 'jwtClaim', value: 'idp.org.tenant' } } }] })], [authn]);
  sc = await startSidecar(xds.address, workload.port);
}, 30_000);

afterAll(async () => {
  await sc?.sidecar.close();
  await xds?.close();
  if (workload !== undefined) await closeServer(workload.server);
});

describe('a quota keyed by a verified JWT claim', () => {
  it('keeps one bucket per tenant claim and does not count requests without a token', async () => {
    const acme = await token('acme');
    expect([(await call(acme)).status, (await call(acme)).status, (await call(acme)).status]).toEqual([200, 200, 429]);
    const refused = await call(acme);
    expect(refused.body).toBe('rate limited: quota default/per-tenant, limit per-tenant');
    const globex = await call(await token('globex'));
    expect(globex.status).toBe(200);
    expect(globex.headers['x-ratelimit-remaining']).toBe('1');
    const anonymous = await call(null);
    expect(anonymous.status).toBe(200);
    expect(anonymous.headers['ratelimit']).toBeUndefined();
  });
});
