/**
 * The sidecar's connection to the store of GLOBAL quotas (bootstrap quota.redis): one ioredis
 * client (or Cluster client) shared by every GLOBAL bucket.
 *
 * Fail fast: no offline queue (a command while disconnected fails at once), a command timeout
 * (quota.redis.timeout, default 50 ms), and rate-limiter-flexible's rejectIfRedisNotReady, so a
 * request never waits for an unreachable Redis longer than the timeout. ioredis reconnects in
 * the background (every 100 ms .. 1 s); the buckets use Redis again as soon as it is ready.
 *
 * Down/up transitions are logged once each (`quota store unreachable` with
 * PAL_ERR_SIDECAR_QUOTA_STORE, `quota store reachable`), never per request or per reconnect
 * attempt.
 */
import { readFile } from 'node:fs/promises';
import { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { QuotaStoreError } from './errors.ts';
import type { QuotaRedisBootstrap } from './quota-bootstrap.ts';

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  const host = s.slice(0, i);
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(s.slice(i + 1)) };
}

/** Reconnect delay after the n-th failed attempt, ms. */
const retry = (times: number) => Math.min(times * 100, 1000);

export class RedisStore {
  /** The ioredis client handed to RateLimiterRedis (Redis or Cluster). */
  readonly client: Redis | Cluster;
  readonly config: QuotaRedisBootstrap;
  readonly #log: Logger;
  /** null: no state seen yet (the first outcome is logged too). */
  #up: boolean | null = null;
  #downs = 0;
  #closed = false;

  private constructor(config: QuotaRedisBootstrap, password: string | undefined, logger: Logger) {
    this.config = config;
    this.#log = logger;
    const common = { commandTimeout: config.timeoutMs, connectTimeout: Math.max(config.timeoutMs, 1000), enableOfflineQueue: false, maxRetriesPerRequest: 0, ...(password !== undefined ? { password } : {}) };
    if (config.cluster) {
      this.client = new Cluster(config.nodes.map(hostPort), { enableOfflineQueue: false, clusterRetryStrategy: retry, redisOptions: common });
    } else {
      this.client = new Redis({ ...hostPort(config.address!), ...common, retryStrategy: retry });
    }
    this.client.on('ready', () => this.#set(true, null));
    this.client.on('error', (err: Error) => this.#set(false, err));
    this.client.on('close', () => this.#set(false, null));
  }

  /** Connects (in the background) to the configured Redis; throws only when the password file cannot be read. */
  static async connect(config: QuotaRedisBootstrap, logger: Logger): Promise<RedisStore> {
    let password: string | undefined;
    if (config.passwordFile !== null) {
      try {
        password = (await readFile(config.passwordFile, 'utf8')).split(/\r?\n/)[0];
      } catch (err) {
        throw new Error(`quota.redis.passwordFile: cannot read ${config.passwordFile}: ${(err as Error).message}`, { cause: err });
      }
    }
    return new RedisStore(config, password, logger);
  }

  /** True while the client is connected and ready. */
  get connected(): boolean {
    return this.client.status === 'ready';
  }

  #set(up: boolean, err: Error | null): void {
    if (this.#closed || this.#up === up) return;
    const first = this.#up === null;
    this.#up = up;
    const where = this.config.address ?? this.config.nodes.join(',');
    if (up) this.#log.info({ redis: where }, first ? 'quota store connected' : 'quota store reachable again: GLOBAL quotas use it');
    else {
      this.#downs++;
      const e = new QuotaStoreError(`the quota store ${where} is unreachable${err !== null ? `: ${err.message}` : ''}`, { cause: err ?? undefined });
      this.#log.warn({ err: e, redis: where }, 'quota store unreachable: GLOBAL quotas apply their failure mode');
    }
  }

  stats(): { connected: boolean; outages: number } {
    return { connected: this.connected, outages: this.#downs };
  }

  close(): void {
    this.#closed = true;
    this.client.disconnect();
  }
}
