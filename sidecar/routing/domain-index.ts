/**
 * Virtual host selection by authority, as Envoy's `RouteMatcher::findVirtualHost`:
 *
 *   1. the authority, ASCII-lowercased, as an exact domain          Map lookup, O(1)
 *   2. suffix wildcards (`*.foo.com`, `*-bar.foo.com`), longest first
 *   3. prefix wildcards (`foo.*`), longest first
 *   4. the `*` virtual host, if any
 *
 * A wildcard must cover at least one character (`*.foo.com` does not match `.foo.com`).
 * Wildcards are grouped by length, longest first, as Envoy's length-keyed maps; a group is
 * probed with `endsWith`/`startsWith` per entry (no substring allocated) unless it has more than
 * 16 entries, when slicing once and probing a Map is cheaper.
 *
 * Ports: Envoy matches the Host header as sent, port included (`foo:8080` matches the domain
 * `foo:8080`, not `foo`), unless the RouteConfiguration sets `ignore_port_in_host_matching`,
 * which strips the port first. We keep both and add one step Envoy does not have: when steps
 * 1-3 find nothing for an authority with a port, they are retried with the port removed,
 * before falling back to `*`. Our translator emits `name` and `name:port` for each Service, so
 * for its configurations this changes nothing for the declared port; it makes a request to
 * another port (or through a port-rewriting proxy) reach the named virtual host instead of
 * `*` or a 404. Where Envoy would pick a virtual host, we pick the same one.
 */
import { lowerAscii } from './ascii.ts';

/**
 * Wildcard groups larger than this are probed with one slice and a Map lookup (one small
 * allocation); smaller ones with `endsWith`/`startsWith` per entry, which allocates nothing and
 * is faster at these sizes.
 */
const LINEAR_PROBE_MAX = 16;

interface WildcardGroup<V> {
  /** Length of the literal part (the domain without `*`). */
  readonly length: number;
  readonly literals: readonly string[];
  readonly values: readonly V[];
  readonly map: ReadonlyMap<string, V> | null;
}

/** A virtual host's domains as given, with the error path of its `domains` field. */
export interface DomainEntry<V> {
  readonly domains: readonly string[];
  readonly value: V;
  /** e.g. `virtual_hosts[3]` */
  readonly path: string;
}

export type DomainIndexResult<V> = { valid: true; result: DomainIndex<V> } | { valid: false; errors: string[] };

/** Where the port starts in a Host value (index of its `:`), or -1; Envoy's `getPortStart`. */
export function portStart(host: string): number {
  const colon = host.lastIndexOf(':');
  if (colon < 0) return -1;
  const bracket = host.lastIndexOf(']');
  return bracket < 0 || bracket < colon ? colon : -1;
}

export class DomainIndex<V> {
  readonly #exact: ReadonlyMap<string, V>;
  readonly #suffixes: readonly WildcardGroup<V>[];
  readonly #prefixes: readonly WildcardGroup<V>[];
  readonly #fallback: V | null;
  readonly #onlyFallback: boolean;
  readonly #ignorePort: boolean;

  private constructor(exact: Map<string, V>, suffixes: WildcardGroup<V>[], prefixes: WildcardGroup<V>[], fallback: V | null, ignorePort: boolean) {
    this.#exact = exact;
    this.#suffixes = suffixes;
    this.#prefixes = prefixes;
    this.#fallback = fallback;
    this.#onlyFallback = exact.size === 0 && suffixes.length === 0 && prefixes.length === 0;
    this.#ignorePort = ignorePort;
  }

  /**
   * Indexes every domain, or lists each duplicate (Envoy refuses a RouteConfiguration in which
   * two domains, compared lowercase, are equal, and a second `*`).
   */
  static tryNew<V>(entries: readonly DomainEntry<V>[], ignorePortInHostMatching: boolean): DomainIndexResult<V> {
    const errors: string[] = [];
    const exact = new Map<string, V>();
    const suffixes = new Map<number, Map<string, V>>();
    const prefixes = new Map<number, Map<string, V>>();
    const seen = new Map<string, string>();
    let fallback: V | null = null;
    for (const { domains, value, path } of entries) {
      domains.forEach((raw, j) => {
        const domain = lowerAscii(raw);
        const where = `${path}.domains[${j}]`;
        const first = seen.get(domain);
        if (first !== undefined) {
          errors.push(`${where}: duplicate domain ${JSON.stringify(domain)}, already at ${first}`);
          return;
        }
        seen.set(domain, where);
        if (domain === '*') fallback = value;
        else if (domain.startsWith('*')) add(suffixes, domain.slice(1), value);
        else if (domain.endsWith('*')) add(prefixes, domain.slice(0, -1), value);
        else exact.set(domain, value);
      });
    }
    if (errors.length > 0) return { valid: false, errors };
    return { valid: true, result: new DomainIndex(exact, groups(suffixes), groups(prefixes), fallback, ignorePortInHostMatching) };
  }

  /** The value of the virtual host for an authority (Host header), or null for none (a 404). */
  find(authority: string): V | null {
    if (this.#onlyFallback) return this.#fallback;
    let host = lowerAscii(authority);
    const port = portStart(host);
    if (this.#ignorePort) {
      if (port >= 0) host = host.slice(0, port);
    } else if (port >= 0) {
      const withPort = this.#lookup(host);
      if (withPort !== null) return withPort;
      host = host.slice(0, port);
    }
    const found = this.#lookup(host);
    return found !== null ? found : this.#fallback;
  }

  #lookup(host: string): V | null {
    const hit = this.#exact.get(host);
    if (hit !== undefined) return hit;
    const n = host.length;
    for (const g of this.#suffixes) {
      if (g.length >= n) continue;
      if (g.map !== null) {
        const v = g.map.get(host.slice(n - g.length));
        if (v !== undefined) return v;
      } else {
        for (let i = 0; i < g.literals.length; i++) if (host.endsWith(g.literals[i]!)) return g.values[i]!;
      }
    }
    for (const g of this.#prefixes) {
      if (g.length >= n) continue;
      if (g.map !== null) {
        const v = g.map.get(host.slice(0, g.length));
        if (v !== undefined) return v;
      } else {
        for (let i = 0; i < g.literals.length; i++) if (host.startsWith(g.literals[i]!)) return g.values[i]!;
      }
    }
    return null;
  }
}

function add<V>(byLength: Map<number, Map<string, V>>, literal: string, value: V): void {
  let m = byLength.get(literal.length);
  if (!m) byLength.set(literal.length, (m = new Map()));
  m.set(literal, value);
}

function groups<V>(byLength: Map<number, Map<string, V>>): WildcardGroup<V>[] {
  return [...byLength.entries()]
    .sort((a, b) => b[0] - a[0])
    .map(([length, m]) => Object.freeze({
      length,
      literals: Object.freeze([...m.keys()]),
      values: Object.freeze([...m.values()]),
      map: m.size > LINEAR_PROBE_MAX ? m : null,
    }));
}
