/**
 * What the demo's steps share: the options, what earlier steps started (backends, config
 * directory, control plane, client), the "where to look" lines they collect, and the
 * cleanups that stop it all, newest first.
 */
import type { ControlPlane } from '../../control/control-plane.ts';
import type { CertsService } from '../../control/certs/certs-service.ts';
import type { EchoBackend } from './echo-backend.ts';
import type { DemoClient } from './grpc-client.ts';
import type { HttpWorkload } from './http-workload.ts';
import type { Sidecar, SidecarAddresses } from '../../sidecar/sidecar.ts';

export interface DemoOptions {
  /** Run the steps, stop, exit. */
  once: boolean;
  /** Calls per measured split. */
  calls: number;
  xdsAddress: string;
  /** True when xdsAddress is the built-in default (so a busy port may be swapped for a free one). */
  xdsAddressIsDefault: boolean;
  adminAddress: string;
  adminAddressIsDefault: boolean;
  /** `--config DIR`: a configuration used as is (no sample written, no edits), or null. */
  configDir: string | null;
}

/** Time one cleanup may take before the demo stops waiting for it, ms. */
const CLEANUP_TIMEOUT_MS = 5000;

export class DemoContext {
  readonly options: Readonly<DemoOptions>;
  /** Writes a line of output. */
  readonly print: (line: string) => void;

  /** The echo backends, in Service endpoint order. */
  backends: EchoBackend[] = [];
  /** Weight of each backend (same order) in the Service file as last written. */
  weights: number[] = [];
  /** The configuration directory the control plane watches. */
  configDir: string | undefined;
  controlPlane: ControlPlane | undefined;
  /** Bound ADS address (mTLS: client certificates required), host:port. */
  xdsAddress: string | undefined;
  /** The plaintext ADS port for the proxyless gRPC client (grpc-js-xds cannot do TLS), host:port. */
  grpcXdsAddress: string | undefined;
  /** The mesh CA: sidecars enroll at `caAddress` with a join token and trust `bundleFile`. */
  mesh: { certs: CertsService; caAddress: string; bundleFile: string; trustDomain: string } | undefined;
  /** The policy signing key pair: bundles are signed with `privatePem`; sidecars verify with `publicKeyFile`. */
  policyKey: { privatePem: string; publicKeyFile: string } | undefined;
  /** Bound admin address, host:port. */
  adminAddress: string | undefined;
  client: DemoClient | undefined;
  /** The sample HTTP workloads (frontend, backend), in HTTP_SERVICES order. */
  workloads: HttpWorkload[] = [];
  /** One sidecar per workload, same order, with its bound addresses. */
  sidecars: Array<{ name: string; nodeId: string; sidecar: Sidecar; addresses: SidecarAddresses }> = [];
  /** Lines for the closing "where to look" block, added by the steps that start something. */
  readonly lookAround: string[] = [];

  readonly #cleanups: Array<{ what: string; fn: () => void | Promise<void> }> = [];

  constructor(options: DemoOptions, print: (line: string) => void) {
    this.options = Object.freeze({ ...options });
    this.print = print;
    this.configDir = options.configDir ?? undefined;
  }

  /** Registers `fn` to run at shutdown; cleanups run in reverse order of registration. */
  defer(what: string, fn: () => void | Promise<void>): void {
    this.#cleanups.push({ what, fn });
  }

  /** `value`, or an error saying which earlier result is missing. */
  need<T>(value: T | undefined, what: string): T {
    if (value === undefined) throw new Error(`no ${what}: the step that provides it did not run`);
    return value;
  }

  /** Runs every cleanup, newest first, each bounded; resolves with the ones that failed. */
  async close(): Promise<string[]> {
    const problems: string[] = [];
    for (const { what, fn } of this.#cleanups.splice(0).reverse()) {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(fn),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`did not stop within ${CLEANUP_TIMEOUT_MS / 1000} s`)), CLEANUP_TIMEOUT_MS);
          }),
        ]);
      } catch (err) {
        problems.push(`${what}: ${(err as Error).message}`);
      } finally {
        clearTimeout(timer);
      }
    }
    return problems;
  }
}
