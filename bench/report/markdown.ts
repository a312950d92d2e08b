/**
 * The generated section of docs/benchmarks.md: written by `palisade bench` between two
 * marker comments, everything outside them (the hand-written history) kept byte for byte.
 */
import { formatMet, formatRatio, formatTarget, scenarioTable } from '../common/report.ts';
import type { MachineInfo, Versions } from './machine.ts';
import type { BenchRun } from './run-suite.ts';

export const BEGIN_MARKER = '<!-- palisade bench: generated begin -->';
export const END_MARKER = '<!-- palisade bench: generated end -->';

export interface SuiteReport {
  /** The command as typed, e.g. `palisade bench --quick`. */
  readonly command: string;
  readonly date: Date;
  readonly quick: boolean;
  readonly machine: MachineInfo;
  readonly versions: Versions;
  readonly runs: readonly BenchRun[];
  /** Chart path of a scenario id, relative to the Markdown file. */
  readonly chartLink: (id: string) => string;
  /** A result file's path as shown (relative to the repository). */
  readonly resultLink: (file: string) => string;
}

const esc = (s: string) => s.replace(/\|/g, '\\|');

/** The section between the markers, markers included, ending with a newline. */
export function renderGenerated(r: SuiteReport): string {
  const out: string[] = [BEGIN_MARKER, ''];
  const when = `${r.date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  out.push('## Latest suite run (generated)', '');
  out.push(`Written by \`${r.command}\` on ${when}; the text between the \`palisade bench\` markers is replaced by the next run, the rest of this page is not.`);
  if (r.quick) out.push('', '**Quick run** (`--quick`: short durations, one round): a smoke test of the rig, not figures to quote.');
  out.push('');
  out.push(`- Machine: ${r.machine.cpuModel}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, ${r.machine.os} (${r.machine.arch}); every process of a bench shares these cores.`);
  out.push(`- Versions: Node ${r.versions.node}, nginx ${r.versions.nginx}, redis ${r.versions.redis}; commit \`${r.versions.commit}\`.`);
  out.push(`- Command: \`${r.command}\` (each bench: \`node bench/<name>/run.ts\` with the knobs shown).`);
  out.push('');

  const all = r.runs.flatMap((run) => run.scenarios.map((s) => ({ bench: run.name, s })));
  if (all.length > 0) {
    out.push('| bench | scenario | ours / peer | target | |', '|---|---|---:|---:|---|');
    for (const { bench, s } of all) out.push(`| ${bench} | ${esc(s.title)} | ${formatRatio(s.ratio, s.target)} | ${formatTarget(s.target)} | ${formatMet(s.met)} |`);
    out.push('');
  }

  for (const run of r.runs) {
    out.push(`### ${run.name}`, '');
    const knobs = Object.entries(run.knobs).map(([k, v]) => `${k}=${v}`).join(' ');
    out.push(`\`${knobs === '' ? '' : `${knobs} `}node bench/${run.name}/run.ts\`, ${run.seconds} s${run.resultFile === null ? '' : `; raw figures: \`${r.resultLink(run.resultFile)}\``}.`);
    if (run.errors.length > 0) out.push('', `**Failed**: ${run.errors.map(esc).join('; ')}.`);
    out.push('');
    if (run.scenarios.length === 0) continue;
    out.push(scenarioTable(run.scenarios), '');
    for (const s of run.scenarios) if (s.note !== null) out.push(`- ${s.title}: ${s.note}`);
    if (run.scenarios.some((s) => s.note !== null)) out.push('');
    for (const s of run.scenarios) out.push(`![${s.title}](${r.chartLink(s.id)})`, '');
  }
  out.push(END_MARKER);
  return `${out.join('\n')}\n`;
}

/**
 * `doc` with its generated section replaced by `generated`. Without markers the section goes
 * before the first `## ` heading (after the page's title and introduction), or at the end;
 * a missing page (null) becomes a title and the section.
 */
export function spliceGenerated(doc: string | null, generated: string): string {
  if (doc === null) return `# Benchmarks\n\n${generated}`;
  const begin = doc.indexOf(BEGIN_MARKER);
  const end = doc.indexOf(END_MARKER);
  if (begin !== -1 && end > begin) {
    let after = end + END_MARKER.length;
    if (doc[after] === '\n') after++;
    return doc.slice(0, begin) + generated + doc.slice(after);
  }
  if (begin !== -1 || end !== -1) throw new Error(`the generated section's markers are broken: expected ${BEGIN_MARKER} then ${END_MARKER}`);
  const h2 = /^## /m.exec(doc);
  if (h2 === null) return `${doc.endsWith('\n') ? doc : `${doc}\n`}\n${generated}`;
  return `${doc.slice(0, h2.index)}${generated}\n${doc.slice(h2.index)}`;
}
