/**
 * The admin API's certificate routes (loopback admin port):
 *
 *   POST   /api/v1/certs/tokens        {namespace, serviceAccount, ttl?: "1h"}  → 201 {token, info}
 *   GET    /api/v1/certs/tokens        → 200 {tokens: [...]}  (never secrets)
 *   DELETE /api/v1/certs/tokens/<id>   → 200 {revoked: info} | 404 | 409 (already used)
 *   GET    /api/v1/certs/issued        → 200 {certs: [...]}  issued workload certificates, newest first
 *   POST   /api/v1/certs/issued/<serial>/revoke  {reason?}  → 200 {cert} | 404 | 409 (already revoked)
 *   GET    /api/v1/certs/trust         → 200 {bundle, crl}  what Envoy and the sidecars are told to trust
 *   GET    /api/v1/certs/root-rotation → 200 {status}
 *   POST   /api/v1/certs/root-rotation/start  {keyType?, rootTtl?, intermediateTtl?, rootKey?: "keyring"|"return"}
 *                                      → 200 {status, rootKeyPem (once, with "return") | null, archive} | 409 {code, errors}
 *   POST   /api/v1/certs/root-rotation/finish {force?: boolean} → 200 {status, archive, stranded} | 409 {code, errors}
 *
 * Routes that need a CA answer 503 without one.
 * Bad input is 400 with every problem named (`errors`); the token itself is returned once,
 * by the POST, and never logged.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULT_INTERMEDIATE_TTL_MS, DEFAULT_ROOT_TTL_MS } from '../../certs/ca.ts';
import { validateMintRequest } from '../../certs/join-token.ts';
import { isKeyType, KEY_TYPES } from '../../certs/keys.ts';
import { parseDuration } from '../config/schema.ts';
import type { CertsService } from '../certs/certs-service.ts';
import { readBody } from '../http-server.ts';

/** Default lifetime of a join token when the request names none. */
export const DEFAULT_TOKEN_TTL = '1h';
const MAX_BODY_BYTES = 16 * 1024;

type Send = (res: ServerResponse, code: number, body: unknown) => void;

async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = await readBody(req, MAX_BODY_BYTES);
  try {
    return JSON.parse(text || '{}');
  } catch (err) {
    throw new Error(`the request body must be JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** The JSON body, or undefined after answering 400 with why it is not one. */
async function jsonBody(req: IncomingMessage, res: ServerResponse, send: Send): Promise<unknown> {
  try {
    return await readJson(req);
  } catch (err) {
    send(res, 400, { errors: [(err as Error).message] });
    return undefined;
  }
}

/** Handles `/api/v1/certs/...`; false when the path is not one of these routes. */
export async function handleCertsRoute(certs: CertsService | null, req: IncomingMessage, res: ServerResponse, path: string, send: Send): Promise<boolean> {
  const trustRoutes = path === '/api/v1/certs/trust' || path.startsWith('/api/v1/certs/root-rotation');
  if (!path.startsWith('/api/v1/certs/tokens') && !path.startsWith('/api/v1/certs/issued') && !trustRoutes) return false;
  if (certs === null) {
    send(res, 503, { error: 'certificate services are off: start the control plane with --state-dir' });
    return true;
  }
  if (path.startsWith('/api/v1/certs/issued')) return handleIssued(certs, req, res, path, send);
  if (trustRoutes) return handleTrust(certs, req, res, path, send);
  const rest = path.slice('/api/v1/certs/tokens'.length);
  if (rest === '' && req.method === 'GET') {
    send(res, 200, { tokens: await certs.tokens.list() });
    return true;
  }
  if (rest === '' && req.method === 'POST') {
    const body = await jsonBody(req, res, send);
    if (body === undefined) return true;
    const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const ttl = b.ttl ?? DEFAULT_TOKEN_TTL;
    let ttlMs: number;
    try {
      if (typeof ttl !== 'string') throw new Error();
      ttlMs = Math.round(parseDuration(ttl));
    } catch {
      send(res, 400, { errors: [`ttl must be a duration like 30m or 1h, got ${JSON.stringify(ttl)}`] });
      return true;
    }
    const checked = validateMintRequest({ namespace: b.namespace as string, serviceAccount: b.serviceAccount as string, ttlMs });
    if (!checked.valid) {
      // The API takes a duration, not milliseconds: name the field the caller sent.
      send(res, 400, { errors: checked.errors.map((e) => (e.startsWith('ttlMs') ? `ttl must be at most 7d, got ${JSON.stringify(ttl)}` : e)) });
      return true;
    }
    const { token, info } = await certs.tokens.mint({ namespace: checked.result.namespace, serviceAccount: checked.result.serviceAccount, ttlMs, actor: 'admin-api' });
    send(res, 201, { token, info });
    return true;
  }
  const id = /^\/([0-9a-f]{16})$/.exec(rest)?.[1];
  if (id !== undefined && req.method === 'DELETE') {
    const r = await certs.tokens.revoke(id, { actor: 'admin-api' });
    send(res, r.ok ? 200 : r.reason === 'unknown' ? 404 : 409, r);
    return true;
  }
  send(res, 405, { error: `${req.method} ${path} is not a route; see POST|GET /api/v1/certs/tokens, DELETE /api/v1/certs/tokens/<id>` });
  return true;
}

async function handleIssued(certs: CertsService, req: IncomingMessage, res: ServerResponse, path: string, send: Send): Promise<boolean> {
  if (path === '/api/v1/certs/issued' && req.method === 'GET') {
    send(res, 200, { certs: certs.issued.list() });
    return true;
  }
  const serial = /^\/api\/v1\/certs\/issued\/([0-9a-fA-F:]{1,128})\/revoke$/.exec(path)?.[1];
  if (serial !== undefined && req.method === 'POST') {
    const body = await jsonBody(req, res, send);
    if (body === undefined) return true;
    const reason = (body as { reason?: unknown } | null)?.reason ?? 'unspecified';
    if (typeof reason !== 'string' || reason.length > 200) {
      send(res, 400, { errors: [`reason must be a string of at most 200 characters, got ${JSON.stringify(reason)}`] });
      return true;
    }
    const r = await certs.revokeCert(serial, reason, 'admin-api');
    send(res, r.ok ? 200 : r.reason === 'unknown' ? 404 : 409, r);
    return true;
  }
  send(res, 405, { error: `${req.method} ${path} is not a route; see GET /api/v1/certs/issued, POST /api/v1/certs/issued/<serial>/revoke` });
  return true;
}

const MINUTE = 60_000;
const MAX_CA_TTL_MS = 100 * 365 * 24 * 60 * MINUTE;

/** A CA lifetime from the body (a duration string), its default when absent, or an error message. */
function caTtl(name: string, value: unknown, fallback: number): number | string {
  if (value === undefined) return fallback;
  let ms: number;
  try {
    if (typeof value !== 'string') throw new Error();
    ms = Math.round(parseDuration(value));
  } catch {
    return `${name} must be a duration like 8760h or 90m (units ms, s, m, h), got ${JSON.stringify(value)}`;
  }
  if (ms < MINUTE || ms > MAX_CA_TTL_MS) return `${name} must be between 1m and 876000h (100 years), got ${JSON.stringify(value)}`;
  return ms;
}

const ROTATION_REFUSALS: ReadonlySet<string> = new Set(['PAL_ERR_CERTS_ROTATION_IN_PROGRESS', 'PAL_ERR_CERTS_ROTATION_NOT_STARTED', 'PAL_ERR_CERTS_ROTATION_OLD_CERTS_LIVE']);

/** A thrown PalisadeError as the API's 409 refusal; anything else propagates (500). */
function refused(res: ServerResponse, send: Send, err: unknown): void {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && ROTATION_REFUSALS.has(code)) send(res, 409, { code, errors: [(err as Error).message] });
  else throw err;
}

async function handleTrust(certs: CertsService, req: IncomingMessage, res: ServerResponse, path: string, send: Send): Promise<boolean> {
  if (certs.ca === null) {
    send(res, 503, { error: `no CA in the state dir ${certs.stateDir}: run palisade certs init-root` });
    return true;
  }
  if (path === '/api/v1/certs/trust' && req.method === 'GET') {
    send(res, 200, certs.trust());
    return true;
  }
  if (path === '/api/v1/certs/root-rotation' && req.method === 'GET') {
    send(res, 200, { status: certs.rotationStatus() });
    return true;
  }
  if (path === '/api/v1/certs/root-rotation/start' && req.method === 'POST') {
    const body = await jsonBody(req, res, send);
    if (body === undefined) return true;
    const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const errors: string[] = [];
    if (b.keyType !== undefined && !isKeyType(b.keyType)) errors.push(`keyType must be one of ${KEY_TYPES.join(', ')}, got ${JSON.stringify(b.keyType)}`);
    if (b.rootKey !== undefined && b.rootKey !== 'keyring' && b.rootKey !== 'return') errors.push(`rootKey must be "keyring" or "return", got ${JSON.stringify(b.rootKey)}`);
    const rootTtlMs = caTtl('rootTtl', b.rootTtl, DEFAULT_ROOT_TTL_MS);
    const intermediateTtlMs = caTtl('intermediateTtl', b.intermediateTtl, DEFAULT_INTERMEDIATE_TTL_MS);
    if (typeof rootTtlMs === 'string') errors.push(rootTtlMs);
    if (typeof intermediateTtlMs === 'string') errors.push(intermediateTtlMs);
    if (typeof rootTtlMs === 'number' && typeof intermediateTtlMs === 'number' && intermediateTtlMs > rootTtlMs) {
      errors.push(`intermediateTtl must not be longer than rootTtl`);
    }
    if (errors.length > 0 || typeof rootTtlMs !== 'number' || typeof intermediateTtlMs !== 'number') {
      send(res, 400, { errors });
      return true;
    }
    try {
      const r = await certs.startRotation({
        ...(isKeyType(b.keyType) ? { keyType: b.keyType } : {}),
        ...(b.rootKey === 'keyring' || b.rootKey === 'return' ? { rootKey: b.rootKey } : {}),
        rootTtlMs, intermediateTtlMs, actor: 'admin-api',
      });
      send(res, 200, r);
    } catch (err) {
      refused(res, send, err);
    }
    return true;
  }
  if (path === '/api/v1/certs/root-rotation/finish' && req.method === 'POST') {
    const body = await jsonBody(req, res, send);
    if (body === undefined) return true;
    const force = (body as { force?: unknown } | null)?.force ?? false;
    if (typeof force !== 'boolean') {
      send(res, 400, { errors: [`force must be true or false, got ${JSON.stringify(force)}`] });
      return true;
    }
    try {
      send(res, 200, await certs.finishRotation({ force, actor: 'admin-api' }));
    } catch (err) {
      refused(res, send, err);
    }
    return true;
  }
  send(res, 405, { error: `${req.method} ${path} is not a route; see GET /api/v1/certs/trust, GET /api/v1/certs/root-rotation, POST /api/v1/certs/root-rotation/start|finish` });
  return true;
}
