/**
 * The sidecar's bootstrap: who it is and where the control plane is. Everything else it
 * does comes over xDS. A YAML (or JSON) file:
 *
 *   node:
 *     id: web-1                       # default <service>-<hostname>
 *     service: web                    # required: the Service this workload is an endpoint of
 *     namespace: default
 *     serviceAccount: web             # default <service>: the identity spiffe://<td>/ns/<namespace>/sa/<account>
 *     labels: { version: v1 }
 *     locality: { region: eu, zone: eu-1 }
 *   controlPlane: { address: 127.0.0.1:18000 }
 *   inbound:  { address: 0.0.0.0, port: 15006, advertiseAddress: 127.0.0.1 }
 *   workload: { address: 127.0.0.1:8080 }
 *   outbound: { address: 127.0.0.1, port: 15001 }
 *   admin:    { address: 127.0.0.1, port: 15000 }
 *   identity:                          # optional: enroll for an X.509-SVID at start (issue #5)
 *     caAddress: 127.0.0.1:18002       # the control plane's CA endpoint (palisade control --ca-address)
 *     trustBundle: ./bundle.pem        # PEM roots that authenticate the control plane
 *     joinToken: pal1.…                # or joinTokenFile: ./token (from palisade certs token)
 *     trustDomain: mesh.local          # default: the bundle root's spiffe:// URI SAN
 *   policy:                            # optional: Policy bundles are accepted only with keys (issue #6)
 *     verificationKeys: [./policy-signing.pub.pem]   # PEM public keys (SPKI) bundles must be signed by
 *   extAuthz: { address: 127.0.0.1, port: 9191 }   # optional: serve Envoy ext_authz (gRPC Check) for the namespace's Policies
 *   rateLimitService: { address: 127.0.0.1, port: 8081 }   # optional: serve Envoy's rate limit service for the namespace's Quotas (needs quota.redis)
 *   quota:                             # optional: the store of GLOBAL quotas (issue #7, docs/quotas.md)
 *     redis:
 *       address: 127.0.0.1:6379        # one Redis; or nodes: [host:port, ...] with cluster: true (Redis Cluster)
 *       keyPrefix: "palisade:quota:"   # default
 *       timeout: 50ms                  # command timeout (default 50ms): slower counts as unreachable
 *       passwordFile: ./redis.pass     # optional AUTH password (first line)
 *       lease: { maxFraction: 0.01, maxTokens: 1000 }   # token leases, on by default (false: off; fewer Redis round trips; docs/quotas.md)
 *   telemetry:                         # optional (sidecar/telemetry/telemetry-config.ts, docs/operations.md)
 *     metrics: { maxSeriesPerMetric: 1000 }        # label sets per metric before new values collapse into "other"
 *     accessLog: { enabled: true, path: stdout, sampleRate: 100, alwaysLogErrors: true, flushIntervalMs: 1000 }   # path: stdout or a file; default off
 *     tracing: { otlpEndpoint: http://127.0.0.1:4318/v1/traces, sampleRate: 100 }          # OTLP/HTTP; default off
 *   overload:                          # optional: the overload manager (sidecar/overload/overload-config.ts, docs/sidecar.md); default off
 *     maxActiveRequests: 1000          # and/or maxHeapBytes, maxConnections, maxEventLoopDelayMs; shedAt: 95, stopAcceptingAt: 100
 *
 * Validation names the file, the field and the value of every problem; unknown fields are
 * refused so a typo surfaces.
 */
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { deepFreeze } from '../../xds/deep-freeze.ts';
import { PalisadeError } from '../../xds/errors.ts';
import { parseQuotaBootstrap, type QuotaBootstrap } from '../quota/quota-bootstrap.ts';
import { parseTelemetryConfig, type TelemetryConfig } from '../telemetry/telemetry-config.ts';
import { parseOverloadConfig, type OverloadConfig } from '../overload/overload-config.ts';

export interface SidecarBootstrap {
  readonly node: {
    readonly id: string;
    readonly service: string;
    readonly namespace: string;
    /** The workload's service account: its SPIFFE ID is spiffe://<trust domain>/ns/<namespace>/sa/<serviceAccount>. */
    readonly serviceAccount: string;
    readonly labels: Readonly<Record<string, string>>;
    readonly locality: { readonly region: string; readonly zone: string; readonly subZone: string };
  };
  readonly controlPlane: { readonly address: string };
  readonly inbound: { readonly address: string; readonly port: number; readonly advertiseAddress: string };
  readonly workload: { readonly address: string };
  readonly outbound: { readonly address: string; readonly port: number };
  readonly admin: { readonly address: string; readonly port: number };
  /** Enrollment settings; null runs without a workload certificate (plaintext mesh). */
  readonly identity: BootstrapIdentity | null;
  /** Policy bundle verification: the files of the public keys bundles must be signed by. Empty: every Policy is refused (NACK). */
  readonly policy: { readonly verificationKeys: readonly string[] };
  /** The Envoy ext_authz server (docs/envoy-authz.md); null (the default): not served. */
  readonly extAuthz: { readonly address: string; readonly port: number } | null;
  /** Envoy's rate limit service for the namespace's Quotas (docs/envoy-ratelimit.md); null (the default): not served. */
  readonly rateLimitService: { readonly address: string; readonly port: number } | null;
  /** Quotas (sidecar/quota/quota-bootstrap.ts): `redis` null (the default) enforces LOCAL quotas only. */
  readonly quota: QuotaBootstrap;
  /** Metrics label budget, access log and tracing (sidecar/telemetry/telemetry-config.ts); default: metrics only. */
  readonly telemetry: TelemetryConfig;
  /** The overload manager's limits and thresholds (sidecar/overload/overload-config.ts); null (the default): no overload manager. */
  readonly overload: OverloadConfig | null;
}

export interface BootstrapIdentity {
  readonly caAddress: string;
  /** Path of the PEM trust bundle. */
  readonly trustBundle: string;
  /** The join token itself, or null when it is read from joinTokenFile. */
  readonly joinToken: string | null;
  readonly joinTokenFile: string | null;
  /** Null: taken from the bundle's root. */
  readonly trustDomain: string | null;
}

export const BOOTSTRAP_DEFAULTS = Object.freeze({
  namespace: 'default',
  controlPlane: '127.0.0.1:18000',
  inbound: { address: '0.0.0.0', port: 15006, advertiseAddress: '127.0.0.1' },
  outbound: { address: '127.0.0.1', port: 15001 },
  admin: { address: '127.0.0.1', port: 15000 },
  /** Where Envoys' ext_authz cluster looks (control/translate/envoy-authz.ts ENVOY_AUTHZ_ADDRESS/PORT). */
  extAuthz: { address: '127.0.0.1', port: 9191 },
  /** Where Envoys' palisade_ratelimit cluster looks (control/translate/envoy-ratelimit.ts ENVOY_RATELIMIT_ADDRESS/PORT). */
  rateLimitService: { address: '127.0.0.1', port: 8081 },
});

/** The bootstrap file is missing, malformed or invalid; the message lists every problem. */
export class InvalidBootstrapError extends PalisadeError {
  readonly errors: readonly string[];

  constructor(file: string, errors: readonly string[]) {
    super('PAL_ERR_SIDECAR_INVALID_BOOTSTRAP', `invalid bootstrap ${file}:\n${errors.map((e) => `  ${e}`).join('\n')}`);
    this.errors = errors;
  }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown) => JSON.stringify(v) ?? String(v);

/** Reads and validates a bootstrap file. Throws PAL_ERR_SIDECAR_INVALID_BOOTSTRAP. */
export async function loadBootstrap(file: string): Promise<SidecarBootstrap> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InvalidBootstrapError(file, [`cannot read it: ${(err as Error).message}`]);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new InvalidBootstrapError(file, [`malformed YAML: ${(err as Error).message}`]);
  }
  const r = parseBootstrap(doc);
  if (!r.valid) throw new InvalidBootstrapError(file, r.errors);
  return r.result;
}

/** Validates a parsed bootstrap document and applies defaults. */
export function parseBootstrap(doc: unknown): { valid: true; result: SidecarBootstrap } | { valid: false; errors: string[] } {
  const errors: string[] = [];
  const report = (path: string, msg: string) => errors.push(`${path}: ${msg}`);
  if (!isObj(doc)) return { valid: false, errors: [`the bootstrap must be a mapping, got ${show(doc)}`] };
  only(doc, '', ['node', 'controlPlane', 'inbound', 'workload', 'outbound', 'admin', 'identity', 'policy', 'extAuthz', 'rateLimitService', 'quota', 'telemetry', 'overload'], report);

  const node = section(doc, 'node', report, true);
  only(node, 'node', ['id', 'service', 'namespace', 'serviceAccount', 'labels', 'locality'], report);
  const service = str(node, 'node.service', 'service', report, { required: true, re: DNS_LABEL, what: 'a Service name (lowercase DNS label)' });
  const namespace = str(node, 'node.namespace', 'namespace', report, { re: DNS_LABEL, what: 'a namespace (lowercase DNS label)' }) ?? BOOTSTRAP_DEFAULTS.namespace;
  // One identity per Service unless told otherwise (Kubernetes would say "default"; a
  // per-Service account lets policies and peers tell services apart).
  const serviceAccount = str(node, 'node.serviceAccount', 'serviceAccount', report, { re: DNS_LABEL, what: 'a service account name (lowercase DNS label)' }) ?? service;
  const id = str(node, 'node.id', 'id', report, { re: /^[\x21-\x7e]{1,253}$/, what: 'printable ASCII without spaces, 1..253 characters' })
    ?? `${service ?? 'sidecar'}-${hostname()}`;
  const labels: Record<string, string> = {};
  if (node.labels !== undefined) {
    if (!isObj(node.labels)) report('node.labels', `must be a mapping of labels, got ${show(node.labels)}`);
    else {
      for (const [k, v] of Object.entries(node.labels)) {
        if (!LABEL_KEY.test(k)) report(`node.labels.${k}`, 'invalid label key');
        else if (typeof v !== 'string' || !LABEL_VALUE.test(v)) report(`node.labels.${k}`, `must be a label value (string, up to 63 of [A-Za-z0-9-_.]), got ${show(v)}`);
        else labels[k] = v;
      }
    }
  }
  const loc = section(node, 'locality', report, false, 'node.locality');
  only(loc, 'node.locality', ['region', 'zone', 'subZone'], report);
  const locality = {
    region: str(loc, 'node.locality.region', 'region', report, {}) ?? '',
    zone: str(loc, 'node.locality.zone', 'zone', report, {}) ?? '',
    subZone: str(loc, 'node.locality.subZone', 'subZone', report, {}) ?? '',
  };

  const cp = section(doc, 'controlPlane', report, false);
  only(cp, 'controlPlane', ['address'], report);
  const cpAddress = hostPort(cp, 'controlPlane.address', report) ?? BOOTSTRAP_DEFAULTS.controlPlane;

  const inb = section(doc, 'inbound', report, false);
  only(inb, 'inbound', ['address', 'port', 'advertiseAddress'], report);
  const inbound = {
    address: ip(inb, 'inbound.address', 'address', report) ?? BOOTSTRAP_DEFAULTS.inbound.address,
    port: port(inb, 'inbound.port', report) ?? BOOTSTRAP_DEFAULTS.inbound.port,
    advertiseAddress: ip(inb, 'inbound.advertiseAddress', 'advertiseAddress', report) ?? BOOTSTRAP_DEFAULTS.inbound.advertiseAddress,
  };
  if (inbound.advertiseAddress === '0.0.0.0' || inbound.advertiseAddress === '::') {
    report('inbound.advertiseAddress', `must be an address peers can reach, got ${show(inbound.advertiseAddress)}`);
  }

  const wl = section(doc, 'workload', report, true);
  only(wl, 'workload', ['address'], report);
  // A missing section is reported once, not again for its address.
  const workload = hostPort(wl, 'workload.address', report, isObj(doc.workload));

  const out = section(doc, 'outbound', report, false);
  only(out, 'outbound', ['address', 'port'], report);
  const outbound = {
    address: ip(out, 'outbound.address', 'address', report) ?? BOOTSTRAP_DEFAULTS.outbound.address,
    port: port(out, 'outbound.port', report) ?? BOOTSTRAP_DEFAULTS.outbound.port,
  };

  const adm = section(doc, 'admin', report, false);
  only(adm, 'admin', ['address', 'port'], report);
  const admin = {
    address: ip(adm, 'admin.address', 'address', report) ?? BOOTSTRAP_DEFAULTS.admin.address,
    port: port(adm, 'admin.port', report) ?? BOOTSTRAP_DEFAULTS.admin.port,
  };

  let identity: BootstrapIdentity | null = null;
  if (doc.identity !== undefined) {
    const idn = section(doc, 'identity', report, false);
    only(idn, 'identity', ['caAddress', 'trustBundle', 'joinToken', 'joinTokenFile', 'trustDomain'], report);
    const caAddress = hostPort(idn, 'identity.caAddress', report, true, 'caAddress');
    const trustBundle = str(idn, 'identity.trustBundle', 'trustBundle', report, { required: true, re: /./, what: 'a file path' });
    const joinToken = str(idn, 'identity.joinToken', 'joinToken', report, { re: /^pal1\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/, what: 'a join token (pal1.<id>.<secret>, from palisade certs token)' }) ?? null;
    const joinTokenFile = str(idn, 'identity.joinTokenFile', 'joinTokenFile', report, { re: /./, what: 'a file path' }) ?? null;
    if ((joinToken === null) === (joinTokenFile === null)) report('identity', 'must set exactly one of joinToken and joinTokenFile');
    const trustDomain = str(idn, 'identity.trustDomain', 'trustDomain', report, { re: /^[a-z0-9._-]{1,255}$/, what: 'a trust domain (lowercase letters, digits, ".", "-", "_")' }) ?? null;
    if (caAddress !== undefined && trustBundle !== undefined) identity = { caAddress, trustBundle, joinToken, joinTokenFile, trustDomain };
  }

  const pol = section(doc, 'policy', report, false);
  only(pol, 'policy', ['verificationKeys'], report);
  const verificationKeys: string[] = [];
  if (pol.verificationKeys !== undefined) {
    if (!Array.isArray(pol.verificationKeys) || pol.verificationKeys.length === 0) report('policy.verificationKeys', `must be a non-empty list of PEM public key files, got ${show(pol.verificationKeys)}`);
    else pol.verificationKeys.forEach((k: unknown, i: number) => {
      if (typeof k !== 'string' || k === '') report(`policy.verificationKeys[${i}]`, `must be a file path, got ${show(k)}`);
      else verificationKeys.push(k);
    });
  }

  let extAuthz: { address: string; port: number } | null = null;
  if (doc.extAuthz !== undefined) {
    const ea = section(doc, 'extAuthz', report, false);
    only(ea, 'extAuthz', ['address', 'port'], report);
    extAuthz = {
      address: ip(ea, 'extAuthz.address', 'address', report) ?? BOOTSTRAP_DEFAULTS.extAuthz.address,
      port: port(ea, 'extAuthz.port', report) ?? BOOTSTRAP_DEFAULTS.extAuthz.port,
    };
  }

  const quota = parseQuotaBootstrap(doc.quota, report);
  let rateLimitService: { address: string; port: number } | null = null;
  if (doc.rateLimitService !== undefined) {
    const rl = section(doc, 'rateLimitService', report, false);
    only(rl, 'rateLimitService', ['address', 'port'], report);
    rateLimitService = {
      address: ip(rl, 'rateLimitService.address', 'address', report) ?? BOOTSTRAP_DEFAULTS.rateLimitService.address,
      port: port(rl, 'rateLimitService.port', report) ?? BOOTSTRAP_DEFAULTS.rateLimitService.port,
    };
    // Envoy sends it GLOBAL Quotas only: their buckets are in the quota store.
    if (quota.redis === null && !(isObj(doc.quota) && doc.quota.redis !== undefined)) report('rateLimitService', 'needs quota.redis (the store of the GLOBAL Quotas it judges by); configure quota.redis or remove rateLimitService');
  }
  const telemetry = parseTelemetryConfig(doc.telemetry, report);
  const overload = parseOverloadConfig(doc.overload, report);

  const ports: (readonly [string, number])[] = [['inbound.port', inbound.port], ['outbound.port', outbound.port], ['admin.port', admin.port]];
  if (extAuthz !== null) ports.push(['extAuthz.port', extAuthz.port]);
  if (rateLimitService !== null) ports.push(['rateLimitService.port', rateLimitService.port]);
  for (let i = 0; i < ports.length; i++) {
    for (let j = i + 1; j < ports.length; j++) {
      if (ports[i]![1] !== 0 && ports[i]![1] === ports[j]![1]) report(ports[j]![0], `must differ from ${ports[i]![0]} (both ${ports[i]![1]})`);
    }
  }

  if (errors.length > 0 || service === undefined || serviceAccount === undefined || workload === undefined) return { valid: false, errors };
  return {
    valid: true,
    result: deepFreeze({
      node: { id, service, namespace, serviceAccount, labels, locality },
      controlPlane: { address: cpAddress },
      inbound,
      workload: { address: workload },
      outbound,
      admin,
      identity,
      policy: { verificationKeys },
      extAuthz,
      rateLimitService,
      quota,
      telemetry,
      overload,
    }),
  };
}

function only(obj: Obj, path: string, known: string[], report: (p: string, m: string) => void): void {
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) report(path ? `${path}.${k}` : k, `unknown field; known fields: ${known.join(', ')}`);
  }
}

function section(obj: Obj, key: string, report: (p: string, m: string) => void, required: boolean, path = key): Obj {
  const v = obj[key];
  if (v === undefined || v === null) {
    if (required) report(path, 'missing required section');
    return {};
  }
  if (!isObj(v)) {
    report(path, `must be a mapping, got ${show(v)}`);
    return {};
  }
  return v;
}

function str(obj: Obj, path: string, key: string, report: (p: string, m: string) => void, o: { required?: boolean; re?: RegExp; what?: string }): string | undefined {
  const v = obj[key];
  if (v === undefined) {
    if (o.required) report(path, 'missing required field');
    return undefined;
  }
  if (typeof v !== 'string') {
    report(path, `must be a string, got ${show(v)}`);
    return undefined;
  }
  if (o.re && !o.re.test(v)) {
    report(path, `must be ${o.what}, got ${show(v)}`);
    return undefined;
  }
  return v;
}

function ip(obj: Obj, path: string, key: string, report: (p: string, m: string) => void): string | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || isIP(v) === 0) {
    report(path, `must be an IPv4 or IPv6 address, got ${show(v)}`);
    return undefined;
  }
  return v;
}

function port(obj: Obj, path: string, report: (p: string, m: string) => void): number | undefined {
  const v = obj.port;
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) {
    report(path, `must be an integer 0..65535 (0 picks a free port), got ${show(v)}`);
    return undefined;
  }
  return v;
}

function hostPort(obj: Obj, path: string, report: (p: string, m: string) => void, required = false, key = 'address'): string | undefined {
  const v = obj[key];
  if (v === undefined) {
    if (required) report(path, 'missing required field (host:port)');
    return undefined;
  }
  const m = typeof v === 'string' ? HOST_PORT.exec(v) : null;
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    report(path, `must be host:port with a port 1..65535, got ${show(v)}`);
    return undefined;
  }
  return v as string;
}

