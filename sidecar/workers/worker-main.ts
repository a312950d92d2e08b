/**
 * The entry point of one worker process of a `--workers N` sidecar (forked by WorkerPool).
 * It runs a Sidecar in worker mode: inbound and outbound bound with SO_REUSEPORT on the ports
 * the primary gives, no admin listener, no xDS stream. The primary sends it every accepted
 * configuration; it compiles and swaps it as the single-process sidecar does and reports the
 * version it applied.
 *
 * Signals: SIGINT and SIGTERM are ignored (a terminal's Ctrl-C reaches the whole process
 * group); the primary drains the workers. If the primary goes away (the IPC channel closes),
 * the worker drains on its own and exits.
 */
import { pino } from 'pino';
import { Sidecar } from '../sidecar.ts';
import { decodeConfig, type FromWorker, type ToWorker, type WireConfig, type WorkerInit } from './messages.ts';

let sidecar: Sidecar | null = null;
let drainTimeoutMs = 0;
let exiting = false;

function send(msg: FromWorker): void {
  if (process.connected) process.send!(msg);
}

function apply(config: WireConfig): void {
  const s = sidecar!;
  let errors: string[] = [];
  try {
    const r = s.store.apply(decodeConfig(config));
    if (!r.valid) errors = r.errors;
  } catch (err) {
    errors = [(err as Error).message];
  }
  const current = s.store.current;
  send({ type: 'applied', version: current?.version ?? null, complete: current?.complete ?? false, errors });
}

async function init(msg: WorkerInit): Promise<void> {
  // As the primary's logger (the CLI's createLogger): JSON lines on the same stderr, plus `worker`.
  const logger = pino({ name: 'palisade-sidecar', level: msg.logLevel, base: { pid: process.pid, worker: msg.index } }, pino.destination({ fd: 2, sync: false }));
  drainTimeoutMs = msg.drainTimeoutMs;
  try {
    sidecar = new Sidecar({
      bootstrap: msg.bootstrap, logger, version: msg.version, drainTimeoutMs,
      worker: { inboundPort: msg.inboundPort, outboundPort: msg.outboundPort },
    });
    // A restarted worker is configured before it binds, so it never answers "not ready".
    if (msg.config !== null) apply(msg.config);
    const a = await sidecar.start();
    send({ type: 'listening', inboundPort: portOf(a.inbound), outboundPort: portOf(a.outbound) });
    logger.info({ inbound: a.inbound, outbound: a.outbound }, 'worker listening');
  } catch (err) {
    const e = err as Error & { code?: string };
    send({ type: 'failed', code: e.code ?? 'ERROR', message: e.message });
    await exit(1);
  }
}

async function onMessage(msg: ToWorker): Promise<void> {
  switch (msg.type) {
    case 'init':
      return init(msg);
    case 'config':
      if (sidecar !== null) apply(msg.config);
      return;
    case 'query': {
      const s = sidecar;
      const body = s === null ? null
        : msg.what === 'metrics' ? await s.telemetry.metrics.json()
        : msg.what === 'stats' ? s.stats()
          : msg.what === 'clusters' ? s.clusterStats()
            : s.configDump();
      send({ type: 'reply', id: msg.id, body });
      return;
    }
    case 'drain': {
      const finished = sidecar === null ? true : await sidecar.drain(msg.deadlineMs);
      send({ type: 'drained', finished });
      await exit(0);
      return;
    }
  }
}

async function exit(code: number): Promise<void> {
  if (exiting) return;
  exiting = true;
  await sidecar?.close();
  process.exitCode = code;
  if (process.connected) process.disconnect();
}

function portOf(hostPort: string): number {
  return Number(hostPort.slice(hostPort.lastIndexOf(':') + 1));
}

process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
// One message at a time, in order: a drain arriving while init still binds waits for it.
let queue = Promise.resolve();
process.on('message', (msg: ToWorker) => {
  queue = queue.then(() => onMessage(msg)).catch((err: unknown) => {
    process.stderr.write(`palisade sidecar worker: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
});
process.on('disconnect', () => {
  // The primary is gone (or told us to go): finish what is in flight and exit.
  if (exiting) return;
  const s = sidecar;
  if (s === null) {
    process.exit(0);
    return;
  }
  void s.drain(drainTimeoutMs).then(() => exit(0));
});
