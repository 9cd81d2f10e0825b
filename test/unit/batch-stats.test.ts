import { describe, expect, it } from "vitest";
import { BatchStats, mergeSnapshots } from "../../src/metrics/batch-stats.js";

describe("BatchStats", () => {
  it("reports throughput, batch size and latency over the last minute, totals since start", () => {
    let now = 1_700_000_000_000;
    const stats = new BatchStats({ clock: () => now });
    now += 10_000;
    stats.recordBatch(4, 8);
    for (let i = 0; i < 4; i++) stats.recordItem(20, i !== 3);
    now += 1000;
    stats.recordBatch(2, 4);
    stats.recordItem(10, true);
    stats.recordItem(10, true);
    const s = stats.snapshot();
    expect(s.totalProcessed).toBe(6);
    expect(s.totalSucceeded).toBe(5);
    expect(s.totalFailed).toBe(1);
    expect(s.averageBatchSize).toBe(3);
    expect(s.averageLatencyMs).toBeCloseTo(100 / 6, 9);
    expect(s.averageProcessingTimeMs).toBe(6);
    expect(s.throughputPerSecond).toBeCloseTo(6 / 11, 9);
  });

  it("forgets what is older than the window but keeps the totals", () => {
    let now = 1_700_000_000_000;
    const stats = new BatchStats({ clock: () => now, windowSeconds: 60 });
    stats.recordBatch(10, 5);
    for (let i = 0; i < 10; i++) stats.recordItem(1, true);
    now += 61_000;
    const s = stats.snapshot();
    expect(s.throughputPerSecond).toBe(0);
    expect(s.averageBatchSize).toBe(0);
    expect(s.totalProcessed).toBe(10);
  });

  it("merges nodes' snapshots: counts add up, means weigh each node by its count", () => {
    const now = 1_700_000_000_000;
    const a = new BatchStats({ clock: () => now });
    const b = new BatchStats({ clock: () => now });
    a.recordBatch(8, 10);
    for (let i = 0; i < 8; i++) a.recordItem(10, true);
    for (const size of [1, 1]) {
      b.recordBatch(size, 1);
      b.recordItem(40, false);
    }
    const merged = mergeSnapshots([a.snapshot(), b.snapshot()]);
    expect(merged.totalProcessed).toBe(10);
    expect(merged.totalFailed).toBe(2);
    expect(merged.averageBatchSize).toBeCloseTo(10 / 3, 9);
    expect(merged.averageLatencyMs).toBeCloseTo((8 * 10 + 2 * 40) / 10, 9);
    expect(merged.averageProcessingTimeMs).toBeCloseTo(12 / 3, 9);
    expect(merged.throughputPerSecond).toBeCloseTo(
      a.snapshot().throughputPerSecond + b.snapshot().throughputPerSecond,
      9,
    );
    expect(mergeSnapshots([a.snapshot()])).toEqual(a.snapshot());
  });

  it("keeps each whole second's items for the live rate, and lines up nodes' seconds when it merges", () => {
    let now = 1_700_000_000_000;
    const a = new BatchStats({ clock: () => now });
    for (let second = 0; second < 3; second++) {
      for (let i = 0; i <= second; i++) a.recordItem(1, true);
      now += 1000;
    }
    // The second in progress is not whole yet.
    a.recordItem(1, true);
    const snapshot = a.snapshot();
    expect(snapshot.recent).toHaveLength(60);
    expect(snapshot.recent.slice(-3)).toEqual([1, 2, 3]);
    expect(snapshot.recent.slice(0, -3).every((n) => n === 0)).toBe(true);
    // A node that shared its figures two seconds earlier adds to the seconds it counted: one item
    // three seconds back, shared the second after.
    let bNow = now - 3000;
    const b = new BatchStats({ clock: () => bNow });
    b.recordItem(1, true);
    bNow += 1000;
    const merged = mergeSnapshots([snapshot, b.snapshot()]);
    expect(merged.recentEnd).toBe(snapshot.recentEnd);
    expect(merged.recent.slice(-3)).toEqual([2, 2, 3]);
  });
});
