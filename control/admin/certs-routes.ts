/**
 * The admin API's certificate routes (loopback admin port):
 *
 *   POST   /api/v1/certs/tokens        {namespace, serviceAccount, ttl?: "1h"}  → 201 {token, info}
 *   GET    /api/v1/certs/tokens        → 200 {tokens: [...]}  (never secrets)
 *   DELETE /api/v1/certs/tokens/<id>   → 200 {revoked: info} | 404 | 409 (already used)
 *   GET    /api/v1/certs/issued        → 200 {certs: [...]}  issued workload certificates, newest first
 *   POST   /api/v1/certs/issued/<serial>/revoke  {reason?}  → 200 {cert} | 404 | 409 (already revoked)
 *
 * Bad input is 400 with every problem named (`errors`); the token itself is returned once,
 * by the POST, and never logged.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { validateMintRequest } from '../../certs/join-token.ts';
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
  if (!path.startsWith('/api/v1/certs/tokens') && !path.startsWith('/api/v1/certs/issued')) return false;
  if (certs === null) {
    send(res, 503, { error: 'certificate services are off: start the control plane with --state-dir' });
    return true;
  }
  if (path.startsWith('/api/v1/certs/issued')) return handleIssued(certs, req, res, path, send);
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
