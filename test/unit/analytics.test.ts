import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/engine/index.js";
import { AnalyticsRecorder, percentile } from "../../src/metrics/analytics.js";

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);

function series(report: ReturnType<AnalyticsRecorder["report"]>, metric: string, priority = "all") {
  const s = report.series.find((x) => x.metric === metric && x.priority === priority);
  if (s === undefined) throw new Error(`no series ${metric}/${priority}`);
  return s;
}

describe("AnalyticsRecorder", () => {
  it("turns a synthetic minute-by-minute workload into the expected series and summaries", () => {
    let now = T0;
    const a = new AnalyticsRecorder({ clock: () => now });
    // Minute 0: 60 items at 10 ms (normal); minute 1: 120 items at 100 ms (critical), 30 of them failed.
    for (let i = 0; i < 60; i++) a.onItemDone("m", "normal", "success", 10);
    a.onDispatch("m", 60, Array(60).fill(2), Array(60).fill("normal"));
    now += 60_000;
    for (let i = 0; i < 120; i++) a.onItemDone("m", "critical", i < 30 ? "failed" : "success", 100);
    a.onDispatch("m", 40, Array(40).fill(20), Array(40).fill("critical"));
    a.onDispatch("m", 80, Array(80).fill(20), Array(80).fill("critical"));
    a.sampleQueue({ critical: 4, high: 0, normal: 2, low: 0 });
    a.sampleQueue({ critical: 0, high: 0, normal: 0, low: 0 });
    now += 90_000; // half-way through minute 2
    const r = a.report("5m");
    const throughput = series(r, "throughput");
    expect(throughput.points.map((p) => p.value)).toEqual([0, 0, 1, 2, 0]);
    expect(throughput.summary).toBeCloseTo(180 / (4 * 60 + 30), 9);
    expect(series(r, "throughput", "critical").points.map((p) => p.value)).toEqual([0, 0, 0, 2, 0]);
    expect(series(r, "error_rate").points.map((p) => p.value)).toEqual([0, 0, 0, 0.25, 0]);
    expect(series(r, "error_rate").summary).toBeCloseTo(30 / 180, 9);
    expect(series(r, "batch_size").points.map((p) => p.value)).toEqual([60, 60]);
    expect(series(r, "batch_size").summary).toBe(60);
    expect(series(r, "queue_length").points[3]?.value).toBe(3);
    expect(series(r, "queue_length", "critical").points[3]?.value).toBe(2);
    // Percentiles are bucket upper bounds, each bucket ~10 % wide.
    const p50 = series(r, "latency_p50");
    expect(p50.points.map((p) => p.value)).toHaveLength(2);
    expect(p50.points[0]?.value).toBeGreaterThanOrEqual(10);
    expect(p50.points[0]?.value).toBeLessThan(11);
    expect(p50.points[1]?.value).toBeGreaterThanOrEqual(100);
    expect(p50.points[1]?.value).toBeLessThan(110);
    // 60 of 180 samples at 10 ms: p50 over the period is the 100 ms bucket, p25 would be 10 ms.
    expect(p50.summary).toBeGreaterThanOrEqual(100);
    expect(series(r, "queue_wait_p99", "normal").summary).toBeLessThan(2.2);
  });

  it("keeps at most 24 hours of minutes and survives a save and restore", () => {
    let now = T0;
    const a = new AnalyticsRecorder({ clock: () => now });
    a.onItemDone("m", "low", "success", 5);
    now += 25 * 3600_000;
    a.onItemDone("m", "low", "success", 5);
    const state = JSON.parse(JSON.stringify(a.toJSON())) as { minutes: unknown[] };
    expect(state.minutes).toHaveLength(1);
    const b = new AnalyticsRecorder({ clock: () => now });
    b.restore(state);
    expect(
      series(b.report("5m", ["throughput"]), "throughput", "low").points.at(-1)?.value,
    ).toBeGreaterThan(0);
    b.restore({ nonsense: true });
    expect(series(b.report("24h", ["throughput"]), "throughput").points).toHaveLength(1440);
  });

  it("reports a cluster's figures: other nodes' minutes added to its own", () => {
    let now = T0;
    const a = new AnalyticsRecorder({ clock: () => now });
    const b = new AnalyticsRecorder({ clock: () => now });
    for (let i = 0; i < 60; i++) a.onItemDone("m", "normal", "success", 10);
    for (let i = 0; i < 120; i++) b.onItemDone("m", "normal", i < 60 ? "failed" : "success", 100);
    a.onDispatch("m", 60, [], []);
    b.onDispatch("m", 20, [], []);
    for (const [node, length] of [
      [a, 4],
      [a, 2],
      [b, 10],
    ] as const)
      node.sampleQueue({ critical: 0, high: 0, normal: length, low: 0 });
    const minute = Math.floor(now / 60_000);
    now += 60_000;
    const shared = [JSON.parse(JSON.stringify(b.figuresOf(minute))), { not: "a minute" }];
    expect(a.minutesOf("5m")).toHaveLength(5);
    const r = a.report("5m", [], shared);
    expect(series(r, "throughput").points.at(-2)?.value).toBe(3);
    expect(series(r, "error_rate").points.at(-2)?.value).toBeCloseTo(60 / 180, 9);
    expect(series(r, "batch_size").points.at(-1)?.value).toBe(40);
    // Each node's mean queue length over the minute, added: 3 on a and 10 on b.
    expect(series(r, "queue_length").points.at(-2)?.value).toBe(13);
    // The merged histogram holds both nodes' items: 120 of 180 at 100 ms.
    expect(series(r, "latency_p50").points.at(-1)?.value).toBeGreaterThanOrEqual(100);
    expect(a.report("5m").series.length).toBe(r.series.length);
    expect(series(a.report("5m"), "latency_p50").points.at(-1)?.value).toBeLessThan(11);
  });

  it("does not count cancelled items", () => {
    const a = new AnalyticsRecorder({ clock: () => T0 });
    a.onItemDone("m", "high", "cancelled", 5);
    expect(series(a.report("5m", ["throughput"]), "throughput").summary).toBe(0);
  });

  it("rejects unknown periods and metrics, naming the allowed values", () => {
    const a = new AnalyticsRecorder();
    expect(() => a.report("2h")).toThrow(InvalidInputError);
    expect(() => a.report("2h")).toThrow(/^period: expected one of 5m, 15m, 1h, 6h, 24h/);
    expect(() => a.report("1h", ["latency", "mood"])).toThrow(/^metrics: unknown metric "mood"/);
  });

  it("computes percentiles from bucket counts", () => {
    expect(percentile({}, 50)).toBeUndefined();
    const h = { 10: 1, 20: 1, 30: 2 };
    expect(percentile(h, 25)).toBeLessThan(percentile(h, 50) as number);
    expect(percentile(h, 99)).toBe(percentile(h, 100));
  });
});
