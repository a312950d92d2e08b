/**
 * JWT authentication in front of the inbound gate (InboundAuthz + JwtAuthenticator), over real
 * sockets: a JWKS served by a real HTTP server on 127.0.0.1, tokens signed with jose, requests
 * through a real HTTP server whose handler is the gate. Checks Envoy jwt_authn's answers (401
 * bodies and WWW-Authenticate), the headers the workload receives, JWKS caching, the
 * rate-limited refetch on an unknown kid, shared fetches and keeping the last good key set.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import pino from 'pino';
import { InboundAuthz } from '../../../sidecar/authz/inbound-authz.ts';
import { RequestAuthenticationSchema, type RequestAuthentication } from '../../../xds/gen/palisade/v1/request_authentication_pb.js';
import type { JwtProvider } from '../../../xds/gen/envoy/extensions/filters/http/jwt_authn/v3/config_pb.js';
import { httpRequest } from '../../helpers/http.ts';

const ISSUER = 'https://idp.test';
const AUDIENCE = 'backend';

interface Key {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
}

async function newKey(kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

function listen(s: Server): Promise<number> {
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
}

function close(s: Server | undefined): Promise<void> {
  return new Promise((resolve) => (s?.listening === true ? s.close(() => resolve()) : resolve()));
}

let k1: Key;
let k2: Key;
let stranger: Key;
/** The JWKS server: serves `served` keys, or `status` when it is not 200; counts requests. */
let jwksServer: Server;
let jwksUri: string;
let served: Key[];
let jwksStatus: number;
let jwksRequests: number;
let gate: Server | undefined;
let gateAddress: string;
let authz: InboundAuthz | undefined;

beforeAll(async () => {
  [k1, k2, stranger] = await Promise.all([newKey('k1'), newKey('k2'), newKey('k1')]);
});

beforeEach(async () => {
  served = [k1];
  jwksStatus = 200;
  jwksRequests = 0;
  jwksServer = createServer((_req, res) => {
    jwksRequests++;
    if (jwksStatus !== 200) {
      res.writeHead(jwksStatus).end('unavailable');
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: served.map((k) => k.jwk) }));
  });
  jwksUri = `http://127.0.0.1:${await listen(jwksServer)}/.well-known/jwks.json`;
});

afterEach(async () => {
  authz?.close();
  authz = undefined;
  await close(gate);
  gate = undefined;
  await close(jwksServer);
});

function provider(over: Partial<JwtProvider> = {}): Partial<JwtProvider> {
  return {
    issuer: ISSUER,
    audiences: [AUDIENCE],
    jwksSourceSpecifier: {
      case: 'remoteJwks',
      value: { httpUri: { uri: jwksUri, httpUpstreamType: { case: 'cluster', value: 'jwks' }, timeout: { seconds: 2n, nanos: 0 } }, cacheDuration: { seconds: 300n, nanos: 0 } } as never,
    },
    forward: true,
    fromHeaders: [{ name: 'authorization', valuePrefix: 'Bearer ' } as never],
    payloadInMetadata: 'idp',
    clockSkewSeconds: 60,
    forwardPayloadHeader: 'x-jwt-payload',
    claimToHeaders: [{ headerName: 'x-user', claimName: 'sub' } as never, { headerName: 'x-org', claimName: 'org.id' } as never],
    ...over,
  };
}

function resource(o: { required?: boolean; services?: string[]; providers?: Record<string, Partial<JwtProvider>> } = {}): RequestAuthentication {
  return create(RequestAuthenticationSchema, {
    name: 'default/backend-jwt', services: o.services ?? [], required: o.required ?? false,
    providers: (o.providers ?? { idp: provider() }) as never,
  });
}

/** An InboundAuthz with `resources` in force behind a real HTTP server; the workload echoes the request headers. */
async function startGate(resources: RequestAuthentication[], minRefreshMs?: number): Promise<InboundAuthz> {
  const a = new InboundAuthz({
    service: 'backend', logger: pino({ level: 'silent' }), ownPrincipal: () => null, authentication: true,
    ...(minRefreshMs !== undefined ? { jwksMinRefreshIntervalMs: minRefreshMs } : {}),
  });
  authz = a;
  await a.apply([]);
  expect(a.ready).toBe(false);
  a.applyAuthentication(resources);
  expect(a.ready).toBe(true);
  gate = createServer((req: IncomingMessage, res) => a.gate(req, res, () => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(req.headers));
  }));
  gateAddress = `127.0.0.1:${await listen(gate)}`;
  return a;
}

function sign(key: Key, claims: Record<string, unknown> = {}, o: { iss?: string; aud?: string; exp?: number | string; nbf?: number | string } = {}): Promise<string> {
  const jwt = new SignJWT({ sub: 'alice', org: { id: 'acme' }, ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
    .setIssuer(o.iss ?? ISSUER)
    .setAudience(o.aud ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(o.exp ?? '5m');
  if (o.nbf !== undefined) jwt.setNotBefore(o.nbf);
  return jwt.sign(key.privateKey);
}

function call(headers: Record<string, string> = {}, path = '/api/items') {
  return httpRequest(gateAddress, { method: 'GET', path, headers });
}

function authnStats(a: InboundAuthz) {
  return (a.stats() as { authn: { requests: Record<string, number>; providers: Record<string, { fetches: number; failures: number; kidRefreshes: number; kidRefreshesSuppressed: number }> } }).authn;
}

const now = () => Math.floor(Date.now() / 1000);

describe('JWT authentication on the inbound gate', () => {
  it('passes a valid token: claims to headers, the payload forwarded, the token kept, spoofed claim headers dropped', async () => {
    const a = await startGate([resource()]);
    const token = await sign(k1, { role: 'admin' });
    const r = await call({ authorization: `Bearer ${token}`, 'x-org': 'spoofed' });
    expect(r.status).toBe(200);
    const seen = JSON.parse(r.body) as Record<string, string>;
    expect(seen['x-user']).toBe('alice');
    expect(seen['x-org']).toBe('acme');
    expect(seen['authorization']).toBe(`Bearer ${token}`);
    expect(JSON.parse(Buffer.from(seen['x-jwt-payload']!, 'base64url').toString())).toMatchObject({ sub: 'alice', role: 'admin', iss: ISSUER });
    // Without a token the caller's own x-user does not reach the workload.
    const anonymous = JSON.parse((await call({ 'x-user': 'mallory' })).body) as Record<string, string>;
    expect(anonymous['x-user']).toBeUndefined();
    expect(authnStats(a).requests).toEqual({ authenticated: 1, unauthenticated: 1, missing: 0, failed: 0 });
    expect(authnStats(a).providers['default/backend-jwt/idp']!.fetches).toBe(1);
  });

  it.each([
    ['an expired token', () => sign(k1, {}, { exp: now() - 600 })],
    ['a token not valid yet', () => sign(k1, {}, { nbf: now() + 600 })],
    ['a token for another audience', () => sign(k1, {}, { aud: 'someone-else' })],
    ['a token of another issuer', () => sign(k1, {}, { iss: 'https://evil.test' })],
    ['a token with a bad signature', () => sign(stranger)],
    ['a token that is no JWT', () => Promise.resolve('not.a.jwt')],
  ])('refuses %s with 401 and WWW-Authenticate invalid_token', async (_what, token) => {
    await startGate([resource()]);
    const r = await call({ authorization: `Bearer ${await token()}` }, '/api/items?x=1');
    expect([r.status, r.body]).toEqual([401, 'Jwt verification fails']);
    expect(r.headers['www-authenticate']).toBe(`Bearer realm="http://${gateAddress}/api/items", error="invalid_token"`);
  });

  it('accepts a token expired within the clock skew', async () => {
    await startGate([resource()]);
    expect((await call({ authorization: `Bearer ${await sign(k1, {}, { exp: now() - 20 })}` })).status).toBe(200);
  });

  it('without required, a request without a token passes; with required it gets 401 "Jwt is missing"', async () => {
    await startGate([resource()]);
    expect((await call()).status).toBe(200);
    authz!.applyAuthentication([resource({ required: true })]);
    const r = await call();
    expect([r.status, r.body, r.headers['www-authenticate']]).toEqual([401, 'Jwt is missing', `Bearer realm="http://${gateAddress}/api/items"`]);
    // A prefix other than Bearer is no token either.
    expect((await call({ authorization: 'Basic YTpi' })).body).toBe('Jwt is missing');
  });

  it('does not authenticate workloads the resource does not select', async () => {
    await startGate([resource({ required: true, services: ['other'] })]);
    expect((await call()).status).toBe(200);
    expect((await call({ authorization: 'Bearer garbage' })).status).toBe(200);
  });

  it('reads tokens from query parameters and removes the token header when forward is false', async () => {
    await startGate([resource({ providers: { idp: provider({ forward: false, fromParams: ['access_token'] }) } })]);
    const token = await sign(k1);
    expect((await call({}, `/api?access_token=${token}`)).status).toBe(200);
    const r = await call({ authorization: `Bearer ${token}` });
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body) as Record<string, string>)['authorization']).toBeUndefined();
  });

  it('picks the provider by the token issuer', async () => {
    const other = provider({ issuer: 'https://other.test', payloadInMetadata: 'other', claimToHeaders: [{ headerName: 'x-other-user', claimName: 'sub' } as never] });
    await startGate([resource({ providers: { idp: provider(), other } })]);
    const r = await call({ authorization: `Bearer ${await sign(k1, {}, { iss: 'https://other.test' })}` });
    expect(r.status).toBe(200);
    const seen = JSON.parse(r.body) as Record<string, string>;
    expect([seen['x-other-user'], seen['x-user']]).toEqual(['alice', undefined]);
  });

  it('refetches the JWKS once on an unknown kid (key rotation), and no more than once per interval', async () => {
    const a = await startGate([resource()]);
    expect((await call({ authorization: `Bearer ${await sign(k1)}` })).status).toBe(200);
    expect(jwksRequests).toBe(1);
    served = [k1, k2];
    expect((await call({ authorization: `Bearer ${await sign(k2)}` })).status).toBe(200);
    expect(jwksRequests).toBe(2);
    // Another unknown kid right after: refused without a fetch (the refresh is rate-limited).
    const bogus = await newKey('k3');
    expect((await call({ authorization: `Bearer ${await sign(bogus)}` })).status).toBe(401);
    expect(jwksRequests).toBe(2);
    expect(authnStats(a).providers['default/backend-jwt/idp']).toMatchObject({ fetches: 2, kidRefreshes: 1, kidRefreshesSuppressed: 1, failures: 0 });
    // Cached keys serve without fetching.
    expect((await call({ authorization: `Bearer ${await sign(k2)}` })).status).toBe(200);
    expect(jwksRequests).toBe(2);
  });

  it('concurrent requests share one JWKS fetch', async () => {
    await startGate([resource()]);
    const token = await sign(k1);
    const replies = await Promise.all(Array.from({ length: 8 }, () => call({ authorization: `Bearer ${token}` })));
    expect(replies.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(jwksRequests).toBe(1);
  });

  it('keeps the last good key set when a refetch fails', async () => {
    const a = await startGate([resource()]);
    expect((await call({ authorization: `Bearer ${await sign(k1)}` })).status).toBe(200);
    jwksStatus = 503;
    expect((await call({ authorization: `Bearer ${await sign(k2)}` })).status).toBe(401);
    expect(jwksRequests).toBe(2);
    expect((await call({ authorization: `Bearer ${await sign(k1)}` })).status).toBe(200);
    // The failure is not retried at once: the next fetch waits for the refresh interval.
    expect(jwksRequests).toBe(2);
    expect(authnStats(a).providers['default/backend-jwt/idp']).toMatchObject({ fetches: 2, failures: 1 });
  });

  it('keeps the cached JWKS across an update that leaves the provider unchanged', async () => {
    await startGate([resource()]);
    expect((await call({ authorization: `Bearer ${await sign(k1)}` })).status).toBe(200);
    authz!.applyAuthentication([resource({ required: true })]);
    expect((await call({ authorization: `Bearer ${await sign(k1)}` })).status).toBe(200);
    expect(jwksRequests).toBe(1);
  });

  it('verifies with an inline JWKS', async () => {
    const inline = provider({ jwksSourceSpecifier: { case: 'localJwks', value: { specifier: { case: 'inlineString', value: JSON.stringify({ keys: [k1.jwk] }) } } as never } });
    await startGate([resource({ providers: { idp: inline } })]);
    expect((await call({ authorization: `Bearer ${await sign(k1)}` })).status).toBe(200);
    expect((await call({ authorization: `Bearer ${await sign(stranger)}` })).status).toBe(401);
    expect(jwksRequests).toBe(0);
  });
});
