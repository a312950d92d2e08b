/**
 * Usage per tenant per UTC day per route (issue #7), from the sidecars' LRS reports.
 *
 *   report (node, ClusterStats[], receivedAt)
 *     → each load_metric_stats `palisade.usage/<tenant>/<route>/<counter>` adds its
 *       total_metric_value to (day of receivedAt, tenant, route, direction)
 *     → the day is marked dirty; every `flushMs` dirty days are written to
 *       `<dir>/<YYYY-MM-DD>.json` (temp file + rename), and once more on close()
 *
 * Direction: `inbound` for clusters named `inbound|…` (the sidecar's own workload was
 * called) or `inbound` (an inbound request refused before it reached one), else `outbound`. A request between two metered sidecars is counted by both, once
 * in each direction.
 *
 * A restart loses at most what arrived in the last flush window (default 2 s) before the
 * process died; a day's file is read back the first time that day is touched. Days before
 * yesterday leave memory once written. Files are never deleted here (retention is the
 * operator's).
 */
import { mkdirSync, readFileSync, renameSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Node } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { ClusterStats } from '../../xds/gen/envoy/config/endpoint/v3/load_report_pb.js';
import { CorruptUsageFileError, InvalidUsageQueryError } from './errors.ts';

export const USAGE_COUNTERS = ['requests', 'bytes_in', 'bytes_out', 'denied', 'errors'] as const;
type CounterName = (typeof USAGE_COUNTERS)[number];
export type Direction = 'inbound' | 'outbound';

export interface UsageCounts {
  requests: number;
  bytesIn: number;
  bytesOut: number;
  denied: number;
  errors: number;
}

/** One row of a day: a tenant's usage of a route in one direction. */
export interface UsageRow extends UsageCounts {
  readonly tenant: string;
  readonly route: string;
  readonly direction: Direction;
}

/** The answer to a usage query. */
export interface UsageReport {
  readonly day: string;
  readonly tenants: Array<{ tenant: string; routes: UsageRow[]; totals: UsageCounts }>;
}

export interface UsageStoreOptions {
  /** The directory of the day files (`<state-dir>/usage`); created if missing. */
  readonly dir: string;
  /** How often dirty days are written, ms. Default 2000. */
  readonly flushMs?: number;
  /** A file that could not be read or written (the store keeps going). */
  readonly onError?: (err: Error) => void;
}

const FIELD: Record<CounterName, keyof UsageCounts> = { requests: 'requests', bytes_in: 'bytesIn', bytes_out: 'bytesOut', denied: 'denied', errors: 'errors' };
const DAY_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const PREFIX = 'palisade.usage/';
export const MAX_TENANT_QUERY_LENGTH = 512;

/** The UTC day of a time, YYYY-MM-DD. */
export function utcDay(t: Date): string {
  return t.toISOString().slice(0, 10);
}

/** Whether `day` is a real calendar day written YYYY-MM-DD. */
export function isDay(day: string): boolean {
  const m = DAY_RE.exec(day);
  if (m === null) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return utcDay(d) === day;
}

/** Checks query parameters; throws PAL_ERR_METERING_INVALID_QUERY naming the parameter and value. */
export function checkQuery(q: { tenant?: string | null; day?: string | null }, now = new Date()): { tenant: string | null; day: string } {
  const day = q.day ?? utcDay(now);
  if (!isDay(day)) throw new InvalidUsageQueryError('day', `day must be a date YYYY-MM-DD, got ${JSON.stringify(day)}`);
  const tenant = q.tenant ?? null;
  if (tenant !== null && (tenant === '' || tenant.length > MAX_TENANT_QUERY_LENGTH)) {
    throw new InvalidUsageQueryError('tenant', `tenant must be 1 to ${MAX_TENANT_QUERY_LENGTH} characters, got ${JSON.stringify(tenant.slice(0, 64))}`);
  }
  return { tenant, day };
}

const zero = (): UsageCounts => ({ requests: 0, bytesIn: 0, bytesOut: 0, denied: 0, errors: 0 });

interface DayFile {
  version: 1;
  day: string;
  updatedAt: string;
  rows: UsageRow[];
}

export class UsageStore {
  readonly #dir: string;
  readonly #onError: (err: Error) => void;
  /** day → (tenant\0route\0direction → row) */
  readonly #days = new Map<string, Map<string, UsageRow>>();
  readonly #dirty = new Set<string>();
  readonly #timer: NodeJS.Timeout;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;
  #ignored = 0;

  constructor(options: UsageStoreOptions) {
    this.#dir = options.dir;
    this.#onError = options.onError ?? (() => {});
    mkdirSync(this.#dir, { recursive: true });
    const flushMs = options.flushMs ?? 2000;
    if (!Number.isInteger(flushMs) || flushMs <= 0) throw new RangeError(`flushMs must be a positive integer, got ${flushMs}`);
    this.#timer = setInterval(() => void this.flush(), flushMs);
    this.#timer.unref();
  }

  /** Metric entries that were not usage metrics of the expected form (ignored) since start. */
  get ignoredMetrics(): number {
    return this.#ignored;
  }

  /** Adds one LRS report. Non-usage metrics (`palisade.slo/…`, Envoy's) are skipped. */
  ingest(_node: Node, stats: readonly ClusterStats[], receivedAt: Date): void {
    if (this.#closed) return;
    const day = utcDay(receivedAt);
    let rows: Map<string, UsageRow> | undefined;
    for (const cs of stats) {
      const direction: Direction = cs.clusterName === 'inbound' || cs.clusterName.startsWith('inbound|') ? 'inbound' : 'outbound';
      for (const loc of cs.upstreamLocalityStats) {
        for (const m of loc.loadMetricStats) {
          if (!m.metricName.startsWith(PREFIX)) continue;
          const parsed = parseUsageMetric(m.metricName);
          if (parsed === null || !Number.isFinite(m.totalMetricValue) || m.totalMetricValue < 0) {
            this.#ignored++;
            continue;
          }
          rows ??= this.#day(day);
          const key = `${parsed.tenant}\u0000${parsed.route}\u0000${direction}`;
          let row = rows.get(key);
          if (row === undefined) {
            row = { tenant: parsed.tenant, route: parsed.route, direction, ...zero() };
            rows.set(key, row);
          }
          row[FIELD[parsed.counter]] += m.totalMetricValue;
          this.#dirty.add(day);
        }
      }
    }
  }

  /** A day's usage, of one tenant or all, tenants and routes sorted. Throws PAL_ERR_METERING_INVALID_QUERY. */
  query(q: { tenant?: string | null; day?: string | null } = {}): UsageReport {
    const { tenant, day } = checkQuery(q);
    const rows = [...this.#day(day).values()].filter((r) => tenant === null || r.tenant === tenant);
    const byTenant = new Map<string, UsageRow[]>();
    for (const r of rows) {
      const list = byTenant.get(r.tenant) ?? [];
      list.push({ ...r });
      byTenant.set(r.tenant, list);
    }
    const tenants = [...byTenant.keys()].sort().map((t) => {
      const routes = byTenant.get(t)!.sort((a, b) => (a.route === b.route ? a.direction.localeCompare(b.direction) : a.route < b.route ? -1 : 1));
      const totals = zero();
      for (const r of routes) for (const f of Object.values(FIELD)) totals[f] += r[f];
      return { tenant: t, routes, totals };
    });
    return { day, tenants };
  }

  /** Writes every dirty day now. */
  flush(): Promise<void> {
    const days = [...this.#dirty];
    this.#dirty.clear();
    // Writes are chained: two flushes never race on one file.
    this.#writing = this.#writing.then(async () => {
      for (const day of days) {
        const file: DayFile = { version: 1, day, updatedAt: new Date().toISOString(), rows: [...(this.#days.get(day)?.values() ?? [])] };
        const path = join(this.#dir, `${day}.json`);
        const tmp = `${path}.${process.pid}.tmp`;
        try {
          await writeFile(tmp, `${JSON.stringify(file)}\n`);
          await rename(tmp, path);
        } catch (err) {
          this.#dirty.add(day);
          this.#onError(err as Error);
        }
      }
      this.#evict();
    });
    return this.#writing;
  }

  /** Stops the timer and writes what is dirty. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return this.#writing;
    this.#closed = true;
    clearInterval(this.#timer);
    await this.flush();
  }

  /** Days before yesterday that are written leave memory (read again from their file when asked for). */
  #evict(): void {
    const yesterday = utcDay(new Date(Date.now() - 86_400_000));
    for (const day of this.#days.keys()) if (day < yesterday && !this.#dirty.has(day)) this.#days.delete(day);
  }

  /** A day's rows, read from its file the first time. */
  #day(day: string): Map<string, UsageRow> {
    let rows = this.#days.get(day);
    if (rows !== undefined) return rows;
    rows = new Map();
    const path = join(this.#dir, `${day}.json`);
    let text: string | null = null;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#onError(new CorruptUsageFileError(path, err));
    }
    if (text !== null) {
      try {
        const file = JSON.parse(text) as DayFile;
        if (file.version !== 1 || file.day !== day || !Array.isArray(file.rows)) throw new Error('not a version 1 usage file of this day');
        for (const r of file.rows) {
          const row: UsageRow = {
            tenant: String(r.tenant), route: String(r.route), direction: r.direction === 'inbound' ? 'inbound' : 'outbound',
            requests: Number(r.requests) || 0, bytesIn: Number(r.bytesIn) || 0, bytesOut: Number(r.bytesOut) || 0, denied: Number(r.denied) || 0, errors: Number(r.errors) || 0,
          };
          rows.set(`${row.tenant}\u0000${row.route}\u0000${row.direction}`, row);
        }
      } catch (err) {
        rows.clear();
        this.#onError(new CorruptUsageFileError(path, err));
        try {
          renameSync(path, `${path}.corrupt-${Date.now()}`);
        } catch {
          // Left in place: the next flush replaces it.
        }
      }
    }
    this.#days.set(day, rows);
    return rows;
  }
}

/** `palisade.usage/<tenant>/<route>/<counter>` → its parts (decoded), or null when malformed. */
export function parseUsageMetric(name: string): { tenant: string; route: string; counter: CounterName } | null {
  const parts = name.slice(PREFIX.length).split('/');
  if (parts.length !== 3) return null;
  const counter = parts[2] as CounterName;
  if (!USAGE_COUNTERS.includes(counter)) return null;
  try {
    const tenant = decodeURIComponent(parts[0]!);
    const route = decodeURIComponent(parts[1]!);
    if (tenant === '' || route === '') return null;
    return { tenant, route, counter };
  } catch {
    return null;
  }
}
