/**
 * The shared coarse timers under vitest's fake clock (setTimeout, Timeout#refresh and Date are
 * faked; the module reads the clock through the injected `now`), so every bound is exact, plus
 * one real child process for unref.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { COARSE_TICK_MS, CoarseTimers, NATIVE_BELOW_MS } from '../../../sidecar/timers/coarse-timers.ts';

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});
afterEach(() => {
  vi.useRealTimers();
});

const make = (): CoarseTimers => new CoarseTimers({ now: () => Date.now() });

describe('CoarseTimers', () => {
  it('documents its resolution: 250 ms ticks, native below 1 s, so a long timer is at most 1/4 late', () => {
    expect([COARSE_TICK_MS, NATIVE_BELOW_MS]).toEqual([250, 1000]);
    const t = make();
    expect([t.tickMs, t.nativeBelowMs]).toEqual([250, 1000]);
  });

  it.each([
    [0, 1000], [1, 1000], [100, 1000], [249, 1000], [250, 1000], [0, 1001], [130, 1249], [60, 15_000],
  ])('arms at +%i ms into a running tick: a %i ms timer fires no earlier than asked and less than one tick late', (offset, delay) => {
    const timers = make();
    const keepTicking = timers.create(() => {}, null);
    keepTicking.start(60_000);
    vi.advanceTimersByTime(offset);
    const fired: number[] = [];
    const armedAt = Date.now();
    timers.create((at: number) => void fired.push(Date.now() - at), armedAt).start(delay);
    vi.advanceTimersByTime(delay - 1);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(COARSE_TICK_MS);
    expect(fired).toHaveLength(1);
    expect(fired[0]).toBeGreaterThanOrEqual(delay);
    expect(fired[0]).toBeLessThan(delay + COARSE_TICK_MS);
    keepTicking.clear();
  });

  it('runs a delay under 1 s on a native timer that fires at exactly its delay', () => {
    const timers = make();
    let fired = 0;
    const t = timers.create(() => void fired++, null);
    t.start(999);
    expect([timers.size, timers.ticking, t.armed, vi.getTimerCount()]).toEqual([0, false, true, 1]);
    vi.advanceTimersByTime(998);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(1);
    expect([fired, t.armed]).toEqual([1, false]);
    vi.advanceTimersByTime(10_000);
    expect(fired).toBe(1);
  });

  it('passes the argument given at create to the callback, once per start', () => {
    const timers = make();
    const seen: string[] = [];
    const t = timers.create((arg: string) => void seen.push(arg), 'exchange-1');
    t.start(1500);
    vi.advanceTimersByTime(2000);
    t.start(10);
    vi.advanceTimersByTime(2000);
    expect(seen).toEqual(['exchange-1', 'exchange-1']);
  });

  it('clears long and short timers, and the tick stops once nothing is armed', () => {
    const timers = make();
    let fired = 0;
    const long = timers.create(() => void fired++, null);
    const short = timers.create(() => void fired++, null);
    long.start(5000);
    short.start(100);
    expect([timers.size, timers.ticking, vi.getTimerCount()]).toEqual([1, true, 2]);
    long.clear();
    short.clear();
    long.clear();
    expect([timers.size, long.armed, short.armed, vi.getTimerCount()]).toEqual([0, false, false, 1]);
    vi.advanceTimersByTime(COARSE_TICK_MS);
    expect([timers.ticking, vi.getTimerCount()]).toEqual([false, 0]);
    vi.advanceTimersByTime(10_000);
    expect(fired).toBe(0);
  });

  it('refresh re-arms with the last delay from now, long or short; a never-started timer ignores it', () => {
    const timers = make();
    const fired: [string, number][] = [];
    const long = timers.create((n: string) => void fired.push([n, Date.now()]), 'long');
    const short = timers.create((n: string) => void fired.push([n, Date.now()]), 'short');
    timers.create(() => void fired.push(['never', Date.now()]), null).refresh();
    long.start(1000);
    short.start(500);
    vi.advanceTimersByTime(400);
    short.refresh();
    vi.advanceTimersByTime(200);
    long.refresh();
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(299);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual([['short', 900]]);
    vi.advanceTimersByTime(699);
    expect(fired).toEqual([['short', 900]]);
    vi.advanceTimersByTime(COARSE_TICK_MS);
    expect(fired).toHaveLength(2);
    expect(fired[1]![0]).toBe('long');
    expect(fired[1]![1]).toBeGreaterThanOrEqual(1600);
    expect(fired[1]![1]).toBeLessThan(1600 + COARSE_TICK_MS);
    short.refresh();
    vi.advanceTimersByTime(500);
    expect(fired.map(([n]) => n)).toEqual(['short', 'long', 'short']);
  });

  it('start while armed replaces the earlier arming, between native and shared too', () => {
    const timers = make();
    const fired: number[] = [];
    const t = timers.create(() => void fired.push(Date.now()), null);
    t.start(500);
    t.start(2000);
    expect([timers.size, vi.getTimerCount()]).toEqual([1, 1]);
    vi.advanceTimersByTime(1999);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(COARSE_TICK_MS);
    expect(fired).toHaveLength(1);
    t.start(2000);
    t.start(10);
    expect(timers.size).toBe(0);
    vi.advanceTimersByTime(10);
    expect(fired).toHaveLength(2);
    expect(fired[1]! - fired[0]!).toBeLessThanOrEqual(10 + COARSE_TICK_MS);
    vi.advanceTimersByTime(5000);
    expect(fired).toHaveLength(2);
  });

  it('fires 10 000 timers each in its window and never the cleared ones', () => {
    const timers = make();
    const N = 10_000;
    const armedAt = new Float64Array(N);
    const firedAt = new Float64Array(N).fill(-1);
    const delays = Array.from({ length: N }, (_, i) => 1000 + ((i * 7919) % 20_000));
    const list = Array.from({ length: N }, (_, i) => timers.create((k: number) => { firedAt[k] = Date.now(); }, i));
    for (let i = 0; i < N; i++) {
      if (i % 100 === 99) vi.advanceTimersByTime(7); // arming spread over 700 ms, before any is due
      armedAt[i] = Date.now();
      list[i]!.start(delays[i]!);
    }
    for (let i = 2; i < N; i += 3) list[i]!.clear();
    expect(timers.size).toBe(N - Math.floor((N + 1) / 3));
    vi.advanceTimersByTime(30_000);
    expect([timers.size, timers.ticking]).toEqual([0, false]);
    const wrong: number[] = [];
    for (let i = 0; i < N; i++) {
      const late = firedAt[i]! - armedAt[i]! - delays[i]!;
      if (i % 3 === 2 ? firedAt[i] !== -1 : !(late >= 0 && late < COARSE_TICK_MS)) wrong.push(i);
    }
    expect(wrong).toEqual([]);
  });

  it('lets a callback clear a timer due in the same tick, and re-arm itself', () => {
    const timers = make();
    const fired: string[] = [];
    const a = timers.create(() => {
      fired.push(`a@${Date.now()}`);
      b.clear();
      if (fired.length === 1) a.start(1000);
    }, null);
    const b = timers.create(() => {
      fired.push(`b@${Date.now()}`);
      a.clear();
    }, null);
    const c = timers.create(() => void fired.push(`c@${Date.now()}`), null);
    b.start(1000);
    c.start(1000);
    a.start(1000);
    vi.advanceTimersByTime(1000);
    // The list is walked from its end: `a` (armed last) runs first and clears `b`; `c` still fires.
    expect(fired).toEqual(['a@1000', 'c@1000']);
    vi.advanceTimersByTime(1000);
    expect(fired).toEqual(['a@1000', 'c@1000', 'a@2000']);
    expect([timers.size, b.armed]).toEqual([0, false]);
  });

  it('keeps ticking for the others when a callback throws', () => {
    const timers = make();
    const fired: string[] = [];
    timers.create(() => { throw new Error('boom'); }, null).start(1000);
    timers.create(() => void fired.push('later'), null).start(1500);
    expect(() => vi.advanceTimersByTime(1000)).toThrow('boom');
    vi.advanceTimersByTime(1000);
    expect([fired, timers.size, timers.ticking]).toEqual([['later'], 0, false]);
  });

  it.each([
    [{ tickMs: 0 }, 'tickMs must be a positive number, got 0'],
    [{ tickMs: Infinity }, 'tickMs must be a positive number, got Infinity'],
    [{ nativeBelowMs: -1 }, 'nativeBelowMs must be >= 0, got -1'],
  ])('refuses options %j', (options, message) => {
    expect(() => new CoarseTimers(options)).toThrow(new RangeError(message));
  });

  it.each([-1, NaN, Infinity])('refuses a delay of %d', (delay) => {
    const t = make().create(() => {}, null);
    expect(() => t.start(delay)).toThrow(new RangeError(`delay must be a finite number >= 0, got ${delay}`));
  });
});

describe('CoarseTimers in a process', () => {
  it('never keeps the process alive: an armed long and short timer let it exit without firing', async () => {
    vi.useRealTimers();
    const url = new URL('../../../sidecar/timers/coarse-timers.ts', import.meta.url).href;
    const script = [
      `import { coarseTimers } from ${JSON.stringify(url)};`,
      `coarseTimers.create(() => console.log('fired long'), null).start(60_000);`,
      `coarseTimers.create(() => console.log('fired short'), null).start(900);`,
      `console.log('armed', coarseTimers.size, coarseTimers.ticking);`,
    ].join('\n');
    const out = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 30_000, cwd: fileURLToPath(new URL('.', import.meta.url)) }, (err, stdout) => {
        resolve({ code: err === null ? 0 : child.exitCode, stdout });
      });
    });
    expect(out).toEqual({ code: 0, stdout: 'armed 1 true\n' });
  });
});
