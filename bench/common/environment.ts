/** Benchmark knobs from the environment, shared by the benchmarks' own environment.ts files. */

/** The knob `name` from the environment (trimmed), else its default. */
export function readKnob<D extends Record<string, string>>(defaults: D, name: keyof D & string): string {
  const v = process.env[name];
  return v === undefined || v.trim() === '' ? defaults[name]! : v.trim();
}

/** `raw` as an integer in min..max; throws naming the knob and the value. */
export function intKnob(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new TypeError(`${name} must be an integer in ${min}..${max}, got ${JSON.stringify(raw)}`);
  return n;
}

/** `raw` as 0 or 1; throws naming the knob and the value. */
export function flagKnob(name: string, raw: string): boolean {
  if (raw !== '0' && raw !== '1') throw new TypeError(`${name} must be 0 or 1, got ${JSON.stringify(raw)}`);
  return raw === '1';
}
