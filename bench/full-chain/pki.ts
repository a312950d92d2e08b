/**
 * bench/full-chain's PKI: the run's CA (once per run, `palisade certs init-root`) and the SVIDs
 * it issues before any control plane holds its state dir: the callers' (the allowed one and
 * one the policy denies), and the server SVID the Node proxy peer presents (the sidecar's own
 * identity: spiffe://<td>/ns/default/sa/upstream), as bench/mtls-chain gives its nginx peer.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent } from 'undici';

import { CertsService } from '../../control/certs/certs-service.ts';
import { CALLER, TRUST_DOMAIN, UNKNOWN_CALLER } from '../authz/policy.ts';
import { initBenchCa } from '../common/chain-setup.ts';
import { NAMESPACE, SERVICE } from './configs.ts';

/** A key and its certificate chain: PEM file paths. */
export interface TlsFiles {
  readonly key: string;
  readonly cert: string;
}

export interface Pki {
  readonly stateDir: string;
  readonly bundle: string;
  /** The allowed caller (CALLER) and one the policy denies (UNKNOWN_CALLER). */
  readonly caller: TlsFiles;
  readonly stranger: TlsFiles;
  /** The service's SVID (spiffe://<td>/ns/default/sa/upstream), for the Node proxy peer. */
  readonly server: TlsFiles;
}

/** The service account of a SPIFFE ID `spiffe://<td>/ns/<ns>/sa/<sa>`. */
function serviceAccount(spiffeId: string): string {
  const m = /\/ns\/[^/]+\/sa\/([^/]+)$/.exec(spiffeId);
  if (m === null) throw new Error(`not a workload SPIFFE ID: ${spiffeId}`);
  return m[1]!;
}

export async function makePki(): Promise<Pki> {
  const { dir, stateDir, bundle } = initBenchCa('full-chain', TRUST_DOMAIN);
  // Issued before any control plane runs on this state dir, so that only one process holds it at a time.
  const certs = await CertsService.open(stateDir);
  try {
    const issue = async (serviceAccountName: string, name: string): Promise<TlsFiles> => {
      const svid = await certs.issueForProxy(NAMESPACE, serviceAccountName);
      const files = { key: join(dir, `${name}-key.pem`), cert: join(dir, `${name}-chain.pem`) };
      writeFileSync(files.key, svid.keyPem, { mode: 0o600 });
      writeFileSync(files.cert, svid.chainPem);
      return files;
    };
    return {
      stateDir, bundle,
      caller: await issue(serviceAccount(CALLER), 'caller'),
      stranger: await issue(serviceAccount(UNKNOWN_CALLER), 'stranger'),
      server: await issue(SERVICE, 'server'),
    };
  } finally {
    await certs.close();
  }
}

/** An undici Agent presenting `tls`; the server's SVID names a SPIFFE ID, not a host: its chain is checked against the bundle, not its name. */
export function tlsAgent(tls: TlsFiles, bundle: string): Agent {
  return new Agent({ connect: { key: readFileSync(tls.key), cert: readFileSync(tls.cert), ca: readFileSync(bundle), checkServerIdentity: () => undefined } });
}
