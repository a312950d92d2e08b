/**
 * An Envoy ext_authz v3 CheckRequest as a policy's input, for the ext_authz server.
 *
 * OPA-Envoy's input IS the CheckRequest in protojson (lowerCamelCase names: `metadataContext`,
 * `socketAddress`) plus parsed_path / parsed_query / truncated_body / version. To judge a
 * request identically on both paths, the CheckRequest is first turned into the same
 * RequestDescription the inbound listener builds (describeCheckRequest), and the input is
 * policies/input.ts buildInput's document over the CheckRequest's own protojson
 * (checkRequestInput): every field buildInput knows has buildInput's value, so a Policy that
 * reads only those (and every decision-cache key) sees exactly what it sees inbound; the
 * fields only Envoy knows (`source.certificate`, `contextExtensions`, `tlsSession`, the rest of
 * `metadataContext`, ...) are there as OPA-Envoy shows them.
 *
 * Not carried: `typedFilterMetadata` (google.protobuf.Any of types this process may not
 * know); the request body (the filter Palisade configures sends none, and parsed_body is never
 * produced, as on the inbound path).
 */
import { toJson } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { AttributeContextSchema, type AttributeContext, type AttributeContext_Peer } from '../../xds/gen/envoy/service/auth/v3/attribute_context_pb.js';
import type { CheckRequest } from '../../xds/gen/envoy/service/auth/v3/external_auth_pb.js';
import { buildInput, JWT_METADATA_NAMESPACE, type EnvoyAuthzInput, type RequestDescription } from '../../policies/input.ts';

const PROTOCOLS = new Set<RequestDescription['protocol']>(['HTTP/1.0', 'HTTP/1.1', 'HTTP/2']);

function socketAddress(p: AttributeContext_Peer | undefined): { address: string; port: number } {
  const a = p?.address?.address;
  if (a?.case !== 'socketAddress') return { address: '', port: 0 };
  return { address: a.value.address, port: a.value.portSpecifier.case === 'portValue' ? a.value.portSpecifier.value : 0 };
}

/** The request facts of a CheckRequest, as describeRequest gives them for an inbound request. */
export function describeCheckRequest(req: CheckRequest): RequestDescription {
  const a = req.attributes;
  const http = a?.request?.http;
  let headers: Record<string, string> = http?.headers ?? {};
  // encode_raw_headers: Envoy sends header_map instead (repeated names joined, as buildInput does).
  if (Object.keys(headers).length === 0 && http?.headerMap !== undefined) {
    headers = {};
    for (const h of http.headerMap.headers) {
      const name = h.key.toLowerCase();
      const value = h.value !== '' ? h.value : Buffer.from(h.rawValue).toString('utf8');
      headers[name] = headers[name] === undefined ? value : `${headers[name]},${value}`;
    }
  }
  const src = socketAddress(a?.source);
  const dst = socketAddress(a?.destination);
  const protocol = http?.protocol as RequestDescription['protocol'] | undefined;
  const jwt = a?.metadataContext?.filterMetadata[JWT_METADATA_NAMESPACE];
  const time = a?.request?.time;
  const size = http?.size ?? -1n;
  return {
    method: http?.method || 'GET',
    path: http?.path || '/',
    headers,
    host: http?.host ?? '',
    scheme: http?.scheme === 'https' ? 'https' : 'http',
    protocol: protocol !== undefined && PROTOCOLS.has(protocol) ? protocol : 'HTTP/1.1',
    sourceAddress: src.address,
    sourcePort: src.port,
    destinationAddress: dst.address,
    destinationPort: dst.port,
    sourcePrincipal: a?.source?.principal || null,
    destinationPrincipal: a?.destination?.principal || null,
    requestId: http?.id ?? '',
    ...(time !== undefined ? { time: timestampDate(time) } : {}),
    ...(size >= 0n ? { bodySize: Number(size) } : {}),
    ...(jwt !== undefined ? { jwtPayloads: jwt } : {}),
  };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `over` laid on `base`: objects merged key by key, anything else replaced by `over`'s. */
function overlay(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? overlay(b, v) : v;
  }
  return out;
}

/** The CheckRequest's attributes in protojson (OPA-Envoy's names), typed metadata left out. */
export function attributesJson(attributes: AttributeContext | undefined): Record<string, unknown> {
  if (attributes === undefined) return {};
  let a = attributes;
  if (Object.keys(a.metadataContext?.typedFilterMetadata ?? {}).length > 0 || Object.keys(a.routeMetadataContext?.typedFilterMetadata ?? {}).length > 0) {
    a = { ...a };
    if (a.metadataContext !== undefined) a.metadataContext = { ...a.metadataContext, typedFilterMetadata: {} };
    if (a.routeMetadataContext !== undefined) a.routeMetadataContext = { ...a.routeMetadataContext, typedFilterMetadata: {} };
  }
  const json = toJson(AttributeContextSchema, a);
  return isPlainObject(json) ? json : {};
}

/** The OPA-Envoy input for a CheckRequest: buildInput(description) over the request's protojson. */
export function checkRequestInput(req: CheckRequest, desc: RequestDescription): EnvoyAuthzInput {
  const built = buildInput(desc);
  return { ...built, attributes: overlay(attributesJson(req.attributes), built.attributes as unknown as Record<string, unknown>) } as unknown as EnvoyAuthzInput;
}
