/**
 * A real redis-server for quota tests: on a free loopback port, no persistence
 * (`--save "" --appendonly no`), killed by stop() (call it in afterAll/afterEach). restart()
 * brings one back on the same port, for "Redis is back" cases.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestRedis {
  readonly port: number;
  /** host:port. */
  readonly address: string;
  /** Kills the server (SIGKILL) and waits for it to exit. Idempotent. */
  stop(): Promise<void>;
  /** Starts a fresh server on the same port (after stop()). */
  restart(): Promise<void>;
  /** Runs one command through redis-cli and returns its output. */
  cli(...args: string[]): Promise<string>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once the server answers PING (PONG, or NOAUTH when it requires a password) over a raw socket. */
async function waitForPong(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited ${child.exitCode}: ${output()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      let data = '';
      s.once('connect', () => s.write('PING\r\n'));
      s.on('data', (d) => {
        data += d.toString();
        if (data.includes('\r\n')) {
          s.destroy();
          // A server with --requirepass answers NOAUTH: it is up too.
          resolve(data.startsWith('+PONG') || data.startsWith('-NOAUTH'));
        }
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not answer on ${port}: ${output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts redis-server on a free 127.0.0.1 port; resolves when it answers PING. */
export async function startRedis(extraArgs: readonly string[] = []): Promise<TestRedis> {
  const port = await freePort();
  let child: ChildProcess | null = null;
  const launch = async () => {
    let out = '';
    const c = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning', ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    c.stdout!.on('data', (d) => (out += d));
    c.stderr!.on('data', (d) => (out += d));
    child = c;
    await waitForPong(port, c, () => out);
  };
  const stop = async () => {
    const c = child;
    child = null;
    if (c === null || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
  };
  await launch();
  return {
    port,
    address: `127.0.0.1:${port}`,
    stop,
    restart: async () => {
      await stop();
      await launch();
    },
    cli: (...args) => new Promise((resolve, reject) => {
      const c = spawn('redis-cli', ['-p', String(port), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      c.stdout!.on('data', (d) => (out += d));
      c.once('error', reject);
      c.once('exit', () => resolve(out.trim()));
    }),
  };
}

function run(cmd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    c.stderr!.on('data', (d) => (out += d));
    c.once('error', reject);
    c.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${out}`))));
  });
}

/**
 * A Redis Cluster of three masters (no replicas) on free 127.0.0.1 ports, created with
 * `redis-cli --cluster create`; resolves once `cluster_state:ok`. stop() kills all three.
 */
export async function startRedisCluster(): Promise<{ nodes: string[]; stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-redis-cluster-'));
  const servers: TestRedis[] = [];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 3; i++) {
      servers.push(await startRedis(['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${i}.conf`), '--cluster-node-timeout', '2000']));
    }
    const nodes = servers.map((s) => s.address);
    await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes']);
    const deadline = Date.now() + 15_000;
    for (;;) {
      const infos = await Promise.all(servers.map((s) => s.cli('cluster', 'info')));
      if (infos.every((i) => i.includes('cluster_state:ok'))) break;
      if (Date.now() > deadline) throw new Error(`the Redis Cluster did not get ready: ${infos.join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return { nodes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
