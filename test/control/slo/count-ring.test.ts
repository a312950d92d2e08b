/** CountRing: fixed time buckets in a ring; stale slots from an earlier lap read as empty. */
import { describe, expect, it } from 'vitest';
import { CountRing } from '../../../control/slo/count-ring.ts';

describe('CountRing', () => {
  it('sums the buckets of a span ending at the bucket holding now', () => {
    const ring = new CountRing(1000, 5000);
    for (let t = 0; t < 10_000; t += 1000) ring.add(t + 500, 10, t / 1000, 1);
    expect(ring.sum(9_999, 3000)).toEqual({ total: 30, errors: 7 + 8 + 9, slow: 3 });
    expect(ring.sum(9_999, 1)).toEqual({ total: 10, errors: 9, slow: 1 });
    // A span longer than the ring sums what the ring holds (size = 6 buckets).
    expect(ring.sum(9_999, 60_000)).toEqual({ total: 60, errors: 4 + 5 + 6 + 7 + 8 + 9, slow: 6 });
  });

  it('reads a slot left from an earlier lap as empty, and resets it on its next write', () => {
    const ring = new CountRing(1000, 2000); // 3 slots
    ring.add(0, 5, 5, 5);
    expect(ring.sum(3_500, 3000)).toEqual({ total: 0, errors: 0, slow: 0 });
    ring.add(3_100, 1, 0, 0); // same slot as bucket 0
    expect(ring.sum(3_500, 4000)).toEqual({ total: 1, errors: 0, slow: 0 });
  });

  it('gives the same sums for several spans in one pass as one at a time', () => {
    const ring = new CountRing(100, 10_000);
    for (let t = 0; t < 20_000; t += 37) ring.add(t, 3, t % 2, t % 3 === 0 ? 1 : 0);
    const spans = [150, 1000, 2500, 9000, 10_000];
    const out = spans.map(() => ({ total: 0, errors: 0, slow: 0 }));
    ring.sumMany(19_990, spans, out);
    expect(out).toEqual(spans.map((s) => ring.sum(19_990, s)));
  });
});
