import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ACCESS_LOG_BATCH_CHARS, AccessLog, durationText, isoTime } from '../../../sidecar/telemetry/access-log.ts';
import { SidecarMetrics } from '../../../sidecar/telemetry/metrics.ts';
import { parseExposition, valueOf } from './prometheus-text.ts';
import type { RequestFacts } from '../../../sidecar/telemetry/request-facts.ts';
import type { RequestRecord } from '../../../sidecar/telemetry/request-record.ts';
import { until } from '../../helpers/until.ts';
import { Writable } from 'node:stream';
import pino from 'pino';

function facts(o: Partial<RequestFacts> = {}): RequestFacts {
  return { route: null, cluster: null, upstreamHost: null, attempts: 0, flags: [], principal: null, policy: null, quota: null, tenant: null, ...o } as RequestFacts;
}

function record(o: Partial<RequestRecord> = {}): RequestRecord {
  return {
    listener: 'inbound', method: 'GET', path: '/orders?id=1', authority: 'api.default:9090', protocol: 'HTTP/1.1', status: 200,
    startTime: Date.parse('2026-11-27T15:00:00.000Z'), durationMs: 1.23456, bytesIn: 0, bytesOut: 42, requestId: 'req-1', userAgent: 'test-agent',
    remoteAddress: '127.0.0.1', forwardedFor: '10.0.0.1', traceId: null, facts: facts(), ...o,
  };
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'palisade-access-'));
  dirs.push(dir);
  return join(dir, 'logs', 'access.log');
}

const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

describe('AccessLog', () => {
  it('writes one JSON line per request with the Envoy-style fields, identity, decision, quota and trace id', async () => {
    const file = tempFile();
    const log = new AccessLog({ path: file, sampleRate: 100, alwaysLogErrors: true });
    log.log(record({
      status: 403, traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      facts: facts({
        route: 'orders', cluster: 'inbound|8080||api', upstreamHost: null, attempts: 0, flags: ['UAEX'], principal: 'spiffe://mesh.local/ns/default/sa/web',
        policy: { name: 'deny-writes', decision: 'deny' }, quota: { name: 'per-tenant', limit: '10/s', result: 'ok', remaining: 9 }, tenant: 'acme',
      }),
    }));
    log.log(record({ listener: 'outbound', status: 0, facts: facts({ cluster: 'outbound|9090||api.default', upstreamHost: '127.0.0.1:9999', attempts: 2, flags: ['UF', 'URX'] }) }));
    await log.close();
    const [a, b] = lines(file);
    expect(a).toEqual({
      start_time: '2026-11-27T15:00:00.000Z', method: 'GET', path: '/orders?id=1', protocol: 'HTTP/1.1', response_code: 403, response_flags: 'UAEX',
      bytes_received: 0, bytes_sent: 42, duration: 1.235, x_forwarded_for: '10.0.0.1', user_agent: 'test-agent', request_id: 'req-1',
      authority: 'api.default:9090', upstream_host: null, upstream_cluster: 'inbound|8080||api', route_name: 'orders', listener: 'inbound',
      downstream_remote_address: '127.0.0.1', principal: 'spiffe://mesh.local/ns/default/sa/web', policy: 'deny-writes', policy_decision: 'deny',
      quota: 'per-tenant', quota_result: 'ok', tenant: 'acme', trace_id: '4bf92f3577b34da6a3ce929d0e0e4736', attempts: 0,
    });
    expect(b).toMatchObject({ listener: 'outbound', response_code: 0, response_flags: 'UF,URX', upstream_host: '127.0.0.1:9999', attempts: 2, policy: null, principal: null });
  });

  it('escapes what a client controls (quotes, backslashes, control characters, non-ASCII) into valid JSON with the exact values', async () => {
    const file = tempFile();
    const log = new AccessLog({ path: file, sampleRate: 100, alwaysLogErrors: true });
    const nasty = 'a"b\\c\u0001d\ne\u2028f é 😀';
    log.log(record({ path: `/x?q=${nasty}`, userAgent: nasty, requestId: '"}{"injected":1', forwardedFor: null, facts: facts({ tenant: nasty }) }));
    await log.close();
    const [a] = lines(file);
    expect(a).toMatchObject({ path: `/x?q=${nasty}`, user_agent: nasty, request_id: '"}{"injected":1', x_forwarded_for: null, tenant: nasty });
    expect(a).not.toHaveProperty('injected');
    expect(Object.keys(a!)).toHaveLength(26);
  });

  it('writes the recurring fields (route, cluster, upstream, principal, policy, quota) the same when seen again, escaped', async () => {
    const file = tempFile();
    const log = new AccessLog({ path: file, sampleRate: 100, alwaysLogErrors: true });
    const odd = 'r"o\\ut é 😀';
    const f = facts({ route: odd, cluster: `c${odd}`, upstreamHost: `h${odd}`, principal: `p${odd}`, policy: { name: `pol${odd}`, decision: 'allow' }, quota: { name: `q${odd}`, limit: 'l', result: 'ok', remaining: 1 } });
    for (let i = 0; i < 3; i++) log.log(record({ path: `/${i}`, facts: f }));
    await log.close();
    const all = lines(file);
    expect(all).toHaveLength(3);
    for (const l of all) {
      expect(l).toMatchObject({ route_name: odd, upstream_cluster: `c${odd}`, upstream_host: `h${odd}`, principal: `p${odd}`, policy: `pol${odd}`, quota: `q${odd}` });
    }
    // ASCII only: the Latin-1 write would mangle anything else.
    expect(readFileSync(file, 'latin1')).toBe(readFileSync(file, 'utf8'));
  });

  it('samples by sampleRate and always keeps errors, denials and flagged requests when asked', async () => {
    const file = tempFile();
    // random() = 0.5: sampled in below 50 %, out at 10 %.
    const log = new AccessLog({ path: file, sampleRate: 10, alwaysLogErrors: true }, { random: () => 0.5 });
    log.log(record({ path: '/ok' }));
    log.log(record({ path: '/server-error', status: 502 }));
    log.log(record({ path: '/denied', status: 200, facts: facts({ policy: { name: 'p', decision: 'dry-run-deny' } }) }));
    log.log(record({ path: '/flagged', facts: facts({ flags: ['DC'] }) }));
    log.log(record({ path: '/allowed', facts: facts({ policy: { name: 'p', decision: 'allow' } }) }));
    await log.close();
    expect(lines(file).map((l) => l.path)).toEqual(['/server-error', '/denied', '/flagged']);

    const file2 = tempFile();
    const strict = new AccessLog({ path: file2, sampleRate: 60, alwaysLogErrors: false }, { random: () => 0.5 });
    strict.log(record({ path: '/in' }));
    await strict.close();
    const none = new AccessLog({ path: file2, sampleRate: 0, alwaysLogErrors: false });
    none.log(record({ path: '/error', status: 500 }));
    await none.close();
    expect(lines(file2).map((l) => l.path)).toEqual(['/in']);
  });

  it('reports an unwritable path once through the logger and never throws into the request path', async () => {
    const logged: Array<Record<string, unknown>> = [];
    const sink = new Writable({ write(chunk: Buffer, _enc, cb) { logged.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>); cb(); } });
    // A path below a regular file: its folder can never be made.
    const blocker = tempFile().replace(/logs\/access\.log$/, 'file');
    await import('node:fs/promises').then((fs) => fs.writeFile(blocker, 'x'));
    const log = new AccessLog({ path: join(blocker, 'access.log'), sampleRate: 100, alwaysLogErrors: true }, { logger: pino(sink) });
    expect(() => log.log(record())).not.toThrow();
    await until('the failure logged', () => logged.length > 0);
    expect(logged[0]).toMatchObject({ msg: 'the access log cannot be written; later failures are not reported', path: join(blocker, 'access.log') });
    log.log(record());
    await log.close();
    expect(logged).toHaveLength(1);
  });

  it('reopens its file after rotation (SIGHUP) and writes to the new one', async () => {
    const file = tempFile();
    const log = new AccessLog({ path: file, sampleRate: 100, alwaysLogErrors: true });
    log.log(record({ path: '/before' }));
    // sonic-boom opens asynchronously; rotate only once the first line is written.
    await until('the first line written', () => existsSync(file) && readFileSync(file, 'utf8').includes('/before'));
    renameSync(file, `${file}.1`);
    process.emit('SIGHUP');
    log.log(record({ path: '/after' }));
    await log.close();
    expect(lines(`${file}.1`).map((l) => l.path)).toEqual(['/before']);
    expect(lines(file).map((l) => l.path)).toEqual(['/after']);
  });

  it('drops and counts the lines that do not fit its bounded buffer while the destination is busy, and exports the count', async () => {
    const file = tempFile();
    const log = new AccessLog({ path: file, sampleRate: 100, alwaysLogErrors: false }, { maxBufferBytes: 1000 });
    // One tick: the first line is being written, the rest pile up behind it past the bound.
    const long = 'x'.repeat(400);
    for (let i = 0; i < 50; i++) log.log(record({ path: `/${i}/${long}` }));
    const source = { listeners: () => ({}), connections: () => ({}), clusters: () => [], policies: () => null, certificateNotAfter: () => null, xds: () => null, lastConfigUpdate: () => null };
    const metrics = new SidecarMetrics({ source, accessLogDropped: () => log.dropped });
    await log.close();
    const written = lines(file).length;
    expect(log.dropped).toBeGreaterThan(0);
    expect(written + log.dropped).toBe(50);
    expect(valueOf(parseExposition(await metrics.text()), 'palisade_access_log_dropped_total')).toBe(log.dropped);
  });

  it('keeps up with a busy sidecar: 30 000 lines (more than its 16 MiB bound) logged over many turns all reach the file, none dropped', async () => {
    const file = tempFile();
    const log = new AccessLog({ path: file, sampleRate: 100, alwaysLogErrors: false });
    const long = 'y'.repeat(300);
    let n = 0;
    // 100 lines a turn, as a sidecar answering many requests per event-loop turn logs them.
    await new Promise<void>((resolve) => {
      const turn = () => {
        for (let i = 0; i < 100; i++, n++) log.log(record({ path: `/${n}/${long}`, userAgent: 'agent "😀" \\ü', facts: facts({ tenant: 'tenant-ü' }) }));
        if (n < 30_000) setImmediate(turn);
        else resolve();
      };
      turn();
    });
    await log.close();
    const written = lines(file);
    expect(log.dropped).toBe(0);
    expect(written).toHaveLength(30_000);
    expect(written.map((l) => Number(String(l.path).split('/')[1]))).toEqual(Array.from({ length: 30_000 }, (_, i) => i));
    // Non-ASCII is \u-escaped (the lines are ASCII), and reads back as it was.
    expect(written[29_999]).toMatchObject({ tenant: 'tenant-ü', user_agent: 'agent "😀" \\ü' });
    expect(readFileSync(file).every((b) => b < 0x80)).toBe(true);
  });

  it('with flushIntervalMs 0, writes the lines of one turn together at the end of the turn, in order', async () => {
    const file = tempFile();
    const log = new AccessLog({ path: file, sampleRate: 100, alwaysLogErrors: false, flushIntervalMs: 0 });
    for (let i = 0; i < 5; i++) log.log(record({ path: `/${i}` }));
    await until('the turn\'s lines written', () => existsSync(file) && lines(file).length === 5);
    expect(lines(file).map((l) => l.path)).toEqual(['/0', '/1', '/2', '/3', '/4']);
    await log.close();
  });

  it('holds lines until ACCESS_LOG_BATCH_CHARS are queued or the flush interval elapses, and writes what it holds on close', async () => {
    const file = tempFile();
    const log = new AccessLog({ path: file, sampleRate: 100, alwaysLogErrors: false, flushIntervalMs: 60_000 });
    log.log(record({ path: '/held' }));
    // A write would have happened by the next turns; the interval (60 s) holds it.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(file) ? lines(file) : []).toEqual([]);
    const long = 'z'.repeat(1000);
    // ~1.3 KB a line, 1.4 batches' worth: the first batch goes out, the rest waits for the interval.
    const n = Math.ceil((1.4 * ACCESS_LOG_BATCH_CHARS) / 1000);
    for (let i = 0; i < n; i++) log.log(record({ path: `/${i}/${long}` }));
    await until('a full batch written before the interval', () => existsSync(file) && lines(file).length >= Math.floor(ACCESS_LOG_BATCH_CHARS / 1500));
    expect(lines(file).length).toBeLessThan(n + 1);
    log.log(record({ path: '/last' }));
    await log.close();
    const paths = lines(file).map((l) => l.path);
    expect(paths).toHaveLength(n + 2);
    expect(paths[0]).toBe('/held');
    expect(paths[n + 1]).toBe('/last');
  });

  it('closes after a rotation asked for while a write is in flight, with every line in one of the two files', async () => {
    const file = tempFile();
    const log = new AccessLog({ path: file, sampleRate: 100, alwaysLogErrors: false, flushIntervalMs: 0 });
    log.log(record({ path: '/opened' }));
    await until('the file open and written', () => existsSync(file) && lines(file).length === 1);
    // ~3 MB in one turn: handed over in batches, the first write still in flight when the signal comes.
    const long = 'w'.repeat(1000);
    for (let i = 0; i < 3000; i++) log.log(record({ path: `/${i}/${long}` }));
    renameSync(file, `${file}.1`);
    process.emit('SIGHUP');
    log.log(record({ path: '/after' }));
    // sonic-boom alone never closes here: the reopen it deferred during the write is dropped once end() came.
    await log.close();
    const paths = [...lines(`${file}.1`), ...(existsSync(file) ? lines(file) : [])].map((l) => l.path);
    expect(paths).toHaveLength(3002);
    expect(lines(file).map((l) => l.path)).toContain('/after');
    expect(log.dropped).toBe(0);
  });

  it('shares one SIGHUP listener among every open access log and reopens them all', async () => {
    const before = process.listenerCount('SIGHUP');
    const files = [tempFile(), tempFile(), tempFile()];
    const logs = files.map((path) => new AccessLog({ path, sampleRate: 100, alwaysLogErrors: false }));
    expect(process.listenerCount('SIGHUP')).toBe(before + 1);
    for (const l of logs) l.log(record());
    await until('the first lines written', () => files.every((f) => existsSync(f) && lines(f).length === 1));
    for (const f of files) renameSync(f, `${f}.1`);
    process.emit('SIGHUP');
    for (const l of logs) l.log(record({ path: '/after' }));
    await Promise.all(logs.map((l) => l.close()));
    for (const f of files) expect(lines(f).map((l) => l.path)).toEqual(['/after']);
    expect(process.listenerCount('SIGHUP')).toBe(before);
  });
});

describe('durationText', () => {
  it('prints a duration to the µs exactly as String(Math.round(ms * 1000) / 1000) does', () => {
    const values = [0, 0.0004, 0.0005, 0.001, 0.01, 0.05, 0.1, 0.12, 0.999, 1, 1.0005, 2.5, 3.217, 10.1, 12.345678, 999.9995, 60_000.123, 1e9 + 0.5, 1e12 - 0.001, 2 ** 43 + 0.12, 1e300, -0.0004, -1.5, Number.NaN, Infinity];
    // A fixed pseudo-random walk over the magnitudes durations have (µs to hours).
    let x = 12345;
    for (let i = 0; i < 20_000; i++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      values.push((x / 2147483648) * 10 ** (i % 8));
    }
    for (const v of values) expect(durationText(v), String(v)).toBe(String(Math.round(v * 1000) / 1000));
  });
});

describe('isoTime', () => {
  it('prints a start time exactly as new Date(Math.floor(ms)).toISOString() does, in any order and across years', () => {
    const values = [
      0, 0.9, 999, 999.999, 1000, -1, -0.5, -1000, -1001, 1_795_819_322_588.25, 1_795_819_322_999, 1_795_819_323_000, 1_795_819_322_001,
      // The ends of the four-digit years, and past them (±YYYYYY form).
      -62167219200000, -62167219200001, 253402300799999, 253402300800000, 8.64e15,
      // Back to a second already formatted after another one.
      1_795_819_322_588, 1_000_000_000_000, 1_795_819_322_589,
    ];
    // A fixed pseudo-random walk: ms within and across seconds, in no order.
    let x = 777;
    for (let i = 0; i < 20_000; i++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      values.push(1_795_819_000_000 + (x % (i % 2 === 0 ? 5_000 : 400_000_000)) + (x % 7) / 7);
    }
    for (const v of values) expect(isoTime(v), String(v)).toBe(new Date(Math.floor(v)).toISOString());
  });

  it('throws as toISOString does for a time that is no date, every time', () => {
    for (const v of [Number.NaN, Number.NaN, Infinity, Infinity, -Infinity, 8.64e15 + 1]) expect(() => isoTime(v), String(v)).toThrow(RangeError);
  });
});
