import { describe, expect, it } from 'vitest';
import { EdfScheduler } from '../../../sidecar/upstream/edf-scheduler.ts';

function run(weights: number[], n: number): number[] {
  const s = new EdfScheduler(weights);
  return Array.from({ length: n }, () => {
    const i = s.peek();
    s.advance(weights[i]!);
    return i;
  });
}

describe('EdfScheduler', () => {
  it('gives each item its weight share, interleaved', () => {
    const p = run([3, 1], 400);
    expect(p.slice(0, 3)).toEqual([0, 0, 1]);
    // Every 4 picks hold item 1 once (deadlines are doubles, so ties may fall either way).
    for (let i = 0; i < 400; i += 4) expect(p.slice(i, i + 4).filter((x) => x === 1)).toHaveLength(1);
    const counts = [0, 0, 0];
    for (const i of run([5, 3, 2], 1000)) counts[i]!++;
    expect(counts).toEqual([500, 300, 200]);
  });

  it('breaks ties by index first, then by who waited longest', () => {
    expect(run([1, 1, 1], 6)).toEqual([0, 1, 2, 0, 1, 2]);
  });

  it('reschedules with the weight it is given, not the initial one', () => {
    const s = new EdfScheduler([1, 1]);
    const picks: number[] = [];
    for (let k = 0; k < 9; k++) {
      const i = s.peek();
      s.advance(i === 0 ? 0.5 : 1); // item 0 is now worth half
      picks.push(i);
    }
    expect(picks.filter((i) => i === 0)).toHaveLength(3);
  });

  it('handles a single item', () => {
    expect(run([7], 3)).toEqual([0, 0, 0]);
  });
});
