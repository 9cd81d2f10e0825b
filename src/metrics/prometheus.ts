/**
 * Prometheus metrics (prom-client), named like Triton's nv_inference_* family and by Prometheus's
 * conventions (durations in seconds): requests by protocol/method/code; items by model, priority
 * and outcome; histograms of queue wait, model batch size, inference time per model batch and
 * end-to-end item latency; gauges of waiting items, active batches, busy threads and each priority
 * class's latency target; default
 * Node.js metrics. The v1 API's four monitoring series are there too, with its meanings,
 * so that its users' dashboards and alerts keep working: `batch_requests_total` (API requests),
 * `batch_processing_seconds` (their duration), `active_batches` and `queue_length`.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import {
  type EngineObserver,
  type ItemOutcome,
  PRIORITIES,
  type Priority,
  type ProcessorStats,
  type ResolvedBatchingOptions,
} from "../engine/index.js";

/** One finished API call, as the request series count it. */
export interface RequestObservation {
  readonly protocol: string;
  readonly method: string;
  /** `ok` or the Connect code name (`not_found`, ...). */
  readonly code: string;
  readonly durationMs: number;
}

/** The registry and the hooks that feed it. */
export interface PrometheusMetrics {
  readonly registry: Registry;
  /** Give to the engine (`BatchProcessor.create({ observer })`). */
  readonly engine: EngineObserver;
  /** Call once per finished request. */
  onRequest(entry: RequestObservation): void;
  /** Reads the engine's live counters for the gauges at scrape time. */
  bindStats(stats: () => ProcessorStats): void;
  /** Reads the stored work not yet done, over every node sharing the store, at scrape time. */
  bindBacklog(backlog: () => Promise<Backlog>): void;
  /** Reads the live batching configuration (the latency targets) at scrape time. */
  bindConfig(config: () => ResolvedBatchingOptions): void;
}

/** Work stored and not yet done, over a cluster: what a fleet scales on. */
export interface Backlog {
  /** Items of stored batches without an outcome. */
  readonly batchItems: number;
  /** Lines of unfinished jobs without an outcome. */
  readonly jobLines: number;
}

/** Duration buckets, seconds: 0.5 ms to a minute. */
export const SECONDS_BUCKETS = [
  0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60,
];
const seconds = (ms: number) => ms / 1000;

const ITEM_OUTCOMES: readonly ItemOutcome[] = ["success", "failed", "expired", "cancelled"];

/** One model's item counts not yet handed to the counters, and its latency labels. */
interface ModelTally {
  readonly ended: Record<Priority, Record<ItemOutcome, number>>;
  late: number;
  readonly labels: Record<Priority, { readonly model: string; readonly priority: Priority }>;
}

function newTally(model: string): ModelTally {
  const by = <T>(value: (priority: Priority) => T) =>
    Object.fromEntries(PRIORITIES.map((p) => [p, value(p)])) as Record<Priority, T>;
  return {
    ended: by(() => ({ success: 0, failed: 0, expired: 0, cancelled: 0 })),
    late: 0,
    labels: by((priority) => ({ model, priority })),
  };
}
const SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 256, 512, 1024];

/** Creates the registry with every series registered. */
export function createPrometheusMetrics(): PrometheusMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: "batch_processor_requests_total",
    help: "API requests by protocol, method and result code",
    labelNames: ["protocol", "method", "code"],
    registers: [registry],
  });
  const requestDuration = new Histogram({
    name: "batch_processor_request_duration_seconds",
    help: "API request duration in seconds (streams: until they end)",
    labelNames: ["protocol", "method"],
    buckets: SECONDS_BUCKETS,
    registers: [registry],
  });
  const originalRequests = new Counter({
    name: "batch_requests_total",
    help: "Total batch requests (the v1 API's name: every API request)",
    registers: [registry],
  });
  const originalDuration = new Histogram({
    name: "batch_processing_seconds",
    help: "Batch processing time (the v1 API's name: API request duration, seconds)",
    buckets: SECONDS_BUCKETS,
    registers: [registry],
  });
  // Items end by the thousand a second: each is counted in plain numbers (prom-client builds a
  // label key per call) and the counters are brought up to date when they are read.
  const tallies = new Map<string, ModelTally>();
  const tallyOf = (model: string) => {
    const known = tallies.get(model);
    if (known !== undefined) return known;
    const tally = newTally(model);
    tallies.set(model, tally);
    return tally;
  };
  const items = new Counter({
    name: "batch_processor_items_total",
    help: "Items by model, priority and outcome (success, failed, expired, cancelled, rejected)",
    labelNames: ["model", "priority", "outcome"],
    registers: [registry],
    collect() {
      for (const [model, tally] of tallies)
        for (const priority of PRIORITIES)
          for (const outcome of ITEM_OUTCOMES) {
            const n = tally.ended[priority][outcome];
            if (n === 0) continue;
            this.inc({ model, priority, outcome }, n);
            tally.ended[priority][outcome] = 0;
          }
    },
  });
  const jobLines = new Counter({
    name: "batch_processor_job_lines_total",
    help: "Lines of jobs by model and outcome (completed, failed, invalid)",
    labelNames: ["model", "outcome"],
    registers: [registry],
  });
  new Counter({
    name: "batch_processor_late_items_total",
    help: "Items that ran and ended after their deadline (the latency estimate that let them start was short)",
    labelNames: ["model"],
    registers: [registry],
    collect() {
      for (const [model, tally] of tallies) {
        if (tally.late === 0) continue;
        this.inc({ model }, tally.late);
        tally.late = 0;
      }
    },
  });
  const storeErrors = new Counter({
    name: "batch_processor_store_errors_total",
    help: "Store writes that failed; each failed the batches it concerned",
    registers: [registry],
  });
  const batches = new Counter({
    name: "batch_processor_model_batches_total",
    help: "Model batches dispatched to inference threads (items / batches = mean batch size)",
    labelNames: ["model"],
    registers: [registry],
  });
  const queueWait = new Histogram({
    name: "batch_processor_queue_wait_seconds",
    help: "Time an item waited from arrival to dispatch, seconds",
    labelNames: ["model"],
    buckets: SECONDS_BUCKETS,
    registers: [registry],
  });
  const batchSize = new Histogram({
    name: "batch_processor_model_batch_size",
    help: "Items per dispatched model batch",
    labelNames: ["model"],
    buckets: SIZE_BUCKETS,
    registers: [registry],
  });
  const inference = new Histogram({
    name: "batch_processor_inference_seconds",
    help: "Run time of one model batch on its thread, seconds",
    labelNames: ["model"],
    buckets: SECONDS_BUCKETS,
    registers: [registry],
  });
  const latency = new Histogram({
    name: "batch_processor_item_latency_seconds",
    help: "End-to-end item latency (arrival to outcome), seconds",
    labelNames: ["model", "priority"],
    buckets: SECONDS_BUCKETS,
    registers: [registry],
  });
  let stats: (() => ProcessorStats) | undefined;
  new Gauge({
    name: "batch_processor_pending_items",
    help: "Items waiting to be dispatched, by model and priority",
    labelNames: ["model", "priority"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [model, counts] of stats?.().pendingByModel ?? []) {
        for (const priority of PRIORITIES) this.set({ model, priority }, counts[priority]);
      }
    },
  });
  new Gauge({
    name: "batch_processor_active_batches",
    help: "Stored batches that are queued or processing",
    registers: [registry],
    collect() {
      this.set(stats?.().activeBatches ?? 0);
    },
  });
  new Gauge({
    name: "active_batches",
    help: "Number of active batches (the v1 API's name: stored batches queued or processing)",
    registers: [registry],
    collect() {
      this.set(stats?.().activeBatches ?? 0);
    },
  });
  new Gauge({
    name: "queue_length",
    help: "Current queue length (the v1 API's name: items waiting to be dispatched)",
    registers: [registry],
    collect() {
      this.set(stats?.().pending ?? 0);
    },
  });
  let backlog: (() => Promise<Backlog>) | undefined;
  new Gauge({
    name: "batch_processor_backlog_items",
    help: "Stored work not yet done over every node sharing the store: items of batches, lines of jobs",
    labelNames: ["kind"],
    registers: [registry],
    async collect() {
      const b = await backlog?.().catch(() => undefined);
      if (b === undefined) return;
      this.set({ kind: "batch_items" }, b.batchItems);
      this.set({ kind: "job_lines" }, b.jobLines);
    },
  });
  let config: (() => ResolvedBatchingOptions) | undefined;
  new Gauge({
    name: "batch_processor_priority_latency_target_seconds",
    help: "Latency target of each priority class that has one (priority_latency_ms), seconds; compare with batch_processor_item_latency_seconds",
    labelNames: ["priority"],
    registers: [registry],
    collect() {
      this.reset();
      const targets = config?.().priorityLatencyMs;
      if (targets === undefined) return;
      for (const priority of PRIORITIES)
        if (targets[priority] > 0) this.set({ priority }, seconds(targets[priority]));
    },
  });
  new Gauge({
    name: "batch_processor_busy_threads",
    help: "Inference threads running a model batch",
    registers: [registry],
    collect() {
      const s = stats?.();
      this.set(s?.busyThreads ?? 0);
    },
  });
  return {
    registry,
    engine: {
      onDispatch(model, size, waits) {
        batches.inc({ model });
        batchSize.observe({ model }, size);
        const wait = queueWait.labels({ model });
        for (const ms of waits) wait.observe(seconds(ms));
      },
      onBatchDone(model, _size, inferenceMs, ok) {
        if (ok) inference.observe({ model }, seconds(inferenceMs));
      },
      onItemDone(model, priority, outcome, latencyMs, isLate) {
        const tally = tallyOf(model);
        tally.ended[priority][outcome]++;
        if (isLate) tally.late++;
        if (outcome !== "cancelled") latency.observe(tally.labels[priority], seconds(latencyMs));
      },
      onRejected(model, priority, count) {
        items.inc({ model, priority, outcome: "rejected" }, count);
      },
      onStoreError() {
        storeErrors.inc();
      },
      onJobLines(model, outcome, count) {
        jobLines.inc({ model, outcome }, count);
      },
    },
    onRequest(entry) {
      requests.inc({ protocol: entry.protocol, method: entry.method, code: entry.code });
      const duration = seconds(entry.durationMs);
      requestDuration.observe({ protocol: entry.protocol, method: entry.method }, duration);
      originalRequests.inc();
      originalDuration.observe(duration);
    },
    bindStats(read) {
      stats = read;
    },
    bindBacklog(read) {
      backlog = read;
    },
    bindConfig(read) {
      config = read;
    },
  };
}
