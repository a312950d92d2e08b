/**
 * The request body of a retriable request, as Envoy's router keeps it: streamed upstream as it
 * arrives and, up to a limit, kept so that a retry can send it again.
 *
 *   downstream req ──data──► chunks[] (while replayable, total <= limit)
 *                      └───► the current attempt's body (a Readable undici sends)
 *
 *   attach()  a new attempt's body: first every chunk kept so far (replay), then, once it has
 *             caught up, the downstream chunks as they arrive (live)
 *
 * Backpressure: while the attempt body is live, a `push()` that returns false pauses the
 * downstream request and the next `_read()` resumes it; while it is replaying, the downstream
 * request is paused until the replay has caught up. So at most `limit` bytes (plus the chunk in
 * hand) are ever held, and a slow upstream slows the client down as without retries.
 *
 * Between attempts (back-off) nothing reads the body but the buffer: the downstream request
 * keeps flowing into it, as Envoy keeps decoding into its buffer.
 *
 * Overflow: when the next chunk would take the kept bytes past `limit`, the body is no longer
 * replayable (Envoy's `retry_or_shadow_abandoned`): the kept chunks the current attempt already
 * sent are dropped, `onOverflow` is called, and the body goes on streaming to the current
 * attempt only. `stopBuffering()` does the same without the callback once retries are over.
 */
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

/** Raised on an attempt body when the downstream request is aborted mid-body. */
const ABORTED_CODE = 'ECONNRESET';

function ignore(): void {}

/** One attempt's request body. `next` indexes the kept chunks while replaying; -1 once live. */
class AttemptBody extends Readable {
  readonly #source: ReplayBody;
  next = 0;

  constructor(source: ReplayBody) {
    super();
    this.#source = source;
    // undici may destroy an abandoned attempt's body with its error after it stopped listening.
    this.on('error', ignore);
  }

  override _read(): void {
    this.#source.pull(this);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#source.detach(this);
    cb(err);
  }
}

export class ReplayBody {
  readonly #req: IncomingMessage;
  /** Bytes that may be kept for replay. */
  readonly limit: number;
  readonly #onOverflow: () => void;
  /** Kept chunks: the whole body so far while replayable; after that only what the current attempt has not taken yet. */
  #chunks: Buffer[] = [];
  #bytes = 0;
  #replayable = true;
  #ended = false;
  #closed = false;
  #sink: AttemptBody | null = null;
  readonly #onData = (chunk: Buffer): void => this.#data(chunk);
  readonly #onEnd = (): void => this.#end();
  readonly #onClose = (): void => this.#abort();

  /**
   * Starts reading `req` (its 'data' events). `limit` >= 0 bytes are kept for replay;
   * `onOverflow` is called once when the body outgrows it.
   */
  constructor(req: IncomingMessage, limit: number, onOverflow: () => void) {
    this.#req = req;
    this.limit = limit;
    this.#onOverflow = onOverflow;
    req.on('data', this.#onData);
    req.on('end', this.#onEnd);
    req.on('close', this.#onClose);
    req.on('error', ignore);
  }

  /** Whether a new attempt can still get the whole body (false past the limit, or once the downstream aborted). */
  get replayable(): boolean {
    return this.#replayable;
  }

  /** Bytes kept for replay now. */
  get bufferedBytes(): number {
    return this.#replayable ? this.#bytes : 0;
  }

  /**
   * The body for a new attempt: kept chunks, then the rest as it arrives. Replaces (and
   * destroys) the previous attempt's body. Only while `replayable` (or for the first attempt).
   */
  attach(): Readable {
    const old = this.#sink;
    if (old !== null) {
      this.#sink = null;
      old.destroy();
    }
    const s = new AttemptBody(this);
    this.#sink = s;
    if (!this.#ended) this.#req.pause(); // resumed once the replay has caught up (pull)
    return s;
  }

  /**
   * The current attempt is abandoned (a retry follows): its body is destroyed, and the
   * downstream body keeps flowing into the buffer until the next `attach()`.
   */
  detachAttempt(): void {
    const s = this.#sink;
    if (s === null) return;
    this.#sink = null;
    if (!s.destroyed) s.destroy();
    if (this.#replayable && !this.#ended && !this.#closed) this.#req.resume();
  }

  /** No more retries (the response is committed): frees what the current attempt has sent. */
  stopBuffering(): void {
    if (this.#replayable) this.#drop();
  }

  /**
   * Ends the body's life with its exchange: stops listening, destroys an unfinished attempt
   * body and lets the rest of the downstream body be read and discarded.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const req = this.#req;
    req.off('data', this.#onData);
    req.off('end', this.#onEnd);
    req.off('close', this.#onClose);
    this.#chunks = [];
    this.#replayable = false;
    const s = this.#sink;
    this.#sink = null;
    if (s !== null && !s.readableEnded) s.destroy();
    if (!this.#ended) req.resume();
  }

  /** @internal: an attempt body wants data. */
  pull(s: AttemptBody): void {
    if (s !== this.#sink) return;
    if (s.next >= 0) {
      const chunks = this.#chunks;
      while (s.next < chunks.length) {
        const c = chunks[s.next++]!;
        if (!s.push(c)) return;
        if (s !== this.#sink) return;
      }
      if (this.#ended) {
        s.next = -1;
        s.push(null);
        return;
      }
      s.next = -1;
      if (!this.#replayable) this.#chunks = [];
    }
    if (!this.#ended) this.#req.resume();
  }

  /** @internal: an attempt body was destroyed (by undici, or by attach / close). */
  detach(s: AttemptBody): void {
    if (s !== this.#sink) return;
    this.#sink = null;
    // Back-off: keep reading into the buffer while a retry may still need it.
    if (this.#replayable && !this.#ended && !this.#closed) this.#req.resume();
  }

  #data(chunk: Buffer): void {
    if (this.#replayable) {
      if (this.#bytes + chunk.length > this.limit) {
        this.#drop();
        this.#onOverflow();
        if (this.#closed) return;
      } else {
        this.#chunks.push(chunk);
        this.#bytes += chunk.length;
      }
    }
    const s = this.#sink;
    if (s === null) {
      // Back-off while replayable: the chunk is kept. Not replayable: nobody wants it.
      return;
    }
    if (s.next === -1) {
      if (!s.push(chunk)) this.#req.pause();
      return;
    }
    // Replaying: the chunk waits behind the kept ones; stop reading until the replay catches up.
    if (!this.#replayable) this.#chunks.push(chunk);
    this.#req.pause();
  }

  #end(): void {
    this.#ended = true;
    const s = this.#sink;
    if (s !== null && s.next === -1) s.push(null);
  }

  #abort(): void {
    if (this.#ended) return;
    this.#replayable = false; // the body will never be whole: nothing to replay
    this.#chunks = [];
    const s = this.#sink;
    this.#sink = null;
    if (s !== null) s.destroy(Object.assign(new Error('request aborted'), { code: ABORTED_CODE }));
  }

  /** Not replayable any more: keep only what the current attempt has not taken yet. */
  #drop(): void {
    this.#replayable = false;
    const s = this.#sink;
    this.#chunks = s !== null && s.next > 0 ? this.#chunks.slice(s.next) : s !== null && s.next === 0 ? this.#chunks : [];
    if (s !== null && s.next > 0) s.next = 0;
    this.#bytes = 0;
  }
}
