/**
 * A ring of fixed-width time buckets, each holding three counts (requests, errors, slow
 * requests). Bucket `b` covers [b·width, (b+1)·width) ms and lives in slot b mod size; each
 * slot remembers which bucket it holds, so a slot left from an earlier lap reads as empty and
 * is reset on its next write. Memory is fixed at construction: 4 Float64Arrays of `size`.
 */

export interface WindowCounts {
  total: number;
  errors: number;
  slow: number;
}

export class CountRing {
  readonly widthMs: number;
  readonly size: number;
  readonly #bucket: Float64Array;
  readonly #total: Float64Array;
  readonly #errors: Float64Array;
  readonly #slow: Float64Array;

  /** Enough slots of `widthMs` to cover `spanMs` plus the bucket in progress. */
  constructor(widthMs: number, spanMs: number) {
    this.widthMs = widthMs;
    this.size = Math.ceil(spanMs / widthMs) + 1;
    this.#bucket = new Float64Array(this.size).fill(-1);
    this.#total = new Float64Array(this.size);
    this.#errors = new Float64Array(this.size);
    this.#slow = new Float64Array(this.size);
  }

  /** Adds counts to the bucket holding time `atMs`. */
  add(atMs: number, total: number, errors: number, slow: number): void {
    const b = Math.floor(atMs / this.widthMs);
    const i = b % this.size;
    if (this.#bucket[i] !== b) {
      this.#bucket[i] = b;
      this.#total[i] = 0;
      this.#errors[i] = 0;
      this.#slow[i] = 0;
    }
    this.#total[i]! += total;
    this.#errors[i]! += errors;
    this.#slow[i]! += slow;
  }

  /**
   * Sums over several spans in one pass from the newest bucket back: `out[i]` gets the sums of
   * `spansMs[i]` (which must be ascending), as `sum` would.
   */
  sumMany(nowMs: number, spansMs: readonly number[], out: WindowCounts[]): void {
    const last = Math.floor(nowMs / this.widthMs);
    let total = 0;
    let errors = 0;
    let slow = 0;
    let b = last;
    for (let k = 0; k < spansMs.length; k++) {
      const n = Math.min(this.size, Math.max(1, Math.ceil(spansMs[k]! / this.widthMs)));
      for (; b > last - n; b--) {
        const i = b % this.size;
        if (i < 0 || this.#bucket[i] !== b) continue;
        total += this.#total[i]!;
        errors += this.#errors[i]!;
        slow += this.#slow[i]!;
      }
      const o = out[k]!;
      o.total = total;
      o.errors = errors;
      o.slow = slow;
    }
  }

  /** Sums of the buckets within `spanMs` up to and including the one holding `nowMs` (at most `size` buckets). */
  sum(nowMs: number, spanMs: number): WindowCounts {
    const last = Math.floor(nowMs / this.widthMs);
    const n = Math.min(this.size, Math.max(1, Math.ceil(spanMs / this.widthMs)));
    let total = 0;
    let errors = 0;
    let slow = 0;
    for (let b = last - n + 1; b <= last; b++) {
      const i = b % this.size;
      if (i < 0 || this.#bucket[i] !== b) continue;
      total += this.#total[i]!;
      errors += this.#errors[i]!;
      slow += this.#slow[i]!;
    }
    return { total, errors, slow };
  }
}
