/**
 * SPIFFE IDs (SPIFFE-ID spec, section 2): `spiffe://<trust-domain>/<path>`.
 *
 * The rules are the strict ones the reference implementations (go-spiffe, java-spiffe) enforce:
 * scheme exactly `spiffe` (lowercase); trust domain of `[a-z0-9._-]`, non-empty, at most 255
 * bytes, no userinfo, no port; path segments of `[A-Za-z0-9._-]`, none empty, `.` or `..`,
 * no trailing `/`; no query, no fragment, no percent-encoding; the whole ID at most 2048 bytes.
 * Palisade's workload IDs use the Kubernetes-style path `/ns/<namespace>/sa/<service-account>`.
 */
import type { Result } from './errors.ts';

/** Maximum length of a SPIFFE ID in bytes (SPIFFE-ID 2.3). */
export const MAX_SPIFFE_ID_LENGTH = 2048;
/** Maximum length of a trust domain name in bytes (SPIFFE-ID 2.3, RFC 3986 host). */
export const MAX_TRUST_DOMAIN_LENGTH = 255;

const SCHEME_PREFIX = 'spiffe://';
const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]+$/;
const SEGMENT_CHARS = /^[A-Za-z0-9._-]+$/;

/** A parsed, valid SPIFFE ID. `path` is `''` for a trust domain's own ID, else starts with `/`. */
export interface SpiffeId {
  readonly trustDomain: string;
  readonly path: string;
  /** The canonical string form, `spiffe://<trustDomain><path>`. */
  readonly uri: string;
}

/** A workload identity, `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`. */
export interface WorkloadIdentity {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly id: SpiffeId;
}

/** Problems with a trust domain name (empty list when valid). */
export function trustDomainProblems(trustDomain: string): string[] {
  if (trustDomain.length === 0) return ['trust domain is empty'];
  const problems: string[] = [];
  if (trustDomain.length > MAX_TRUST_DOMAIN_LENGTH) {
    problems.push(`trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} bytes (${trustDomain.length})`);
  }
  if (trustDomain.includes('@')) problems.push('trust domain must not contain userinfo (@)');
  if (trustDomain.includes(':')) problems.push('trust domain must not contain a port or ":"');
  if (!TRUST_DOMAIN_CHARS.test(trustDomain)) {
    problems.push(`trust domain ${JSON.stringify(trustDomain)} may contain only lowercase letters, digits, ".", "-" and "_"`);
  }
  return problems;
}

/** Problems with one path segment (empty list when valid). */
export function segmentProblems(segment: string): string[] {
  if (segment.length === 0) return ['path has an empty segment'];
  if (segment === '.' || segment === '..') return [`path segment ${JSON.stringify(segment)} is not allowed`];
  if (!SEGMENT_CHARS.test(segment)) {
    return [`path segment ${JSON.stringify(segment)} may contain only letters, digits, ".", "-" and "_"`];
  }
  return [];
}

/** Problems with a SPIFFE ID path (`''` or `/seg(/seg)*`), empty list when valid. */
export function pathProblems(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) return ['path must start with "/"'];
  if (path.endsWith('/')) return ['path must not end with "/"'];
  const problems: string[] = [];
  for (const segment of path.slice(1).split('/')) problems.push(...segmentProblems(segment));
  return [...new Set(problems)];
}

function make(trustDomain: string, path: string): SpiffeId {
  return Object.freeze({ trustDomain, path, uri: `${SCHEME_PREFIX}${trustDomain}${path}` });
}

/** Parses and validates a SPIFFE ID string; every problem is reported. */
export function parseSpiffeId(input: string): Result<SpiffeId> {
  if (typeof input !== 'string' || input.length === 0) return { valid: false, errors: ['SPIFFE ID is empty'] };
  const errors: string[] = [];
  if (Buffer.byteLength(input, 'utf8') > MAX_SPIFFE_ID_LENGTH) {
    errors.push(`SPIFFE ID is longer than ${MAX_SPIFFE_ID_LENGTH} bytes (${Buffer.byteLength(input, 'utf8')})`);
  }
  if (!input.startsWith(SCHEME_PREFIX)) {
    const scheme = /^([^:/]*):/.exec(input)?.[1];
    if (scheme === 'spiffe') errors.push('SPIFFE ID must start with "spiffe://" (authority missing)');
    else errors.push(scheme === undefined ? 'SPIFFE ID has no scheme (want "spiffe://")' : `scheme must be "spiffe", got ${JSON.stringify(scheme)}`);
    return { valid: false, errors };
  }
  let rest = input.slice(SCHEME_PREFIX.length);
  if (rest.includes('?')) errors.push('SPIFFE ID must not have a query');
  if (rest.includes('#')) errors.push('SPIFFE ID must not have a fragment');
  if (rest.includes('%')) errors.push('SPIFFE ID must not contain percent-encoded characters');
  rest = rest.split(/[?#]/, 1)[0]!;
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  errors.push(...trustDomainProblems(trustDomain));
  if (!rest.includes('%')) errors.push(...pathProblems(path));
  if (errors.length > 0) return { valid: false, errors };
  return { valid: true, result: make(trustDomain, path) };
}

/** Builds a SPIFFE ID from a trust domain and a path (`''` or `/a/b`), validating both. */
export function formatSpiffeId(trustDomain: string, path: string): Result<SpiffeId> {
  const errors = [...trustDomainProblems(trustDomain), ...pathProblems(path)];
  if (errors.length > 0) return { valid: false, errors };
  const id = make(trustDomain, path);
  if (Buffer.byteLength(id.uri, 'utf8') > MAX_SPIFFE_ID_LENGTH) {
    return { valid: false, errors: [`SPIFFE ID is longer than ${MAX_SPIFFE_ID_LENGTH} bytes`] };
  }
  return { valid: true, result: id };
}

/** The trust domain's own ID, `spiffe://<trustDomain>` (used as the URI SAN of signing certificates). */
export function trustDomainId(trustDomain: string): Result<SpiffeId> {
  return formatSpiffeId(trustDomain, '');
}

/** The workload ID `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`. */
export function workloadId(trustDomain: string, namespace: string, serviceAccount: string): Result<SpiffeId> {
  const errors = [
    ...trustDomainProblems(trustDomain),
    ...segmentProblems(namespace).map((p) => `namespace: ${p}`),
    ...segmentProblems(serviceAccount).map((p) => `service account: ${p}`),
  ];
  if (errors.length > 0) return { valid: false, errors };
  return formatSpiffeId(trustDomain, `/ns/${namespace}/sa/${serviceAccount}`);
}

/** Parses a workload ID (`spiffe://<td>/ns/<ns>/sa/<sa>`), refusing any other path shape. */
export function parseWorkloadId(input: string): Result<WorkloadIdentity> {
  const parsed = parseSpiffeId(input);
  if (!parsed.valid) return parsed;
  const segments = parsed.result.path.split('/').slice(1);
  if (segments.length !== 4 || segments[0] !== 'ns' || segments[2] !== 'sa') {
    return { valid: false, errors: [`path ${JSON.stringify(parsed.result.path)} is not /ns/<namespace>/sa/<service-account>`] };
  }
  return {
    valid: true,
    result: Object.freeze({ trustDomain: parsed.result.trustDomain, namespace: segments[1]!, serviceAccount: segments[3]!, id: parsed.result }),
  };
}
