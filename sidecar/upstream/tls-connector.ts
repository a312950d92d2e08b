/**
 * Upstream TLS for one cluster transport socket (an `UpstreamTlsContext`): an undici `connect`
 * function per host that opens node:tls with the cluster's SNI, ALPN and protocol versions,
 * the workload certificate and trust bundle read from TlsSecrets *at connect time*, and
 * Envoy's server checks.
 *
 *   connect(host) → secure context for secrets.generation (cached; rebuilt when it moves)
 *                 → tls.connect({ secureContext, servername: sni, ALPNProtocols, session })
 *                 → chain verified against the bundle (node:tls), then checkServerIdentity:
 *                   some SAN matches some matcher (any, when none is configured; the host
 *                   name is never checked, as Envoy) and the leaf serial is not revoked
 *                 → 'secureConnect': the socket goes to undici (h2 by ALPN, or forced for
 *                   HTTP/2 clusters, as Envoy picks the codec from the cluster, not ALPN)
 *
 * A renewed certificate or a new bundle changes `generation`, so it reaches new connections
 * only; pooled connections keep theirs. TLS sessions are kept per host and generation
 * (`max_session_keys`, default 1) for resumption. Failures before the handshake completes
 * are connect failures: TCP errors and undici's ConnectTimeoutError as they are, TLS errors
 * as UpstreamTlsError, missing secrets as UpstreamTlsSecretError.
 */
import { connect as tlsConnect, createSecureContext, type PeerCertificate, type SecureContext, type TLSSocket } from 'node:tls';
import { errors as undiciErrors, type buildConnector } from 'undici';
import { stringMatches } from '../routing/string-matcher.ts';
import type { TlsSecrets } from '../tls/secrets.ts';
import type { SanMatcherConfig, UpstreamTlsConfig } from './cluster-config.ts';
import { UpstreamTlsError, UpstreamTlsSecretError } from './errors.ts';

/** Counters of a cluster's upstream TLS, shared by its transports. */
export interface UpstreamTlsStats {
  /** Handshakes completed. */
  handshakes: number;
  /** Of them, resumed sessions. */
  resumed: number;
  /** Handshakes that failed (chain, SAN, revoked serial, refused by the server) or could not start (missing secret). */
  failures: number;
}

/** Socket errors that are TCP-level, passed to undici as they are. */
const TCP_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/** SANs of a peer certificate, from Node's `subjectaltname` string (values with `,` or `"` come JSON-quoted). */
export function parseSans(subjectaltname: string | undefined): Array<{ type: string; value: string }> {
  const out: Array<{ type: string; value: string }> = [];
  if (subjectaltname === undefined || subjectaltname === '') return out;
  const re = /(DNS|URI|IP Address|email|othername|DirName|Registered ID):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g;
  for (const m of subjectaltname.matchAll(re)) {
    let value = m[2]!;
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        continue;
      }
    }
    out.push({ type: m[1]!, value });
  }
  return out;
}

const SAN_TYPE_OF: Readonly<Record<string, SanMatcherConfig['sanType']>> = { DNS: 'DNS', URI: 'URI', email: 'EMAIL', 'IP Address': 'IP_ADDRESS' };

/** Envoy's rule: some SAN matches some matcher; legacy (ANY) matchers look at DNS, URI, email and IP SANs. */
export function sansMatch(matchers: readonly SanMatcherConfig[], sans: ReadonlyArray<{ type: string; value: string }>): boolean {
  for (const san of sans) {
    const t = SAN_TYPE_OF[san.type];
    if (t === undefined) continue;
    for (const m of matchers) if ((m.sanType === 'ANY' || m.sanType === t) && stringMatches(m.matcher, san.value)) return true;
  }
  return false;
}

interface Material {
  readonly generation: number;
  readonly context: SecureContext;
}

export class UpstreamTlsTransport {
  readonly config: UpstreamTlsConfig;
  readonly #cluster: string;
  readonly #secrets: TlsSecrets | null;
  readonly #stats: UpstreamTlsStats;
  #material: Material | null = null;
  /** host key → sessions of one secrets generation, newest last. */
  readonly #sessions = new Map<string, { generation: number; sessions: Buffer[] }>();

  constructor(cluster: string, config: UpstreamTlsConfig, secrets: TlsSecrets | null, stats: UpstreamTlsStats) {
    this.#cluster = cluster;
    this.config = config;
    this.#secrets = secrets;
    this.#stats = stats;
  }

  /**
   * The undici connector for one host (`hostKey`: `address:port`). `forceH2`: the cluster
   * speaks HTTP/2 whatever ALPN says. `timeoutMs`: the cluster's connect timeout (TCP and
   * handshake together, as undici's own connector).
   */
  connector(hostKey: string, forceH2: boolean, timeoutMs: number): buildConnector.connector {
    return (opts, callback) => this.#connect(hostKey, forceH2, timeoutMs, opts, callback);
  }

  #connect(hostKey: string, forceH2: boolean, timeoutMs: number, opts: buildConnector.Options, callback: buildConnector.Callback): void {
    const c = this.config;
    let material: Material;
    try {
      material = this.#currentMaterial();
    } catch (e) {
      this.#stats.failures++;
      callback(e as Error, null);
      return;
    }
    const generation = material.generation;
    const session = this.#session(hostKey, generation);
    const validation = c.validation;
    const socket = tlsConnect({
      host: opts.hostname,
      port: Number(opts.port),
      secureContext: material.context,
      ...(c.sni === '' ? {} : { servername: c.sni }),
      ...(c.alpn.length === 0 ? {} : { ALPNProtocols: [...c.alpn] }),
      ...(session === undefined ? {} : { session }),
      rejectUnauthorized: validation !== null,
      checkServerIdentity: (_host: string, cert: PeerCertificate) => this.#checkServer(cert),
    });
    let done = false;
    let tcp = false;
    const timer = setTimeout(() => {
      socket.destroy(new undiciErrors.ConnectTimeoutError(`Connect Timeout Error (attempted address: ${hostKey}, timeout: ${timeoutMs}ms)`));
    }, timeoutMs);
    timer.unref();
    const finish = (err: Error | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err === null) {
        callback(null, socket);
        return;
      }
      const code = (err as { code?: unknown }).code;
      if (!tcp && typeof code === 'string' && TCP_ERRORS.has(code)) {
        callback(err, null);
        return;
      }
      if (code === 'UND_ERR_CONNECT_TIMEOUT') {
        callback(err, null);
        return;
      }
      this.#stats.failures++;
      callback(new UpstreamTlsError(`upstream TLS handshake with ${hostKey} (cluster ${JSON.stringify(this.#cluster)}, transport socket ${JSON.stringify(c.name)}) failed: ${err.message}`, { cause: err }), null);
    };
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    socket.once('connect', () => {
      tcp = true;
    });
    socket.on('session', (s: Buffer) => this.#keepSession(hostKey, generation, s));
    socket.once('secureConnect', () => {
      this.#stats.handshakes++;
      if (socket.isSessionReused()) this.#stats.resumed++;
      if (forceH2) (socket as TLSSocket & { alpnProtocol: string | false }).alpnProtocol = 'h2';
      finish(null);
    });
    socket.on('error', (err: Error) => finish(err));
    // A peer that closes during the handshake without an alert.
    socket.once('close', () => finish(new Error('connection closed during the TLS handshake')));
  }

  /** The secure context for the secrets as they are now; built once per generation. */
  #currentMaterial(): Material {
    const generation = this.#secrets?.generation ?? 0;
    const cached = this.#material;
    if (cached !== null && cached.generation === generation) return cached;
    const c = this.config;
    const where = `cluster ${JSON.stringify(this.#cluster)}, transport socket ${JSON.stringify(c.name)}`;
    const sds = (kind: string, name: string): TlsSecrets => {
      if (this.#secrets === null) throw new UpstreamTlsSecretError(`${where} needs the SDS ${kind} secret ${JSON.stringify(name)}, but the sidecar has no TLS secrets`);
      return this.#secrets;
    };
    let key: string | undefined;
    let cert: string | undefined;
    let ca: string | undefined;
    const cs = c.certificate;
    if (cs !== null) {
      if (cs.kind === 'inline') {
        key = cs.keyPem;
        cert = cs.chainPem;
      } else {
        const secret = sds('certificate', cs.name).certificate(cs.name);
        if (secret === null) throw new UpstreamTlsSecretError(`${where} needs the SDS certificate secret ${JSON.stringify(cs.name)}, which is not available yet`);
        key = secret.keyPem;
        cert = secret.chainPem;
      }
    }
    const v = c.validation;
    if (v !== null) {
      if (v.sdsName !== null) {
        const secret = sds('validation', v.sdsName).validation(v.sdsName);
        if (secret === null) throw new UpstreamTlsSecretError(`${where} needs the SDS validation secret ${JSON.stringify(v.sdsName)}, which is not available yet`);
        ca = secret.bundlePem;
      } else {
        ca = v.trustedCaPem ?? undefined;
      }
    }
    let context: SecureContext;
    try {
      context = createSecureContext({
        minVersion: c.minVersion,
        maxVersion: c.maxVersion,
        ...(key === undefined ? {} : { key, cert }),
        ...(ca === undefined ? {} : { ca }),
      });
    } catch (e) {
      throw new UpstreamTlsSecretError(`${where}: the TLS material does not load: ${(e as Error).message}`, { cause: e });
    }
    const m = { generation, context };
    this.#material = m;
    return m;
  }

  /** SAN matchers and revocation; undefined accepts (the chain was verified by node:tls already). */
  #checkServer(cert: PeerCertificate): Error | undefined {
    const v = this.config.validation;
    if (v === null) return undefined;
    if (v.sanMatchers.length > 0 && !sansMatch(v.sanMatchers, parseSans(cert.subjectaltname))) {
      return new Error(`the server certificate's SANs (${cert.subjectaltname || 'none'}) match none of the cluster's subject alt name matchers`);
    }
    if (v.sdsName !== null && this.#secrets !== null && this.#secrets.isRevoked(cert.serialNumber, v.sdsName)) {
      return new Error(`the server certificate's serial ${cert.serialNumber} is revoked`);
    }
    return undefined;
  }

  #session(hostKey: string, generation: number): Buffer | undefined {
    const entry = this.#sessions.get(hostKey);
    if (entry === undefined || entry.generation !== generation) return undefined;
    return entry.sessions[entry.sessions.length - 1];
  }

  #keepSession(hostKey: string, generation: number, session: Buffer): void {
    const max = this.config.maxSessionKeys;
    if (max === 0) return;
    let entry = this.#sessions.get(hostKey);
    if (entry === undefined || entry.generation !== generation) {
      // Sessions of an older generation were made with older material: drop them.
      if (entry !== undefined && entry.generation > generation) return;
      entry = { generation, sessions: [] };
      this.#sessions.set(hostKey, entry);
    }
    entry.sessions.push(session);
    if (entry.sessions.length > max) entry.sessions.splice(0, entry.sessions.length - max);
  }

  /** Forgets the sessions of hosts no longer in the cluster. */
  forgetHosts(keep: ReadonlySet<string>): void {
    for (const k of this.#sessions.keys()) if (!keep.has(k)) this.#sessions.delete(k);
  }
}
