/**
 * The sidecar's ACK/NACK check of palisade.v1.RequestAuthentication beyond PGV: what the
 * authenticator needs to compile every provider. A NACKed update leaves the last good
 * providers in force.
 */
import type { Message } from '@bufbuild/protobuf';
import type { ResourceValidator } from '../../xds/client/options.ts';
import type { RequestAuthentication } from '../../xds/gen/palisade/v1/request_authentication_pb.js';
import { inlineJwks } from './jwks-source.ts';

export function createRequestAuthenticationValidator(): ResourceValidator {
  return (resource: Message): string[] => {
    const r = resource as RequestAuthentication;
    const errors: string[] = [];
    if (!/^[a-z0-9-]+\/[a-z0-9-]+$/.test(r.name)) errors.push(`name: must be <namespace>/<name>, got ${JSON.stringify(r.name)}`);
    const issuers = new Map<string, string>();
    for (const [name, p] of Object.entries(r.providers)) {
      const at = `providers[${JSON.stringify(name)}]`;
      if (p.issuer === '') errors.push(`${at}.issuer: required (tokens are matched to providers by issuer)`);
      const other = issuers.get(p.issuer);
      if (other !== undefined) errors.push(`${at}.issuer: ${JSON.stringify(p.issuer)} is also provider ${JSON.stringify(other)}'s`);
      issuers.set(p.issuer, name);
      const spec = p.jwksSourceSpecifier;
      if (spec.case === 'remoteJwks') {
        const uri = spec.value.httpUri?.uri ?? '';
        if (!isHttpUrl(uri)) errors.push(`${at}.remote_jwks.http_uri.uri: must be an http or https URL, got ${JSON.stringify(uri)}`);
      } else if (spec.case === 'localJwks') {
        if (spec.value.specifier.case !== 'inlineString') errors.push(`${at}.local_jwks: only inline_string is supported`);
        else {
          try {
            inlineJwks(spec.value.specifier.value);
          } catch (err) {
            errors.push(`${at}.local_jwks.inline_string: ${(err as Error).message}`);
          }
        }
      } else {
        errors.push(`${at}: one of remote_jwks or local_jwks is required`);
      }
      if (p.fromCookies.length > 0) errors.push(`${at}.from_cookies: not supported by the sidecar`);
    }
    return errors;
  };
}

function isHttpUrl(uri: string): boolean {
  try {
    return ['http:', 'https:'].includes(new URL(uri).protocol);
  } catch {
    return false;
  }
}
