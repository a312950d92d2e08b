/**
 * Counter and histogram families for the per-request metrics, registered in a prom-client
 * Registry as ordinary metrics (prom-client reads any object with name, help, type,
 * aggregator and get()), but counted in plain cells: a series is looked up once (the caller
 * keeps its cell) and a request then costs a few additions. prom-client's own Counter.inc /
 * Histogram.observe hash the label object on every call, which measured as a large share of
 * the sidecar's per-request CPU.
 *
 * Exposition and the workers' aggregation (AggregatorRegistry) see the same value shapes as
 * prom-client's Counter and Histogram produce: `<name>` samples for a counter; cumulative
 * `<name>_bucket{le}`, `<name>_sum`, `<name>_count` for a histogram.
 */
import type { Aggregator, Registry } from 'prom-client';

/** One sample as prom-client's registry formats it (metricName defaults to the family name). */
interface Sample {
  readonly metricName?: string;
  readonly labels: Readonly<Record<string, string | number>>;
  readonly value: number;
}

/** What prom-client's registry reads from a metric (its MetricObjectWithValues). */
interface FamilyData {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: Aggregator;
  readonly values: Sample[];
}

type Labels = Readonly<Record<string, string>>;

export interface CounterCell {
  readonly labels: Labels;
  value: number;
}

export interface HistogramCell {
  readonly labels: Labels;
  /** Observations per bucket, not cumulative; the last slot is +Inf. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

interface FamilyOptions {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly registers: readonly Registry[];
}

abstract class HotFamily<C extends { readonly labels: Labels }> {
  readonly name: string;
  readonly help: string;
  readonly aggregator: Aggregator = 'sum';
  abstract readonly type: 'counter' | 'histogram';
  readonly #labelNames: readonly string[];
  protected readonly cells = new Map<string, C>();

  constructor(o: FamilyOptions) {
    this.name = o.name;
    this.help = o.help;
    this.#labelNames = o.labelNames;
    for (const r of o.registers) r.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  protected abstract make(labels: Labels): C;

  /** The series of these labels, made on first use. Keep it: looking it up builds a key. */
  cell(labels: Labels): C {
    const key = this.#key(labels);
    let c = this.cells.get(key);
    if (c === undefined) this.cells.set(key, (c = this.make(Object.freeze({ ...labels }))));
    return c;
  }

  /** Drops a series from the exposition (a cell still held keeps counting, unseen). */
  remove(labels: Labels): void {
    this.cells.delete(this.#key(labels));
  }

  reset(): void {
    this.cells.clear();
  }

  #key(labels: Labels): string {
    let k = '';
    for (const n of this.#labelNames) k += `${labels[n] ?? ''}\0`;
    return k;
  }
}

export class HotCounter extends HotFamily<CounterCell> {
  readonly type = 'counter' as const;

  protected make(labels: Labels): CounterCell {
    return { labels, value: 0 };
  }

  /** For rare paths; hot paths keep the cell and add to `value`. */
  inc(labels: Labels, n = 1): void {
    this.cell(labels).value += n;
  }

  get(): Promise<FamilyData> {
    const values: Sample[] = [];
    for (const c of this.cells.values()) values.push({ labels: { ...c.labels }, value: c.value });
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }
}

export class HotHistogram extends HotFamily<HistogramCell> {
  readonly type = 'histogram' as const;
  readonly #bounds: readonly number[];

  constructor(o: FamilyOptions & { readonly buckets: readonly number[] }) {
    super(o);
    this.#bounds = [...o.buckets].sort((a, b) => a - b);
  }

  protected make(labels: Labels): HistogramCell {
    return { labels, counts: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0 };
  }

  /** One observation into a cell of this family. */
  observe(cell: HistogramCell, value: number): void {
    const b = this.#bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    cell.counts[i]!++;
    cell.sum += value;
    cell.count++;
  }

  get(): Promise<FamilyData> {
    const values: Sample[] = [];
    const b = this.#bounds;
    for (const c of this.cells.values()) {
      let cumulative = 0;
      for (let i = 0; i < b.length; i++) {
        cumulative += c.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { le: b[i]!, ...c.labels }, value: cumulative });
      }
      values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...c.labels }, value: c.count });
      values.push({ metricName: `${this.name}_sum`, labels: { ...c.labels }, value: c.sum });
      values.push({ metricName: `${this.name}_count`, labels: { ...c.labels }, value: c.count });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }
}
