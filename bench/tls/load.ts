/**
 * The load generator of bench/tls, run by run.ts as its own child process:
 *
 *   node bench/tls/load.ts '<TlsLoadSpec as JSON>'
 *
 * `concurrency` loops, each: open a new TLS connection to 127.0.0.1:port (node:tls directly,
 * TLS 1.3, the server's chain verified against the bundle; with mutual TLS presenting the
 * client SVID), send one `GET / HTTP/1.1` with `connection: close`, read the answer to the end
 * (the server closes), check it is `200` with body `ok`, and start over. `resumed` offers the
 * TLS 1.3 session ticket this loop received on its previous connection ('session' event), so
 * every connection but a loop's first may resume; `full` never offers one.
 *
 * Runs `warmupS` seconds (not counted), prints `{"event":"measure"}`, counts `durationS`
 * seconds, prints `{"event":"result", ...TlsLoadResult}` and exits. Latency: from tls.connect
 * to the end of the answer (handshake + request + response), per connection. A connection is
 * counted in the window in which it ends.
 */
import { readFileSync } from 'node:fs';
import { connect, createSecureContext, type ConnectionOptions, type TLSSocket } from 'node:tls';

export interface TlsLoadSpec {
  port: number;
  concurrency: number;
  durationS: number;
  warmupS: number;
  resume: 'full' | 'resumed';
  /** PEM root bundle the server's chain must verify against. */
  bundleFile: string;
  /** Client SVID to present (mutual TLS), or null. */
  clientKeyFile: string | null;
  clientChainFile: string | null;
  /** node:tls `ecdhCurve` for the client; null = its defaults. */
  groups: string | null;
  /** The server's SPIFFE ID, checked against the certificate's URI SAN. */
  serverId: string;
}

export interface TlsLoadResult {
  /** Connections completed with a correct answer in the window. */
  ok: number;
  /** Of them, how many resumed a session (socket.isSessionReused()). */
  resumed: number;
  errors: number;
  /** The first few distinct error messages. */
  errorSamples: string[];
  /** Wrong status or body. */
  badAnswers: number;
  windowMs: number;
  handshakesPerS: number;
  p50: number;
  p99: number;
  mean: number;
  /** Negotiated protocol / cipher / key-exchange group of the last good connection. */
  protocol: string | null;
  cipher: string | null;
  group: string | null;
}

const spec = JSON.parse(process.argv[2] ?? '') as TlsLoadSpec;
const REQUEST = 'GET / HTTP/1.1\r\nhost: bench.local\r\nuser-agent: bench-tls\r\naccept: */*\r\nconnection: close\r\n\r\n';
const TIMEOUT_MS = 10_000;

// One secure context for every connection: without it node:tls builds a new one (parsing the
// bundle and the client key and chain again) per connection, which costs the client more than
// the handshake itself.
const secureContext = createSecureContext({
  ca: readFileSync(spec.bundleFile),
  minVersion: 'TLSv1.3',
  maxVersion: 'TLSv1.3',
  ...(spec.clientKeyFile !== null && spec.clientChainFile !== null ? { key: readFileSync(spec.clientKeyFile), cert: readFileSync(spec.clientChainFile) } : {}),
  ...(spec.groups !== null ? { ecdhCurve: spec.groups } : {}),
});

const base: ConnectionOptions = {
  host: '127.0.0.1',
  port: spec.port,
  secureContext,
  rejectUnauthorized: true,
  // SVIDs carry a SPIFFE URI SAN and no DNS name: check the URI instead of a host name.
  checkServerIdentity: (_host, cert) => {
    const uris = (cert.subjectaltname ?? '').split(', ').filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
    return uris.includes(spec.serverId) ? undefined : new Error(`server certificate is not ${spec.serverId} (SAN ${cert.subjectaltname ?? 'none'})`);
  },
};

let counting = false;
let stopped = false;
let ok = 0;
let resumed = 0;
let errors = 0;
let badAnswers = 0;
const errorSamples = new Set<string>();
let latencies: number[] = [];
let last: { protocol: string | null; cipher: string | null; group: string | null } = { protocol: null, cipher: null, group: null };

interface Outcome {
  ok: boolean;
  reused: boolean;
  error: string | null;
  session: Buffer | null;
}

/** One connection: connect, request, read to the end, close. */
function once(session: Buffer | null): Promise<Outcome> {
  return new Promise((resolve) => {
    let newSession: Buffer | null = null;
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (o: Omit<Outcome, 'session'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!socket.destroyed) socket.destroy();
      resolve({ ...o, session: newSession });
    };
    const socket: TLSSocket = connect({ ...base, ...(session !== null ? { session } : {}) }, () => {
      socket.write(REQUEST);
    });
    const timer = setTimeout(() => finish({ ok: false, reused: false, error: `no answer within ${TIMEOUT_MS} ms` }), TIMEOUT_MS);
    socket.on('session', (s: Buffer) => {
      newSession = s;
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => finish({ ok: false, reused: false, error: err.message }));
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const head = text.indexOf('\r\n\r\n');
      const good = text.startsWith('HTTP/1.1 200 ') && head !== -1 && text.slice(head + 4) === 'ok';
      if (good) {
        const ephemeral = socket.getEphemeralKeyInfo();
        last = {
          protocol: socket.getProtocol(),
          cipher: socket.getCipher().standardName,
          group: ephemeral !== null && 'name' in ephemeral ? String(ephemeral.name) : null,
        };
      }
      finish(good ? { ok: true, reused: socket.isSessionReused(), error: null } : { ok: false, reused: false, error: `bad answer: ${JSON.stringify(text.slice(0, 80))}` });
    });
  });
}

async function loop(): Promise<void> {
  let session: Buffer | null = null;
  while (!stopped) {
    const t0 = performance.now();
    const o = await once(spec.resume === 'resumed' ? session : null);
    const ms = performance.now() - t0;
    if (spec.resume === 'resumed') session = o.session ?? (o.ok ? session : null);
    if (!counting || stopped) continue;
    if (o.ok) {
      ok++;
      if (o.reused) resumed++;
      latencies.push(ms);
    } else if (o.error?.startsWith('bad answer') === true) {
      badAnswers++;
      if (errorSamples.size < 5) errorSamples.add(o.error);
    } else {
      errors++;
      if (errorSamples.size < 5) errorSamples.add(o.error ?? 'unknown');
    }
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const loops = Array.from({ length: spec.concurrency }, () => loop());
await new Promise((r) => setTimeout(r, spec.warmupS * 1000));
counting = true;
ok = resumed = errors = badAnswers = 0;
latencies = [];
const t0 = performance.now();
console.log(JSON.stringify({ event: 'measure' }));
await new Promise((r) => setTimeout(r, spec.durationS * 1000));
stopped = true;
const windowMs = performance.now() - t0;
const sorted = latencies.sort((a, b) => a - b);
const round = (v: number) => Math.round(v * 1000) / 1000;
const result: TlsLoadResult = {
  ok, resumed, errors, errorSamples: [...errorSamples], badAnswers,
  windowMs: Math.round(windowMs),
  handshakesPerS: Math.round((ok / windowMs) * 1000 * 10) / 10,
  p50: round(percentile(sorted, 50)),
  p99: round(percentile(sorted, 99)),
  mean: round(sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length)),
  ...last,
};
console.log(JSON.stringify({ event: 'result', ...result }));
// The loops' last connections are not waited for.
void loops;
process.exit(0);
