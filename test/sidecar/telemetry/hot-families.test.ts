import { describe, expect, it } from 'vitest';
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from '../../../sidecar/telemetry/hot-families.ts';

const BUCKETS = [0.001, 0.01, 0.1, 1];
const OBSERVATIONS: ReadonlyArray<readonly [string, number]> = [['a', 0.0005], ['a', 0.001], ['a', 0.05], ['b', 2], ['a', 0.7], ['b', 0.01]];

/** The same observations through prom-client's own families and through the hot ones. */
function both(): { theirs: Registry; ours: Registry } {
  const theirs = new Registry();
  const ours = new Registry();
  const c = new Counter({ name: 'x_total', help: 'h', labelNames: ['k'], registers: [theirs] });
  const h = new Histogram({ name: 'x_seconds', help: 'h', labelNames: ['k'], buckets: BUCKETS, registers: [theirs] });
  const hc = new HotCounter({ name: 'x_total', help: 'h', labelNames: ['k'], registers: [ours] });
  const hh = new HotHistogram({ name: 'x_seconds', help: 'h', labelNames: ['k'], buckets: BUCKETS, registers: [ours] });
  for (const [k, v] of OBSERVATIONS) {
    c.inc({ k });
    h.observe({ k }, v);
    hc.cell({ k }).value++;
    hh.observe(hh.cell({ k }), v);
  }
  return { theirs, ours };
}

describe('hot metric families', () => {
  it('expose exactly what prom-client Counter and Histogram expose for the same observations', async () => {
    const { theirs, ours } = both();
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('aggregate across workers as prom-client families do', async () => {
    const a = both();
    const b = both();
    const theirs = AggregatorRegistry.aggregate([await a.theirs.getMetricsAsJSON(), await b.theirs.getMetricsAsJSON()]);
    const ours = AggregatorRegistry.aggregate([await a.ours.getMetricsAsJSON(), await b.ours.getMetricsAsJSON()]);
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.metrics()).toContain('x_total{k="a"} 8');
  });

  it('count into a kept cell, and drop a removed series from the exposition', async () => {
    const r = new Registry();
    const c = new HotCounter({ name: 'y_total', help: 'h', labelNames: ['k', 'j'], registers: [r] });
    const cell = c.cell({ j: '2', k: '1' });
    cell.value += 3;
    c.inc({ k: '1', j: '2' }, 2);
    expect(await r.metrics()).toContain('y_total{j="2",k="1"} 5');
    c.remove({ k: '1', j: '2' });
    expect(await r.metrics()).not.toContain('y_total{');
  });
});
