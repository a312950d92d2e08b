/**
 * `palisade bench`: runs the macro benchmark suite (bench/<name>/run.ts, one after the other,
 * each its own process), then writes an SVG chart per scenario and regenerates the generated
 * section of docs/benchmarks.md (machine, versions, the command, a table per bench).
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join, relative, resolve } from 'node:path';

import { machineInfo, versions } from '../../bench/report/machine.ts';
import { renderGenerated, spliceGenerated } from '../../bench/report/markdown.ts';
import { runSuiteBench, type BenchRun } from '../../bench/report/run-suite.ts';
import { SUITE, suiteBench, type SuiteBench } from '../../bench/report/suite.ts';
import { svgChart } from '../../bench/report/svg-chart.ts';
import { REPO } from '../../bench/proxy/targets.ts';
import { guard, parseFlags, UsageError } from '../args.ts';

export const help = `Usage: palisade bench [flags]

Runs the benchmark suite, each bench/<name>/run.ts in its own process on the pinned Node,
one after the other, and writes for each scenario (our figure next to a peer measured in the
same run) an SVG chart to <out without .md>/<scenario>.svg, and the generated section of the
Markdown file: machine, Node/OS/nginx/redis versions, this command, a table per bench and
links to the charts. Text outside the generated section is kept. Each bench's knobs come
from the environment (see bench/<name>/environment.ts); --quick sets short ones for a smoke
run, unless the environment already sets them.

Benches: ${SUITE.map((b) => b.name).join(', ')}
${SUITE.map((b) => `  ${b.name.padEnd(12)}${b.summary}`).join('\n')}

Exit status: 0 when every bench ran and wrote its scenarios (targets missed do not fail
the run), 1 otherwise (the page is still written with what was measured).

Flags:
  --only NAME,...      run only these benches, in suite order     (default all)
  --quick              short durations and one round: a smoke run, not figures to quote
  --out FILE           the Markdown page to update                (default docs/benchmarks.md)
  --results-dir DIR    where the benches write their JSON results (default bench/results)
  -h, --help           this help
`;

function parseOnly(raw: string | undefined): SuiteBench[] {
  if (raw === undefined) return [...SUITE];
  const names = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new UsageError(`--only must name at least one bench, got ${JSON.stringify(raw)}`);
  for (const n of names) if (suiteBench(n) === undefined) throw new UsageError(`--only: unknown bench ${JSON.stringify(n)}; known: ${SUITE.map((b) => b.name).join(', ')}`);
  return SUITE.filter((b) => names.includes(b.name));
}

/** Writes `text` to `file` atomically (temp file + rename in the same directory). */
function writeAtomic(file: string, text: string): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

export function run(argv: string[]): Promise<number> {
  return guard('bench', help, async () => {
    const flags = parseFlags(argv, {
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      out: { type: 'string', default: join(REPO, 'docs', 'benchmarks.md') },
      'results-dir': { type: 'string' },
    });
    const resultsDir = flags['results-dir'] === undefined ? null : resolve(flags['results-dir']);
    const benches = parseOnly(flags.only);
    const out = resolve(flags.out);
    if (extname(out) !== '.md') throw new UsageError(`--out must be a Markdown file (*.md), got ${JSON.stringify(flags.out)}`);
    const chartDir = join(dirname(out), basename(out, '.md'));
    const command = ['palisade', 'bench', ...argv].join(' ');
    const date = new Date();
    const write = (line: string) => process.stdout.write(`${line}\n`);

    const runs: BenchRun[] = [];
    for (const b of benches) {
      const r = await runSuiteBench(b, { quick: flags.quick, resultsDir }, write);
      runs.push(r);
      write(`[${b.name}] ${r.ok ? 'done' : `FAILED: ${r.errors.join('; ')}`} (${r.seconds} s, ${r.scenarios.length} scenarios)`);
    }

    mkdirSync(chartDir, { recursive: true });
    for (const r of runs) for (const s of r.scenarios) writeAtomic(join(chartDir, `${s.id}.svg`), svgChart(s));
    let doc: string | null = null;
    try {
      doc = readFileSync(out, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const generated = renderGenerated({
      command, date, quick: flags.quick, machine: machineInfo(), versions: versions(), runs,
      chartLink: (id) => `${relative(dirname(out), join(chartDir, `${id}.svg`)).split('\\').join('/')}`,
      resultLink: (file) => (file.startsWith(REPO) ? relative(REPO, file) : file).split('\\').join('/'),
    });
    mkdirSync(dirname(out), { recursive: true });
    writeAtomic(out, spliceGenerated(doc, generated));
    const charts = runs.reduce((n, r) => n + r.scenarios.length, 0);
    write(`wrote ${out} and ${charts} chart${charts === 1 ? '' : 's'} in ${chartDir}`);
    return runs.every((r) => r.ok) ? 0 : 1;
  });
}
