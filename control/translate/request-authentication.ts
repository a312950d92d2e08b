/**
 * RequestAuthentication → palisade.v1.RequestAuthentication for the sidecar groups of its
 * namespace (each sidecar keeps those that select its Service). Every provider becomes Envoy's
 * jwt_authn JwtProvider: the same fields an Envoy would get in its jwt_authn filter, with
 * `payload_in_metadata` set to the provider name (the key of the payload in the policy input)
 * and a `jwks.file` sent inline as local_jwks.
 */
import type { Message } from '@bufbuild/protobuf';
import { create } from '@bufbuild/protobuf';
import type { DesiredState } from '../config/state.ts';
import { jwksFileKey } from '../config/state.ts';
import { parseDuration } from '../config/schema.ts';
import type { JwtProviderDocument } from '../config/schema.ts';
import { RequestAuthenticationSchema } from '../../xds/gen/palisade/v1/request_authentication_pb.js';
import type { JwtProvider } from '../../xds/gen/envoy/extensions/filters/http/jwt_authn/v3/config_pb.js';
import { JwtProviderSchema, RemoteJwksSchema } from '../../xds/gen/envoy/extensions/filters/http/jwt_authn/v3/config_pb.js';
import { DataSourceSchema } from '../../xds/gen/envoy/config/core/v3/base_pb.js';

/** Defaults of the optional provider fields (docs/configuration.md). */
export const JWT_PROVIDER_DEFAULTS = Object.freeze({
  cacheDuration: '5m',
  timeout: '5s',
  clockSkew: '60s',
  fromHeaders: Object.freeze([Object.freeze({ name: 'authorization', valuePrefix: 'Bearer ' })]),
});

/** The RequestAuthentications of a sidecar group's namespace, in key order. */
export function sidecarRequestAuthentications(state: DesiredState, namespace: string): Message[] {
  const out: Message[] = [];
  for (const [key, ra] of state.requestAuthentications) {
    if (ra.metadata.namespace !== namespace) continue;
    const providers: Record<string, JwtProvider> = {};
    for (const name of Object.keys(ra.spec.providers).sort()) {
      providers[name] = jwtProvider(name, ra.spec.providers[name]!, state.jwksFiles.get(jwksFileKey(key, name)) ?? '');
    }
    out.push(create(RequestAuthenticationSchema, {
      name: key,
      services: [...(ra.spec.selector.services ?? [])],
      providers,
      required: ra.spec.required,
    }));
  }
  return out;
}

function jwtProvider(name: string, p: JwtProviderDocument, fileText: string): JwtProvider {
  const jwks = p.jwks;
  const source: JwtProvider['jwksSourceSpecifier'] = jwks.uri !== undefined
    ? {
      case: 'remoteJwks',
      value: create(RemoteJwksSchema, {
        httpUri: {
          uri: jwks.uri,
          // Envoy fetches through a cluster; the sidecar fetches the URI itself. Named for logs.
          httpUpstreamType: { case: 'cluster', value: `jwks|${new URL(jwks.uri).host}` },
          timeout: protoDuration(parseDuration(jwks.timeout ?? JWT_PROVIDER_DEFAULTS.timeout)),
        },
        cacheDuration: protoDuration(parseDuration(jwks.cacheDuration ?? JWT_PROVIDER_DEFAULTS.cacheDuration)),
      }),
    }
    : { case: 'localJwks', value: create(DataSourceSchema, { specifier: { case: 'inlineString', value: jwks.inline ?? fileText } }) };
  return create(JwtProviderSchema, {
    issuer: p.issuer,
    audiences: [...(p.audiences ?? [])],
    jwksSourceSpecifier: source,
    forward: p.forward ?? true,
    fromHeaders: (p.fromHeaders ?? (p.fromParams !== undefined ? [] : JWT_PROVIDER_DEFAULTS.fromHeaders)).map((h) => ({ name: h.name, valuePrefix: h.valuePrefix ?? '' })),
    fromParams: [...(p.fromParams ?? [])],
    forwardPayloadHeader: p.forwardPayloadHeader ?? '',
    payloadInMetadata: name,
    clockSkewSeconds: Math.ceil(parseDuration(p.clockSkew ?? JWT_PROVIDER_DEFAULTS.clockSkew) / 1000),
    claimToHeaders: (p.claimToHeaders ?? []).map((c) => ({ headerName: c.header, claimName: c.claim })),
  });
}

function protoDuration(ms: number): { seconds: bigint; nanos: number } {
  const whole = Math.floor(ms / 1000);
  return { seconds: BigInt(whole), nanos: Math.round((ms - whole * 1000) * 1e6) };
}
