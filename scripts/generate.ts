// Regenerates xds/gen/ from the proto sources pinned in @grpc/grpc-js-xds (deps/) and
// Palisade's own protos (xds/proto/). Usage: node scripts/generate.ts [OUT_DIR]
//
// Why a build copy: the validate.proto shipped in grpc-js-xds's deps predates its
// envoy-api protos (they set `ignore_empty`, which that validate.proto lacks). protoc-gen-es
// is driven by buf, which rejects unknown option fields, so the copy under .build/ gets the
// missing fields with the field numbers upstream protoc-gen-validate assigned them.
// node_modules is never touched.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEPS = join(ROOT, 'node_modules/@grpc/grpc-js-xds/deps');
const BUILD = join(ROOT, '.build/proto');
const OUT = resolve(process.argv[2] ?? join(ROOT, 'xds/gen'));

/** The files the project uses; their imports come along (include_imports). */
export const ROOTS = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/service/load_stats/v3/lrs.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto',
  'envoy/extensions/filters/http/ratelimit/v3/rate_limit.proto',
  'envoy/service/ratelimit/v3/rls.proto',
  'envoy/extensions/filters/http/jwt_authn/v3/config.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/service/auth/v3/external_auth.proto',
  'palisade/v1/mesh.proto',
  'palisade/v1/policy.proto',
  'palisade/v1/request_authentication.proto',
  'palisade/v1/quota.proto',
];

/** Fields upstream protoc-gen-validate added after the copy grpc-js-xds ships. */
const VALIDATE_ADDITIONS: Record<string, number> = {
  StringRules: 26,
  BytesRules: 14,
  RepeatedRules: 5,
  MapRules: 6,
  ...Object.fromEntries(
    ['Float', 'Double', 'Int32', 'Int64', 'UInt32', 'UInt64', 'SInt32', 'SInt64', 'Fixed32', 'Fixed64', 'SFixed32', 'SFixed64']
      .map((n) => [`${n}Rules`, 8]),
  ),
};

function reconcileValidateProto(file: string): void {
  let text = readFileSync(file, 'utf8').replace(/\r\n/g, '\n');
  for (const [message, field] of Object.entries(VALIDATE_ADDITIONS)) {
    const open = new RegExp(`^message ${message} \\{\\n`, 'm');
    const match = open.exec(text);
    if (!match) throw new Error(`validate.proto: message ${message} not found`);
    const end = text.indexOf('\n}\n', match.index);
    if (text.slice(match.index, end).includes('ignore_empty')) continue;
    const at = match.index + match[0].length;
    text = `${text.slice(0, at)}    // Added by scripts/generate.ts (upstream field ${field}).\n    optional bool ignore_empty = ${field};\n${text.slice(at)}`;
  }
  writeFileSync(file, text);
}

function prepareBuildCopy(): void {
  rmSync(BUILD, { recursive: true, force: true });
  mkdirSync(BUILD, { recursive: true });
  cpSync(join(DEPS, 'envoy-api'), join(BUILD, 'envoy-api'), { recursive: true });
  cpSync(join(DEPS, 'xds'), join(BUILD, 'xds'), { recursive: true });
  cpSync(join(DEPS, 'googleapis'), join(BUILD, 'googleapis'), { recursive: true });
  cpSync(join(DEPS, 'protoc-gen-validate/validate'), join(BUILD, 'pgv/validate'), { recursive: true });
  cpSync(join(ROOT, 'xds/proto'), join(BUILD, 'palisade'), { recursive: true });
  reconcileValidateProto(join(BUILD, 'pgv/validate/validate.proto'));
  writeFileSync(join(BUILD, 'buf.yaml'), [
    'version: v2',
    'modules:',
    ...['envoy-api', 'xds', 'googleapis', 'pgv', 'palisade'].map((m) => `  - path: ${m}`),
    '',
  ].join('\n'));
  writeFileSync(join(BUILD, 'buf.gen.yaml'), [
    'version: v2',
    'clean: true',
    'plugins:',
    `  - local: ${join(ROOT, 'node_modules/.bin/protoc-gen-es')}`,
    `    out: ${OUT}`,
    '    include_imports: true',
    '    opt:',
    '      - target=js+dts',
    '      - import_extension=js',
    '',
  ].join('\n'));
}

prepareBuildCopy();
// --path is relative to the workspace root, so each root is prefixed with its module.
const moduleOf = (p: string): string => (p.startsWith('palisade/') ? 'palisade' : 'envoy-api');
const args = ['generate', ...ROOTS.flatMap((p) => ['--path', join(moduleOf(p), p)])];
try {
  execFileSync(join(ROOT, 'node_modules/.bin/buf'), args, { cwd: BUILD, stdio: 'inherit' });
} catch {
  console.error('generate: buf failed (its message is above)');
  process.exit(1);
}
console.log(`generated ${ROOTS.length} root protos and their imports into ${OUT}`);
