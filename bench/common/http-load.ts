/**
 * The HTTP load generator of bench/mtls-chain and bench/authz, its own child process (never
 * sharing an event loop with a proxy under test):
 *
 *   node bench/common/http-load.ts '<LoadSpec as JSON>'
 *
 * autocannon, `connections` keep-alive connections, closed loop, over HTTP or, with `tls` set,
 * over TLS presenting a client certificate (autocannon does not verify the server's; the
 * server, nginx, verifies the client's). Warm-up (discarded), then `{"event":"measure"}` on
 * stdout, the measured run, then `{"event":"result", ...LoadResult}`. Latency percentiles come
 * from every response time (autocannon's hrtime, fractional ms), as bench/proxy/load.ts does.
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

export interface LoadSpec {
  url: string;
  /** Request headers (a Host the sidecar routes by, a caller identity a policy judges…). */
  headers: Record<string, string>;
  connections: number;
  durationS: number;
  warmupS: number;
  /** The expected body length: other lengths count as mismatches. */
  bodyBytes: number;
  /** Client certificate for an https URL: PEM file paths. */
  tls: { key: string; cert: string } | null;
}

export interface LoadResult {
  durationS: number;
  responses: number;
  rps: number;
  /** ms, over 2xx responses. */
  p50: number;
  p99: number;
  mean: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  mismatches: number;
}

async function run(spec: LoadSpec, durationS: number): Promise<LoadResult> {
  let a = new Float64Array(1 << 18);
  let n = 0;
  let responses = 0;
  const opts: autocannon.Options & { tlsOptions?: { key: Buffer; cert: Buffer } } = {
    url: spec.url,
    connections: spec.connections,
    pipelining: 1,
    duration: durationS,
    headers: spec.headers,
    verifyBody: (body: string) => body.length === spec.bodyBytes,
    timeout: 10,
  };
  if (spec.tls !== null) opts.tlsOptions = { key: readFileSync(spec.tls.key), cert: readFileSync(spec.tls.cert) };
  const instance = autocannon(opts);
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    responses++;
    if (status < 200 || status >= 300) return;
    if (n === a.length) {
      const b = new Float64Array(a.length * 2);
      b.set(a);
      a = b;
    }
    a[n++] = ms;
  });
  const r = await instance;
  const s = a.subarray(0, n).sort();
  const at = (q: number) => (n === 0 ? NaN : Math.round(s[Math.min(n - 1, Math.floor(q * n))]! * 1000) / 1000);
  let sum = 0;
  for (const v of s) sum += v;
  return {
    durationS: r.duration, responses, rps: Math.round((responses / r.duration) * 10) / 10,
    p50: at(0.5), p99: at(0.99), mean: Math.round((sum / Math.max(1, n)) * 1000) / 1000,
    non2xx: r.non2xx, errors: r.errors, timeouts: r.timeouts, mismatches: r.mismatches,
  };
}

try {
  const spec = JSON.parse(process.argv[2] ?? '') as LoadSpec;
  if (spec.warmupS > 0) await run(spec, spec.warmupS);
  process.stdout.write(`${JSON.stringify({ event: 'measure' })}\n`);
  const result = await run(spec, spec.durationS);
  process.stdout.write(`${JSON.stringify({ event: 'result', ...result })}\n`);
} catch (err) {
  process.stdout.write(`${JSON.stringify({ event: 'error', message: (err as Error).stack ?? String(err) })}\n`);
  process.exitCode = 1;
}
