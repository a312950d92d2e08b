/**
 * A cardinality budget for one metric family: at most `max` distinct label sets of its own;
 * past that, a request whose label set is new is counted under a collapsed set (the unbounded
 * labels, route, cluster, policy or quota name, set to `other`) and the overflow is counted
 * (`palisade_metric_label_overflow_total{metric}`). Collapsed sets are few (the bounded labels'
 * product: listener × code class × method) and are always admitted.
 *
 * The check is one Set lookup per observation on a key the caller builds from the label values.
 */

/** What a collapsed label value becomes. */
export const OTHER = 'other';

export class LabelBudget {
  readonly metric: string;
  readonly max: number;
  readonly #keys = new Set<string>();
  /** Observations collapsed into `other` because the budget was spent. */
  overflowed = 0;

  constructor(metric: string, max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxSeriesPerMetric must be a positive integer, got ${max}`);
    this.metric = metric;
    this.max = max;
  }

  /** True when `key` is a known series or the budget has room for it (it is then remembered); false counts an overflow. */
  admit(key: string): boolean {
    if (this.#keys.has(key)) return true;
    if (this.#keys.size >= this.max) {
      this.overflowed++;
      return false;
    }
    this.#keys.add(key);
    return true;
  }

  /** Forgets the admitted label sets `stale` picks (their names left the configuration): the room is free again. Returns them. */
  forget(stale: (key: string) => boolean): string[] {
    const out: string[] = [];
    for (const key of this.#keys) {
      if (!stale(key)) continue;
      this.#keys.delete(key);
      out.push(key);
    }
    return out;
  }

  /** Distinct label sets admitted so far. */
  get size(): number {
    return this.#keys.size;
  }
}

/** The standard methods (RFC 9110 plus PATCH); anything else is `other`, so a client cannot make new series. */
const METHOD_NAMES = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', OTHER] as const;
const METHOD_INDEX: ReadonlyMap<string, number> = new Map(METHOD_NAMES.map((m, i) => [m, i]));
/** Method labels: the standard methods and `other`. */
export const METHOD_COUNT = METHOD_NAMES.length;

/** The method label's index in 0..METHOD_COUNT-1 (`other` last). */
export function methodIndex(method: string): number {
  return METHOD_INDEX.get(method) ?? METHOD_COUNT - 1;
}

export function normalizeMethod(method: string): string {
  return METHOD_NAMES[methodIndex(method)]!;
}

const CODE_CLASSES = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;
/** Code class labels: `0xx`…`5xx`. */
export const CODE_CLASS_COUNT = CODE_CLASSES.length;

/** The code class's index: 1..5 for `1xx`…`5xx`, 0 for no response. */
export function codeClassIndex(status: number): number {
  const c = Math.floor(status / 100);
  return c >= 1 && c <= 5 ? c : 0;
}

/** `2xx`…`5xx` by status; `0xx` for no response (the downstream went away first). */
export function codeClass(status: number): string {
  return CODE_CLASSES[codeClassIndex(status)]!;
}
