/** `palisade control`: the control plane (xDS server, config watcher, admin endpoint). */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { PolicyCompiler } from '../../control/config/policy-compiler.ts';
import { DirectorySource } from '../../control/config/source.ts';
import { parseDuration } from '../../control/config/schema.ts';
import { ControlPlane } from '../../control/control-plane.ts';
import { AdmissionController } from '../../control/admission/admission-controller.ts';
import { AdminServer } from '../../control/admin/admin-server.ts';
import { CertsService } from '../../control/certs/certs-service.ts';
import { createStreamAuthorizer } from '../../control/security/stream-authorizer.ts';
import { EnrollServer } from '../../control/certs/enroll-server.ts';
import { IdentityProvider, keepIdentityFresh } from '../../control/certs/server-identity.ts';
import { createLogger, LOG_LEVELS, type LogLevel } from '../../control/log.ts';
import { checkAddress, guard, parseFlags, UsageError } from '../args.ts';


export const DEFAULTS = Object.freeze({
  config: './config',
  xdsAddress: '127.0.0.1:18000',
  adminAddress: '127.0.0.1:18001',
  debounce: '100ms',
  endpointGrace: '10s',
  stateDir: './palisade-state',
  caAddress: '127.0.0.1:18002',
  logLevel: 'info' as LogLevel,
});

export const help = `Usage: palisade control [flags]

Loads every YAML/JSON document (Mesh, Service, Route) under the config directory,
serves it over xDS (ADS, state of the world and delta) to Envoy proxies, proxyless gRPC
clients and Palisade sidecars, and watches the directory: a valid edit is pushed at once;
an invalid one is refused with file, document, field and reason, and the last good
configuration stays in force.

Flags:
  --config DIR            configuration directory, watched recursively   (default ${DEFAULTS.config})
  --xds-address HOST:PORT ADS gRPC listen address; port 0 picks one        (default ${DEFAULTS.xdsAddress})
  --xds-plaintext-address HOST:PORT
                          with a CA: a second ADS port without TLS (Istio's 15010)
                          for proxyless gRPC clients that cannot present a
                          certificate (grpc-js-xds); its streams get no identity
                          and, under a STRICT mesh, only gRPC clients are
                          served there. Off unless given
  --admin-address HOST:PORT
                          admin HTTP (/ready, /api/v1/proxies, /api/v1/snapshots,
                          /api/v1/state, /api/v1/usage, /api/v1/slo, /metrics);
                          keep it on loopback                              (default ${DEFAULTS.adminAddress})
  --debounce DURATION     quiet time after a file change before reloading,
                          e.g. 50ms, 1s; 0 reloads at once                (default ${DEFAULTS.debounce})
  --endpoint-grace DURATION
                          how long a sidecar that disconnected or reported not
                          ready stays an endpoint of its Service             (default ${DEFAULTS.endpointGrace})
  --state-dir DIR         the control plane's own state: join tokens, audit log,
                          the CA, usage per tenant per day (usage/); created
                          on first use                                     (default ${DEFAULTS.stateDir})
  --ca-address HOST:PORT  HTTPS endpoint where workloads enroll (join token + CSR →
                          SVID); served only once the state dir has a CA
                          (palisade certs init-root)                       (default ${DEFAULTS.caAddress})
  --admission-bundle FILE signed OPA wasm bundle with admission/deny and/or
                          admission/patch rules run on every incoming resource
                          (repeatable; patches apply in the order given). Needs
                          --admission-verification-key; an unsigned bundle, or one
                          that does not verify, stops the start (docs/admission.md)
  --admission-verification-key FILE
                          PEM public key the admission bundles must be signed with
  --admission-dry-run     review and report admission decisions (log, /api/v1/state)
                          without enforcing them: configuration applies as read
  --policy-signing-key FILE
                          PKCS#8 PEM private key (EC P-256 or Ed25519) that signs
                          the bundles compiled from Policies with inline Rego
                          (spec.rego.inline; needs opa). Sidecars verify them with
                          the matching public key. Without it inline Rego is refused
  --slo-time-scale N      divide every SLO burn-rate window and budget window by N
                          (60: an hour passes in a minute). A test and demo aid,
                          not for production alerting                    (default 1)
  --log-level LEVEL       ${LOG_LEVELS.join('|')}  (default ${DEFAULTS.logLevel})
  -h, --help              this help

Logs are JSON lines on stderr. SIGINT/SIGTERM stop it gracefully.
`;

export function run(argv: string[]): Promise<number> {
  return guard('control', help, async () => {
    const flags = parseFlags(argv, {
      config: { type: 'string', default: DEFAULTS.config },
      'xds-address': { type: 'string', default: DEFAULTS.xdsAddress },
      'admin-address': { type: 'string', default: DEFAULTS.adminAddress },
      'xds-plaintext-address': { type: 'string' },
      debounce: { type: 'string', default: DEFAULTS.debounce },
      'endpoint-grace': { type: 'string', default: DEFAULTS.endpointGrace },
      'state-dir': { type: 'string', default: DEFAULTS.stateDir },
      'ca-address': { type: 'string', default: DEFAULTS.caAddress },
      'log-level': { type: 'string', default: DEFAULTS.logLevel },
      'admission-bundle': { type: 'string', multiple: true },
      'admission-verification-key': { type: 'string' },
      'admission-dry-run': { type: 'boolean', default: false },
      'policy-signing-key': { type: 'string' },
      'slo-time-scale': { type: 'string', default: '1' },
    });
    const level = flags['log-level'] as LogLevel;
    if (!LOG_LEVELS.includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(level)}`);
    let debounceMs: number;
    try {
      debounceMs = flags.debounce === '0' ? 0 : Math.round(parseDuration(flags.debounce));
    } catch {
      throw new UsageError(`--debounce must be a duration like 100ms or 1s, got ${JSON.stringify(flags.debounce)}`);
    }
    if (debounceMs > 60_000) throw new UsageError(`--debounce must be at most 1m, got ${JSON.stringify(flags.debounce)}`);
    let endpointGraceMs: number;
    try {
      endpointGraceMs = flags['endpoint-grace'] === '0' ? 0 : Math.round(parseDuration(flags['endpoint-grace']));
    } catch {
      throw new UsageError(`--endpoint-grace must be a duration like 10s or 500ms, got ${JSON.stringify(flags['endpoint-grace'])}`);
    }
    const sloTimeScale = Number(flags['slo-time-scale']);
    if (!/^[0-9]+(?:\.[0-9]+)?$/.test(flags['slo-time-scale']) || !(sloTimeScale >= 1 && sloTimeScale <= 100_000)) {
      throw new UsageError(`--slo-time-scale must be a number from 1 to 100000, got ${JSON.stringify(flags['slo-time-scale'])}`);
    }
    const xdsAddress = checkAddress('--xds-address', flags['xds-address']);
    const adminAddress = checkAddress('--admin-address', flags['admin-address']);
    const plaintextXds = flags['xds-plaintext-address'] === undefined ? null : checkAddress('--xds-plaintext-address', flags['xds-plaintext-address']);
    const caAddress = checkAddress('--ca-address', flags['ca-address']);
    const admissionBundles = flags['admission-bundle'] ?? [];
    const admissionKey = flags['admission-verification-key'];
    if (admissionBundles.length > 0 && admissionKey === undefined) {
      throw new UsageError('--admission-bundle needs --admission-verification-key PUB.pem: unsigned admission bundles are refused');
    }
    if (admissionBundles.length === 0 && admissionKey !== undefined) throw new UsageError('--admission-verification-key is given but no --admission-bundle');
    if (admissionBundles.length === 0 && flags['admission-dry-run']) throw new UsageError('--admission-dry-run needs at least one --admission-bundle');
    // Verified before anything listens: a bundle that does not verify stops the start.
    const admission = admissionKey === undefined ? null : await AdmissionController.fromFiles(admissionBundles, admissionKey);

    const policyCompiler = await policyCompilerFor(flags['policy-signing-key']);

    const logger = createLogger(level);
    const source = new DirectorySource({ dir: resolve(flags.config), debounceMs, policyCompiler });
    const stateDir = resolve(flags['state-dir']);
    const certs = await CertsService.open(stateDir);
    // With a CA the xDS port is mTLS: every stream presents an SVID and may only speak for its own identity.
    const identity = certs.ca === null ? null : await certs.serverIdentity();
    const provider = identity === null ? null : new IdentityProvider(identity);
    if (plaintextXds !== null && identity === null) throw new UsageError('--xds-plaintext-address needs a CA in the state dir: without one the xDS port is plaintext already');
    // The Mesh's mode, read per stream: PERMISSIVE lets cert-less streams (plaintext port) in without an identity.
    const meshMode = () => cp.state?.mesh?.spec.mtls.mode ?? 'STRICT';
    const cp: ControlPlane = new ControlPlane({
      source, xdsAddress, logger, endpointGraceMs, sloTimeScale, stateDir,
      ...(admission === null ? {} : { admission, admissionDryRun: flags['admission-dry-run'] }),
      ...(identity === null ? {} : {
        xdsCredentials: provider!.serverCredentials(),
        ...(plaintextXds === null ? {} : { xdsPlaintextAddress: plaintextXds }),
        authorizeStream: createStreamAuthorizer({ trustDomain: certs.ca!.trustDomain, mode: meshMode, plaintextKinds: ['grpc'] }),
        trustBundle: certs.trust().bundle,
        crl: certs.trust().crl,
        // Envoys get their workload certificate as the SDS Secret `default` (they cannot send a CSR).
        issueCertificate: (namespace: string, serviceAccount: string) => certs.issueForProxy(namespace, serviceAccount),
      }),
    });
    const admin = new AdminServer(cp, certs);
    await cp.start();
    const adminBound = await admin.listen(adminAddress);
    let enrollServer: EnrollServer | null = null;
    let caBound: string | null = null;
    if (identity !== null) {
      enrollServer = new EnrollServer(certs, identity);
      caBound = await enrollServer.listen(caAddress);
    } else {
      logger.info({ stateDir }, 'no CA in the state dir: enrollment is off (palisade certs init-root makes one)');
    }
    const fresh = provider === null ? null : keepIdentityFresh(certs, provider, logger, (next) => enrollServer?.setIdentity(next));
    // A revocation or a root-rotation phase reaches every Envoy and sidecar in the next push (SDS ROOTCA).
    certs.onTrustChange((trust, cause) => {
      const pushed = cp.setTrust(trust);
      logger.info({ cause, pushed, roots: (trust.bundle.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length, crl: trust.crl !== null }, 'trust bundle and CRL republished');
      // After a rotation phase the control plane's own SVID comes from the new intermediate, with the new bundle.
      if (cause === 'rotation-started' || cause === 'rotation-finished') void fresh?.renewNow();
    });
    admin.markReady();
    logger.info({ xds: cp.xdsAddress, admin: adminBound, ca: caBound, config: resolve(flags.config), stateDir,
      admission: admission === null ? null : { bundles: admission.bundles, dryRun: flags['admission-dry-run'] } }, 'control plane ready');
    process.stdout.write(`palisade control: xDS on ${cp.xdsAddress}${cp.xdsPlaintextAddress === null ? '' : ` (plaintext ${cp.xdsPlaintextAddress})`}, admin on http://${adminBound}${caBound === null ? '' : `, CA on https://${caBound}`}, config ${resolve(flags.config)}\n`);

    await new Promise<void>((done) => {
      const stop = (signal: string) => {
        logger.info({ signal }, 'shutting down');
        done();
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
    fresh?.stop();
    await admin.close();
    await enrollServer?.close();
    await cp.close();
    admission?.close();
    await certs.close();
    logger.flush();
    return 0;
  });
}

/** The compiler for inline-Rego Policies, signing with the PEM key in `keyFile` (none: inline Rego is refused at its field). */
export async function policyCompilerFor(keyFile: string | undefined): Promise<PolicyCompiler> {
  if (keyFile === undefined) return new PolicyCompiler({ signingKeyPem: null });
  const pem = await readFile(keyFile, 'utf8').catch((err: unknown) => {
    throw new UsageError(`--policy-signing-key: cannot read ${keyFile}: ${(err as Error).message}`);
  });
  try {
    return new PolicyCompiler({ signingKeyPem: pem });
  } catch (err) {
    throw new UsageError(`--policy-signing-key ${keyFile}: ${(err as Error).message.replace(/^signingKeyPem /, '')}`);
  }
}
