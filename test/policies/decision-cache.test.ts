import { describe, expect, it } from 'vitest';
import { ALLOW, DENY, errorDecision } from '../../policies/decision.ts';
import { DecisionCache, keyPart } from '../../policies/decision-cache.ts';

const input = (principal: unknown, method: string, path: unknown[] = ['api']) => ({
  attributes: { source: { principal }, request: { http: { method, headers: { 'x-trace': Math.random().toString() } } } },
  parsed_path: path,
});

const cache = (maxEntries?: number) =>
  DecisionCache.create({ cacheKeys: ['attributes.source.principal', 'attributes.request.http.method', 'parsed_path'], ...(maxEntries === undefined ? {} : { maxEntries }) });

describe('DecisionCache', () => {
  it('hits for equal key values and ignores fields outside cache_keys', () => {
    const c = cache();
    c.set(c.keyFor('r1', input('spiffe://a', 'GET')), ALLOW);
    expect(c.get(c.keyFor('r1', input('spiffe://a', 'GET')))).toBe(ALLOW);
    expect({ hits: c.hits, misses: c.misses }).toEqual({ hits: 1, misses: 0 });
  });

  it.each<[string, ReturnType<typeof input>]>([
    ['another principal', input('spiffe://b', 'GET')],
    ['another method', input('spiffe://a', 'POST')],
    ['another path', input('spiffe://a', 'GET', ['api', 'x'])],
    ['a missing principal', input(undefined, 'GET')],
    ['a principal of another type', input(['spiffe://a'], 'GET')],
  ])('misses for %s', (_what, other) => {
    const c = cache();
    c.set(c.keyFor('r1', input('spiffe://a', 'GET')), ALLOW);
    expect(c.get(c.keyFor('r1', other))).toBeUndefined();
    expect({ hits: c.hits, misses: c.misses }).toEqual({ hits: 0, misses: 1 });
  });

  it('misses for another bundle revision', () => {
    const c = cache();
    c.set(c.keyFor('r1', input('spiffe://a', 'GET')), ALLOW);
    expect(c.get(c.keyFor('r2', input('spiffe://a', 'GET')))).toBeUndefined();
  });

  it('gives distinct keys to values that would collide under naive joining', () => {
    const c = DecisionCache.create({ cacheKeys: ['a', 'b'] });
    const keys = [
      c.keyFor('r', { a: 'x\n"y"', b: 'z' }),
      c.keyFor('r', { a: 'x', b: 'y"\n"z' }),
      c.keyFor('r', { a: '', b: 'z' }),
      c.keyFor('r', { b: 'z' }),
      c.keyFor('r', { a: null, b: 'z' }),
      c.keyFor('r', { a: 1, b: 'z' }),
      c.keyFor('r', { a: '1', b: 'z' }),
      c.keyFor('r\n""', { b: 'z' }),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('reads array elements by index and own properties only', () => {
    const c = DecisionCache.create({ cacheKeys: ['parsed_path.0', 'x.constructor'] });
    expect(c.keyFor('r', { parsed_path: ['api', 'v1'], x: {} })).toBe(c.keyFor('r', { parsed_path: ['api'] }));
    expect(c.keyFor('r', { parsed_path: ['api', 'v1'], x: {} })).not.toBe(c.keyFor('r', { parsed_path: ['v1'] }));
  });

  it('keys equal values equally, from the input or from values read elsewhere, and never confuses distinct ones', () => {
    const c = DecisionCache.create({ cacheKeys: ['a', 'b'] });
    const source = { a: 'x', b: ['p', 'q'] };
    const readers = [(s: typeof source) => keyPart(s.a), (s: typeof source) => keyPart(s.b)];
    expect(c.keyFor('r', source)).toBe(c.keyFrom('r', readers, source));
    // The revision's part is remembered between calls: a new revision must still make a new key.
    expect(c.keyFrom('r2', readers, source)).toBe(c.keyFor('r2', source));
    expect(c.keyFrom('r2', readers, source)).not.toBe(c.keyFrom('r', readers, source));
    expect(c.keyFrom('a\nb', readers, source)).toBe(c.keyFor('a\nb', source));
    const distinct = [
      ['x', undefined], ['x', ''], ['x', 'u'], ['xu', undefined], ['x\ny', undefined], ['x', ['p\u0001q']], ['x', ['p', 'q']], ['x', 'ap\u0001q'],
      ['x', 1], ['x', '1'], ['x', [1]], ['x', ['1']], ['x', null], ['x', 'null'], ['x', {}], ['x', '{}'],
    ] as const;
    const keys = distinct.map(([a, b]) => c.keyFor('r', { a, b }));
    expect(new Set(keys).size).toBe(distinct.length);
    for (const k of keys) expect(k.split('\n')).toHaveLength(3);
  });

  it('evicts the least recently used entry at the bound', () => {
    const c = cache(2);
    const k = (p: string) => c.keyFor('r', input(p, 'GET'));
    c.set(k('a'), ALLOW);
    c.set(k('b'), DENY);
    expect(c.get(k('a'))).toBe(ALLOW); // a is now the most recent
    c.set(k('c'), ALLOW);
    expect(c.size).toBe(2);
    expect(c.get(k('b'))).toBeUndefined();
    expect(c.get(k('a'))).toBe(ALLOW);
    expect(c.get(k('c'))).toBe(ALLOW);
  });

  it('keeps a key hit at least once every maxEntries/2 insertions however many others come and go, and evicts the ones never hit', () => {
    const c = cache(10);
    const k = (p: string) => c.keyFor('r', input(p, 'GET'));
    c.set(k('hot'), ALLOW);
    for (let i = 0; i < 200; i++) {
      c.set(k(`cold-${i}`), DENY);
      if (i % 5 === 4) expect(c.get(k('hot'))).toBe(ALLOW);
    }
    expect(c.size).toBe(10);
    expect(c.get(k('cold-0'))).toBeUndefined();
    expect(c.get(k('cold-189'))).toBeUndefined();
    expect(c.get(k('cold-199'))).toBe(DENY);
  });

  it('does not cache error decisions', () => {
    const c = cache();
    const key = c.keyFor('r', input('a', 'GET'));
    c.set(key, errorDecision('boom'));
    expect(c.get(key)).toBeUndefined();
    expect(c.size).toBe(0);
  });

  it.each([
    [{ cacheKeys: [] }, 'cacheKeys must name at least one input path'],
    [{ cacheKeys: ['a..b'] }, 'cacheKeys[0] must be a dotted path like "attributes.source.principal", got "a..b"'],
    [{ cacheKeys: ['a'], maxEntries: 0 }, 'maxEntries must be an integer in 1..10000000, got 0'],
  ])('refuses %j', (options, error) => {
    expect(DecisionCache.tryNew(options)).toEqual({ valid: false, errors: [error] });
    expect(() => DecisionCache.create(options)).toThrow(expect.objectContaining({ code: 'PAL_ERR_POLICY_INVALID_OPTION' }));
  });
});
