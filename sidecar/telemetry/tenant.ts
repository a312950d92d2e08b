/**
 * The tenant a request is metered for (Mesh spec.metering.tenant, carried in MeshConfig):
 * a request header's first value, or a claim of a token a RequestAuthentication verified
 * (`<provider>.<claim path>`, read from that provider's payload). No value: "unknown".
 *
 * Bounded, as metric labels are: a value longer than MAX_TENANT_BYTES is cut to that many
 * bytes (never inside a UTF-8 sequence), and the usage meter admits at most `maxTenants`
 * distinct tenants per report interval, counting the rest as "other".
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Metering } from '../../xds/gen/palisade/v1/mesh_pb.js';

/** The tenant of a request that has none. */
export const UNKNOWN_TENANT = 'unknown';
/** The tenant requests are counted for once an interval's tenant budget is spent. */
export const OTHER_TENANT = 'other';
/** The longest tenant kept, in UTF-8 bytes. */
export const MAX_TENANT_BYTES = 128;

/** Metering defaults when the mesh sets none (Mesh spec.metering's). */
export const TENANT_DEFAULTS = Object.freeze({ header: 'x-tenant-id', maxTenants: 10_000 });

/** Verified token payloads by provider (the jwt authenticator's `payloads`). */
export type JwtPayloads = Readonly<Record<string, unknown>>;

/** Reads the tenant of a request. */
export interface TenantSource {
  /** What the tenant is read from, for /stats and logs: `header:x-tenant-id`, `jwt:keycloak.tenant`. */
  readonly description: string;
  /** True when the tenant is read from the request headers (known at request start). */
  readonly fromHeaders: boolean;
  /** The tenant, cut to MAX_TENANT_BYTES; UNKNOWN_TENANT when the request has none. */
  tenantOf(headers: IncomingHttpHeaders | null, jwt: JwtPayloads | null): string;
}

/** Cuts a tenant to MAX_TENANT_BYTES UTF-8 bytes; '' becomes UNKNOWN_TENANT. */
export function boundTenant(value: string): string {
  if (value === '') return UNKNOWN_TENANT;
  // A UTF-16 unit is at most 3 UTF-8 bytes: short values need no measuring.
  if (value.length <= MAX_TENANT_BYTES / 3) return value;
  const bytes = Buffer.from(value);
  if (bytes.length <= MAX_TENANT_BYTES) return value;
  let end = MAX_TENANT_BYTES;
  // Back up over continuation bytes (10xxxxxx) so the cut falls between characters.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}

/** A header's first value (a repeated header arrives as an array for some names). */
function headerValue(headers: IncomingHttpHeaders | null, name: string): string {
  const v = headers?.[name];
  if (v === undefined) return '';
  return Array.isArray(v) ? (v[0] ?? '') : v;
}

/** The tenant source from a header name (lower case). */
export function headerTenant(name: string): TenantSource {
  const header = name.toLowerCase();
  return {
    description: `header:${header}`,
    fromHeaders: true,
    tenantOf: (headers) => boundTenant(headerValue(headers, header)),
  };
}

/** The tenant source from `<provider>.<claim path>`; a claim that is not a string or number counts as none. */
export function claimTenant(claim: string): TenantSource {
  const dot = claim.indexOf('.');
  const provider = claim.slice(0, dot);
  const path = claim.slice(dot + 1).split('.');
  return {
    description: `jwt:${claim}`,
    fromHeaders: false,
    tenantOf: (_headers, jwt) => {
      let v: unknown = jwt?.[provider];
      for (const key of path) {
        if (typeof v !== 'object' || v === null) return UNKNOWN_TENANT;
        v = (v as Record<string, unknown>)[key];
      }
      if (typeof v === 'string') return boundTenant(v);
      if (typeof v === 'number' && Number.isFinite(v)) return String(v);
      return UNKNOWN_TENANT;
    },
  };
}

/** The metering settings a sidecar applies. */
export interface TenantSettings {
  readonly source: TenantSource;
  /** Distinct tenants counted per report interval before the rest count as "other". */
  readonly maxTenants: number;
}

/** The default settings (no Mesh, or one without metering): header x-tenant-id, 10 000 tenants. */
export const DEFAULT_TENANT_SETTINGS: TenantSettings = Object.freeze({ source: headerTenant(TENANT_DEFAULTS.header), maxTenants: TENANT_DEFAULTS.maxTenants });

/** The settings of MeshConfig.metering (validated by PGV); undefined: the defaults. */
export function tenantSettings(metering: Metering | undefined): TenantSettings {
  if (metering === undefined) return DEFAULT_TENANT_SETTINGS;
  const src = metering.tenant?.source;
  const source = src?.case === 'jwtClaim' && src.value.includes('.')
    ? claimTenant(src.value)
    : src?.case === 'header' ? headerTenant(src.value) : headerTenant(TENANT_DEFAULTS.header);
  return Object.freeze({ source, maxTenants: metering.maxTenants > 0 ? metering.maxTenants : TENANT_DEFAULTS.maxTenants });
}
