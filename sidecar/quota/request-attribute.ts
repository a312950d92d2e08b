/**
 * Reading one RequestAttribute (palisade.v1.RequestAttribute) from an inbound request: compiled
 * once per Quota push into a closure, so a request pays one call per descriptor entry. An
 * absent value is the empty string (the proto's rule).
 *
 *   header          the header's first value (names are lower case, as node gives them)
 *   jwt_claim       "<provider>.<claim path>": the provider is the RequestAuthentication provider
 *                   (its payload_in_metadata key when set); the path walks nested objects by
 *                   "."; strings as they are, numbers and booleans as text, anything else absent
 *   principal       the peer's SPIFFE ID from its verified mTLS client certificate
 *   route           the name of the quota route the request matched ("default" without routes)
 *   remote_address  the downstream peer's IP (an IPv4-mapped IPv6 address as plain IPv4)
 *   method          the request method
 */
import { createHash } from 'node:crypto';
import type { RequestAttribute } from '../../xds/gen/palisade/v1/quota_pb.js';
import { peerPrincipal } from '../authz/request-description.ts';
import type { DownstreamRequest } from '../listeners/http-listener.ts';

/** What a reader may need beyond the request. */
export interface AttributeContext {
  /** The quota route the request matched. */
  readonly route: string;
  /** Verified JWT payloads by provider (RequestFacts.jwt); null without a verified token. */
  readonly jwt: Readonly<Record<string, unknown>> | null;
}

export type AttributeReader = (req: DownstreamRequest, ctx: AttributeContext) => string;

/** Compiles a validated attribute; throws for an unset one (the validator refuses those first). */
export function compileAttribute(a: RequestAttribute): AttributeReader {
  const s = a.source;
  switch (s.case) {
    case 'header': {
      const name = s.value.toLowerCase();
      return (req) => {
        const v = req.headers[name];
        return typeof v === 'string' ? v : Array.isArray(v) ? (v[0] ?? '') : '';
      };
    }
    case 'jwtClaim': {
      const dot = s.value.indexOf('.');
      const provider = s.value.slice(0, dot);
      const path = s.value.slice(dot + 1).split('.');
      return (_req, ctx) => claimText(ctx.jwt?.[provider], path);
    }
    case 'principal':
      return (req) => peerPrincipal(req.socket) ?? '';
    case 'route':
      return (_req, ctx) => ctx.route;
    case 'remoteAddress':
      return (req) => {
        const ip = req.socket.remoteAddress ?? '';
        return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
      };
    case 'method':
      return (req) => req.method ?? '';
    default:
      throw new Error('a request attribute must set one source');
  }
}

function claimText(payload: unknown, path: readonly string[]): string {
  let v = payload;
  for (const p of path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, p)) return '';
    v = (v as Record<string, unknown>)[p];
  }
  return typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : '';
}

/** Escapes one part of a bucket key: `%` and `|` (the separator) percent-encoded. */
export function escapeKeyPart(s: string): string {
  return /[%|]/.test(s) ? s.replace(/%/g, '%25').replace(/\|/g, '%7C') : s;
}

/** Descriptor values longer than this many UTF-8 bytes enter a bucket key as a digest (keyValue). */
export const MAX_KEY_VALUE_BYTES = 64;

/**
 * Marks a digest in a bucket key: `%sha256:<43 base64url chars>`. A literal value's `%` is
 * always escaped to `%25` (escapeKeyPart), so no literal value yields a part starting `%s`.
 */
export const DIGEST_PREFIX = '%sha256:';

/** The part a descriptor value makes in a bucket key: escaped, or over MAX_KEY_VALUE_BYTES a fixed-length digest. */
export function keyValue(v: string): string {
  // UTF-16 units: each is 1..3 UTF-8 bytes, so only mid-length values need counting.
  if (v.length > MAX_KEY_VALUE_BYTES || (v.length > MAX_KEY_VALUE_BYTES / 3 && Buffer.byteLength(v) > MAX_KEY_VALUE_BYTES)) {
    return DIGEST_PREFIX + createHash('sha256').update(v).digest('base64url');
  }
  return escapeKeyPart(v);
}

/**
 * The bucket key of a request: `<quota>|<limit>|<key>=<value>|...` over the descriptor entries
 * in order, every part escaped (values over MAX_KEY_VALUE_BYTES as a digest), so distinct
 * descriptors never share a bucket and a key's length is bounded by the configuration.
 */
export function bucketKey(quota: string, limit: string, keys: readonly string[], values: readonly string[]): string {
  let k = `${escapeKeyPart(quota)}|${escapeKeyPart(limit)}`;
  for (let i = 0; i < keys.length; i++) k += `|${keys[i]}=${keyValue(values[i]!)}`;
  return k;
}

/** The value part of a limit's overflow bucket (MAX_LOCAL_BUCKETS_PER_LIMIT); no literal value escapes to it. */
export const OVERFLOW_VALUE = '%overflow';

/** The key of a limit's overflow bucket: `<quota>|<limit>|<key>=%overflow|...`. */
export function overflowKey(quota: string, limit: string, keys: readonly string[]): string {
  return bucketKey(quota, limit, [], []) + keys.map((k) => `|${k}=${OVERFLOW_VALUE}`).join('');
}
