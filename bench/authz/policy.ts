/**
 * The policy both parts of bench/authz evaluate: OPA-Envoy RBAC over the caller, method and
 * path, with data.json holding 50 roles (4 permissions each) and 200 callers bound to 1–3
 * roles, plus two ABAC-style denials on parsed_path and a header. Built once per run by the
 * real `opa build -b -t wasm`, signed ES256 with a key made for the run; `opa bench` reads
 * the same directory (same Rego, same data.json).
 *
 * The caller is the mTLS SPIFFE ID (`input.attributes.source.principal`) or, for a plaintext
 * caller (PERMISSIVE mesh, as in the macro part), the `x-caller` header.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findOpa } from '../../policies/opa-binary.ts';
import type { RequestDescription } from '../../policies/input.ts';

const run = promisify(execFile);

export const ENTRYPOINT = 'envoy/authz/allow';
export const QUERY = 'data.envoy.authz.allow';
export const TRUST_DOMAIN = 'bench.local';
export const ROLES = 50;
export const CALLERS = 200;

/** The caller the measured requests come from: bound to three roles, the matching permission is the last one looked at. */
export const CALLER = `spiffe://${TRUST_DOMAIN}/ns/default/sa/client-123`;
/** A caller with no binding: denied (403). */
export const UNKNOWN_CALLER = `spiffe://${TRUST_DOMAIN}/ns/default/sa/nobody`;
/** The measured request's path: allowed for CALLER by role-49's last permission. */
export const PATH = '/api/v1/orders/42?expand=items';
export const PATH_ONLY = '/api/v1/orders/42';

/** The input fields the decision depends on (Policy.cacheKeys). */
export const CACHE_KEYS = ['attributes.source.principal', 'attributes.request.http.headers.x-caller', 'attributes.request.http.method', 'parsed_path'] as const;

export const REGO = `package envoy.authz

# RBAC over caller, method and path (data.roles, data.bindings), plus ABAC-style denials.

default allow := false

# The caller: its verified mTLS SPIFFE ID, else (plaintext, PERMISSIVE) the x-caller header.
caller := p if {
	p := input.attributes.source.principal
} else := h if {
	h := input.attributes.request.http.headers["x-caller"]
}

method := input.attributes.request.http.method

path := concat("/", ["", concat("/", input.parsed_path)])

allow if {
	not denied
	some role in data.bindings[caller]
	some perm in data.roles[role].permissions
	method in perm.methods
	startswith(path, perm.prefix)
}

# Admin endpoints only for the admin role, whatever else is bound.
denied if {
	input.parsed_path[0] == "admin"
	not "admin" in data.bindings[caller]
}

# Writes must send JSON.
denied if {
	method in {"POST", "PUT", "PATCH"}
	not json_body
}

json_body if startswith(input.attributes.request.http.headers["content-type"], "application/json")
`;

const RESOURCES = ['orders', 'items', 'carts', 'users', 'payments', 'invoices', 'shipments', 'reviews', 'stock', 'prices'];

/** data.json: 50 roles of 4 permissions, 200 callers bound to 1..3 roles; CALLER to role-47..49, the last permission of role-49 matching PATH. */
export function policyData(): { roles: Record<string, { permissions: { methods: string[]; prefix: string }[] }>; bindings: Record<string, string[]> } {
  const roles: Record<string, { permissions: { methods: string[]; prefix: string }[] }> = {};
  for (let r = 0; r < ROLES; r++) {
    const name = `role-${String(r).padStart(2, '0')}`;
    const permissions = [];
    for (let p = 0; p < 4; p++) {
      const resource = RESOURCES[(r + p) % RESOURCES.length]!;
      permissions.push({ methods: p % 2 === 0 ? ['GET', 'HEAD'] : ['GET', 'POST', 'PUT'], prefix: `/api/v${1 + ((r + p) % 3)}/${resource}-${r}/` });
    }
    roles[name] = { permissions };
  }
  roles['role-49']!.permissions[3] = { methods: ['GET', 'HEAD'], prefix: '/api/v1/orders/' };
  const bindings: Record<string, string[]> = {};
  for (let c = 0; c < CALLERS; c++) {
    const n = 1 + (c % 3);
    bindings[`spiffe://${TRUST_DOMAIN}/ns/default/sa/client-${String(c).padStart(3, '0')}`] = Array.from({ length: n }, (_, i) => `role-${String((c * 7 + i) % ROLES).padStart(2, '0')}`);
  }
  bindings[CALLER] = ['role-47', 'role-48', 'role-49'];
  bindings[`spiffe://${TRUST_DOMAIN}/ns/ops/sa/admin`] = ['admin', 'role-00'];
  roles.admin = { permissions: [{ methods: ['GET', 'POST', 'PUT', 'DELETE'], prefix: '/' }] };
  return { roles, bindings };
}

/** The measured request as the sidecar describes it: mTLS caller (micro part). */
export function requestDescription(principal: string | null = CALLER, extraHeaders: Record<string, string> = {}): RequestDescription {
  return {
    method: 'GET',
    path: PATH,
    headers: {
      host: 'upstream:8080',
      'user-agent': 'bench-client/1.0',
      accept: 'application/json',
      'accept-encoding': 'gzip, deflate, br',
      'x-request-id': '0b6c8f4e-6a1e-4f7e-9a51-3f0c2d7e9b11',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      ...extraHeaders,
    },
    host: 'upstream:8080',
    scheme: principal === null ? 'http' : 'https',
    protocol: 'HTTP/1.1',
    sourceAddress: '10.0.3.17',
    sourcePort: 43122,
    destinationAddress: '10.0.7.4',
    destinationPort: 15006,
    sourcePrincipal: principal,
    destinationPrincipal: `spiffe://${TRUST_DOMAIN}/ns/default/sa/upstream`,
    requestId: '0b6c8f4e-6a1e-4f7e-9a51-3f0c2d7e9b11',
    time: new Date('2026-11-27T12:00:00Z'),
  };
}

export interface BuiltPolicy {
  /** The policy directory (authz.rego + data.json): what `opa bench -b` reads. */
  readonly dir: string;
  /** The signed bundle file and its bytes. */
  readonly bundleFile: string;
  readonly bundle: Uint8Array;
  /** SPKI PEM file sidecars verify the bundle with. */
  readonly publicKeyFile: string;
  readonly revision: string;
}

/** Writes the policy under `root` and builds it: `opa build -b -t wasm -e envoy/authz/allow --signing-alg ES256 --signing-key ...`. */
export async function buildPolicy(root: string, revision: string): Promise<BuiltPolicy> {
  const dir = join(root, 'policy');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'authz.rego'), REGO);
  writeFileSync(join(dir, 'data.json'), JSON.stringify(policyData()));
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyFile = join(root, 'signing.pem');
  const publicKeyFile = join(root, 'signing.pub.pem');
  writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  writeFileSync(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }) as string);
  const bundleFile = join(root, 'authz.tar.gz');
  await run(findOpa(), ['build', '-b', '-t', 'wasm', '-e', ENTRYPOINT, '--signing-alg', 'ES256', '--signing-key', keyFile, '--revision', revision, '-o', bundleFile, 'policy'], { cwd: root });
  return { dir, bundleFile, bundle: new Uint8Array(readFileSync(bundleFile)), publicKeyFile, revision };
}
