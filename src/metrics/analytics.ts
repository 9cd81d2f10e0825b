/**
 * Analytics windows: per-minute buckets kept for 24 hours in bounded memory (at most 1,440
 * minutes, sparse log-scale histograms), fed by the engine observer and a queue-length sampler,
 * and answered as time series plus a summary for a period, overall and per priority.
 */
import {
  type EngineObserver,
  echo,
  InvalidInputError,
  type ItemOutcome,
  PRIORITIES,
  type Priority,
} from "../engine/index.js";
import {
  add,
  addAll,
  bucketOf,
  emptyMinute,
  type Histogram,
  isMinute,
  type Minute,
  mergeMinutes,
  percentile,
  SCOPES,
  type Scope,
} from "./analytics-minutes.js";

export { percentile } from "./analytics-minutes.js";

const KEEP_MINUTES = 1440;

/** Periods GetAnalytics accepts, in minutes. */
export const PERIODS: Readonly<Record<string, number>> = Object.freeze({
  "5m": 5,
  "15m": 15,
  "1h": 60,
  "6h": 360,
  "24h": 1440,
});
/** Metrics GetAnalytics accepts. */
export const ANALYTICS_METRICS = [
  "throughput",
  "latency",
  "batch_size",
  "queue_length",
  "error_rate",
  "queue_wait",
] as const;
type MetricName = (typeof ANALYTICS_METRICS)[number];
/** One point of a series. */
export interface AnalyticsPoint {
  readonly time: number;
  readonly value: number;
}

/** One series: a metric (e.g. `latency_p95`) for one scope (`all` or a priority). */
export interface AnalyticsSeries {
  readonly metric: string;
  readonly priority: Scope;
  readonly points: readonly AnalyticsPoint[];
  readonly summary: number;
}

/** An analytics answer. */
export interface AnalyticsReport {
  readonly period: string;
  readonly start: number;
  readonly end: number;
  readonly series: readonly AnalyticsSeries[];
}

/** See the file comment. */
export class AnalyticsRecorder implements EngineObserver {
  readonly #clock: () => number;
  #minutes = new Map<number, Minute>();

  constructor(options: { clock?: () => number } = {}) {
    this.#clock = options.clock ?? Date.now;
  }

  onDispatch(
    _model: string,
    size: number,
    queueWaitMs: readonly number[],
    priorities: readonly Priority[],
  ): void {
    const m = this.#minute();
    m.batches++;
    m.batchItems += size;
    for (let i = 0; i < queueWaitMs.length; i++) {
      const bucket = bucketOf(queueWaitMs[i] as number);
      add(m.scopes.all.queueWait, bucket);
      const p = priorities[i];
      if (p !== undefined) add(m.scopes[p].queueWait, bucket);
    }
  }

  onItemDone(_model: string, priority: Priority, outcome: ItemOutcome, latencyMs: number): void {
    if (outcome === "cancelled") return;
    const m = this.#minute();
    const bucket = bucketOf(latencyMs);
    for (const scope of [m.scopes.all, m.scopes[priority]]) {
      scope.items++;
      if (outcome !== "success") scope.failed++;
      add(scope.latency, bucket);
    }
  }

  /** Records one queue-length reading (the server samples every second). */
  sampleQueue(byPriority: Readonly<Record<Priority, number>>): void {
    const m = this.#minute();
    let total = 0;
    for (const p of PRIORITIES) {
      m.scopes[p].queueLengthSum += byPriority[p];
      m.scopes[p].queueLengthSamples++;
      total += byPriority[p];
    }
    m.scopes.all.queueLengthSum += total;
    m.scopes.all.queueLengthSamples++;
  }

  /** The minutes (since the epoch) a report for `period` covers; throws for an unknown period. */
  minutesOf(period = "1h"): number[] {
    const key = period || "1h";
    const minutes = Object.hasOwn(PERIODS, key) ? PERIODS[key] : undefined;
    if (minutes === undefined)
      throw new InvalidInputError(
        "period",
        `expected one of ${Object.keys(PERIODS).join(", ")}, got ${echo(period)}`,
      );
    const current = Math.floor(this.#clock() / 60_000);
    return Array.from({ length: minutes }, (_, i) => current - minutes + 1 + i);
  }

  /** This node's figures of one minute, to share with the other nodes of a cluster. */
  figuresOf(minute: number): object | undefined {
    return this.#minutes.get(minute);
  }

  /**
   * Series for `period` and `metrics` (all when empty); throws InvalidInputError for unknown
   * names. `peers` are other nodes' figures (from {@link figuresOf}): in a cluster the report is
   * the cluster's, items and histograms summed, queue lengths added node by node.
   */
  report(
    period = "1h",
    metrics: readonly string[] = [],
    peers: readonly unknown[] = [],
  ): AnalyticsReport {
    const range = this.minutesOf(period);
    const wanted = metrics.length === 0 ? [...ANALYTICS_METRICS] : metrics;
    for (const name of wanted) {
      if (!(ANALYTICS_METRICS as readonly string[]).includes(name)) {
        throw new InvalidInputError(
          "metrics",
          `unknown metric ${echo(name)}; expected any of ${ANALYTICS_METRICS.join(", ")}`,
        );
      }
    }
    const now = this.#clock();
    const current = range.at(-1) as number;
    const byMinute = new Map<number, Minute[]>();
    for (const peer of peers) {
      if (!isMinute(peer)) continue;
      const list = byMinute.get(peer.minute) ?? [];
      list.push(peer);
      byMinute.set(peer.minute, list);
    }
    const buckets = range.map((minute) => {
      const own = this.#minutes.get(minute);
      const others = byMinute.get(minute);
      if (others === undefined) return own;
      return mergeMinutes(minute, own === undefined ? others : [own, ...others]);
    });
    const elapsedInCurrent = Math.max(1, (now - current * 60_000) / 1000);
    const series: AnalyticsSeries[] = [];
    for (const name of wanted as MetricName[]) {
      for (const scope of name === "batch_size" ? (["all"] as Scope[]) : SCOPES) {
        series.push(...this.#series(name, scope, range, buckets, elapsedInCurrent));
      }
    }
    return { period: period || "1h", start: (range[0] as number) * 60_000, end: now, series };
  }

  /** State for the store (at most 24 hours of minutes). */
  toJSON(): object {
    this.#trim();
    return { version: 1, minutes: [...this.#minutes.values()] };
  }

  /** Restores what {@link toJSON} wrote; ignores anything it does not recognise. */
  restore(state: unknown): void {
    const minutes = (state as { version?: number; minutes?: Minute[] } | undefined)?.minutes;
    if (!Array.isArray(minutes)) return;
    for (const m of minutes) if (isMinute(m)) this.#minutes.set(m.minute, m);
    this.#trim();
  }

  #series(
    name: MetricName,
    scope: Scope,
    range: number[],
    buckets: (Minute | undefined)[],
    elapsedInCurrent: number,
  ): AnalyticsSeries[] {
    const time = (i: number) => (range[i] as number) * 60_000;
    const last = range.length - 1;
    const counts = (m: Minute | undefined) => m?.scopes[scope];
    switch (name) {
      case "throughput": {
        const points = buckets.map((m, i) => ({
          time: time(i),
          value: (counts(m)?.items ?? 0) / (i === last ? elapsedInCurrent : 60),
        }));
        const items = buckets.reduce((n, m) => n + (counts(m)?.items ?? 0), 0);
        return [
          {
            metric: name,
            priority: scope,
            points,
            summary: items / ((range.length - 1) * 60 + elapsedInCurrent),
          },
        ];
      }
      case "error_rate": {
        const points = buckets.map((m, i) => {
          const c = counts(m);
          return {
            time: time(i),
            value: c === undefined || c.items === 0 ? 0 : c.failed / c.items,
          };
        });
        const items = buckets.reduce((n, m) => n + (counts(m)?.items ?? 0), 0);
        const failed = buckets.reduce((n, m) => n + (counts(m)?.failed ?? 0), 0);
        return [
          { metric: name, priority: scope, points, summary: items === 0 ? 0 : failed / items },
        ];
      }
      case "queue_length": {
        const points = buckets.map((m, i) => {
          const c = counts(m);
          return {
            time: time(i),
            value:
              c === undefined || c.queueLengthSamples === 0
                ? 0
                : c.queueLengthSum / c.queueLengthSamples,
          };
        });
        const sum = buckets.reduce((n, m) => n + (counts(m)?.queueLengthSum ?? 0), 0);
        const samples = buckets.reduce((n, m) => n + (counts(m)?.queueLengthSamples ?? 0), 0);
        return [
          { metric: name, priority: scope, points, summary: samples === 0 ? 0 : sum / samples },
        ];
      }
      case "batch_size": {
        const points = buckets.flatMap((m, i) =>
          m === undefined || m.batches === 0
            ? []
            : [{ time: time(i), value: m.batchItems / m.batches }],
        );
        const batches = buckets.reduce((n, m) => n + (m?.batches ?? 0), 0);
        const items = buckets.reduce((n, m) => n + (m?.batchItems ?? 0), 0);
        return [
          { metric: name, priority: scope, points, summary: batches === 0 ? 0 : items / batches },
        ];
      }
      case "latency":
      case "queue_wait": {
        const pick = (m: Minute | undefined) =>
          name === "latency" ? counts(m)?.latency : counts(m)?.queueWait;
        return [50, 95, 99].map((q) => {
          const points = buckets.flatMap((m, i) => {
            const h = pick(m);
            const value = h === undefined ? undefined : percentile(h, q);
            return value === undefined ? [] : [{ time: time(i), value }];
          });
          const merged: Histogram = {};
          for (const m of buckets) addAll(merged, pick(m) ?? {});
          return {
            metric: `${name}_p${q}`,
            priority: scope,
            points,
            summary: percentile(merged, q) ?? 0,
          };
        });
      }
    }
  }

  #minute(): Minute {
    const minute = Math.floor(this.#clock() / 60_000);
    let m = this.#minutes.get(minute);
    if (m === undefined) {
      m = emptyMinute(minute);
      this.#minutes.set(minute, m);
      this.#trim();
    }
    return m;
  }

  #trim(): void {
    const oldest = Math.floor(this.#clock() / 60_000) - KEEP_MINUTES;
    for (const minute of this.#minutes.keys()) if (minute <= oldest) this.#minutes.delete(minute);
  }
}
