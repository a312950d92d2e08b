/**
 * Host selection. All the work happens in `rebuild`, which runs when hosts or their health
 * change (config update, DNS answer, ejection, re-admission); `pick` then only walks
 * structures built there, allocating nothing:
 *
 *   rebuild: hosts ─► priority P = lowest with a usable host (else lowest with a DEGRADED one)
 *                 ─► localities of P weighted?  yes: EDF over effective locality weights,
 *                                                    one picker per locality
 *                                               no:  one picker over all usable hosts of P
 *   pick:    [locality EDF] ─► picker.pick()
 *
 * Pickers, per `lb_policy`:
 * - ROUND_ROBIN: equal weights, a rotating index (random start); otherwise EDF on weights.
 * - RANDOM: equal weights, uniform; otherwise weighted, by binary search of prefix sums.
 * - LEAST_REQUEST: equal weights, power of `choice_count` choices: that many *distinct*
 *   random hosts, the one with fewest active requests wins (Envoy samples with
 *   replacement; distinct samples mean that with n <= choice_count every host is compared,
 *   ties broken at random). Unequal weights: EDF where a picked host is rescheduled with
 *   weight / (active + 1)^active_request_bias, as Envoy's `LeastRequestLoadBalancer`.
 *
 * Locality weights are honoured whenever a locality of the chosen priority sets
 * `load_balancing_weight` (Envoy also wants `common_lb_config.locality_weighted_lb_config`;
 * our control plane sets locality weights equal to the sum of their endpoint weights, so for
 * it both readings give the same split). As in Envoy, a locality's effective weight is
 * weight × min(1, overprovisioning_factor/100 × usable/total hosts), and localities without a
 * weight get no traffic. Not modelled: Envoy's spill-over of part of the load to the next
 * priority while a priority is less than 100/overprovisioning healthy, and panic mode; here
 * a priority takes all traffic while it has one usable host, and no usable host means null.
 */
import type { Host } from './host.ts';
import type { LbPolicy, LocalityConfig } from './cluster-config.ts';
import { EdfScheduler } from './edf-scheduler.ts';

/** Selects one host from a fixed set. */
export interface HostPicker {
  pick(): Host;
}

export interface LoadBalancerSettings {
  readonly lbPolicy: LbPolicy;
  readonly choiceCount: number;
  readonly activeRequestBias: number;
  readonly overprovisioningFactor: number;
}

/**
 * One xorshift32 step on `s[0]`, returning 30 random bits. Integer-only and Smi-sized, so a
 * draw allocates nothing even when not inlined, where `Math.random()` boxes a fresh double
 * on every call (measured: 16 bytes a call in Node 24).
 */
function draw(s: Int32Array): number {
  let x = s[0]!;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  s[0] = x;
  return x >>> 2;
}
/** draw() × UNIT is uniform in [0, 1). */
const UNIT = 1 / 1073741824;

/** Generator state seeded from `random` ([0, 1)); never 0, which xorshift cannot leave. */
function seed(random: () => number): Int32Array {
  return Int32Array.of(Math.floor(random() * 4294967296) | 0 || 0x2545f491);
}

function equalWeights(hosts: readonly Host[]): boolean {
  for (let i = 1; i < hosts.length; i++) if (hosts[i]!.weight !== hosts[0]!.weight) return false;
  return true;
}

export class RoundRobinPicker implements HostPicker {
  readonly #hosts: readonly Host[];
  readonly #weights: Float64Array;
  readonly #edf: EdfScheduler | null;
  #next: number;

  constructor(hosts: readonly Host[], random: () => number) {
    this.#hosts = hosts;
    this.#weights = Float64Array.from(hosts, (h) => h.weight);
    this.#edf = equalWeights(hosts) ? null : new EdfScheduler(this.#weights);
    this.#next = Math.floor(random() * hosts.length);
  }

  pick(): Host {
    const edf = this.#edf;
    if (edf === null) {
      const i = this.#next;
      this.#next = i + 1 === this.#hosts.length ? 0 : i + 1;
      return this.#hosts[i]!;
    }
    const i = edf.peek();
    edf.advance(this.#weights[i]!);
    return this.#hosts[i]!;
  }
}

export class RandomPicker implements HostPicker {
  readonly #hosts: readonly Host[];
  readonly #rng: Int32Array;
  /** Prefix sums of weights, or null when all weights are equal. */
  readonly #cumulative: Float64Array | null;
  readonly #total: number;

  constructor(hosts: readonly Host[], random: () => number) {
    this.#hosts = hosts;
    this.#rng = seed(random);
    if (equalWeights(hosts)) {
      this.#cumulative = null;
      this.#total = hosts.length;
    } else {
      const cum = new Float64Array(hosts.length);
      let sum = 0;
      for (let i = 0; i < hosts.length; i++) cum[i] = sum += hosts[i]!.weight;
      this.#cumulative = cum;
      this.#total = sum;
    }
  }

  pick(): Host {
    const cum = this.#cumulative;
    const r = draw(this.#rng) * UNIT * this.#total;
    if (cum === null) return this.#hosts[Math.floor(r)]!;
    let lo = 0;
    let hi = cum.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cum[mid]! > r) hi = mid;
      else lo = mid + 1;
    }
    return this.#hosts[lo]!;
  }
}

export class LeastRequestPicker implements HostPicker {
  readonly #hosts: readonly Host[];
  readonly #rng: Int32Array;
  readonly #choices: number;
  readonly #bias: number;
  readonly #edf: EdfScheduler | null;
  /** A permutation of host indexes; its prefix is the current sample (partial Fisher–Yates). */
  readonly #perm: Int32Array;

  constructor(hosts: readonly Host[], choiceCount: number, activeRequestBias: number, random: () => number) {
    this.#hosts = hosts;
    this.#rng = seed(random);
    this.#choices = choiceCount;
    this.#bias = activeRequestBias;
    this.#perm = Int32Array.from(hosts, (_h, i) => i);
    this.#edf = equalWeights(hosts) ? null : new EdfScheduler(hosts.map((h) => this.#weightOf(h)));
  }

  /** Envoy's `hostWeight`: weight / (active + 1)^bias. */
  #weightOf(h: Host): number {
    const bias = this.#bias;
    if (bias === 1) return h.weight / (h.activeRequests + 1);
    if (bias === 0) return h.weight;
    return h.weight / Math.pow(h.activeRequests + 1, bias);
  }

  pick(): Host {
    const hosts = this.#hosts;
    const edf = this.#edf;
    if (edf !== null) {
      const h = hosts[edf.peek()]!;
      edf.advance(this.#weightOf(h));
      return h;
    }
    const n = hosts.length;
    const rng = this.#rng;
    if (n <= this.#choices) {
      // Every host is a candidate: full scan, ties resolved uniformly (reservoir sampling).
      let best = hosts[0]!;
      let ties = 1;
      for (let i = 1; i < n; i++) {
        const h = hosts[i]!;
        if (h.activeRequests < best.activeRequests) {
          best = h;
          ties = 1;
        } else if (h.activeRequests === best.activeRequests && draw(rng) * UNIT * ++ties < 1) best = h;
      }
      return best;
    }
    const perm = this.#perm;
    let best: Host | null = null;
    for (let c = 0; c < this.#choices; c++) {
      const r = c + Math.floor(draw(rng) * UNIT * (n - c));
      const idx = perm[r]!;
      perm[r] = perm[c]!;
      perm[c] = idx;
      const h = hosts[idx]!;
      if (best === null || h.activeRequests < best.activeRequests) best = h;
    }
    return best!;
  }
}

/** Picks a locality by EDF on effective weights, then a host within it. */
class LocalityPicker implements HostPicker {
  readonly #pickers: readonly HostPicker[];
  readonly #weights: Float64Array;
  readonly #edf: EdfScheduler;

  constructor(pickers: readonly HostPicker[], weights: readonly number[]) {
    this.#pickers = pickers;
    this.#weights = Float64Array.from(weights);
    this.#edf = new EdfScheduler(this.#weights);
  }

  pick(): Host {
    const edf = this.#edf;
    const i = edf.peek();
    edf.advance(this.#weights[i]!);
    return this.#pickers[i]!.pick();
  }
}

export function createPicker(hosts: readonly Host[], s: LoadBalancerSettings, random: () => number): HostPicker {
  switch (s.lbPolicy) {
    case 'ROUND_ROBIN':
      return new RoundRobinPicker(hosts, random);
    case 'RANDOM':
      return new RandomPicker(hosts, random);
    case 'LEAST_REQUEST':
      return new LeastRequestPicker(hosts, s.choiceCount, s.activeRequestBias, random);
  }
}

/** Which hosts currently take traffic, for stats and tests. */
export interface LoadBalancerState {
  /** The priority picked from, or null when no host is usable. */
  readonly priority: number | null;
  /** True when only DEGRADED hosts were left. */
  readonly degraded: boolean;
  readonly localityWeighted: boolean;
  readonly hosts: readonly Host[];
}

export class LoadBalancer {
  #picker: HostPicker | null = null;
  #state: LoadBalancerState = { priority: null, degraded: false, localityWeighted: false, hosts: [] };
  readonly #random: () => number;

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  get state(): LoadBalancerState {
    return this.#state;
  }

  /** The next host, or null when no host is usable. Allocates nothing. */
  pick(): Host | null {
    const p = this.#picker;
    return p === null ? null : p.pick();
  }

  /** Builds the pick structures for `hosts` in their current health. */
  rebuild(hosts: readonly Host[], s: LoadBalancerSettings): void {
    let chosen: Host[] = [];
    let priority: number | null = null;
    let degraded = false;
    for (const want of ['usable', 'degraded'] as const) {
      for (const h of hosts) {
        const ok = want === 'usable' ? h.usable : !h.ejected && h.health === 'DEGRADED';
        if (!ok || (priority !== null && h.priority > priority)) continue;
        if (priority === null || h.priority < priority) {
          priority = h.priority;
          chosen = [];
        }
        chosen.push(h);
      }
      if (priority !== null) {
        degraded = want === 'degraded';
        break;
      }
    }
    if (priority === null) {
      this.#picker = null;
      this.#state = { priority: null, degraded: false, localityWeighted: false, hosts: [] };
      return;
    }
    const p = priority;
    const picker = this.#localityPicker(hosts.filter((h) => h.priority === p), chosen, s);
    this.#picker = picker ?? createPicker(chosen, s, this.#random);
    this.#state = { priority, degraded, localityWeighted: picker !== null, hosts: chosen };
  }

  /** Null when no locality of the priority carries a weight (or none has an effective weight). */
  #localityPicker(all: readonly Host[], chosen: readonly Host[], s: LoadBalancerSettings): HostPicker | null {
    const localities = new Map<LocalityConfig, { total: number; chosen: Host[] }>();
    let weighted = false;
    for (const h of all) {
      let l = localities.get(h.locality);
      if (!l) localities.set(h.locality, (l = { total: 0, chosen: [] }));
      l.total++;
      if (h.locality.weight !== null) weighted = true;
    }
    if (!weighted) return null;
    for (const h of chosen) localities.get(h.locality)!.chosen.push(h);
    const pickers: HostPicker[] = [];
    const weights: number[] = [];
    for (const [loc, l] of localities) {
      if (loc.weight === null || l.chosen.length === 0) continue;
      const w = loc.weight * Math.min(1, (s.overprovisioningFactor / 100) * (l.chosen.length / l.total));
      if (w <= 0) continue;
      pickers.push(createPicker(l.chosen, s, this.#random));
      weights.push(w);
    }
    return pickers.length === 0 ? null : new LocalityPicker(pickers, weights);
  }
}
