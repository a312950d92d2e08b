import { describe, expect, it } from 'vitest';
import { ExponentialBackoff, type BackoffOptions } from '../../../xds/client/backoff.ts';

const BASE: BackoffOptions = { initialMs: 500, maxMs: 30_000, multiplier: 2, jitter: 0.2 };

describe('ExponentialBackoff.tryNew', () => {
  it.each([
    ['initialMs 0', { initialMs: 0 }, ['initialMs must be a positive number, got 0']],
    ['initialMs NaN', { initialMs: Number.NaN }, ['initialMs must be a positive number, got NaN']],
    ['initialMs as a string', { initialMs: '5' as unknown as number }, ['initialMs must be a positive number, got "5"']],
    ['maxMs below initialMs', { maxMs: 100 }, ['maxMs must be at least initialMs (500), got 100']],
    ['maxMs Infinity', { maxMs: Infinity }, ['maxMs must be a positive number, got Infinity']],
    ['multiplier below 1', { multiplier: 0.5 }, ['multiplier must be a number >= 1, got 0.5']],
    ['jitter above 1', { jitter: 1.5 }, ['jitter must be a number from 0 to 1, got 1.5']],
    ['jitter below 0', { jitter: -0.1 }, ['jitter must be a number from 0 to 1, got -0.1']],
    ['several problems', { initialMs: -1, multiplier: 0, jitter: 2 }, [
      'initialMs must be a positive number, got -1', 'multiplier must be a number >= 1, got 0', 'jitter must be a number from 0 to 1, got 2',
    ]],
  ])('rejects %s', (_what, change, errors) => {
    expect(ExponentialBackoff.tryNew({ ...BASE, ...change })).toEqual({ valid: false, errors });
  });

  it.each([
    ['the defaults', BASE],
    ['no jitter, no growth', { initialMs: 1, maxMs: 1, multiplier: 1, jitter: 0 }],
    ['full jitter', { ...BASE, jitter: 1 }],
  ])('accepts %s and keeps them frozen', (_what, options) => {
    const r = ExponentialBackoff.tryNew(options);
    expect(r.valid).toBe(true);
    if (!r.valid) return;
    expect(r.result.options).toEqual(options);
    expect(Object.isFrozen(r.result.options)).toBe(true);
  });
});

describe('ExponentialBackoff delays', () => {
  const make = (random: () => number, options: Partial<BackoffOptions> = {}) => {
    const r = ExponentialBackoff.tryNew({ ...BASE, ...options }, random);
    if (!r.valid) throw new Error(r.errors.join('; '));
    return r.result;
  };

  it('doubles from initialMs up to maxMs and stays there', () => {
    const b = make(() => 0);
    expect(Array.from({ length: 9 }, () => b.next())).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    expect(b.attempts).toBe(9);
  });

  it('takes up to the jitter fraction off each delay', () => {
    expect(Array.from({ length: 3 }, ((b) => () => b.next())(make(() => 0.5)))).toEqual([450, 900, 1800]);
    expect(Array.from({ length: 3 }, ((b) => () => b.next())(make(() => 0.999_999, { jitter: 1 })))).toEqual([0, 0, 0]);
  });

  it('never exceeds maxMs, whatever the attempt count', () => {
    const b = make(Math.random, { initialMs: 10, maxMs: 100, multiplier: 10 });
    for (let i = 0; i < 2000; i++) {
      const d = b.next();
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(100);
    }
  });

  it('starts over after reset()', () => {
    const b = make(() => 0);
    b.next();
    b.next();
    b.reset();
    expect(b.attempts).toBe(0);
    expect(b.next()).toBe(500);
  });
});
