import { describe, expect, it } from 'vitest';
import { FrozenMap } from '../../../sidecar/config/frozen-map.ts';

describe('FrozenMap', () => {
  it('reads like the Map it was built from', () => {
    const m = new FrozenMap([['a', 1], ['b', 2]]);
    expect(m).toBeInstanceOf(Map);
    expect([...m]).toEqual([['a', 1], ['b', 2]]);
    expect(m.get('b')).toBe(2);
    expect(m.size).toBe(2);
    expect(Object.isFrozen(m)).toBe(true);
  });

  it.each([
    ['set', (m: Map<string, number>) => m.set('c', 3), 'cannot set "c": the map is frozen'],
    ['delete', (m: Map<string, number>) => m.delete('a'), 'cannot delete "a": the map is frozen'],
    ['clear', (m: Map<string, number>) => m.clear(), 'cannot clear: the map is frozen'],
  ])('refuses %s and stays unchanged', (_op, change, message) => {
    const m = new FrozenMap([['a', 1]]);
    expect(() => change(m)).toThrow(new TypeError(message));
    expect([...m]).toEqual([['a', 1]]);
  });
});
