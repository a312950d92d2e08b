/**
 * Certificate rotation under load: a steady stream of requests from frontend's workload to
 * backend (keep-alive and fresh client connections, through both sidecars over mTLS) runs
 * while the sidecars renew their SVIDs and while the CA rotates its root. Not one request
 * may fail, and new sidecar-to-sidecar handshakes must use the new certificates.
 *
 * Pooled upstream connections keep the certificate they were made with, so the test opens new
 * ones on purpose: bursts of slow requests, each larger than the sidecar's pool can serve with
 * the connections it has, and direct mTLS clients to backend's inbound listener.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { mtlsGet, startMesh, type TestMesh } from '../../helpers/mesh.ts';
import type { Sidecar, SidecarAddresses } from '../../../sidecar/sidecar.ts';
import { chainsTo, pemCertificates } from '../../../sidecar/identity/workload-tls.ts';
import { httpGet } from '../../helpers/http.ts';
import { servicesYaml } from '../../helpers/services-yaml.ts';
import { until } from '../../helpers/until.ts';

const SERVICES = servicesYaml({ name: 'frontend', port: 8080 }, { name: 'backend', port: 8080 });
/** How long backend's workload holds a `/slow` request, ms: long enough for a burst to be concurrent. */
const SLOW_MS = 150;
const KEEP_ALIVE_LOOPS = 4;
const FRESH_LOOPS = 2;

let mesh: TestMesh;
let backendWorkload: Server;
let frontend: { sidecar: Sidecar; addresses: SidecarAddresses };
let backend: { sidecar: Sidecar; addresses: SidecarAddresses };

function listen(s: Server): Promise<number> {
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
}

/** XFCC `Hash=` as the backend sidecar computes it: sha256 of the client leaf's DER, hex. */
function leafHash(chainPem: string): string {
  return createHash('sha256').update(new X509Certificate(chainPem).raw).digest('hex');
}

function serialOf(s: Sidecar): string {
  return s.secrets.certificate()!.serial;
}

function roots(s: Sidecar): number {
  return pemCertificates(s.secrets.validation()!.bundlePem).length;
}

function inboundTls(s: Sidecar): { handshakes: number; refused: number } {
  return (s.stats() as { listeners: { inbound: { tls: { handshakes: number; refused: number } } } }).listeners.inbound.tls;
}

/**
 * Requests to backend through frontend's outbound listener until stopped: keep-alive loops on
 * one undici Pool and loops that open a new client connection per request. Every answer that
 * is not a 200 from backend's workload (or any error) is a failure; XFCC hashes are collected.
 */
class Load {
  readonly failures: string[] = [];
  readonly hashes = new Set<string>();
  ok = 0;
  okFresh = 0;
  readonly #pool: Pool;
  readonly #loops: Promise<void>[] = [];
  #stopped = false;
  readonly outbound: string;

  constructor(outbound: string) {
    this.outbound = outbound;
    this.#pool = new Pool(`http://${outbound}`, { connections: KEEP_ALIVE_LOOPS });
  }

  start(): void {
    for (let i = 0; i < KEEP_ALIVE_LOOPS; i++) this.#loops.push(this.#loop(() => this.#keepAlive()));
    for (let i = 0; i < FRESH_LOOPS; i++) this.#loops.push(this.#loop(async () => {
      if (await this.fresh('/who')) this.okFresh++;
    }));
  }

  /** Stops the loops (the requests in flight complete) and closes the pool. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#loops);
    await this.#pool.close();
  }

  /** One request over a new client connection; true when backend's workload answered 200. */
  async fresh(path: string): Promise<boolean> {
    try {
      const r = await httpGet(this.outbound, path, { host: 'backend:8080' });
      return this.#record(r.status, r.body);
    } catch (err) {
      this.failures.push(`fresh ${path}: ${(err as Error).message}`);
      return false;
    }
  }

  /**
   * `n` concurrent slow requests over new client connections: frontend's sidecar needs `n`
   * upstream connections at once. Returns the XFCC hashes they arrived with.
   */
  async burst(n: number): Promise<Set<string>> {
    const seen = new Set<string>();
    await Promise.all(Array.from({ length: n }, async () => {
      try {
        const r = await httpGet(this.outbound, `/slow`, { host: 'backend:8080' });
        if (this.#record(r.status, r.body)) seen.add(hashIn(r.body)!);
      } catch (err) {
        this.failures.push(`burst: ${(err as Error).message}`);
      }
    }));
    return seen;
  }

  async #loop(step: () => Promise<void>): Promise<void> {
    while (!this.#stopped) await step();
  }

  async #keepAlive(): Promise<void> {
    try {
      const r = await this.#pool.request({ path: '/who', method: 'GET', headers: { host: 'backend:8080' } });
      this.#record(r.statusCode, await r.body.text());
    } catch (err) {
      this.failures.push(`keep-alive: ${(err as Error).message}`);
    }
  }

  #record(status: number, body: string): boolean {
    const hash = status === 200 ? hashIn(body) : null;
    if (hash === null) {
      this.failures.push(`${status} ${body.slice(0, 200)}`);
      return false;
    }
    this.ok++;
    this.hashes.add(hash);
    return true;
  }
}

/** The XFCC Hash in backend's workload's answer, or null when it is not one. */
function hashIn(body: string): string | null {
  try {
    const xfcc = (JSON.parse(body) as { xfcc?: unknown }).xfcc;
    return typeof xfcc === 'string' ? (/;Hash=([0-9a-f]{64});/.exec(xfcc)?.[1] ?? null) : null;
  } catch {
    return null;
  }
}

let burstSize = 0;
/**
 * Opens new frontend→backend connections until one carries `hash` (frontend's current leaf):
 * each burst is larger than every earlier one by more than the steady load's concurrency, so
 * the sidecar's pool cannot serve it with the connections it already has.
 */
async function newConnectionPresents(load: Load, hash: string): Promise<boolean> {
  for (let attempt = 0; attempt < 4; attempt++) {
    burstSize += KEEP_ALIVE_LOOPS + FRESH_LOOPS + 4;
    if ((await load.burst(burstSize)).has(hash)) return true;
  }
  return false;
}

beforeAll(async () => {
  backendWorkload = createServer((req, res) => {
    const answer = () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ xfcc: req.headers['x-forwarded-client-cert'] ?? null }));
    };
    if (req.url === '/slow') setTimeout(answer, SLOW_MS);
    else answer();
  });
  const backendPort = await listen(backendWorkload);
  mesh = await startMesh(SERVICES, { mode: 'STRICT' });
  backend = await mesh.startSidecar('backend', backendPort);
  frontend = await mesh.startSidecar('frontend', 1);
  await until('backend reachable over the mesh', async () => (await httpGet(frontend.addresses.outbound, '/who', { host: 'backend:8080' })).status === 200, 15_000, 50);
}, 60_000);

afterAll(async () => {
  await mesh?.close();
  if (backendWorkload?.listening) await new Promise<void>((r) => backendWorkload.close(() => r()));
});

describe('mTLS certificate rotation under load', () => {
  it('renews both sidecars\' SVIDs repeatedly without failing a request, and new handshakes use the new certificates', async () => {
    const load = new Load(frontend.addresses.outbound);
    load.start();
    try {
      const firstHash = leafHash(frontend.sidecar.identity!.chainPem);
      await until('traffic on the first certificate', () => load.hashes.has(firstHash), 5000);
      const seenFrontend = new Set([serialOf(frontend.sidecar)]);
      const seenBackend = new Set([serialOf(backend.sidecar)]);
      for (let round = 1; round <= 3; round++) {
        const handshakesBefore = inboundTls(backend.sidecar).handshakes;
        await Promise.all([frontend.sidecar.renewIdentity(), backend.sidecar.renewIdentity()]);
        const f = serialOf(frontend.sidecar);
        const b = serialOf(backend.sidecar);
        // A renewal that failed would keep the serial (renewNow logs and retries).
        expect(seenFrontend.has(f), `frontend serial ${f} after round ${round}`).toBe(false);
        expect(seenBackend.has(b), `backend serial ${b} after round ${round}`).toBe(false);
        seenFrontend.add(f);
        seenBackend.add(b);
        // New sidecar-to-sidecar connections carry frontend's new certificate…
        expect(await newConnectionPresents(load, leafHash(frontend.sidecar.identity!.chainPem))).toBe(true);
        expect(inboundTls(backend.sidecar).handshakes).toBeGreaterThan(handshakesBefore);
        // …and backend's inbound listener presents its new one to a new client.
        const direct = await mtlsGet(backend.addresses.inbound, { ...frontend.sidecar.identity!, ca: frontend.sidecar.secrets.validation()!.bundlePem }, '/who', 'backend');
        expect(direct.status).toBe(200);
        expect(direct.serverSerial.replace(/^0+/, '')).toBe(b);
      }
      expect(seenFrontend.size).toBe(4);
      expect(seenBackend.size).toBe(4);
    } finally {
      await load.stop();
    }
    expect(load.failures).toEqual([]);
    expect(load.okFresh).toBeGreaterThan(0);
    expect(load.ok).toBeGreaterThan(50);
  }, 30_000);

  it('rotates the root (start, sidecars move to the new root, finish) without failing a request', async () => {
    const load = new Load(frontend.addresses.outbound);
    load.start();
    let okFreshAtFinish: number | undefined;
    try {
      const oldRoots = pemCertificates(mesh.certs.trust().bundle);
      expect(oldRoots).toHaveLength(1);
      const started = await mesh.certs.startRotation({ rootKey: 'keyring', actor: 'test' });
      expect(started.status.phase).toBe('rotating');
      const newRoot = pemCertificates(mesh.certs.trust().bundle).find((p) => !oldRoots.includes(p))!;
      expect(newRoot).toBeDefined();
      const sidecars = [frontend.sidecar, backend.sidecar];
      // The pushed bundle holds both roots; each sidecar renews from the new intermediate within a few seconds.
      await until('both sidecars trust both roots', () => sidecars.every((s) => roots(s) === 2), 5000);
      await until('both sidecars renewed onto the new root', () => sidecars.every((s) => chainsTo(s.identity!.chainPem, newRoot)), 10_000);
      for (const s of sidecars) expect(chainsTo(s.identity!.chainPem, oldRoots[0]!)).toBe(false);
      await until('no live certificate chains to the old root', () => mesh.certs.rotationStatus().liveCerts.oldRoot === 0, 5000);
      expect(mesh.certs.rotationStatus().liveCerts.root).toBeGreaterThanOrEqual(2);
      expect(await newConnectionPresents(load, leafHash(frontend.sidecar.identity!.chainPem))).toBe(true);

      const finished = await mesh.certs.finishRotation({ actor: 'test' });
      expect(finished.stranded).toBe(0);
      expect(finished.status.phase).toBe('none');
      await until('both sidecars trust the new root alone', () => sidecars.every((s) => roots(s) === 1), 5000);
      for (const s of sidecars) expect(s.secrets.validation()!.bundlePem).toContain(newRoot);
      const handshakesAfterFinish = inboundTls(backend.sidecar).handshakes;
      const atFinish = load.okFresh;
      okFreshAtFinish = atFinish;
      // Keep the load running a while after the old root is gone; new connections still work.
      await until('fresh-connection requests after finish', () => load.okFresh >= atFinish + 50, 10_000);
      const hashes = await load.burst(burstSize + KEEP_ALIVE_LOOPS + FRESH_LOOPS + 4);
      expect(hashes.has(leafHash(frontend.sidecar.identity!.chainPem))).toBe(true);
      expect(inboundTls(backend.sidecar).handshakes).toBeGreaterThan(handshakesAfterFinish);
      // A new client that trusts only the new root is served by backend's inbound listener.
      const direct = await mtlsGet(backend.addresses.inbound, { ...frontend.sidecar.identity!, ca: newRoot }, '/who', 'backend');
      expect(direct.status).toBe(200);
    } finally {
      await load.stop();
    }
    expect(load.failures).toEqual([]);
    expect(load.okFresh - okFreshAtFinish!).toBeGreaterThanOrEqual(50);
  }, 40_000);
});
