/** Which knobs `palisade bench` hands a bench, and what it reports for a bench it cannot run. */
import { afterEach, describe, expect, it } from 'vitest';

import { knobsFor, runSuiteBench } from '../../../bench/report/run-suite.ts';
import { SUITE, suiteBench } from '../../../bench/report/suite.ts';

const saved = process.env.DURATION;

afterEach(() => {
  if (saved === undefined) delete process.env.DURATION;
  else process.env.DURATION = saved;
});

describe('knobsFor', () => {
  it('sets no knobs outside quick mode', () => {
    expect(knobsFor(suiteBench('full-chain')!, false)).toEqual({});
  });

  it('sets the quick knobs in quick mode', () => {
    delete process.env.DURATION;
    expect(knobsFor(suiteBench('full-chain')!, true)).toEqual({ DURATION: '2', WARMUP: '1', ROUNDS: '1', SLICES: '1', RETRIES: '0' });
  });

  it('leaves a knob the environment already sets to the environment', () => {
    process.env.DURATION = '7';
    expect(knobsFor(suiteBench('full-chain')!, true)).toEqual({ WARMUP: '1', ROUNDS: '1', SLICES: '1', RETRIES: '0' });
  });
});

describe('the suite', () => {
  it('names every bench folder once, each with a run.ts', async () => {
    const { existsSync } = await import('node:fs');
    const names = SUITE.map((b) => b.name);
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) expect(existsSync(new URL(`../../../bench/${n}/run.ts`, import.meta.url))).toBe(true);
  });

  it('reports a bench whose script does not exist without starting anything', async () => {
    const lines: string[] = [];
    const r = await runSuiteBench({ name: 'no-such-bench', summary: '', quick: {} }, { quick: false, resultsDir: null }, (l) => lines.push(l));
    expect(r.ok).toBe(false);
    expect(r.errors).toEqual([expect.stringMatching(/bench\/no-such-bench\/run\.ts does not exist$/)]);
    expect(r.scenarios).toEqual([]);
    expect(lines).toEqual([]);
  });
});
