/**
 * How calls split across backends, next to how the weights say they should. The client
 * picks a backend at random in proportion to its weight, so a measured share is expected
 * within a few standard deviations of the configured one: for n calls and share p, the
 * tolerance is max(5 points, 4·√(p(1−p)/n)), about ±12 points at 200 calls and p = 0.75.
 */

export interface WeightedBackend {
  name: string;
  weight: number;
}

export interface SplitRow {
  name: string;
  calls: number;
  /** Measured share, 0..1. */
  share: number;
  weight: number | null;
  /** Configured share, 0..1, or null when the reply is not a known backend. */
  expected: number | null;
}

export interface SplitReport {
  rows: SplitRow[];
  /** Empty when every share is within tolerance. */
  problems: string[];
}

export function tolerance(expected: number, calls: number): number {
  return Math.max(0.05, 4 * Math.sqrt((expected * (1 - expected)) / calls));
}

/** Compares counts per reply with the weights; `backends` empty means there is nothing to compare with. */
export function compareSplit(counts: ReadonlyMap<string, number>, backends: readonly WeightedBackend[]): SplitReport {
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  const weightSum = backends.reduce((a, b) => a + b.weight, 0);
  const rows: SplitRow[] = backends.map((b) => {
    const calls = counts.get(b.name) ?? 0;
    return { name: b.name, calls, share: total ? calls / total : 0, weight: b.weight, expected: b.weight / weightSum };
  });
  for (const [name, calls] of counts) {
    if (!backends.some((b) => b.name === name)) rows.push({ name, calls, share: calls / total, weight: null, expected: null });
  }
  const problems: string[] = [];
  if (backends.length > 0) {
    for (const r of rows) {
      if (r.expected === null) problems.push(`${total} calls: ${r.calls} answered by ${JSON.stringify(r.name)}, which is not a demo backend`);
      else if (Math.abs(r.share - r.expected) > tolerance(r.expected, total)) {
        problems.push(`${r.name} got ${pct(r.share)} of ${total} calls, configured ${pct(r.expected)} (± ${pct(tolerance(r.expected, total))})`);
      }
    }
  }
  return { rows, problems };
}

/** A small table: backend, calls, share, configured share and weight. */
export function formatSplit(rows: readonly SplitRow[]): string[] {
  const table = [['backend', 'calls', 'share', 'configured']];
  for (const r of rows) {
    table.push([r.name, String(r.calls), pct(r.share), r.expected === null ? '-' : `${pct(r.expected)} (weight ${r.weight})`]);
  }
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  // Names left-aligned, numbers right-aligned.
  return table.map((row) => row.map((c, i) => (i === 1 || i === 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

function pct(x: number): string {
  return `${Math.round(x * 100)}%`;
}
