/**
 * Freezes `value` and everything reachable from it; returns it. Here because control/ and
 * sidecar/ both freeze their validated configs and may share only xds/.
 */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
