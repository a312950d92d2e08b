/**
 * Earliest-deadline-first scheduling of weighted items, as Envoy's `EdfScheduler`: item i
 * is due every 1/weight; a pick takes the item with the earliest deadline and moves its
 * deadline on by 1/weight. Over any window, item i gets weight_i / Σweight of the picks,
 * spread evenly (a 3:1 pair goes a a a b, never a a a a a a b b), in O(log n) per pick.
 *
 * The heap lives in typed arrays sized once, so a pick allocates nothing. Ties break by
 * when an item was last scheduled (then by index), which keeps the order deterministic.
 * The weight used to reschedule is passed in, so a least-request balancer can use a weight
 * that depends on the host's active requests at pick time.
 */
export class EdfScheduler {
  readonly size: number;
  readonly #heap: Int32Array;
  readonly #deadline: Float64Array;
  readonly #order: Float64Array;
  #counter: number;

  /** @param weights one per item, each > 0. */
  constructor(weights: ArrayLike<number>) {
    const n = weights.length;
    this.size = n;
    this.#heap = new Int32Array(n);
    this.#deadline = new Float64Array(n);
    this.#order = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      this.#heap[i] = i;
      this.#deadline[i] = 1 / weights[i]!;
      this.#order[i] = i;
    }
    this.#counter = n;
    for (let i = (n >> 1) - 1; i >= 0; i--) this.#siftDown(i);
  }

  /** The item due next. The scheduler must not be empty. */
  peek(): number {
    return this.#heap[0]!;
  }

  /** Reschedules the item `peek()` returned, 1/weight after its current deadline. */
  advance(weight: number): void {
    const top = this.#heap[0]!;
    this.#deadline[top] = this.#deadline[top]! + 1 / weight;
    this.#order[top] = this.#counter++;
    this.#siftDown(0);
  }

  #less(a: number, b: number): boolean {
    const da = this.#deadline[a]!;
    const db = this.#deadline[b]!;
    return da < db || (da === db && this.#order[a]! < this.#order[b]!);
  }

  #siftDown(i: number): void {
    const heap = this.#heap;
    const n = this.size;
    const item = heap[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.#less(heap[r]!, heap[l]!) ? r : l;
      if (!this.#less(heap[c]!, item)) break;
      heap[i] = heap[c]!;
      i = c;
    }
    heap[i] = item;
  }
}
