/**
 * Telemetry: the backend sidecar's Prometheus page (admin /metrics), after the requests the
 * earlier steps sent through it: requests by response code class, the policy decisions and
 * the quota decisions, each a series with bounded labels.
 */
import type { DemoStep } from '../step.ts';
import { sidecarsSkip } from './start-workloads.ts';

/** The families shown, in order; the page has many more. */
const SHOWN = ['palisade_requests_total', 'palisade_quota_decisions_total', 'palisade_policy_decisions_total'] as const;
const MAX_LINES = 12;

export const showMetrics: DemoStep = {
  title: "read the backend sidecar's Prometheus metrics",
  timeoutMs: 5000,
  skip: sidecarsSkip,
  async run(ctx, signal) {
    const backend = ctx.sidecars.find((s) => s.name === 'backend');
    if (!backend) throw new Error('no backend sidecar: the step that starts it did not run');
    const url = `http://${backend.addresses.admin}/metrics`;
    const res = await fetch(url, { signal });
    if (res.status !== 200) throw new Error(`GET ${url}: expected 200, got ${res.status}`);
    const text = await res.text();
    const samples = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    const families = new Set(text.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]));
    const lines: string[] = [];
    for (const name of SHOWN) {
      if (!families.has(name)) throw new Error(`GET ${url}: no ${name} family`);
      lines.push(...samples.filter((l) => l.startsWith(`${name}{`) && !l.endsWith(' 0')));
    }
    const throttled = samples.find((l) => l.startsWith('palisade_quota_decisions_total{') && l.includes('result="over"'));
    if (throttled === undefined) throw new Error(`GET ${url}: the 429 of the quota step is not counted in palisade_quota_decisions_total{result="over"}`);
    ctx.lookAround.push(`metrics: curl ${url}   (docs/operations.md: every family, labels, the cardinality budget)`);
    return [`GET ${url} → ${families.size} metric families, ${samples.length} samples; some of them:`, ...lines.slice(0, MAX_LINES)];
  },
};
