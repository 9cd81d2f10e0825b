import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { BatchProcessor } from "../../src/engine/index.js";
import { createPrometheusMetrics } from "../../src/metrics/prometheus.js";
import { SqliteJobStore } from "../../src/store/sqlite-job-store.js";
import { FakePool, fakeCatalog, until } from "../fixtures/fake-pool.js";

const me = { owner: "metrics", admin: true };
const open: BatchProcessor[] = [];
afterEach(async () => {
  for (const p of open.splice(0)) await p.close({ timeoutMs: 100 });
});

async function setup() {
  const metrics = createPrometheusMetrics();
  const pool = new FakePool(1);
  const clock = { now: Date.now() };
  const store = new SqliteJobStore({ dataDir: ":memory:" });
  const processor = await BatchProcessor.create({
    pool,
    models: fakeCatalog(),
    store,
    jobData: store.jobs,
    observer: metrics.engine,
    batching: { maxBatchSize: 4, enableDynamicBatching: false },
    maxQueueSize: 20,
    clock: () => clock.now,
  });
  metrics.bindStats(() => processor.stats());
  metrics.bindBacklog(() => processor.backlog());
  metrics.bindConfig(() => processor.config);
  open.push(processor);
  return { metrics, pool, processor, clock };
}

async function value(
  metrics: ReturnType<typeof createPrometheusMetrics>,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  // Histogram series (`_sum`, `_count`, `_bucket`) live under the histogram's own name.
  const base = name.replace(/_(sum|count|bucket)$/, "");
  const metric = (await metrics.registry.getMetricsAsJSON()).find(
    (m) => m.name === name || m.name === base,
  );
  const match = metric?.values.find(
    (v) =>
      ((v as { metricName?: string }).metricName ?? metric.name) === name &&
      Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l),
  );
  return match?.value ?? Number.NaN;
}

const items = (n: number) => Array.from({ length: n }, (_, i) => ({ input: [i, i + 1, i + 2] }));

describe("Prometheus metrics", () => {
  it("count items, model batches and batch sizes for a known workload", async () => {
    const { metrics, processor } = await setup();
    const before = await value(metrics, "batch_processor_model_batches_total", {
      model: "default",
    });
    const ids = [];
    for (const n of [3, 5, 2])
      ids.push((await processor.submit(me, { data: items(n), priority: "high" })).batchId);
    await until(async () => (await processor.list(me, { status: "active" })).batches.length === 0);
    // Dynamic batching off, max 4: 3 -> [3], 5 -> [4, 1], 2 -> [2].
    expect(
      (await value(metrics, "batch_processor_model_batches_total", { model: "default" })) -
        (Number.isNaN(before) ? 0 : before),
    ).toBe(4);
    expect(
      await value(metrics, "batch_processor_items_total", {
        model: "default",
        priority: "high",
        outcome: "success",
      }),
    ).toBe(10);
    expect(
      await value(metrics, "batch_processor_model_batch_size_sum", { model: "default" }),
    ).toBeGreaterThanOrEqual(10);
    expect(
      await value(metrics, "batch_processor_item_latency_seconds_count", {
        model: "default",
        priority: "high",
      }),
    ).toBe(10);
    expect(
      await value(metrics, "batch_processor_queue_wait_seconds_count", { model: "default" }),
    ).toBeGreaterThanOrEqual(10);
    // Items are tallied between scrapes: a scrape adds what ended since the last, once.
    await processor.submit(me, { data: items(4), priority: "high" });
    await until(async () => (await processor.list(me, { status: "active" })).batches.length === 0);
    const high = { model: "default", priority: "high", outcome: "success" };
    expect(await value(metrics, "batch_processor_items_total", high)).toBe(14);
    expect(await value(metrics, "batch_processor_items_total", high)).toBe(14);
  });

  it("show waiting items by model and priority, active batches and busy threads while work waits", async () => {
    const { metrics, pool, processor } = await setup();
    pool.hold();
    await processor.submit(me, { data: items(10), priority: "low" });
    await until(() => pool.heldCount === 2);
    expect(
      await value(metrics, "batch_processor_pending_items", { model: "default", priority: "low" }),
    ).toBe(2);
    expect(await value(metrics, "batch_processor_active_batches")).toBe(1);
    expect(await value(metrics, "batch_processor_busy_threads")).toBe(1);
    // The v1 API's names, with its meanings.
    expect(await value(metrics, "active_batches")).toBe(1);
    expect(await value(metrics, "queue_length")).toBe(2);
    pool.release();
  });

  it("show the stored backlog, items of batches and lines of jobs, while it waits", async () => {
    const { metrics, pool, processor } = await setup();
    pool.hold();
    await processor.submit(me, { data: items(10), priority: "low" });
    async function* upload() {
      yield Array.from({ length: 50 }, (_, k) => ({ line: k + 1, value: [k, 1, 2] }));
    }
    await processor.jobs.create(me, { jobId: "backlog" }, upload());
    const backlog = (kind: string) => value(metrics, "batch_processor_backlog_items", { kind });
    expect(await backlog("batch_items")).toBe(10);
    expect(await backlog("job_lines")).toBe(50);
    pool.release();
    await until(
      async () => (await backlog("job_lines")) === 0 && (await backlog("batch_items")) === 0,
    );
  });

  it("show each class's latency target in seconds, following a configure, none where it has none", async () => {
    const { metrics, processor } = await setup();
    const target = (priority: string) =>
      value(metrics, "batch_processor_priority_latency_target_seconds", { priority });
    expect(await target("critical")).toBe(0.1);
    expect(await target("high")).toBe(1);
    expect(await target("low")).toBeNaN();
    await processor.configure(me, { priorityLatencyMs: { critical: 0, low: 30_000 } });
    expect(await target("critical")).toBeNaN();
    expect(await target("low")).toBe(30);
  });

  it("count every API request under the v1 API's names too, durations in seconds", async () => {
    const { metrics } = await setup();
    for (const durationMs of [2, 250])
      metrics.onRequest({ protocol: "rest", method: "GetConfig", code: "ok", durationMs });
    expect(await value(metrics, "batch_requests_total")).toBe(2);
    expect(await value(metrics, "batch_processing_seconds_count")).toBe(2);
    expect(await value(metrics, "batch_processing_seconds_sum")).toBeCloseTo(0.252, 9);
    expect(
      await value(metrics, "batch_processor_request_duration_seconds_sum", { method: "GetConfig" }),
    ).toBeCloseTo(0.252, 9);
  });

  it("count cancelled, expired and rejected items", async () => {
    const { metrics, pool, processor } = await setup();
    pool.hold();
    const { batchId } = await processor.submit(me, { data: items(10) });
    await until(() => pool.heldCount === 2);
    await processor.cancel(me, batchId);
    expect(await value(metrics, "batch_processor_items_total", { outcome: "cancelled" })).toBe(10);
    await processor.submit(me, { data: items(2), timeoutMs: 100, priority: "normal" });
    await until(
      async () =>
        (await value(metrics, "batch_processor_items_total", { outcome: "expired" })) === 2,
      2000,
    );
    pool.release();
  });

  it("count items that ran and ended after their deadline as late", async () => {
    const { metrics, pool, processor, clock } = await setup();
    pool.hold();
    await processor.submit(me, { data: items(2), timeoutMs: 100 });
    await until(() => pool.heldCount === 1);
    clock.now += 150; // the batch runs past the items' deadline
    pool.release();
    await until(
      async () =>
        (await value(metrics, "batch_processor_items_total", { outcome: "success" })) === 2,
      2000,
    );
    expect(await value(metrics, "batch_processor_late_items_total", { model: "default" })).toBe(2);
    await processor.submit(me, { data: items(3), timeoutMs: 5000 });
    await until(
      async () =>
        (await value(metrics, "batch_processor_items_total", { outcome: "success" })) === 5,
      2000,
    );
    expect(await value(metrics, "batch_processor_late_items_total", { model: "default" })).toBe(2);
  });

  it("expose text the Prometheus format accepts, with Node's default metrics", async () => {
    const { metrics } = await setup();
    const text = await metrics.registry.metrics();
    expect(text).toContain("# TYPE batch_processor_items_total counter");
    expect(text).toContain("# TYPE batch_processor_inference_seconds histogram");
    // Durations in seconds, as Prometheus names them; no series left in milliseconds.
    expect(text).not.toMatch(/^batch_processor_\w*_ms(_bucket|_sum|_count)?[{ ]/m);
    expect(text).toContain("process_cpu_user_seconds_total");
    expect(metrics.registry.contentType).toContain("text/plain");
  });
});

describe("the Grafana dashboard (deploy/grafana-dashboard.json)", () => {
  it("queries only series the server exposes, with every panel the operators asked for", async () => {
    const { metrics } = await setup();
    const text = await metrics.registry.metrics();
    const exposed = new Set(
      [...text.matchAll(/^# TYPE (\S+) (\w+)$/gm)].flatMap(([, name, type]) =>
        type === "histogram"
          ? [`${name}_bucket`, `${name}_sum`, `${name}_count`]
          : [name as string],
      ),
    );
    const dashboard = JSON.parse(
      readFileSync(new URL("../../deploy/grafana-dashboard.json", import.meta.url), "utf8"),
    ) as { panels: { title: string; targets: { expr: string }[] }[] };
    const series = dashboard.panels.flatMap((p) =>
      p.targets.flatMap((t) => [...t.expr.matchAll(/\b(batch_processor_\w+)\{/g)].map((m) => m[1])),
    );
    expect(series.length).toBeGreaterThan(10);
    for (const name of series) expect(exposed, name).toContain(name);
    const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join(" | ");
    for (const topic of [
      "throughput",
      "latency p50 / p95 / p99",
      "queue length",
      "batch size",
      "priority",
      "target",
    ])
      expect(titles).toContain(topic);
  });
});
