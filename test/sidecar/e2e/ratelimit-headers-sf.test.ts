/**
 * The sidecar's RateLimit-Policy and RateLimit fields read by an independent RFC 9651
 * (structured fields) parser, the `structured-headers` package, and checked against
 * draft-ietf-httpapi-ratelimit-headers-11:
 *
 *   RateLimit-Policy  non-empty List; each Item a String (the policy) with q (REQUIRED,
 *                     non-negative Integer), w (non-negative, non-zero Integer seconds),
 *                     qu (String: requests | content-bytes | concurrent-requests), pk (Byte Sequence)
 *   RateLimit         List; each Item a String naming a policy, with r (REQUIRED, non-negative
 *                     Integer), t (non-negative Integer seconds), pk (Byte Sequence)
 *   Retry-After       with RateLimit, "SHOULD NOT reference a point in time earlier than the
 *                     end of the effective window" (section 6)
 *
 * and the de-facto x-ratelimit-* headers as integers agreeing with the fields. Real 200 and
 * 429 responses of an in-process sidecar (real ADS, real workload) over HTTP/1.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Server } from 'node:http';
import { parseList, type BareItem, type Item, type List, type Parameters } from 'structured-headers';
import type { Sidecar, SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { httpRequest } from '../../helpers/http.ts';
import { quota } from '../quota/fixtures.ts';
import { closeServer, QuotaXds, startSidecar, startWorkload } from '../quota/quota-mesh.ts';

type Headers = Record<string, string | string[] | undefined>;

const QUOTAS = [
  quota('single', { tokens: 3, interval: 60 }, { routes: [{ name: 'single', pathPrefix: '/single' }] }),
  // Two quotas counting the same path, limits of different names and windows.
  quota('per-minute', {}, { routes: [{ name: 'pair', pathPrefix: '/pair' }], limits: [{ name: 'minute', tokens: 2n, interval: { seconds: 60n } }] }),
  quota('per-hour', {}, { routes: [{ name: 'pair', pathPrefix: '/pair' }], limits: [{ name: 'hour', tokens: 10n, interval: { seconds: 3600n } }] }),
  // Two quotas with a same-named limit, both exhausted by one request; the one that resets first is checked last.
  quota('x-long', { tokens: 1, interval: 3600 }, { routes: [{ name: 'both', pathPrefix: '/both' }] }),
  quota('y-short', { tokens: 1, interval: 60 }, { routes: [{ name: 'both', pathPrefix: '/both' }] }),
];

let xds: QuotaXds;
let workload: { server: Server; port: number; hits: () => number };
let sc: { sidecar: Sidecar; addresses: SidecarAddresses };

beforeAll(async () => {
  workload = await startWorkload();
  xds = await QuotaXds.start();
  xds.push(QUOTAS);
  sc = await startSidecar(xds.address, workload.port);
}, 30_000);

afterAll(async () => {
  await sc?.sidecar.close();
  await xds?.close();
  if (workload !== undefined) await closeServer(workload.server);
});

function call(path: string) {
  return httpRequest(sc.addresses.inbound, { method: 'GET', path, headers: { 'x-tenant': 'acme' } });
}

/** One header's value; a field split over several lines is one List (RFC 9651 section 3.1). */
function field(h: Headers, name: string): string {
  const v = h[name];
  expect(v, `${name} present`).toBeDefined();
  return Array.isArray(v) ? v.join(', ') : v!;
}

function isNonNegativeInteger(v: BareItem | undefined): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

/** A List whose members are all Items (no Inner Lists), each a String. */
function stringItems(list: List, name: string): Item[] {
  expect(list.length, `${name} is a non-empty List`).toBeGreaterThan(0);
  return list.map((m) => {
    expect(Array.isArray(m[0]), `${name} member is an Item, not an Inner List`).toBe(false);
    const item = m as Item;
    expect(typeof item[0], `${name} item value is a String`).toBe('string');
    return item;
  });
}

interface Policy { q: number; w: number | undefined }
interface Limit { r: number; t: number | undefined }

/** Parses and checks RateLimit-Policy per draft-11 section 3; returns the policies by name. */
function policies(h: Headers): Map<string, Policy> {
  const items = stringItems(parseList(field(h, 'ratelimit-policy')), 'RateLimit-Policy');
  const out = new Map<string, Policy>();
  for (const [name, params] of items) {
    const n = name as string;
    expect(out.has(n), `policy ${n} listed once`).toBe(false);
    const q = params.get('q');
    expect(isNonNegativeInteger(q), `${n}: q is a non-negative Integer, got ${String(q)}`).toBe(true);
    const w = params.get('w');
    if (w !== undefined) expect(isNonNegativeInteger(w) && w > 0, `${n}: w is a non-zero Integer, got ${String(w)}`).toBe(true);
    checkCommon(n, params);
    const qu = params.get('qu');
    if (qu !== undefined) expect(['requests', 'content-bytes', 'concurrent-requests']).toContain(qu);
    out.set(n, { q: q as number, w: w as number | undefined });
  }
  return out;
}

/** Parses and checks RateLimit per draft-11 section 4; every item names a listed policy. */
function limits(h: Headers, known: Map<string, Policy>): Map<string, Limit> {
  const items = stringItems(parseList(field(h, 'ratelimit')), 'RateLimit');
  const out = new Map<string, Limit>();
  for (const [name, params] of items) {
    const n = name as string;
    expect(known.has(n), `RateLimit item ${n} identifies a policy of RateLimit-Policy`).toBe(true);
    const r = params.get('r');
    expect(isNonNegativeInteger(r), `${n}: r is a non-negative Integer, got ${String(r)}`).toBe(true);
    const t = params.get('t');
    if (t !== undefined) expect(isNonNegativeInteger(t), `${n}: t is a non-negative Integer, got ${String(t)}`).toBe(true);
    checkCommon(n, params);
    out.set(n, { r: r as number, t: t as number | undefined });
    const p = known.get(n)!;
    expect(r as number, `${n}: r <= q`).toBeLessThanOrEqual(p.q);
    if (t !== undefined && p.w !== undefined) expect(t, `${n}: t <= w`).toBeLessThanOrEqual(p.w);
  }
  return out;
}

function checkCommon(name: string, params: Parameters): void {
  const pk = params.get('pk');
  if (pk !== undefined) expect(pk instanceof ArrayBuffer, `${name}: pk is a Byte Sequence`).toBe(true);
}

/** A header that must be a bare non-negative decimal integer (delay-seconds / count). */
function integerHeader(h: Headers, name: string): number {
  const v = field(h, name);
  expect(v, `${name} is a non-negative integer`).toMatch(/^\d+$/);
  return Number(v);
}

/** x-ratelimit-* describe one limit of the fields: the one with the fewest remaining. */
function checkLegacy(h: Headers, p: Map<string, Policy>, l: Map<string, Limit>): void {
  const limit = integerHeader(h, 'x-ratelimit-limit');
  const remaining = integerHeader(h, 'x-ratelimit-remaining');
  const reset = integerHeader(h, 'x-ratelimit-reset');
  const fewest = Math.min(...[...l.values()].map((x) => x.r));
  expect(remaining).toBe(fewest);
  const match = [...l].filter(([n, x]) => x.r === remaining && p.get(n)!.q === limit && x.t === reset);
  expect(match.length, `x-ratelimit-* (${limit}/${remaining}/${reset}) match a RateLimit item`).toBeGreaterThan(0);
}

describe('RateLimit fields parsed as RFC 9651 structured fields', () => {
  it('sends draft-conformant RateLimit-Policy and RateLimit on 200s and the 429, with a Retry-After not before the window ends', async () => {
    const replies = [];
    for (let i = 0; i < 5; i++) replies.push(await call('/single'));
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 429, 429]);
    for (const [i, r] of replies.entries()) {
      const p = policies(r.headers);
      expect([...p]).toEqual([['single.per-tenant', { q: 3, w: 60 }]]);
      const l = limits(r.headers, p);
      const item = l.get('single.per-tenant')!;
      expect(item.r).toBe(Math.max(0, 2 - i));
      expect(item.t).toBeGreaterThanOrEqual(1);
      expect(item.t).toBeLessThanOrEqual(60);
      checkLegacy(r.headers, p, l);
      if (r.status === 200) expect(r.headers['retry-after']).toBeUndefined();
      else {
        const retryAfter = integerHeader(r.headers, 'retry-after');
        expect(retryAfter).toBeGreaterThanOrEqual(1);
        expect(retryAfter, 'Retry-After >= t of the exhausted policy').toBeGreaterThanOrEqual(item.t!);
      }
    }
  });

  it('lists one item per limit that counted the request, in both fields, when two quotas count it', async () => {
    const replies = [];
    for (let i = 0; i < 3; i++) replies.push(await call('/pair'));
    expect(replies.map((r) => r.status)).toEqual([200, 200, 429]);
    for (const [i, r] of replies.entries()) {
      const p = policies(r.headers);
      expect(new Map([...p].sort())).toEqual(new Map([['per-hour.hour', { q: 10, w: 3600 }], ['per-minute.minute', { q: 2, w: 60 }]]));
      const l = limits(r.headers, p);
      expect([...l.keys()].sort()).toEqual(['per-hour.hour', 'per-minute.minute']);
      expect(l.get('per-minute.minute')!.r).toBe(Math.max(0, 1 - i));
      checkLegacy(r.headers, p, l);
      if (r.status === 429) {
        const retryAfter = integerHeader(r.headers, 'retry-after');
        for (const [n, x] of l) if (x.r === 0) expect(retryAfter, `Retry-After >= t of exhausted ${n}`).toBeGreaterThanOrEqual(x.t!);
      }
    }
  });

  it('answers a 429 of several exhausted limits with the Retry-After and x-ratelimit-* of the one that resets last', async () => {
    expect((await call('/both')).status).toBe(200);
    const r = await call('/both');
    expect(r.status).toBe(429);
    const p = policies(r.headers);
    expect([...p.keys()]).toEqual(['x-long.per-tenant', 'y-short.per-tenant']);
    const l = limits(r.headers, p);
    const last = Math.max(...[...l.values()].map((x) => x.t!));
    expect(last).toBeGreaterThan(60);
    const retryAfter = integerHeader(r.headers, 'retry-after');
    expect(retryAfter, 'Retry-After: the exhausted limit that resets last').toBe(last);
    expect(integerHeader(r.headers, 'x-ratelimit-reset')).toBe(retryAfter);
    expect(integerHeader(r.headers, 'x-ratelimit-remaining')).toBe(0);
  });
});
