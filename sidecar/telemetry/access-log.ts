/**
 * Access logs: one JSON line per request (sampled), with the fields of Envoy's default format
 * in its JSON spelling, plus the sidecar's own: listener, peer identity, policy decision,
 * quota result, trace id.
 *
 *   {"start_time":"2026-11-27T15:00:00.000Z","method":"GET","path":"/x","protocol":"HTTP/1.1",
 *    "response_code":200,"response_flags":"-","bytes_received":0,"bytes_sent":2,"duration":1.3,
 *    "x_forwarded_for":null,"user_agent":"curl/8","request_id":"…","authority":"web",
 *    "upstream_host":"127.0.0.1:8080","upstream_cluster":"inbound|8080||web","route_name":null,
 *    "listener":"inbound","principal":"spiffe://…","policy":null,"policy_decision":null,
 *    "quota":null,"quota_result":null,"trace_id":null,"attempts":1}
 *
 * Written to pino's asynchronous destination (sonic-boom, `sync: false`, Buffers): the request
 * path only builds the line (the record is the whole line, no level, time or pid) and queues it.
 * Queued lines go to the destination together, as Envoy flushes its access log files: once
 * ACCESS_LOG_BATCH_CHARS (256 KiB) are queued or `flushIntervalMs` (default 1 s) after the first of them, whichever comes
 * first (0: at the end of every event-loop turn); the file write happens later still, off the
 * request. Few large writes matter: sonic-boom re-measured its whole string buffer on every
 * line, and with 16 KiB writes (its default), one in flight at a time, bursts of lines
 * outgrew the buffer bound and were dropped.
 * The buffer is bounded (ACCESS_LOG_MAX_BUFFER_BYTES): when stdout or the disk stalls, lines
 * that do not fit are dropped and counted (`dropped`, /stats and
 * `palisade_access_log_dropped_total`) instead of growing the heap.
 * `path` is `stdout` or a file (appended, created with its folder; SIGHUP reopens it, for
 * logrotate: one process-wide listener reopens every open access log). Without the bootstrap
 * section nothing is built and the wrapper never calls in.
 *
 * Sampling: `sampleRate` percent of requests; with `alwaysLogErrors` every request answered
 * 4xx/5xx (or not answered), denied by a policy, or carrying a response flag is logged too.
 */
import pino, { type Logger } from 'pino';
import { TELEMETRY_DEFAULTS, type AccessLogConfig } from './telemetry-config.ts';
import type { RequestRecord } from './request-record.ts';

type Destination = ReturnType<typeof pino.destination>;

/** Most bytes an access log buffers while its destination is slow (16 MiB); lines past it are dropped. */
export const ACCESS_LOG_MAX_BUFFER_BYTES = 16 * 1024 * 1024;

/** The open file access logs: one process-wide SIGHUP listener reopens them all. */
const reopenOnHup = new Set<AccessLog>();
function onHup(): void {
  for (const log of reopenOnHup) log.reopen();
}

export interface AccessLogOptions {
  /** [0, 1); sampling. Default Math.random. */
  readonly random?: () => number;
  /** Where a failing destination (unwritable path, full disk) is reported; without it, failures are dropped silently. */
  readonly logger?: Logger;
  /** Buffer bound, bytes. Default ACCESS_LOG_MAX_BUFFER_BYTES. */
  readonly maxBufferBytes?: number;
}

/**
 * Most bytes per write to the file or stdout. One write goes out per completed write, and the
 * completion waits for the event loop: with sonic-boom's default (16 KiB) a busy sidecar could
 * not write its lines as fast as it served requests (~10 MB/s of lines at 12k rps).
 */
export const ACCESS_LOG_MAX_WRITE_BYTES = 1024 * 1024;

/**
 * Lines are handed to the destination once this many characters are queued, or at the flush
 * interval. Each hand-over wakes a libuv thread for the file write, which on a loaded box costs
 * the event loop tens of µs (measured: 0.87 µs per request at 64 KiB, 0.21 at 256 KiB, full-chain
 * bench with --cpu-prof): hence larger than Envoy's 64 KiB, whose flushes run on their own thread.
 */
export const ACCESS_LOG_BATCH_CHARS = 256 * 1024;

/** Printable ASCII other than `"` and `\\`: such a string is its own JSON text between quotes. */
const JSON_SAFE = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** Every character JSON.stringify leaves as it is but a Latin-1 write would mangle. */
const NON_ASCII = /[\u0080-\uffff]/g;
const escapeNonAscii = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * A string (or null) as a JSON value, in ASCII: anything past U+007F is \u-escaped (JSON
 * allows it; a pair is escaped unit by unit), so a line is one byte per character and goes
 * into the batch buffer as Latin-1, without first being flattened into a new string.
 */
function str(v: string | null | undefined): string {
  if (v === null || v === undefined) return 'null';
  return JSON_SAFE.test(v) ? `"${v}"` : JSON.stringify(v).replace(NON_ASCII, escapeNonAscii);
}

/**
 * JSON texts of the strings that recur on every line of a connection or a route (the cluster,
 * route, upstream host, caller principal, policy and quota names): the same string objects each
 * time, so a lookup costs less than str()'s scan. Emptied when it reaches MEMO_MAX entries.
 */
const memo = new Map<string, string>();
const MEMO_MAX = 4096;

function strRecurring(v: string | null | undefined): string {
  if (v === null || v === undefined) return 'null';
  let text = memo.get(v);
  if (text === undefined) {
    text = str(v);
    if (memo.size >= MEMO_MAX) memo.clear();
    memo.set(v, text);
  }
  return text;
}

/**
 * A string the sidecar itself produced from a closed set (listener, decision, quota result) or
 * that node:http, node:http2 or net validated (an HTTP method token, an IP address): never a
 * quote, a backslash, a control or a non-ASCII character, so it is quoted as it is.
 */
function word(v: string | null | undefined): string {
  return v === null || v === undefined ? 'null' : `"${v}"`;
}

/**
 * A duration in ms to the µs, as JSON: what String(Math.round(ms * 1000) / 1000) gives (no
 * trailing zeros), from integers: printing a fractional double was half the line's cost.
 */
export function durationText(ms: number): string {
  const us = Math.round(ms * 1000);
  // Past ~2^43 ms (centuries) a double's shortest form has fewer decimals than the µs: leave those to String.
  if (!(us >= 0 && us < 1e15)) return String(us / 1000);
  const whole = Math.floor(us / 1000);
  const frac = us - whole * 1000;
  if (frac === 0) return `${whole}`;
  if (frac % 100 === 0) return `${whole}.${frac / 100}`;
  if (frac % 10 === 0) return `${whole}.${frac < 100 ? '0' : ''}${frac / 10}`;
  return `${whole}.${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}`;
}

/**
 * The last second formatted, up to its ".": requests logged in one turn started within a few
 * ms of each other, in no order, so a per-millisecond memo missed on most of them.
 */
let lastSecond = Number.NaN;
let lastPrefix = '';
/** 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z: between them toISOString has its 24-character form. */
const FOUR_DIGIT_YEARS_FROM = -62167219200000;
const FOUR_DIGIT_YEARS_TO = 253402300800000;

/** new Date(Math.floor(ms)).toISOString(), the date and time formatted once per second. */
export function isoTime(ms: number): string {
  const whole = Math.floor(ms);
  if (!(whole >= FOUR_DIGIT_YEARS_FROM && whole < FOUR_DIGIT_YEARS_TO)) return new Date(whole).toISOString();
  const second = Math.floor(whole / 1000);
  if (second !== lastSecond) {
    lastSecond = second;
    lastPrefix = new Date(second * 1000).toISOString().slice(0, 20);
  }
  const milli = whole - second * 1000;
  return `${lastPrefix}${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}

/** The turn's end (setImmediate) or the interval's (setTimeout): hands the queued lines over. */
function flushQueued(log: AccessLog): void {
  AccessLog.flushQueued(log);
}

export class AccessLog {
  readonly #dest: Destination;
  readonly #rate: number;
  readonly #always: boolean;
  readonly #random: () => number;
  readonly #toStdout: boolean;
  #closed = false;
  /** Lines dropped because the buffer was full (the destination stalled). */
  #dropped = 0;
  /** The destination failed (could not open or write): lines are dropped. */
  #broken = false;
  /** Lines not yet handed to the destination, written one after the other (ASCII: one byte per character). */
  #batch = Buffer.allocUnsafeSlow(2 * ACCESS_LOG_BATCH_CHARS);
  #batchBytes = 0;
  #batchLines = 0;
  /** A batch larger than this goes out at once rather than at the end of the turn. */
  readonly #batchLimit: number;
  #flushScheduled = false;
  /** Lines in the batch being handed over: what a 'drop' of it loses. */
  #handing = 0;
  readonly #flushIntervalMs: number;
  /** Armed by the first line of a batch: hands the batch over when the interval elapses. */
  #flushTimer: NodeJS.Timeout | null = null;
  /** The last reopen, until sonic-boom has the new file open; null before any. */
  #reopening: Promise<void> | null = null;

  constructor(config: AccessLogConfig, options: AccessLogOptions = {}) {
    this.#toStdout = config.path === 'stdout';
    const maxLength = options.maxBufferBytes ?? ACCESS_LOG_MAX_BUFFER_BYTES;
    // Buffers, not strings: sonic-boom re-measures a string buffer's UTF-8 length on every write.
    this.#flushIntervalMs = config.flushIntervalMs ?? TELEMETRY_DEFAULTS.accessLogFlushIntervalMs;
    const common = { sync: false, maxLength, contentMode: 'buffer' as const, maxWrite: ACCESS_LOG_MAX_WRITE_BYTES };
    this.#dest = pino.destination(this.#toStdout ? { dest: 1, ...common } : { dest: config.path, mkdir: true, append: true, ...common });
    this.#dest.on('drop', () => {
      this.#dropped += this.#handing;
    });
    // A quarter of the bound, so that a batch still fits a buffer that is not empty.
    this.#batchLimit = Math.max(1, Math.min(ACCESS_LOG_BATCH_CHARS, Math.floor(maxLength / 4)));
    // A destination error must never reach the process as an unhandled 'error' event.
    const log = options.logger;
    let reported = false;
    this.#dest.on('error', (err: Error) => {
      // sonic-boom throws on writes once its file failed to open: stop writing.
      this.#broken = true;
      if (reported) return;
      reported = true;
      log?.error({ err, path: config.path }, 'the access log cannot be written; later failures are not reported');
    });
    this.#rate = config.sampleRate;
    this.#always = config.alwaysLogErrors;
    this.#random = options.random ?? Math.random;
    if (!this.#toStdout) {
      if (reopenOnHup.size === 0) process.on('SIGHUP', onHup);
      reopenOnHup.add(this);
    }
  }

  /** Lines dropped because the buffer was full (stdout or the disk stalled). */
  get dropped(): number {
    return this.#dropped;
  }

  /** Whether `r` is logged: sampled in, or (alwaysLogErrors) an error, a denial or a flagged request. */
  #wanted(r: RequestRecord): boolean {
    if (this.#rate >= 100) return true;
    if (this.#always && (r.status >= 400 || r.status === 0 || r.facts.flags.length > 0 || (r.facts.policy !== null && r.facts.policy.decision !== 'allow'))) return true;
    return this.#rate > 0 && this.#random() * 100 < this.#rate;
  }

  /** Logs one finished request (or drops it by sampling). */
  log(r: RequestRecord): void {
    if (this.#closed || this.#broken || !this.#wanted(r)) return;
    const f = r.facts;
    // Built by hand, not JSON.stringify of an object: the line is the access log's whole cost per
    // request, and most values are plain ASCII that needs no escaping (str()). Every part is
    // ASCII (str() escapes the rest), which the Latin-1 write below relies on.
    const line = `{"start_time":"${isoTime(r.startTime)}","method":${word(r.method)},"path":${str(r.path)},"protocol":"${r.protocol}"`
      + `,"response_code":${r.status},"response_flags":${f.flags.length === 0 ? '"-"' : str(f.flags.join(','))},"bytes_received":${r.bytesIn},"bytes_sent":${r.bytesOut}`
      + `,"duration":${durationText(r.durationMs)},"x_forwarded_for":${str(r.forwardedFor)},"user_agent":${str(r.userAgent)},"request_id":${str(r.requestId)}`
      + `,"authority":${str(r.authority)},"upstream_host":${strRecurring(f.upstreamHost)},"upstream_cluster":${strRecurring(f.cluster)},"route_name":${strRecurring(f.route)}`
      + `,"listener":${word(r.listener)},"downstream_remote_address":${word(r.remoteAddress)},"principal":${strRecurring(f.principal)}`
      + `,"policy":${strRecurring(f.policy?.name ?? null)},"policy_decision":${word(f.policy?.decision ?? null)},"quota":${strRecurring(f.quota?.name ?? null)},"quota_result":${word(f.quota?.result ?? null)}`
      + `,"tenant":${str(f.tenant)},"trace_id":${str(r.traceId)},"attempts":${f.attempts}}\n`;
    // A line as long as a whole batch (a huge path or header): the lines queued before it, then a
    // write of its own, so that no write is larger than a batch plus one line's worth.
    if (line.length >= this.#batchLimit) {
      this.#flush();
      this.#hand(Buffer.from(line, 'latin1'), 1);
      return;
    }
    if (this.#batchBytes + line.length > this.#batch.length) this.#flush();
    this.#batchBytes += this.#batch.write(line, this.#batchBytes, 'latin1');
    this.#batchLines++;
    if (this.#batchBytes >= this.#batchLimit) this.#flush();
    else if (this.#flushIntervalMs === 0) {
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(flushQueued, this);
      }
    } else if (this.#flushTimer === null) {
      this.#flushTimer = setTimeout(flushQueued, this.#flushIntervalMs, this);
      this.#flushTimer.unref();
    }
  }

  /** Hands the queued lines to the destination as one write. */
  #flush(): void {
    if (this.#flushTimer !== null) {
      clearTimeout(this.#flushTimer);
      this.#flushTimer = null;
    }
    const lines = this.#batchLines;
    if (lines === 0) return;
    // A copy: the destination keeps what it is given until written, the batch buffer is reused.
    const bytes = Buffer.from(this.#batch.subarray(0, this.#batchBytes));
    this.#batchBytes = 0;
    this.#batchLines = 0;
    this.#hand(bytes, lines);
  }

  /** One write of `lines` lines to the destination. */
  #hand(bytes: Buffer, lines: number): void {
    if (this.#broken) return;
    this.#handing = lines;
    try {
      // contentMode 'buffer': sonic-boom takes Buffers, though its types say string.
      this.#dest.write(bytes as unknown as string);
    } catch {
      // Reported once through the 'error' listener (or about to be): the request never sees it.
      this.#broken = true;
    } finally {
      this.#handing = 0;
    }
  }

  /** The end of the turn in which lines were queued (no interval), or the interval elapsed. */
  static flushQueued(log: AccessLog): void {
    log.#flushScheduled = false;
    log.#flushTimer = null;
    log.#flush();
  }

  /** Reopens the file (after logrotate moved it); a no-op for stdout. */
  reopen(): void {
    if (this.#toStdout || this.#closed) return;
    // Lines logged before the signal belong to the file that was rotated away: handed over
    // first (sonic-boom reopens once a write in progress has drained).
    this.#flush();
    const dest = this.#dest;
    // Settled by the new file's 'ready' (or an 'error'): close() waits for it. sonic-boom defers a
    // reopen asked for during a write, and drops it if end() came meanwhile, never closing.
    this.#reopening = new Promise((resolve) => {
      const settled = () => {
        dest.off('ready', settled);
        dest.off('error', settled);
        resolve();
      };
      dest.on('ready', settled);
      dest.on('error', settled);
    });
    try {
      dest.reopen();
      this.#broken = false;
    } catch {
      this.#broken = true;
    }
  }

  /** Writes out what is buffered and closes the file (stdout stays open). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    if (reopenOnHup.delete(this) && reopenOnHup.size === 0) process.off('SIGHUP', onHup);
    const dest = this.#dest;
    if (this.#reopening !== null && !this.#broken) await this.#reopening;
    // A failed destination has nothing to write out and may never emit 'close'.
    if (this.#broken) {
      try {
        dest.destroy();
      } catch {
        // already unusable
      }
      return;
    }
    await new Promise<void>((resolve) => {
      const done = () => resolve();
      if (this.#toStdout) {
        dest.flush(() => done());
        return;
      }
      dest.once('close', done);
      dest.once('error', done);
      try {
        dest.end();
      } catch {
        done();
      }
    });
  }
}
