/**
 * Shared coarse timers for per-request timeouts (CONVENTIONS "Hot path"), after undici's
 * `lib/util/timers.js`: a route timeout of 15 s on every request should not cost a native
 * `setTimeout` (a Timeout object linked into libuv's lists, then a `clearTimeout`) when the
 * request ends long before it fires, as nearly all do.
 *
 *   long delay (>= nativeBelowMs, default 1000 ms)          short delay
 *   ────────────────────────────────────────────            ───────────────────────────
 *   timer.start(d): deadline = now() + d,                    a native Timeout (unref'd),
 *     pushed on the shared list (O(1))                       re-armed with `refresh()`
 *   one native tick every tickMs (default 250 ms), unref'd,  when the delay is the same
 *     running only while the list is non-empty:
 *     every entry whose deadline has passed is removed and fired
 *   timer.clear(): swap-remove from the list (O(1)), no allocation
 *
 * Resolution: a long timer fires no earlier than its delay after `start()` and, event loop
 * permitting, less than one tick (250 ms) late; with delays of at least 1 s that is at most
 * 1/4 of the timeout. Short timers are native and as precise as Node's (which may fire up to
 * 1 ms early by `performance.now()`; callers that must never see an early timeout check the
 * clock, as the forwarder's deadline does).
 *
 * Nothing here keeps the process alive: the tick and every native timer are unref'd; sockets
 * of the requests in flight keep it alive instead.
 */

/** Tick of the shared timer, ms: the most a long timer fires late. */
export const COARSE_TICK_MS = 250;
/** Delays below this (ms) use a native timer; from it on, the shared tick (lateness <= 1/4). */
export const NATIVE_BELOW_MS = 4 * COARSE_TICK_MS;

export interface CoarseTimersOptions {
  /** Tick of the shared timer, ms, > 0. Default 250. */
  readonly tickMs?: number;
  /** Delays under this many ms get a native timer. Default 1000. */
  readonly nativeBelowMs?: number;
  /** Monotonic clock, ms. Default performance.now. */
  readonly now?: () => number;
}

/** What the shared list keeps of a timer. */
interface TimerEntry {
  delay: number;
  deadline: number;
  index: number;
  native: ReturnType<typeof setTimeout> | null;
  nativeArmed: boolean;
  fire(): void;
}

/**
 * A re-armable timer calling `callback(arg)` once per `start()`; a shared callback with the
 * owner as `arg` needs no closure per request. Made by `CoarseTimers.create`.
 */
export class CoarseTimer<T> implements TimerEntry {
  readonly #owner: CoarseTimers;
  readonly #callback: (arg: T) => void;
  readonly #arg: T;
  /** The delay of the last `start()`, ms; -1 before the first. */
  delay = -1;
  /** When a long timer fires (owner clock, ms); meaningless otherwise. */
  deadline = 0;
  /** Position in the owner's list, -1 when not in it. */
  index = -1;
  /** The native timer of a short delay, kept for `refresh()`; armed only while `nativeArmed`. */
  native: ReturnType<typeof setTimeout> | null = null;
  nativeArmed = false;

  constructor(owner: CoarseTimers, callback: (arg: T) => void, arg: T) {
    this.#owner = owner;
    this.#callback = callback;
    this.#arg = arg;
  }

  /** True from `start()` until it fires or is cleared. */
  get armed(): boolean {
    return this.index >= 0 || this.nativeArmed;
  }

  /** Arms the timer `delayMs` (finite, >= 0) from now, replacing any earlier arming. */
  start(delayMs: number): void {
    this.#owner.arm(this, delayMs);
  }

  /** Arms it again with the last delay, from now. No-op before the first `start()`. */
  refresh(): void {
    if (this.delay >= 0) this.#owner.arm(this, this.delay);
  }

  /** Disarms it; a no-op when not armed. Allocates nothing. */
  clear(): void {
    this.#owner.disarm(this);
  }

  /** @internal */
  fire(): void {
    this.#callback(this.#arg);
  }
}

function fireNative(t: TimerEntry): void {
  t.nativeArmed = false;
  t.fire();
}

/** A list of long timers served by one native tick, plus the native path for short ones. */
export class CoarseTimers {
  readonly tickMs: number;
  readonly nativeBelowMs: number;
  readonly #now: () => number;
  readonly #list: TimerEntry[] = [];
  #tick: ReturnType<typeof setTimeout> | null = null;
  #ticking = false;
  readonly #onTick = (): void => this.#run();

  constructor(options: CoarseTimersOptions = {}) {
    const tick = options.tickMs ?? COARSE_TICK_MS;
    const below = options.nativeBelowMs ?? NATIVE_BELOW_MS;
    if (!(tick > 0 && Number.isFinite(tick))) throw new RangeError(`tickMs must be a positive number, got ${tick}`);
    if (!(below >= 0)) throw new RangeError(`nativeBelowMs must be >= 0, got ${below}`);
    this.tickMs = tick;
    this.nativeBelowMs = below;
    this.#now = options.now ?? (() => performance.now());
  }

  /** A new, unarmed timer. */
  create<T>(callback: (arg: T) => void, arg: T): CoarseTimer<T> {
    return new CoarseTimer(this, callback, arg);
  }

  /** Long timers armed now. */
  get size(): number {
    return this.#list.length;
  }

  /** Whether the shared tick is scheduled (it stops once the list is empty at a tick). */
  get ticking(): boolean {
    return this.#ticking;
  }

  /** @internal */
  arm(t: TimerEntry, delay: number): void {
    if (!(delay >= 0 && Number.isFinite(delay))) throw new RangeError(`delay must be a finite number >= 0, got ${delay}`);
    if (delay < this.nativeBelowMs) {
      if (t.index >= 0) this.#remove(t);
      if (t.native !== null && t.delay === delay) {
        t.native.refresh();
      } else {
        if (t.native !== null && t.nativeArmed) clearTimeout(t.native);
        t.native = setTimeout(fireNative, delay, t);
        t.native.unref();
      }
      t.delay = delay;
      t.nativeArmed = true;
      return;
    }
    if (t.nativeArmed) {
      clearTimeout(t.native!);
      t.nativeArmed = false;
    }
    t.delay = delay;
    t.deadline = this.#now() + delay;
    if (t.index < 0) {
      t.index = this.#list.length;
      this.#list.push(t);
    }
    if (!this.#ticking) {
      this.#ticking = true;
      if (this.#tick === null) {
        this.#tick = setTimeout(this.#onTick, this.tickMs);
        this.#tick.unref();
      } else {
        this.#tick.refresh();
      }
    }
  }

  /** @internal */
  disarm(t: TimerEntry): void {
    if (t.index >= 0) this.#remove(t);
    if (t.nativeArmed) {
      clearTimeout(t.native!);
      t.nativeArmed = false;
    }
  }

  /** O(1): the last entry takes the removed one's place. */
  #remove(t: TimerEntry): void {
    const list = this.#list;
    const i = t.index;
    const last = list.pop()!;
    if (last !== t) {
      list[i] = last;
      last.index = i;
    }
    t.index = -1;
  }

  /**
   * Fires every due timer. Walks the list from the end, so the swap-removal of a fired entry
   * only moves an entry already looked at; callbacks may start or clear any timer.
   */
  #run(): void {
    const now = this.#now();
    const list = this.#list;
    try {
      for (let i = list.length - 1; i >= 0; i--) {
        if (i >= list.length) {
          i = list.length;
          continue;
        }
        const t = list[i]!;
        if (t.deadline > now) continue;
        this.#remove(t);
        t.fire();
      }
    } finally {
      // Even when a callback throws, the timers still armed keep their tick.
      if (list.length > 0) this.#tick!.refresh();
      else this.#ticking = false;
    }
  }
}

/** The process-wide instance the forwarder uses. */
export const coarseTimers = new CoarseTimers();
