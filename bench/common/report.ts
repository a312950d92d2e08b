/**
 * The machine-readable part of every macro benchmark's result file
 * (bench/results/<bench>-<date>.json): a `scenarios` array, one row per figure the issue
 * judges, each our figure next to the peer measured in the same run, the ratio, the target
 * and whether it was met. `palisade bench` reads only this part (bench/report/), so a bench
 * may keep any other fields it likes for its own tables.
 *
 *   { "meta": {...}, ..., "scenarios": [ { "id": "mtls-chain-rps", "title": ..., ... } ] }
 *
 * The ratio is always ours / peer: for figures where higher is better (rps) a target reads
 * `>= 0.8`, for costs (µs per check) `<= 1.5`.
 */
import { fileURLToPath } from 'node:url';

/**
 * Where a bench writes its result file: the RESULTS_DIR knob (`palisade bench --results-dir`),
 * else bench/results/ of the repository.
 */
export function resultsDir(): string {
  const dir = process.env.RESULTS_DIR?.trim();
  return dir === undefined || dir === '' ? fileURLToPath(new URL('../results', import.meta.url)) : dir;
}

/** One measured figure: what was measured (`palisade sidecar, mTLS chain`) and its value in the scenario's unit; null when it was not measured (a failed topology). */
export interface Figure {
  readonly label: string;
  readonly value: number | null;
}

/** A target on the ratio ours / peer. */
export interface RatioTarget {
  readonly op: '>=' | '<=';
  readonly value: number;
}

export interface Scenario {
  /** Unique across the suite, kebab-case, starting with the bench's name: names the chart file (docs/benchmarks/<id>.svg). */
  readonly id: string;
  /** What is compared, one line. */
  readonly title: string;
  /** Unit of both figures: `rps`, `µs`, `ns/op`, `ms`, `hs/s`, `KiB`. */
  readonly unit: string;
  /** Whether more of the unit is better (throughput) or worse (cost, latency). */
  readonly better: 'higher' | 'lower';
  readonly ours: Figure;
  readonly peer: Figure;
  /** ours / peer, 3 decimals; null when either is missing or the peer is 0. */
  readonly ratio: number | null;
  readonly target: RatioTarget | null;
  /** Whether the ratio meets the target; null without a target or a ratio. */
  readonly met: boolean | null;
  /** One line of context for the table (median of N rounds, a caveat), or null. */
  readonly note: string | null;
}

export interface ScenarioInput {
  id: string;
  title: string;
  unit: string;
  better: 'higher' | 'lower';
  ours: { label: string; value: number | null | undefined };
  peer: { label: string; value: number | null | undefined };
  target?: RatioTarget | null;
  note?: string | null;
}

const ID = /^[a-z0-9]+(-[a-z0-9]+)*$/;

const finite = (v: number | null | undefined): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** A scenario row with its ratio and verdict computed; throws on a malformed id or target (a bug in the bench). */
export function scenario(input: ScenarioInput): Scenario {
  if (!ID.test(input.id)) throw new TypeError(`scenario id must be kebab-case, got ${JSON.stringify(input.id)}`);
  const target = input.target ?? null;
  if (target !== null && !(target.value > 0 && Number.isFinite(target.value))) throw new TypeError(`scenario ${input.id}: target.value must be a positive number, got ${target.value}`);
  const ours = finite(input.ours.value);
  const peer = finite(input.peer.value);
  const ratio = ours === null || peer === null || peer === 0 ? null : Math.round((ours / peer) * 1000) / 1000;
  const met = ratio === null || target === null ? null : target.op === '>=' ? ratio >= target.value : ratio <= target.value;
  return Object.freeze({
    id: input.id, title: input.title, unit: input.unit, better: input.better,
    ours: Object.freeze({ label: input.ours.label, value: ours }),
    peer: Object.freeze({ label: input.peer.label, value: peer }),
    ratio, target: target === null ? null : Object.freeze({ op: target.op, value: target.value }), met,
    note: input.note ?? null,
  });
}

/** The median of `xs` (NaN for none), as every macro bench reports its rounds. */
export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * The `scenarios` of a parsed result file, checked field by field. Expected failures are
 * values: a file without scenarios (an older bench) or with a malformed row gives every
 * problem with its path.
 */
export function readScenarios(json: unknown): { valid: true; result: Scenario[] } | { valid: false; errors: string[] } {
  const errors: string[] = [];
  const list = (json as { scenarios?: unknown } | null)?.scenarios;
  if (!Array.isArray(list)) return { valid: false, errors: ['scenarios: missing (the bench does not write machine-readable scenarios)'] };
  const out: Scenario[] = [];
  list.forEach((raw: unknown, i) => {
    const at = `scenarios[${i}]`;
    const r = raw as Record<string, unknown> | null;
    if (r === null || typeof r !== 'object') {
      errors.push(`${at}: must be an object, got ${JSON.stringify(raw)}`);
      return;
    }
    const n = errors.length;
    for (const k of ['id', 'title', 'unit'] as const) if (typeof r[k] !== 'string') errors.push(`${at}.${k} must be a string, got ${JSON.stringify(r[k])}`);
    if (r.better !== 'higher' && r.better !== 'lower') errors.push(`${at}.better must be "higher" or "lower", got ${JSON.stringify(r.better)}`);
    for (const k of ['ours', 'peer'] as const) {
      const f = r[k] as { label?: unknown; value?: unknown } | null | undefined;
      if (f === null || typeof f !== 'object' || typeof f.label !== 'string' || !(f.value === null || typeof f.value === 'number')) {
        errors.push(`${at}.${k} must be { label: string, value: number | null }, got ${JSON.stringify(f)}`);
      }
    }
    const t = r.target as { op?: unknown; value?: unknown } | null | undefined;
    if (t !== null && t !== undefined && ((t.op !== '>=' && t.op !== '<=') || typeof t.value !== 'number' || !(t.value > 0))) {
      errors.push(`${at}.target must be null or { op: ">=" | "<=", value: number > 0 }, got ${JSON.stringify(t)}`);
    }
    if (errors.length > n) return;
    try {
      out.push(scenario({
        id: r.id as string, title: r.title as string, unit: r.unit as string, better: r.better as 'higher' | 'lower',
        ours: r.ours as Figure, peer: r.peer as Figure, target: (t ?? null) as RatioTarget | null,
        note: typeof r.note === 'string' ? r.note : null,
      }));
    } catch (err) {
      errors.push(`${at}: ${(err as Error).message}`);
    }
  });
  const ids = new Set<string>();
  for (const s of out) {
    if (ids.has(s.id)) errors.push(`scenarios: id ${JSON.stringify(s.id)} appears twice`);
    ids.add(s.id);
  }
  return errors.length === 0 ? { valid: true, result: out } : { valid: false, errors };
}

/** A figure for tables and charts: thousands grouped with a thin space, 3 significant digits below 100. */
export function formatValue(v: number | null): string {
  if (v === null) return '—';
  const a = Math.abs(v);
  if (a >= 100) return Math.round(v).toString().replace(/\B(?=(\d{3})+(?!\d))/g, '\u2009');
  return a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toPrecision(3);
}

/**
 * A ratio to two decimals; to three when two would round it onto its target from the wrong
 * side (0.697 against ≥ 0.7 reads 0.697×, not a "0.70×" that missed). Made for
 * Scenario.ratio, which scenario() rounds to three decimals before judging it.
 */
export function formatRatio(r: number | null, target: RatioTarget | null = null): string {
  if (r === null) return '—';
  const two = r.toFixed(2);
  const hidden = target !== null && Number(two) === target.value && (target.op === '>=' ? r < target.value : r > target.value);
  return `${hidden ? r.toFixed(3) : two}×`;
}

export function formatTarget(t: RatioTarget | null): string {
  return t === null ? '—' : `${t.op === '>=' ? '≥' : '≤'} ${t.value}×`;
}

export function formatMet(met: boolean | null): string {
  return met === null ? '—' : met ? 'met' : '**missed**';
}

/** A Markdown table of the scenarios: name, our figure, the peer's, ratio, target, met. */
export function scenarioTable(scenarios: readonly Scenario[]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const rows = scenarios.map((s) => `| ${esc(s.title)} | ${esc(s.ours.label)}: **${formatValue(s.ours.value)}** ${s.unit} | ${esc(s.peer.label)}: ${formatValue(s.peer.value)} ${s.unit} | ` +
    `${formatRatio(s.ratio, s.target)} | ${formatTarget(s.target)} | ${formatMet(s.met)} |`);
  return ['| scenario | ours | peer (same run) | ours / peer | target | |', '|---|---:|---:|---:|---:|---|', ...rows].join('\n');
}
