/**
 * The load generator of bench/proxy, run by run.ts as its own child process so that it
 * never shares an event loop with a proxy under test:
 *
 *   node bench/proxy/load.ts '<LoadSpec as JSON>'
 *
 * prints `{"event":"measure"}` when the measured run starts (after the warm-up) and
 * `{"event":"result", ...LoadResult}` at its end, one JSON line each, on stdout, and exits.
 *
 * Two modes:
 * - `autocannon`: autocannon (programmatic), `connections` keep-alive connections, closed
 *   loop (each connection sends its next request when the previous answer is in), or with
 *   `rate` set, autocannon's `overallRate`. autocannon's own latency histogram counts whole
 *   milliseconds, too coarse for sub-millisecond figures, so every response time (autocannon
 *   measures it with hrtime, in fractional ms) is also kept here and the percentiles are
 *   computed from those.
 *   Note that autocannon's `overallRate` is a per-second quota per connection: each connection
 *   sends back to back until its share of the second is used up, then waits for the next
 *   second. At half the peak rate that is full load for about half of every second.
 * - `paced`: open loop, requests spread evenly in time (`rate` per second, one due every
 *   1000/rate ms) over an undici Pool of `connections` connections. Latency is counted from
 *   the moment the request is handed to the pool (so waiting in the pool's queue for a free
 *   connection counts) to the end of the body; the latency from when it was due (which adds
 *   this process's timer lag, up to ~1 ms) is reported too as fromDueP50/fromDueP99.
 *
 * Both run `warmupS` seconds first (discarded), then `durationS` seconds measured.
 */
import autocannon from 'autocannon';
import { Pool } from 'undici';

export interface LoadSpec {
  mode: 'autocannon' | 'paced';
  url: string;
  /** Host header to send (the sidecar routes by it). */
  host: string;
  connections: number;
  pipelining: number;
  durationS: number;
  warmupS: number;
  /** Requests per second over all connections; null = as fast as it goes (autocannon only). */
  rate: number | null;
  /** The expected body length: other lengths count as mismatches. */
  bodyBytes: number;
}

export interface LoadResult {
  mode: LoadSpec['mode'];
  rate: number | null;
  durationS: number;
  /** Responses received in the measured window (any status). */
  responses: number;
  rps: number;
  /** Latency percentiles over 2xx responses, ms (fractional). */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  mismatches: number;
  /** Paced: latency counted from when the request was due rather than from when it was handed to undici, ms. */
  fromDueP50?: number;
  fromDueP99?: number;
  /** autocannon's own p50 / p99 (integer ms), for comparison. */
  autocannonP50?: number;
  autocannonP99?: number;
}

/** A growable array of fractional-ms latencies. */
class Samples {
  #a = new Float64Array(1 << 16);
  n = 0;

  push(v: number): void {
    if (this.n === this.#a.length) {
      const b = new Float64Array(this.#a.length * 2);
      b.set(this.#a);
      this.#a = b;
    }
    this.#a[this.n++] = v;
  }

  summary(): Pick<LoadResult, 'p50' | 'p90' | 'p99' | 'p999' | 'max' | 'mean'> {
    const s = this.#a.subarray(0, this.n).sort();
    const at = (q: number) => (s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(q * s.length))]!);
    let sum = 0;
    for (const v of s) sum += v;
    const r3 = (v: number) => Math.round(v * 1000) / 1000;
    return { p50: r3(at(0.5)), p90: r3(at(0.9)), p99: r3(at(0.99)), p999: r3(at(0.999)), max: r3(s.length === 0 ? NaN : s[s.length - 1]!), mean: r3(sum / Math.max(1, s.length)) };
  }
}

async function runAutocannon(spec: LoadSpec, durationS: number, record: boolean): Promise<LoadResult> {
  const samples = new Samples();
  let responses = 0;
  const opts: autocannon.Options = {
    url: spec.url,
    connections: spec.connections,
    pipelining: spec.pipelining,
    duration: durationS,
    headers: { host: spec.host },
    verifyBody: (body: string) => body.length === spec.bodyBytes,
    timeout: 10,
  };
  if (spec.rate !== null) opts.overallRate = spec.rate;
  const instance = autocannon(opts);
  if (record) {
    instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
      responses++;
      if (status >= 200 && status < 300) samples.push(ms);
    });
  }
  const r = await instance;
  return {
    mode: 'autocannon',
    rate: spec.rate,
    durationS: r.duration,
    responses,
    rps: Math.round((responses / r.duration) * 10) / 10,
    ...samples.summary(),
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    mismatches: r.mismatches,
    autocannonP50: r.latency.p50,
    autocannonP99: r.latency.p99,
  };
}

/** One pool for the warm-up and the measured run, so that the measured run finds its connections open. */
let pacedPool: Pool | null = null;

async function runPaced(spec: LoadSpec, durationS: number, record: boolean): Promise<LoadResult> {
  const rate = spec.rate;
  if (rate === null || rate <= 0) throw new Error('paced mode needs a rate');
  const path = new URL(spec.url).pathname;
  pacedPool ??= new Pool(new URL(spec.url).origin, { connections: spec.connections, pipelining: spec.pipelining, keepAliveTimeout: 60_000 });
  const pool = pacedPool;
  const samples = new Samples();
  const fromDue = new Samples();
  const intervalMs = 1000 / rate;
  const total = Math.floor(rate * durationS);
  let sent = 0;
  let done = 0;
  let non2xx = 0;
  let errors = 0;
  let mismatches = 0;
  const start = performance.now();
  await new Promise<void>((resolve) => {
    const finishOne = () => {
      if (++done === total) resolve();
    };
    const fire = (due: number) => {
      const sentAt = performance.now();
      pool.request({ path, method: 'GET', headers: { host: spec.host } }).then(async (res) => {
        const buf = await res.body.arrayBuffer();
        const end = performance.now();
        if (res.statusCode < 200 || res.statusCode >= 300) non2xx++;
        else if (record) {
          samples.push(end - sentAt);
          fromDue.push(end - due);
        }
        if (buf.byteLength !== spec.bodyBytes) mismatches++;
        finishOne();
      }, () => {
        errors++;
        finishOne();
      });
    };
    const tick = () => {
      const now = performance.now();
      const dueCount = Math.min(total, Math.floor((now - start) / intervalMs) + 1);
      while (sent < dueCount) {
        fire(start + sent * intervalMs);
        sent++;
      }
      if (sent < total) setTimeout(tick, Math.max(0, Math.min(1, start + sent * intervalMs - performance.now())));
    };
    if (total === 0) resolve();
    else tick();
  });
  const elapsedS = (performance.now() - start) / 1000;
  const due = fromDue.summary();
  return {
    mode: 'paced',
    rate,
    durationS: Math.round(elapsedS * 1000) / 1000,
    responses: done,
    rps: Math.round((done / elapsedS) * 10) / 10,
    ...samples.summary(),
    non2xx,
    errors,
    timeouts: 0,
    mismatches,
    fromDueP50: due.p50,
    fromDueP99: due.p99,
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '') as LoadSpec;
  const run = spec.mode === 'paced' ? runPaced : runAutocannon;
  if (spec.warmupS > 0) await run(spec, spec.warmupS, false);
  // run.ts starts counting CPU here.
  process.stdout.write(`${JSON.stringify({ event: 'measure' })}\n`);
  const result = await run(spec, spec.durationS, true);
  process.stdout.write(`${JSON.stringify({ event: 'result', ...result })}\n`);
  await pacedPool?.close();
}

try {
  await main();
} catch (err) {
  process.stdout.write(`${JSON.stringify({ event: 'error', message: (err as Error).stack ?? String(err) })}\n`);
  process.exitCode = 1;
}
