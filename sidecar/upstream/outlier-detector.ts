/**
 * Passive health checking by consecutive errors, after Envoy's `outlier_detection_impl.cc`.
 *
 * Results come in per request (`report`): a 5xx bumps the host's consecutive-5xx count
 * (502/503/504 also its gateway-failure count), anything else resets them. Connect
 * failures and resets count as 503 and timeouts as 504, unless
 * `split_external_local_origin_errors` is set; then they feed a separate local-origin
 * count and any HTTP response resets it. When a count reaches its threshold the host is
 * ejected there and then, if
 *
 *   100 × (ejected + 1) / hosts <= max_ejection_percent      (or always_eject_one_host
 *                                                              and nothing is ejected yet)
 *
 * and the enforcing_* percentage rolls in favour. With the default 10% that means a cluster
 * needs 10 hosts before any host can be ejected, exactly as in Envoy; a refusal is counted
 * in `ejectionsOverflow`. Either way the count starts again from zero.
 *
 * An ejected host stays out for min(base_ejection_time × backoff, max_ejection_time) +
 * jitter, where backoff goes up by one per ejection and down by one per interval the host
 * spends back in service. One coarse `setInterval` per cluster (unref'd) sweeps every
 * `interval`: re-admission therefore happens at the first sweep after the time is up, as
 * in Envoy. Success-rate and failure-percentage detection are not implemented.
 *
 * Ejections and re-admissions are published on diagnostics_channel
 * `palisade:upstream:eject` / `palisade:upstream:uneject` when anyone subscribes.
 */
import diagnostics from 'node:diagnostics_channel';
import type { Host } from './host.ts';
import type { OutlierDetectionConfig } from './cluster-config.ts';

/** What became of one request: the HTTP status, or how it failed without one. */
export type UpstreamResult = number | 'connect-failure' | 'reset' | 'timeout';
export type EjectionType = 'consecutive_5xx' | 'consecutive_gateway_failure' | 'consecutive_local_origin_failure';

export interface EjectionEvent {
  readonly cluster: string;
  readonly host: string;
  readonly type: EjectionType;
  readonly timesEjected: number;
  /** Epoch ms from which the host may be re-admitted. */
  readonly ejectedUntil: number;
}

export interface OutlierDetectionStats {
  readonly ejectionsActive: number;
  /** Ejections carried out. */
  readonly ejectionsEnforcedTotal: number;
  /** Outliers found, ejected or not, by type. */
  readonly ejectionsDetected: Readonly<Record<EjectionType, number>>;
  /** Outliers left in service because max_ejection_percent was reached. */
  readonly ejectionsOverflow: number;
}

const ejectChannel = diagnostics.channel('palisade:upstream:eject');
const unejectChannel = diagnostics.channel('palisade:upstream:uneject');

export class OutlierDetector {
  #config: OutlierDetectionConfig;
  #hosts: readonly Host[] = [];
  #timer: ReturnType<typeof setInterval> | null = null;
  readonly #cluster: string;
  readonly #onChange: () => void;
  readonly #random: () => number;
  readonly #now: () => number;
  ejectionsActive = 0;
  ejectionsEnforcedTotal = 0;
  ejectionsOverflow = 0;
  readonly #detected: Record<EjectionType, number> = { consecutive_5xx: 0, consecutive_gateway_failure: 0, consecutive_local_origin_failure: 0 };

  /**
   * @param onChange called after a host was ejected or re-admitted, to rebuild the balancer.
   * @param random [0, 1), for enforcing_* rolls and jitter.
   * @param now monotonic ms (performance.now()).
   */
  constructor(cluster: string, config: OutlierDetectionConfig, onChange: () => void, random: () => number = Math.random, now: () => number = () => performance.now()) {
    this.#cluster = cluster;
    this.#config = config;
    this.#onChange = onChange;
    this.#random = random;
    this.#now = now;
    this.#arm();
  }

  get config(): OutlierDetectionConfig {
    return this.#config;
  }

  /** The hosts of the cluster now; max_ejection_percent is a share of them. */
  setHosts(hosts: readonly Host[]): void {
    this.#hosts = hosts;
    let n = 0;
    for (const h of hosts) if (h.ejected) n++;
    this.ejectionsActive = n;
  }

  update(config: OutlierDetectionConfig): void {
    const rearm = config.intervalMs !== this.#config.intervalMs;
    this.#config = config;
    if (rearm) this.#arm();
  }

  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  #arm(): void {
    this.close();
    this.#timer = setInterval(() => this.sweep(), this.#config.intervalMs);
    this.#timer.unref();
  }

  /** Feeds one request's result into `host`'s counters; may eject it. */
  report(host: Host, result: UpstreamResult): void {
    const c = this.#config;
    if (typeof result !== 'number') {
      if (c.splitExternalLocalOriginErrors) {
        if (++host.consecutiveLocalOriginFailure === c.consecutiveLocalOriginFailure) this.#onConsecutive(host, 'consecutive_local_origin_failure');
        return;
      }
      result = result === 'timeout' ? 504 : 503;
    } else if (c.splitExternalLocalOriginErrors) {
      host.consecutiveLocalOriginFailure = 0;
    }
    if (result >= 500 && result <= 599) {
      if (result >= 502 && result <= 504) {
        if (++host.consecutiveGatewayFailure === c.consecutiveGatewayFailure) this.#onConsecutive(host, 'consecutive_gateway_failure');
      } else {
        host.consecutiveGatewayFailure = 0;
      }
      if (++host.consecutive5xx === c.consecutive5xx) this.#onConsecutive(host, 'consecutive_5xx');
    } else {
      host.consecutive5xx = 0;
      host.consecutiveGatewayFailure = 0;
    }
  }

  #onConsecutive(host: Host, type: EjectionType): void {
    // Envoy leaves the count alone for an ejected host; re-admission resets it.
    if (host.ejected) return;
    this.#detected[type]++;
    this.#eject(host, type);
    if (type === 'consecutive_5xx') host.consecutive5xx = 0;
    else if (type === 'consecutive_gateway_failure') host.consecutiveGatewayFailure = 0;
    else host.consecutiveLocalOriginFailure = 0;
  }

  #eject(host: Host, type: EjectionType): void {
    const c = this.#config;
    const allowed = (100 * (this.ejectionsActive + 1)) / this.#hosts.length <= c.maxEjectionPercent
      || (c.alwaysEjectOneHost && this.ejectionsActive === 0);
    if (!allowed) {
      this.ejectionsOverflow++;
      return;
    }
    const enforcing = type === 'consecutive_5xx' ? c.enforcingConsecutive5xx
      : type === 'consecutive_gateway_failure' ? c.enforcingConsecutiveGatewayFailure : c.enforcingConsecutiveLocalOriginFailure;
    if (!(this.#random() * 100 < enforcing)) return;
    const now = this.#now();
    host.ejected = true;
    host.ejectedAt = now;
    host.timesEjected++;
    host.ejectionJitterMs = Math.floor(this.#random() * (c.maxEjectionTimeJitterMs + 1));
    if (host.ejectTimeBackoff * c.baseEjectionTimeMs < c.maxEjectionTimeMs + c.baseEjectionTimeMs) host.ejectTimeBackoff++;
    this.ejectionsActive++;
    this.ejectionsEnforcedTotal++;
    if (ejectChannel.hasSubscribers) {
      ejectChannel.publish({
        cluster: this.#cluster, host: host.key, type, timesEjected: host.timesEjected, ejectedUntil: this.ejectedUntil(host)!,
      } satisfies EjectionEvent);
    }
    this.#onChange();
  }

  /** performance.now()-based ms from which `host` may be re-admitted, or null if it is in service. */
  readmitAt(host: Host): number | null {
    if (!host.ejected) return null;
    const c = this.#config;
    return host.ejectedAt + Math.min(c.baseEjectionTimeMs * host.ejectTimeBackoff, c.maxEjectionTimeMs) + host.ejectionJitterMs;
  }

  /** Epoch ms from which `host` may be re-admitted, or null if it is in service. */
  ejectedUntil(host: Host): number | null {
    const at = this.readmitAt(host);
    return at === null ? null : Math.round(performance.timeOrigin + at);
  }

  /** The periodic pass: re-admits hosts whose time is up and lowers backoffs. */
  sweep(): void {
    const now = this.#now();
    const c = this.#config;
    let changed = false;
    for (const h of this.#hosts) {
      if (h.ejected && now >= this.readmitAt(h)!) {
        h.ejected = false;
        h.consecutive5xx = 0;
        h.consecutiveGatewayFailure = 0;
        h.consecutiveLocalOriginFailure = 0;
        h.unejectedAt = now;
        this.ejectionsActive--;
        changed = true;
        if (unejectChannel.hasSubscribers) unejectChannel.publish({ cluster: this.#cluster, host: h.key, timesEjected: h.timesEjected });
      } else if (!h.ejected && h.unejectedAt >= 0 && now - h.unejectedAt >= c.intervalMs && h.ejectTimeBackoff > 0) {
        h.ejectTimeBackoff--;
      }
    }
    if (changed) this.#onChange();
  }

  stats(): OutlierDetectionStats {
    return {
      ejectionsActive: this.ejectionsActive,
      ejectionsEnforcedTotal: this.ejectionsEnforcedTotal,
      ejectionsDetected: { ...this.#detected },
      ejectionsOverflow: this.ejectionsOverflow,
    };
  }
}
