/**
 * Parses a Prometheus text exposition (parse-prometheus-text-format) and checks what that
 * lenient parser does not: every family has HELP and TYPE, a valid name, `_total` counters,
 * unit suffixes on histograms, cumulative buckets ending in +Inf equal to the count.
 */
import { createRequire } from 'node:module';

export interface Sample {
  readonly labels?: Record<string, string>;
  readonly value?: string;
  readonly buckets?: Record<string, string>;
  readonly count?: string;
  readonly sum?: string;
}

export interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
  readonly metrics: readonly Sample[];
}

const parse = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[];

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * The parser folds every sample of a histogram family into one (it only handles unlabelled
 * histograms): labelled ones are read again as untyped `_bucket`, `_sum` and `_count`
 * families and grouped by their labels (less `le`) here.
 */
function histogramSeries(text: string, name: string): Sample[] {
  const untyped = parse(text.replace(`# TYPE ${name} histogram`, `# TYPE ${name} untyped`));
  const series = new Map<string, { labels: Record<string, string>; buckets: Record<string, string>; count?: string; sum?: string }>();
  const of = (labels: Record<string, string>) => {
    const key = JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort());
    let s = series.get(key);
    if (s === undefined) series.set(key, (s = { labels: Object.fromEntries(Object.entries(labels).filter(([k]) => k !== 'le')), buckets: {} }));
    return s;
  };
  for (const f of untyped) {
    for (const m of f.metrics) {
      const labels = m.labels ?? {};
      if (f.name === `${name}_bucket`) of(labels).buckets[labels.le!] = m.value!;
      else if (f.name === `${name}_count`) of(labels).count = m.value!;
      else if (f.name === `${name}_sum`) of(labels).sum = m.value!;
    }
  }
  return [...series.values()];
}

/** The families of `text`, by name; throws naming the first invalid one. */
export function parseExposition(text: string): Map<string, Family> {
  const families = parse(text).map((f) => (f.type === 'HISTOGRAM' ? { ...f, metrics: histogramSeries(text, f.name) } : f));
  const out = new Map<string, Family>();
  for (const f of families) {
    if (!NAME.test(f.name)) throw new Error(`bad metric name ${f.name}`);
    if (f.help === '' || f.help === undefined) throw new Error(`${f.name} has no HELP`);
    if (!['COUNTER', 'GAUGE', 'HISTOGRAM'].includes(f.type)) throw new Error(`${f.name} has type ${f.type}`);
    if (f.type === 'COUNTER' && !f.name.endsWith('_total')) throw new Error(`counter ${f.name} does not end in _total`);
    if (f.type === 'HISTOGRAM' && !/_(seconds|bytes)$/.test(f.name)) throw new Error(`histogram ${f.name} has no unit suffix`);
    if (out.has(f.name)) throw new Error(`${f.name} appears twice`);
    for (const m of f.metrics) {
      if (f.type === 'HISTOGRAM') {
        // Integer-like keys ("1", "10") come first in an object: order by the bound.
        const entries = Object.entries(m.buckets ?? {}).sort(([a], [b]) => (a === '+Inf' ? Infinity : Number(a)) - (b === '+Inf' ? Infinity : Number(b)));
        let prev = -1;
        for (const [, v] of entries) {
          if (Number(v) < prev) throw new Error(`${f.name} buckets are not cumulative`);
          prev = Number(v);
        }
        if (m.buckets?.['+Inf'] !== m.count) throw new Error(`${f.name} +Inf bucket ${m.buckets?.['+Inf']} differs from count ${m.count}`);
      } else if (!Number.isFinite(Number(m.value))) {
        throw new Error(`${f.name} has value ${m.value}`);
      }
    }
    out.set(f.name, f);
  }
  return out;
}

/** The value of the sample of `family` whose labels include `labels`; undefined when none. */
export function valueOf(families: Map<string, Family>, family: string, labels: Record<string, string> = {}): number | undefined {
  const f = families.get(family);
  const m = f?.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  if (m === undefined) return undefined;
  return Number(f!.type === 'HISTOGRAM' ? m.count : m.value);
}

/** The sum over every sample of `family` whose labels include `labels` (histograms: counts). */
export function sumOf(families: Map<string, Family>, family: string, labels: Record<string, string> = {}): number {
  const f = families.get(family);
  if (f === undefined) return 0;
  let n = 0;
  for (const s of f.metrics) if (Object.entries(labels).every(([k, v]) => s.labels?.[k] === v)) n += Number(f.type === 'HISTOGRAM' ? s.count : s.value);
  return n;
}
