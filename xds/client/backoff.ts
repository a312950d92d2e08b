/**
 * Exponential backoff with jitter for reconnecting the ADS stream, after linkerd2-proxy's
 * `linkerd/exp-backoff`. Attempt n (from 0) waits
 *
 *   min(maxMs, initialMs · multiplier^n) · (1 − jitter · U[0, 1))
 *
 * so the delay never exceeds maxMs and a fleet of clients that lost the same server spreads
 * its reconnects over the last `jitter` fraction of each step instead of arriving at once.
 */

export interface BackoffOptions {
  /** Delay before the first retry, in ms; > 0. */
  readonly initialMs: number;
  /** Upper bound of any delay, in ms; >= initialMs. */
  readonly maxMs: number;
  /** Growth per attempt; >= 1. */
  readonly multiplier: number;
  /** Fraction of a delay removed at random; 0 (none) to 1. */
  readonly jitter: number;
}

export type BackoffResult = { valid: true; result: ExponentialBackoff } | { valid: false; errors: string[] };

const show = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : typeof v === 'object' && v !== null ? 'an object' : String(v));
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export class ExponentialBackoff {
  readonly options: BackoffOptions;
  readonly #random: () => number;
  #attempt = 0;

  private constructor(options: BackoffOptions, random: () => number) {
    this.options = options;
    this.#random = random;
  }

  /**
   * Checks the options and builds a backoff, or lists every problem, each naming the option
   * and the value (`initialMs must be a positive number, got -1`). `random` returns [0, 1);
   * tests pass a fixed one.
   */
  static tryNew(options: BackoffOptions, random: () => number = Math.random): BackoffResult {
    const errors: string[] = [];
    const { initialMs, maxMs, multiplier, jitter } = options;
    if (!isNum(initialMs) || initialMs <= 0) errors.push(`initialMs must be a positive number, got ${show(initialMs)}`);
    if (!isNum(maxMs) || maxMs <= 0) errors.push(`maxMs must be a positive number, got ${show(maxMs)}`);
    else if (isNum(initialMs) && maxMs < initialMs) errors.push(`maxMs must be at least initialMs (${initialMs}), got ${maxMs}`);
    if (!isNum(multiplier) || multiplier < 1) errors.push(`multiplier must be a number >= 1, got ${show(multiplier)}`);
    if (!isNum(jitter) || jitter < 0 || jitter > 1) errors.push(`jitter must be a number from 0 to 1, got ${show(jitter)}`);
    if (errors.length > 0) return { valid: false, errors };
    return { valid: true, result: new ExponentialBackoff(Object.freeze({ initialMs, maxMs, multiplier, jitter }), random) };
  }

  /** How many delays were handed out since the last reset. */
  get attempts(): number {
    return this.#attempt;
  }

  /** The delay before the next attempt, in ms; each call moves one step up. */
  next(): number {
    const { initialMs, maxMs, multiplier, jitter } = this.options;
    const base = Math.min(maxMs, initialMs * multiplier ** this.#attempt);
    this.#attempt++;
    return Math.round(base * (1 - jitter * this.#random()));
  }

  /** Back to the first step, after a stream proved healthy. */
  reset(): void {
    this.#attempt = 0;
  }
}
