/** The scenario rows every macro bench writes into its result file, and how they are read back. */
import { describe, expect, it } from 'vitest';

import { formatRatio, formatValue, median, readScenarios, scenario, scenarioTable, type ScenarioInput } from '../../../bench/common/report.ts';

const base: ScenarioInput = {
  id: 'full-chain-rps', title: 'sidecar rps, full chain vs no filters', unit: 'rps', better: 'higher',
  ours: { label: 'full chain', value: 7000 }, peer: { label: 'no filters', value: 10000 }, target: { op: '>=', value: 0.7 },
};

describe('scenario', () => {
  it.each([
    ['meets a >= target at the boundary', { ours: { label: 'a', value: 7000 }, peer: { label: 'b', value: 10000 }, target: { op: '>=', value: 0.7 } }, 0.7, true],
    ['misses a >= target below it', { ours: { label: 'a', value: 6990 }, peer: { label: 'b', value: 10000 }, target: { op: '>=', value: 0.7 } }, 0.699, false],
    ['meets a <= target below it', { better: 'lower', ours: { label: 'a', value: 30 }, peer: { label: 'b', value: 25 }, target: { op: '<=', value: 1.5 } }, 1.2, true],
    ['misses a <= target above it', { better: 'lower', ours: { label: 'a', value: 40 }, peer: { label: 'b', value: 25 }, target: { op: '<=', value: 1.5 } }, 1.6, false],
    ['has no verdict without a target', { target: null }, 0.7, null],
    ['has no ratio when our figure is missing', { ours: { label: 'a', value: null } }, null, null],
    ['has no ratio when the peer measured 0', { peer: { label: 'b', value: 0 } }, null, null],
    ['treats NaN as not measured', { peer: { label: 'b', value: NaN } }, null, null],
  ] as const)('%s', (_name, patch, ratio, met) => {
    const s = scenario({ ...base, ...(patch as Partial<ScenarioInput>) });
    expect(s.ratio).toBe(ratio);
    expect(s.met).toBe(met);
    expect(Object.isFrozen(s)).toBe(true);
  });

  it('refuses an id that is not kebab-case, naming it', () => {
    expect(() => scenario({ ...base, id: 'Full Chain' })).toThrow('scenario id must be kebab-case, got "Full Chain"');
  });

  it('refuses a target that is not a positive number', () => {
    expect(() => scenario({ ...base, target: { op: '>=', value: 0 } })).toThrow('scenario full-chain-rps: target.value must be a positive number, got 0');
  });
});

describe('readScenarios', () => {
  it('reads back what scenario() wrote through JSON', () => {
    const written = [scenario(base), scenario({ ...base, id: 'quota-global', ours: { label: 'x', value: null }, note: 'n' })];
    const read = readScenarios(JSON.parse(JSON.stringify({ meta: {}, scenarios: written })));
    expect(read).toEqual({ valid: true, result: written });
  });

  it('reports a result file without scenarios', () => {
    expect(readScenarios({ meta: {} })).toEqual({ valid: false, errors: ['scenarios: missing (the bench does not write machine-readable scenarios)'] });
  });

  it('reports every malformed field with its path', () => {
    const r = readScenarios({
      scenarios: [
        { id: 'a', title: 1, unit: 'rps', better: 'more', ours: { label: 'x', value: '3' }, peer: { label: 'y', value: 1 }, target: { op: '>', value: 1 } },
        { ...scenario(base) },
        { ...scenario(base) },
      ],
    });
    expect(r).toEqual({
      valid: false,
      errors: [
        'scenarios[0].title must be a string, got 1',
        'scenarios[0].better must be "higher" or "lower", got "more"',
        'scenarios[0].ours must be { label: string, value: number | null }, got {"label":"x","value":"3"}',
        'scenarios[0].target must be null or { op: ">=" | "<=", value: number > 0 }, got {"op":">","value":1}',
        'scenarios: id "full-chain-rps" appears twice',
      ],
    });
  });
});

describe('tables', () => {
  it('writes one Markdown row per scenario with both figures, the ratio, the target and the verdict', () => {
    const table = scenarioTable([scenario(base), scenario({ ...base, id: 'b', ours: { label: 'full | chain', value: 5000 } })]);
    expect(table.split('\n')).toEqual([
      '| scenario | ours | peer (same run) | ours / peer | target | |',
      '|---|---:|---:|---:|---:|---|',
      '| sidecar rps, full chain vs no filters | full chain: **7\u2009000** rps | no filters: 10\u2009000 rps | 0.70× | ≥ 0.7× | met |',
      '| sidecar rps, full chain vs no filters | full \\| chain: **5\u2009000** rps | no filters: 10\u2009000 rps | 0.50× | ≥ 0.7× | **missed** |',
    ]);
  });

  it.each([[21306.4, '21\u2009306'], [48.25, '48.3'], [1.234, '1.23'], [0.01234, '0.0123'], [null, '—']])('formats %s as %s', (v, s) => {
    expect(formatValue(v)).toBe(s);
  });

  it('takes the median of the finite values', () => {
    expect(median([3, NaN, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
});

describe('formatRatio', () => {
  it('shows two decimals, and three when two would round a missed target onto it', () => {
    expect(formatRatio(0.6971, { op: '>=', value: 0.7 })).toBe('0.697×');
    expect(formatRatio(0.6971, null)).toBe('0.70×');
    expect(formatRatio(0.7031, { op: '>=', value: 0.7 })).toBe('0.70×');
    expect(formatRatio(1.5049, { op: '<=', value: 1.5 })).toBe('1.505×');
    expect(formatRatio(1.4951, { op: '<=', value: 1.5 })).toBe('1.50×');
    expect(formatRatio(0.64, { op: '>=', value: 0.7 })).toBe('0.64×');
    expect(formatRatio(null, { op: '>=', value: 0.7 })).toBe('—');
  });
});
