/** The generated section of docs/benchmarks.md: what it says, and that the hand-written rest of the page is kept. */
import { describe, expect, it } from 'vitest';

import { scenario } from '../../../bench/common/report.ts';
import { BEGIN_MARKER, END_MARKER, renderGenerated, spliceGenerated, type SuiteReport } from '../../../bench/report/markdown.ts';

const report: SuiteReport = {
  command: 'palisade bench --only quota',
  date: new Date('2026-11-27T16:05:00Z'),
  quick: false,
  machine: { cpuModel: 'AMD EPYC', cores: 2, memoryGiB: 23.5, os: 'Linux 6.18', arch: 'x64' },
  versions: { node: 'v24.21.0', nginx: '1.22.1', redis: '7.0.15', commit: 'abc1234' },
  runs: [
    {
      name: 'quota', ok: true, exitCode: 0, signal: null, resultFile: '/repo/bench/results/quota-1.json', errors: [], knobs: { SAMPLES: '3' }, seconds: 4.2,
      scenarios: [scenario({
        id: 'quota-global-vs-redis-rtt', title: 'GLOBAL quota check vs one Redis round trip', unit: 'µs', better: 'lower',
        ours: { label: 'global check', value: 30 }, peer: { label: 'redis-benchmark INCR', value: 25 }, target: { op: '<=', value: 1.5 }, note: 'median of 3',
      })],
    },
    { name: 'full-chain', ok: false, exitCode: 1, signal: null, resultFile: null, errors: ['exited with status 1', 'printed no "results: <file>" line'], knobs: {}, seconds: 1, scenarios: [] },
  ],
  chartLink: (id) => `benchmarks/${id}.svg`,
  resultLink: (file) => file.replace('/repo/', ''),
};

describe('renderGenerated', () => {
  const text = renderGenerated(report);

  it('is enclosed in the markers', () => {
    expect(text.startsWith(`${BEGIN_MARKER}\n`)).toBe(true);
    expect(text.endsWith(`${END_MARKER}\n`)).toBe(true);
  });

  it('states the machine, the versions, the command and the date', () => {
    expect(text).toContain('- Machine: AMD EPYC, 2 cores, 23.5 GiB, Linux 6.18 (x64)');
    expect(text).toContain('- Versions: Node v24.21.0, nginx 1.22.1, redis 7.0.15; commit `abc1234`.');
    expect(text).toContain('Written by `palisade bench --only quota` on 2026-11-27 16:05 UTC');
    expect(text).not.toContain('Quick run');
  });

  it('has a summary row and a table per bench, the chart link, and says which bench failed and why', () => {
    expect(text).toContain('| quota | GLOBAL quota check vs one Redis round trip | 1.20× | ≤ 1.5× | met |');
    expect(text).toContain('| GLOBAL quota check vs one Redis round trip | global check: **30.0** µs | redis-benchmark INCR: 25.0 µs | 1.20× | ≤ 1.5× | met |');
    expect(text).toContain('`SAMPLES=3 node bench/quota/run.ts`, 4.2 s; raw figures: `bench/results/quota-1.json`.');
    expect(text).toContain('![GLOBAL quota check vs one Redis round trip](benchmarks/quota-global-vs-redis-rtt.svg)');
    expect(text).toContain('### full-chain\n\n`node bench/full-chain/run.ts`, 1 s.\n\n**Failed**: exited with status 1; printed no "results: <file>" line.');
  });

  it('marks a quick run as not figures to quote', () => {
    expect(renderGenerated({ ...report, quick: true })).toContain('**Quick run** (`--quick`: short durations, one round): a smoke test of the rig, not figures to quote.');
  });
});

describe('spliceGenerated', () => {
  const gen = `${BEGIN_MARKER}\nNEW\n${END_MARKER}\n`;

  it('replaces only the text between the markers', () => {
    const doc = `# Benchmarks\n\nintro\n\n${BEGIN_MARKER}\nOLD\n${END_MARKER}\n\n## history\n\nhand-written\n`;
    expect(spliceGenerated(doc, gen)).toBe(`# Benchmarks\n\nintro\n\n${gen}\n## history\n\nhand-written\n`);
  });

  it('is stable: splicing the same section twice gives the same page', () => {
    const doc = `# Benchmarks\n\nintro\n\n## history\n`;
    const once = spliceGenerated(doc, gen);
    expect(spliceGenerated(once, gen)).toBe(once);
  });

  it('inserts the section before the first ## heading of a page without markers', () => {
    expect(spliceGenerated('# Benchmarks\n\nintro\n\n## xds-scale\n\ntext\n', gen)).toBe(`# Benchmarks\n\nintro\n\n${gen}\n## xds-scale\n\ntext\n`);
  });

  it('appends to a page without headings, and makes a page when there is none', () => {
    expect(spliceGenerated('# B\n\nintro', gen)).toBe(`# B\n\nintro\n\n${gen}`);
    expect(spliceGenerated(null, gen)).toBe(`# Benchmarks\n\n${gen}`);
  });

  it('refuses a page with only one marker rather than guessing', () => {
    expect(() => spliceGenerated(`# B\n\n${BEGIN_MARKER}\nOLD\n`, gen)).toThrow('the generated section\'s markers are broken');
  });
});
