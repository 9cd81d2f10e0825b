/**
 * Live counters of what the engine finished: totals since start and a sliding one-minute window
 * of per-second buckets (items, model batches, latency), in bounded memory; and the merge of
 * several nodes' counters into a cluster's.
 */

import type { EngineObserver, ItemOutcome, Priority } from "../engine/index.js";

/** Options of {@link BatchStats}. */
export interface BatchStatsOptions {
  /** Epoch-ms clock. @defaultValue Date.now */
  readonly clock?: () => number;
  /** Length of the sliding window, seconds. @defaultValue 60 */
  readonly windowSeconds?: number;
}

interface Bucket {
  second: number;
  items: number;
  latencyMs: number;
  batches: number;
  batchItems: number;
}

/** A snapshot of {@link BatchStats}. */
export interface StatsSnapshot {
  /** Items finished per second over the window (or since start, if shorter). */
  readonly throughputPerSecond: number;
  /** Mean items per model batch over the window; 0 when none ran. */
  readonly averageBatchSize: number;
  /** Mean end-to-end item latency (queued to finished) over the window, ms. */
  readonly averageLatencyMs: number;
  /** Items finished since start. */
  readonly totalProcessed: number;
  readonly totalSucceeded: number;
  readonly totalFailed: number;
  /** Mean model-batch execution time since start, ms. */
  readonly averageProcessingTimeMs: number;
  /** Items and model batches finished in the window, and model batches since start: the weights of the means when several nodes' snapshots are merged. */
  readonly windowItems: number;
  readonly windowBatches: number;
  readonly totalBatches: number;
  /**
   * Items finished in each whole second of the window, oldest first, the last one the second
   * before `recentEnd` (an epoch second): the live rate.
   */
  readonly recent: readonly number[];
  readonly recentEnd: number;
}

/** See the file comment. It observes the engine like any other {@link EngineObserver}. */
export class BatchStats implements EngineObserver {
  readonly #clock: () => number;
  readonly #buckets: Bucket[];
  readonly #started: number;
  #succeeded = 0;
  #failed = 0;
  #batches = 0;
  #batchMs = 0;

  constructor(options: BatchStatsOptions = {}) {
    this.#clock = options.clock ?? Date.now;
    const size = options.windowSeconds ?? 60;
    this.#buckets = Array.from({ length: size }, () => ({
      second: -1,
      items: 0,
      latencyMs: 0,
      batches: 0,
      batchItems: 0,
    }));
    this.#started = this.#clock();
  }

  /** One model batch ran (successfully or not) with `size` items in `inferenceMs`. */
  recordBatch(size: number, inferenceMs: number): void {
    const bucket = this.#bucket();
    bucket.batches++;
    bucket.batchItems += size;
    this.#batches++;
    this.#batchMs += inferenceMs;
  }

  /** One item finished after `latencyMs` since it was queued; `ok` when it has an output. */
  recordItem(latencyMs: number, ok: boolean): void {
    const bucket = this.#bucket();
    bucket.items++;
    bucket.latencyMs += latencyMs;
    if (ok) this.#succeeded++;
    else this.#failed++;
  }

  onBatchDone(_model: string, size: number, inferenceMs: number): void {
    this.recordBatch(size, inferenceMs);
  }

  /** Cancelled items are not counted: they neither succeeded nor failed at anything. */
  onItemDone(_model: string, _priority: Priority, outcome: ItemOutcome, latencyMs: number): void {
    if (outcome !== "cancelled") this.recordItem(latencyMs, outcome === "success");
  }

  snapshot(): StatsSnapshot {
    const now = this.#clock();
    const second = Math.floor(now / 1000);
    let items = 0;
    let latency = 0;
    let batches = 0;
    let batchItems = 0;
    for (const b of this.#buckets) {
      if (b.second <= second - this.#buckets.length) continue;
      items += b.items;
      latency += b.latencyMs;
      batches += b.batches;
      batchItems += b.batchItems;
    }
    const windowSeconds = Math.min(this.#buckets.length, Math.max(1, (now - this.#started) / 1000));
    return {
      throughputPerSecond: items / windowSeconds,
      averageBatchSize: batches === 0 ? 0 : batchItems / batches,
      averageLatencyMs: items === 0 ? 0 : latency / items,
      totalProcessed: this.#succeeded + this.#failed,
      totalSucceeded: this.#succeeded,
      totalFailed: this.#failed,
      averageProcessingTimeMs: this.#batches === 0 ? 0 : this.#batchMs / this.#batches,
      windowItems: items,
      windowBatches: batches,
      totalBatches: this.#batches,
      recent: this.#recent(second),
      recentEnd: second,
    };
  }

  /** Items finished in each whole second before `end`, over the window, oldest first. */
  #recent(end: number): number[] {
    const size = this.#buckets.length;
    const out = new Array<number>(size).fill(0);
    for (const b of this.#buckets)
      if (b.second >= end - size && b.second < end) out[b.second - (end - size)] = b.items;
    return out;
  }

  #bucket(): Bucket {
    const second = Math.floor(this.#clock() / 1000);
    const bucket = this.#buckets[second % this.#buckets.length] as Bucket;
    if (bucket.second !== second) {
      bucket.second = second;
      bucket.items = 0;
      bucket.latencyMs = 0;
      bucket.batches = 0;
      bucket.batchItems = 0;
    }
    return bucket;
  }
}

/** Several nodes' snapshots as one cluster's: counts add up, means weigh each node by its count. */
export function mergeSnapshots(parts: readonly StatsSnapshot[]): StatsSnapshot {
  const sum = (f: (s: StatsSnapshot) => number) => parts.reduce((n, s) => n + f(s), 0);
  // Seconds line up by their epoch second: a node that shared a few seconds ago adds to those.
  const recentEnd = Math.max(0, ...parts.map((s) => s.recentEnd ?? 0));
  const size = Math.max(0, ...parts.map((s) => s.recent?.length ?? 0));
  const recent = new Array<number>(size).fill(0);
  for (const s of parts)
    (s.recent ?? []).forEach((items, k) => {
      const at = k - (s.recent.length - size) - (recentEnd - s.recentEnd);
      if (at >= 0 && at < size) recent[at] = (recent[at] as number) + items;
    });
  const mean = (value: (s: StatsSnapshot) => number, weight: (s: StatsSnapshot) => number) => {
    const total = sum(weight);
    return total === 0 ? 0 : sum((s) => value(s) * weight(s)) / total;
  };
  return {
    throughputPerSecond: sum((s) => s.throughputPerSecond),
    averageBatchSize: mean(
      (s) => s.averageBatchSize,
      (s) => s.windowBatches,
    ),
    averageLatencyMs: mean(
      (s) => s.averageLatencyMs,
      (s) => s.windowItems,
    ),
    totalProcessed: sum((s) => s.totalProcessed),
    totalSucceeded: sum((s) => s.totalSucceeded),
    totalFailed: sum((s) => s.totalFailed),
    averageProcessingTimeMs: mean(
      (s) => s.averageProcessingTimeMs,
      (s) => s.totalBatches,
    ),
    windowItems: sum((s) => s.windowItems),
    windowBatches: sum((s) => s.windowBatches),
    totalBatches: sum((s) => s.totalBatches),
    recent,
    recentEnd,
  };
}
