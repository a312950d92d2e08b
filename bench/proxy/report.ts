/**
 * bench/proxy — the report: what a measurement holds, the throughput and added-latency tables
 * (markdown), and the verdicts against issue #4's targets.
 */
import type { BenchEnvironment, TargetName } from './environment.ts';
import type { LoadResult, LoadSpec } from './load.ts';

export const LABEL: Record<TargetName, string> = {
  direct: 'direct (no proxy)',
  sidecar: 'palisade sidecar',
  nginx: 'nginx 1 worker',
  haproxy: 'haproxy 1 thread',
  'http-proxy-3': 'http-proxy-3',
  fastify: '@fastify/http-proxy',
};

export interface Measured {
  load: LoadResult;
  /** CPU used during the measured window, % of one core. */
  targetCpuPct: number | null;
  /** Of targetCpuPct, the part spent in the kernel (system time), %. */
  targetSysPct: number | null;
  loadCpuPct: number;
  upstreamCpuPct: number;
  /** The whole machine's busy CPU in the window, % of one core (2 cores = 200%). */
  machineCpuPct: number;
  /** Machine CPU not used by the target, the load generator or the upstream (other work on the box, this script), %. */
  otherCpuPct: number;
  /** The measured window, performance.now() of this process, ms. */
  windowStart: number;
  windowEnd: number;
}

export interface TargetResult {
  target: TargetName;
  ok: boolean;
  /** Other work on the box took more than DISTURBED_OTHER_PCT during the kept run. */
  disturbed?: boolean;
  error?: string;
  measured?: Measured;
}

export interface LatencyRow {
  target: 'direct' | 'sidecar';
  mode: LoadSpec['mode'];
  measured?: Measured;
  error?: string;
}

export function failures(l: LoadResult): number {
  return l.non2xx + l.errors + l.timeouts + l.mismatches;
}

export function fmt(v: number | null | undefined, digits = 2): string {
  return v === null || v === undefined || Number.isNaN(v) ? '—' : v.toFixed(digits);
}

export function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || b === 0 ? '—' : `${(a / b).toFixed(2)}×`;
}

/**
 * Other work on the box (CPU not used by the target, the load generator or the upstream) above
 * this share of one core during the measured window marks a run as disturbed.
 */
const DISTURBED_OTHER_PCT = 25;

export function isDisturbed(m: Measured): boolean {
  return m.otherCpuPct > DISTURBED_OTHER_PCT;
}

/** CPU time the target spent per request, µs: a figure less sensitive to a busy box than rps. */
export function cpuPerRequestUs(m: Measured): number | null {
  return m.targetCpuPct === null || m.load.rps === 0 ? null : (m.targetCpuPct / 100) * 1e6 / m.load.rps;
}

export function throughputTable(results: TargetResult[], env: BenchEnvironment): string {
  const rps = (t: TargetName) => results.find((r) => r.target === t && r.ok)?.measured?.load.rps;
  const lines = [
    `| target (${env.connections} connections, ${env.bodyBytes} B body, ${env.durationS} s) | rps | p50 ms | p99 ms | errors | vs nginx | vs direct | target CPU % (of it kernel) | target CPU µs / req | loadgen CPU % | upstream CPU % | other CPU % |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const m = r.measured;
    if (m === undefined) {
      lines.push(`| ${LABEL[r.target]} | FAILED: ${(r.error ?? '?').replace(/\s+/g, ' ')} | | | | | | | | | | |`);
      continue;
    }
    const l = m.load;
    const errs = failures(l);
    const errText = errs === 0 ? '0' : `**${errs}** (non-2xx ${l.non2xx}, errors ${l.errors}, timeouts ${l.timeouts}, body ${l.mismatches})`;
    lines.push(`| ${LABEL[r.target]}${errs > 0 ? ' (errors)' : ''}${r.disturbed === true ? ' *' : ''} | ${Math.round(l.rps)} | ${fmt(l.p50)} | ${fmt(l.p99)} | ${errText} | ${ratio(l.rps, rps('nginx'))} | ${ratio(l.rps, rps('direct'))} | ${fmt(m.targetCpuPct, 0)}${m.targetSysPct === null ? '' : ` (${fmt(m.targetSysPct, 0)})`} | ${fmt(cpuPerRequestUs(m), 0)} | ${fmt(m.loadCpuPct, 0)} | ${fmt(m.upstreamCpuPct, 0)} | ${fmt(m.otherCpuPct, 0)} |`);
  }
  if (results.some((r) => r.disturbed === true)) lines.push('', `\\* disturbed: other work on the box used more than ${DISTURBED_OTHER_PCT}% of a core during the measurement, after up to RETRIES repeats`);
  return lines.join('\n');
}

export function latencyTable(rows: LatencyRow[], rate: number): string {
  const lines = [
    `| at ${rate} rps | direct p50 | sidecar p50 | added p50 | direct p99 | sidecar p99 | added p99 | achieved rps (direct / sidecar) | errors | other CPU % (direct / sidecar) |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const mode of ['paced', 'autocannon'] as const) {
    const dm = rows.find((r) => r.mode === mode && r.target === 'direct')?.measured;
    const sm = rows.find((r) => r.mode === mode && r.target === 'sidecar')?.measured;
    const d = dm?.load;
    const s = sm?.load;
    if (dm === undefined || sm === undefined || d === undefined || s === undefined) {
      const errs = rows.filter((r) => r.mode === mode && r.error !== undefined).map((r) => `${r.target}: ${r.error}`).join('; ');
      lines.push(`| ${mode} | FAILED ${errs} | | | | | | | | |`);
      continue;
    }
    const label = mode === 'paced' ? 'paced (undici, evenly spaced)' : 'autocannon overallRate';
    lines.push(`| ${label} | ${fmt(d.p50, 3)} | ${fmt(s.p50, 3)} | **${fmt(s.p50 - d.p50, 3)}** | ${fmt(d.p99, 3)} | ${fmt(s.p99, 3)} | **${fmt(s.p99 - d.p99, 3)}** | ${Math.round(d.rps)} / ${Math.round(s.rps)} | ${failures(d)} / ${failures(s)} | ${fmt(dm.otherCpuPct, 0)} / ${fmt(sm.otherCpuPct, 0)} |`);
  }
  return lines.join('\n');
}

export interface Verdict {
  what: string;
  target: string;
  value: string;
  met: boolean | null;
}

export function verdicts(results: TargetResult[], latencyRows: LatencyRow[]): Verdict[] {
  const rps = (t: TargetName) => {
    const m = results.find((r) => r.target === t && r.ok)?.measured?.load;
    return m !== undefined && failures(m) === 0 ? m.rps : undefined;
  };
  const out: Verdict[] = [];
  const sc = rps('sidecar');
  const ng = rps('nginx');
  const hp = rps('http-proxy-3');
  out.push({ what: 'sidecar rps / nginx rps', target: '≥ 0.6', value: ratio(sc, ng), met: sc === undefined || ng === undefined ? null : sc / ng >= 0.6 });
  out.push({ what: 'sidecar rps / http-proxy-3 rps', target: '≥ 2', value: ratio(sc, hp), met: sc === undefined || hp === undefined ? null : sc / hp >= 2 });
  const d = latencyRows.find((r) => r.mode === 'paced' && r.target === 'direct')?.measured?.load;
  const s = latencyRows.find((r) => r.mode === 'paced' && r.target === 'sidecar')?.measured?.load;
  const ok = d !== undefined && s !== undefined && failures(d) === 0 && failures(s) === 0;
  out.push({ what: 'added p50 at half the sidecar peak (paced)', target: '≤ 0.3 ms', value: ok ? `${fmt(s.p50 - d.p50, 3)} ms` : '—', met: ok ? s.p50 - d.p50 <= 0.3 : null });
  out.push({ what: 'added p99 at half the sidecar peak (paced)', target: '≤ 1.5 ms', value: ok ? `${fmt(s.p99 - d.p99, 3)} ms` : '—', met: ok ? s.p99 - d.p99 <= 1.5 : null });
  return out;
}
