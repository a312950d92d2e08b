/**
 * Interop: grpc-go's xDS resolver (an independent client, stricter in validation than
 * grpc-js-xds) resolves xds:///echo through our control plane, ACKs LDS/RDS/CDS/EDS and
 * splits calls by the Service's endpoint weights; a weight edit is followed live.
 *
 * The client is test/interop/grpc-go (a Go module pinned by go.sum), built here with
 * `go build` and driven over stdin/stdout: `calls N` answers one JSON line of counts per
 * backend name, `{"error": "..."}` on failure. Go is required: without it the suite fails.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoServer, type EchoServer } from '../helpers/echo-server.ts';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.ts';
import type { ProxyRecord } from '../../control/inventory/inventory.ts';
import { GO_BUILD_TIMEOUT_MS, goBuild, requireGo } from '../helpers/go-build.ts';

const MODULE_DIR = join(dirname(fileURLToPath(import.meta.url)), 'grpc-go');
const NODE_ID = 'grpc-go-interop';
/** One `calls 400` batch: sequential loopback calls take well under a second. */
const COMMAND_TIMEOUT_MS = 30_000;
const XDS_TYPES = ['LDS', 'RDS', 'CDS', 'EDS'] as const;

function serviceYaml(a: EchoServer, b: EchoServer, wa: number, wb: number): string {
  return `apiVersion: palisade.dev/v1
kind: Service
metadata: { name: echo, namespace: default }
spec:
  protocol: grpc
  port: 50051
  endpoints:
    - { address: 127.0.0.1, port: ${a.port}, weight: ${wa} }
    - { address: 127.0.0.1, port: ${b.port}, weight: ${wb} }
`;
}


/** The Go client process: one command in, one JSON line out. */
class GoClient {
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #lines: string[] = [];
  #waiter: (() => void) | null = null;
  #stderr = '';
  #exited = false;

  constructor(bin: string, bootstrap: object) {
    this.#proc = spawn(bin, ['-target', 'xds:///echo', '-bootstrap-config', JSON.stringify(bootstrap)], {
      env: { ...process.env, GRPC_GO_LOG_SEVERITY_LEVEL: 'warning', GRPC_GO_LOG_VERBOSITY_LEVEL: '0' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    createInterface({ input: this.#proc.stdout }).on('line', (line) => {
      this.#lines.push(line);
      this.#waiter?.();
    });
    this.#proc.stderr.on('data', (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-8192);
    });
    this.#proc.on('exit', () => {
      this.#exited = true;
      this.#waiter?.();
    });
  }

  /** grpc-go's recent log output, for failure messages. */
  get stderr(): string {
    return this.#stderr;
  }

  async #nextLine(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.#lines.length === 0) {
      if (this.#exited) throw new Error(`grpc-go client exited; stderr:\n${this.#stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`grpc-go client gave no answer within ${timeoutMs} ms; stderr:\n${this.#stderr}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#waiter = null;
    }
    return this.#lines.shift()!;
  }

  /** Makes n calls; resolves the reply counts per backend, rejects with grpc-go's error. */
  async calls(n: number): Promise<{ a: number; b: number }> {
    this.#proc.stdin.write(`calls ${n}\n`);
    const line = await this.#nextLine(COMMAND_TIMEOUT_MS);
    let reply: Record<string, number> & { error?: string };
    try {
      reply = JSON.parse(line) as typeof reply;
    } catch {
      throw new Error(`grpc-go client printed a non-JSON line: ${line}`);
    }
    if (reply.error !== undefined) throw new Error(`grpc-go: ${reply.error}\nstderr:\n${this.#stderr}`);
    return { a: reply.a ?? 0, b: reply.b ?? 0 };
  }

  async close(): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise<void>((resolve) => this.#proc.once('exit', () => resolve()));
    this.#proc.stdin.end('quit\n');
    const t = setTimeout(() => this.#proc.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  }
}

let a: EchoServer;
let b: EchoServer;
let cp: TestControlPlane;
let client: GoClient;
let binDir: string;
/** Set when setup fails, so each test fails with it rather than being reported skipped. */
let setupError: unknown;

beforeAll(async () => {
  try {
    await setUp();
  } catch (err) {
    setupError = err;
  }
}, GO_BUILD_TIMEOUT_MS + 30_000);

function ready(): void {
  if (setupError !== undefined) throw setupError;
}

async function setUp(): Promise<void> {
  requireGo('grpc-go interop');
  binDir = await mkdtemp(join(tmpdir(), 'palisade-grpc-go-'));
  const bin = join(binDir, 'grpc-go-interop');
  await goBuild(MODULE_DIR, bin);
  a = await startEchoServer('a');
  b = await startEchoServer('b');
  cp = await startControlPlane({ 'echo.yaml': serviceYaml(a, b, 3, 1) });
  const bootstrap = {
    xds_servers: [{ server_uri: cp.address, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: NODE_ID, cluster: 'interop', locality: {}, metadata: { 'palisade.io/namespace': 'default' } },
  };
  client = new GoClient(bin, bootstrap);
}

afterAll(async () => {
  await client?.close();
  await cp?.close();
  await a?.close();
  await b?.close();
  if (binDir) await rm(binDir, { recursive: true, force: true });
}, 15_000);

/** Waits (bounded) until every type the proxy was sent is answered, by ACK or NACK. */
async function settledProxy(timeoutMs: number): Promise<ProxyRecord | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const p = cp.cp.inventory.list().find((r) => r.nodeId === NODE_ID);
    const answered = p !== undefined && XDS_TYPES.every((t) => {
      const s = p.types[t];
      return s !== undefined && s.sentNonce !== '' && (s.ackedNonce === s.sentNonce || s.lastNack?.nonce === s.sentNonce);
    });
    if (answered || Date.now() > deadline) return p;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('grpc-go xDS client against palisade control', () => {
  it('resolves xds:///echo, ACKs LDS/RDS/CDS/EDS and splits calls 3:1 by endpoint weight', async () => {
    ready();
    const d = await client.calls(400);
    expect(d.a + d.b).toBe(400);
    expect(d.a / 400).toBeGreaterThan(0.75 - 0.08);
    expect(d.a / 400).toBeLessThan(0.75 + 0.08);

    const proxy = await settledProxy(5000);
    expect(cp.cp.inventory.list()).toHaveLength(1);
    expect(proxy).toMatchObject({ nodeId: NODE_ID, kind: 'grpc' });
    for (const t of XDS_TYPES) {
      const s = proxy!.types[t];
      expect(s, `${t} status`).toBeDefined();
      // A NACK here is grpc-go rejecting what we sent: its error text is the finding.
      expect(s!.lastNack, `${t} NACKed by grpc-go`).toBeNull();
      expect(s!.sentNonce, `${t} sent`).not.toBe('');
      expect(s!.ackedNonce, `${t} ACKed`).toBe(s!.sentNonce);
    }
  }, 60_000);

  it('follows a weight edit to 1:3 without a restart', async () => {
    ready();
    await cp.write('echo.yaml', serviceYaml(a, b, 1, 3));
    // Wait (bounded) until the client balances by the new weights.
    const deadline = Date.now() + 15_000;
    let probe = await client.calls(100);
    while (probe.b <= probe.a && Date.now() < deadline) probe = await client.calls(100);
    expect(probe.b, `no 1:3 split within 15 s, last probe ${JSON.stringify(probe)}`).toBeGreaterThan(probe.a);

    const d = await client.calls(400);
    expect(d.a + d.b).toBe(400);
    expect(d.b / 400).toBeGreaterThan(0.75 - 0.08);
    expect(d.b / 400).toBeLessThan(0.75 + 0.08);

    const proxy = await settledProxy(5000);
    for (const t of XDS_TYPES) expect(proxy!.types[t]!.lastNack, `${t} NACKed by grpc-go after the edit`).toBeNull();
  }, 60_000);
});
