/**
 * A Map that cannot change after construction: `Object.freeze` does not reach a Map's
 * entries, so set/delete/clear throw instead. Reads are those of a plain Map.
 */
export class FrozenMap<K, V> extends Map<K, V> {
  constructor(entries: Iterable<readonly [K, V]>) {
    super();
    for (const [k, v] of entries) super.set(k, v);
    Object.freeze(this);
  }

  override set(key: K): never {
    throw new TypeError(`cannot set ${JSON.stringify(String(key))}: the map is frozen`);
  }

  override delete(key: K): never {
    throw new TypeError(`cannot delete ${JSON.stringify(String(key))}: the map is frozen`);
  }

  override clear(): never {
    throw new TypeError('cannot clear: the map is frozen');
  }
}
