import { describe, expect, it } from 'vitest';
import { codeClass, LabelBudget, normalizeMethod } from '../../../sidecar/telemetry/label-budget.ts';

describe('LabelBudget', () => {
  it('admits label sets up to its budget, then refuses new ones and counts each refusal', () => {
    const b = new LabelBudget('m', 3);
    expect(['a', 'b', 'c'].map((k) => b.admit(k))).toEqual([true, true, true]);
    expect(b.admit('d')).toBe(false);
    expect(b.admit('d')).toBe(false);
    // Known sets stay admitted.
    expect(b.admit('a')).toBe(true);
    expect(b.size).toBe(3);
    expect(b.overflowed).toBe(2);
  });

  it('forgets the label sets it is told are stale, freeing their room', () => {
    const b = new LabelBudget('m', 2);
    expect([b.admit('x\0old'), b.admit('x\0kept'), b.admit('x\0new')]).toEqual([true, true, false]);
    expect(b.forget((k) => k.endsWith('\0old'))).toEqual(['x\0old']);
    expect(b.size).toBe(1);
    expect(b.admit('x\0new')).toBe(true);
  });

  it.each([0, -1, 1.5])('refuses a budget of %s', (max) => {
    expect(() => new LabelBudget('m', max)).toThrow(`maxSeriesPerMetric must be a positive integer, got ${max}`);
  });

  it.each([
    ['GET', 'GET'], ['PATCH', 'PATCH'], ['OPTIONS', 'OPTIONS'], ['get', 'other'], ['BREW', 'other'], ['PROPFIND', 'other'],
  ])('normalizes method %s to %s', (m, expected) => {
    expect(normalizeMethod(m)).toBe(expected);
  });

  it.each([[0, '0xx'], [101, '1xx'], [200, '2xx'], [304, '3xx'], [404, '4xx'], [503, '5xx'], [999, '0xx']])('puts status %i in class %s', (s, c) => {
    expect(codeClass(s)).toBe(c);
  });
});
