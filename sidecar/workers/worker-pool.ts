/**
 * The worker processes of a `--workers N` sidecar, seen from the primary.
 *
 *   start():  fork worker 0 with the bootstrap's inbound/outbound ports (0 = any) → it binds
 *             with SO_REUSEPORT and reports the ports it got → fork workers 1..N-1 on those
 *             ports; resolves once all listen (the kernel now spreads connections over them)
 *   broadcast(config): remembered as the current configuration and sent to every worker;
 *             each one reports the version it applied ('applied' event)
 *   a worker exits unexpectedly → logged, restarted in its slot after an exponential backoff
 *             (100 ms doubling to 10 s, reset after 10 s of uptime), with the current
 *             configuration in its init message, applied before it binds
 *   drain(deadline): every worker stops accepting and finishes its requests in flight, then
 *             exits; workers still alive deadline + DRAIN_GRACE_MS later are killed
 *
 * SO_REUSEPORT would let a second sidecar (of the same user) join a port silently, so before
 * the first worker binds, start() checks that each fixed port is free with an ordinary bind.
 *
 * The listening sockets belong to the workers: the port keeps answering as long as one of
 * them is alive. Connections queued on a worker that is SIGKILLed are reset (SO_REUSEPORT has
 * no hand-over).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ExponentialBackoff } from '../../xds/client/backoff.ts';
import type { SidecarBootstrap } from '../bootstrap/bootstrap.ts';
import { WorkerStartError } from './errors.ts';
import type { AdminQuery, FromWorker, ToWorker, WireConfig } from './messages.ts';

/** How long a worker may take to bind after it is forked, ms. */
export const WORKER_START_TIMEOUT_MS = 30_000;
/** How long an admin query waits for a worker's reply, ms. */
export const QUERY_TIMEOUT_MS = 2000;
/** Past the drain deadline, how long workers get to exit before they are killed, ms. */
export const DRAIN_GRACE_MS = 2000;
/** A worker up this long resets its slot's restart backoff, ms. */
export const STABLE_UPTIME_MS = 10_000;

const WORKER_MAIN = fileURLToPath(new URL(`./worker-main${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));

export interface WorkerPoolOptions {
  /** Number of worker processes, >= 1. */
  readonly size: number;
  readonly bootstrap: SidecarBootstrap;
  readonly logger: Logger;
  /** The workers' log level (they log JSON lines on the same stderr). */
  readonly logLevel: string;
  readonly version: string;
  readonly drainTimeoutMs: number;
}

export type WorkerState = 'starting' | 'running' | 'restarting' | 'draining' | 'exited';

/** One worker slot, for the admin endpoints. */
export interface WorkerInfo {
  readonly index: number;
  /** The current process's pid; null while restarting. */
  readonly pid: number | null;
  readonly state: WorkerState;
  /** How many times this slot's process was restarted. */
  readonly restarts: number;
  /** The snapshot version the current process applied; null before it applied one. */
  readonly version: string | null;
  /** Whether that snapshot is complete (the worker's outbound listener serves). */
  readonly complete: boolean;
}

export type WorkerPoolEvents = {
  /** A worker applied a configuration. */
  applied: [index: number, version: string | null, complete: boolean];
  /** A worker exited unexpectedly; it will be restarted after a backoff. */
  exit: [index: number, code: number | null, signal: string | null];
  /** A restarted worker listens again. */
  restarted: [index: number, pid: number];
};

interface Slot {
  readonly index: number;
  child: ChildProcess | null;
  state: WorkerState;
  restarts: number;
  version: string | null;
  complete: boolean;
  everComplete: boolean;
  startedAt: number;
  readonly backoff: ExponentialBackoff;
  timer: NodeJS.Timeout | null;
  exited: Promise<void>;
}

export class WorkerPool extends EventEmitter<WorkerPoolEvents> {
  readonly #o: WorkerPoolOptions;
  readonly #log: Logger;
  readonly #slots: Slot[] = [];
  #ports: { inbound: number; outbound: number };
  #config: WireConfig | null = null;
  #stopping = false;
  #queryId = 0;
  readonly #pending = new Map<number, (body: unknown) => void>();

  constructor(options: WorkerPoolOptions) {
    super();
    if (!Number.isInteger(options.size) || options.size < 1) throw new RangeError(`size must be a positive integer, got ${options.size}`);
    this.#o = options;
    this.#log = options.logger;
    this.#ports = { inbound: options.bootstrap.inbound.port, outbound: options.bootstrap.outbound.port };
    for (let index = 0; index < options.size; index++) {
      const b = ExponentialBackoff.tryNew({ initialMs: 100, maxMs: 10_000, multiplier: 2, jitter: 0.2 });
      if (!b.valid) throw new Error(b.errors.join('; '));
      this.#slots.push({
        index, child: null, state: 'starting', restarts: 0, version: null, complete: false, everComplete: false,
        startedAt: 0, backoff: b.result, timer: null, exited: Promise.resolve(),
      });
    }
  }

  /** The ports every worker listens on; the bootstrap's until start() resolved them. */
  get ports(): { readonly inbound: number; readonly outbound: number } {
    return { ...this.#ports };
  }

  get size(): number {
    return this.#slots.length;
  }

  /**
   * Forks the workers; resolves with the ports they share once all listen. Rejects with
   * PAL_ERR_SIDECAR_WORKER_START (and kills the ones started) when one cannot start.
   */
  async start(): Promise<{ inbound: number; outbound: number }> {
    try {
      const b = this.#o.bootstrap;
      await probeFree('inbound', b.inbound.address, b.inbound.port);
      await probeFree('outbound', b.outbound.address, b.outbound.port);
      const first = await this.#spawn(this.#slots[0]!);
      this.#ports = first;
      await Promise.all(this.#slots.slice(1).map((s) => this.#spawn(s)));
    } catch (err) {
      await this.close();
      throw err;
    }
    return { ...this.#ports };
  }

  /** True once every slot's process applied a complete configuration at least once. */
  get allApplied(): boolean {
    return this.#slots.every((s) => s.everComplete);
  }

  /** Every slot, for /stats and /config_dump. */
  workers(): WorkerInfo[] {
    return this.#slots.map((s) => ({
      index: s.index, pid: s.child?.pid ?? null, state: s.state, restarts: s.restarts,
      version: s.version, complete: s.complete,
    }));
  }

  /** Makes `config` the current configuration and sends it to every live worker. */
  broadcast(config: WireConfig): void {
    this.#config = config;
    for (const s of this.#slots) {
      if (s.child !== null && (s.state === 'running' || s.state === 'starting')) this.#send(s, { type: 'config', config });
    }
  }

  /** Asks every live worker for `what`; a worker that does not answer in QUERY_TIMEOUT_MS gets `error`. */
  query(what: AdminQuery): Promise<Array<WorkerInfo & { body?: unknown; error?: string }>> {
    return Promise.all(this.workers().map((info) => {
      const s = this.#slots[info.index]!;
      if (s.child === null || s.state !== 'running') return { ...info, error: `worker is ${s.state}` };
      const id = ++this.#queryId;
      return new Promise<WorkerInfo & { body?: unknown; error?: string }>((resolve) => {
        const timer = setTimeout(() => {
          this.#pending.delete(id);
          resolve({ ...info, error: 'no reply' });
        }, QUERY_TIMEOUT_MS);
        this.#pending.set(id, (body) => {
          clearTimeout(timer);
          resolve({ ...info, body });
        });
        this.#send(s, { type: 'query', id, what });
      });
    }));
  }

  /**
   * Stops restarting, tells every worker to drain (stop accepting, finish requests in flight
   * within `deadlineMs`) and waits until they all exited; those alive DRAIN_GRACE_MS after
   * the deadline are killed. Resolves true when every worker finished its requests in time.
   */
  async drain(deadlineMs: number): Promise<boolean> {
    this.#stopping = true;
    const results: Array<Promise<boolean>> = [];
    for (const s of this.#slots) {
      if (s.timer !== null) clearTimeout(s.timer);
      s.timer = null;
      const child = s.child;
      if (child === null) continue;
      s.state = 'draining';
      results.push(new Promise<boolean>((resolve) => {
        let finished = false;
        child.on('message', (m: FromWorker) => {
          if (m.type === 'drained') finished = m.finished;
        });
        const kill = setTimeout(() => {
          this.#log.warn({ worker: s.index, workerPid: child.pid }, 'worker did not exit after draining; killing it');
          child.kill('SIGKILL');
        }, deadlineMs + DRAIN_GRACE_MS);
        void s.exited.then(() => {
          clearTimeout(kill);
          resolve(finished);
        });
        this.#send(s, { type: 'drain', deadlineMs });
      }));
    }
    const all = await Promise.all(results);
    return all.every(Boolean);
  }

  /** Kills every worker at once (SIGKILL) and waits for them to exit. Idempotent. */
  async close(): Promise<void> {
    this.#stopping = true;
    for (const s of this.#slots) {
      if (s.timer !== null) clearTimeout(s.timer);
      s.timer = null;
      if (s.child === null) s.state = 'exited';
      s.child?.kill('SIGKILL');
    }
    await Promise.all(this.#slots.map((s) => s.exited));
  }

  #send(s: Slot, msg: ToWorker): void {
    const child = s.child;
    if (child === null || !child.connected) return;
    child.send(msg, (err) => {
      if (err) this.#log.debug({ worker: s.index, err }, 'sending to a worker failed');
    });
  }

  /** Forks slot `s`'s process; resolves with its ports once it listens. */
  #spawn(s: Slot): Promise<{ inbound: number; outbound: number }> {
    const child = fork(WORKER_MAIN, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    s.child = child;
    s.state = 'starting';
    s.version = null;
    s.complete = false;
    s.startedAt = Date.now();
    s.exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const o = this.#o;
    return new Promise((resolve, reject) => {
      let listening = false;
      const timer = setTimeout(() => {
        reject(new WorkerStartError(s.index, `did not listen within ${WORKER_START_TIMEOUT_MS} ms`));
        child.kill('SIGKILL');
      }, WORKER_START_TIMEOUT_MS);
      child.on('message', (m: FromWorker) => {
        switch (m.type) {
          case 'listening':
            listening = true;
            clearTimeout(timer);
            if (s.state === 'starting') s.state = 'running';
            resolve({ inbound: m.inboundPort, outbound: m.outboundPort });
            return;
          case 'failed':
            clearTimeout(timer);
            reject(new WorkerStartError(s.index, `${m.code}: ${m.message}`));
            return;
          case 'applied':
            s.version = m.version;
            s.complete = m.complete;
            if (m.complete) s.everComplete = true;
            if (m.errors.length > 0) this.#log.error({ worker: s.index, errors: m.errors }, 'a worker refused the configuration the primary accepted');
            this.emit('applied', s.index, m.version, m.complete);
            return;
          case 'reply':
            this.#pending.get(m.id)?.(m.body);
            this.#pending.delete(m.id);
            return;
          case 'drained':
            return;
        }
      });
      child.once('error', (err) => this.#log.error({ worker: s.index, err }, 'worker process error'));
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (!listening) reject(new WorkerStartError(s.index, `exited (code ${code}, signal ${signal}) before it listened`));
        this.#onExit(s, child, code, signal);
      });
      this.#send(s, {
        type: 'init', index: s.index, bootstrap: o.bootstrap, inboundPort: this.#ports.inbound, outboundPort: this.#ports.outbound,
        drainTimeoutMs: o.drainTimeoutMs, logLevel: o.logLevel, version: o.version, config: this.#config,
      });
    });
  }

  #onExit(s: Slot, child: ChildProcess, code: number | null, signal: string | null): void {
    if (s.child !== child) return;
    s.child = null;
    s.version = null;
    s.complete = false;
    if (this.#stopping) {
      s.state = 'exited';
      return;
    }
    if (Date.now() - s.startedAt >= STABLE_UPTIME_MS) s.backoff.reset();
    const delay = s.backoff.next();
    s.state = 'restarting';
    this.#log.warn({ worker: s.index, workerPid: child.pid, code, signal, restartInMs: delay }, 'worker exited; restarting it');
    this.emit('exit', s.index, code, signal);
    s.timer = setTimeout(() => {
      s.timer = null;
      if (this.#stopping) return;
      s.restarts++;
      this.#spawn(s).then(
        () => {
          this.#log.info({ worker: s.index, workerPid: s.child?.pid }, 'worker restarted');
          this.emit('restarted', s.index, s.child?.pid ?? 0);
        },
        (err: unknown) => this.#log.error({ worker: s.index, err }, 'restarting a worker failed'),
      );
    }, delay);
  }
}

/**
 * Rejects (PAL_ERR_SIDECAR_WORKER_START) when `port` is bound already, by anyone: an ordinary
 * bind fails where an SO_REUSEPORT bind would join the other process's sockets. Port 0 is
 * always free.
 */
async function probeFree(listener: string, host: string, port: number): Promise<void> {
  if (port === 0) return;
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new WorkerStartError(0, `${listener} ${host}:${port}: ${err.message}`)));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve()));
  });
}
