import { describe, expect, it } from "vitest";
import { drainMs } from "../../src/engine/scheduling/batch-policy.js";
import { LatencyModel, ServiceRate } from "../../src/engine/scheduling/latency-model.js";

describe("LatencyModel", () => {
  it("knows nothing before any sample", () => {
    const m = new LatencyModel();
    expect(m.estimate(8)).toBeUndefined();
    expect(m.bestBatchSize(64, 100)).toBe(64);
  });

  it("fits batch time = a + b * size from noisy samples", () => {
    const m = new LatencyModel();
    let noise = 0;
    for (let round = 0; round < 20; round++) {
      for (const size of [1, 4, 16, 32, 64]) {
        noise = (noise * 7 + 3) % 11;
        m.observe(size, 2 + 0.1 * size + (noise - 5) * 0.01);
      }
    }
    const line = m.line();
    expect(line?.a).toBeCloseTo(2, 1);
    expect(line?.b).toBeCloseTo(0.1, 2);
    expect(m.estimate(128)).toBeCloseTo(14.8, 0);
  });

  it("trusts a well-sampled size's own mean over the line", () => {
    const m = new LatencyModel();
    for (let i = 0; i < 5; i++) {
      m.observe(1, 1);
      m.observe(10, 10);
      m.observe(5, 20);
    }
    expect(m.estimate(5)).toBeCloseTo(20, 5);
  });

  it("finds the largest size expected within a budget, however flat the curve", () => {
    const m = new LatencyModel();
    expect(m.largestWithin(64, 10)).toBe(64); // nothing measured: no bound known
    for (const size of [1, 8, 64]) for (let k = 0; k < 3; k++) m.observe(size, 2 + size * 0.5);
    // 2 + 0.5 s <= 20 → s <= 36; the throughput-best size within 20 ms would be smaller.
    expect(m.largestWithin(64, 20)).toBe(36);
    expect(m.largestWithin(64, 100)).toBe(64);
    expect(m.largestWithin(64, 1)).toBe(1);
  });

  it("picks the smallest size within 3% of the best throughput", () => {
    const m = new LatencyModel();
    // Heavy-model-like curve: throughput rises steeply, then flattens past ~48.
    for (let i = 0; i < 5; i++)
      for (const size of [1, 8, 32, 64]) m.observe(size, 1 + size * 0.094);
    const best = m.bestBatchSize(64, Number.POSITIVE_INFINITY);
    expect(best).toBeLessThan(64);
    expect(best).toBeGreaterThanOrEqual(16);
    const throughput = (s: number) => s / (m.estimate(s) as number);
    expect(throughput(best)).toBeGreaterThanOrEqual(0.97 * throughput(64) - 1e-9);
  });

  it("keeps the batch within the latency budget", () => {
    const m = new LatencyModel();
    for (let i = 0; i < 5; i++) for (const size of [1, 8, 32, 64]) m.observe(size, 1 + size * 0.5);
    const size = m.bestBatchSize(64, 10);
    expect(m.estimate(size)).toBeLessThanOrEqual(10);
    // 18 is the largest size that fits 10 ms; 14 gives 97% of its throughput.
    expect(size).toBe(14);
  });

  it("falls back to 1 when no size fits the budget", () => {
    const m = new LatencyModel();
    m.observe(1, 50);
    m.observe(2, 60);
    expect(m.bestBatchSize(64, 5)).toBe(1);
  });

  it("ignores impossible samples", () => {
    const m = new LatencyModel();
    m.observe(0, 5);
    m.observe(4, Number.NaN);
    m.observe(4, -1);
    expect(m.observedSizes).toBe(0);
  });

  it("answers again from the new samples once more arrive (no stale unbudgeted answer)", () => {
    const m = new LatencyModel();
    for (let i = 0; i < 5; i++) for (const size of [1, 64]) m.observe(size, 1 + 0.1 * size);
    const before = m.bestBatchSize(256, Number.POSITIVE_INFINITY);
    expect(m.bestBatchSize(256, Number.POSITIVE_INFINITY)).toBe(before);
    // 256 turns out far cheaper per item than the line says: it becomes the answer.
    for (let i = 0; i < 5; i++) m.observe(256, 8);
    expect(before).toBeLessThan(256);
    expect(m.bestBatchSize(256, Number.POSITIVE_INFINITY)).toBe(256);
    expect(m.bestBatchSize(128, Number.POSITIVE_INFINITY)).toBeLessThanOrEqual(128);
  });
});

describe("ServiceRate and drainMs", () => {
  /** A model whose batches take 1 ms + 0.1 ms per item, measured at every size up to 64. */
  function measured(): LatencyModel {
    const m = new LatencyModel();
    for (let round = 0; round < 20; round++)
      for (const size of [1, 8, 32, 64]) m.observe(size, 1 + 0.1 * size);
    return m;
  }

  it("measures how much slower than their run times saturated batches really end", () => {
    const rate = new ServiceRate();
    rate.record(0, true, 1);
    for (let i = 1; i <= 200; i++) rate.record(3 * i, true, 1.5);
    // Idle gaps and batches without an expected time do not count.
    rate.record(1600, false, 1.5);
    rate.record(1603, true, undefined);
    expect(rate.slowdown()).toBeCloseTo(2, 6);
  });

  it("does not count the time the threads were idle between two bursts", () => {
    const rate = new ServiceRate();
    rate.record(0, true, 1);
    for (let i = 1; i <= 100; i++) rate.record(2 * i, true, 1); // twice as slow
    expect(rate.slowdown()).toBeCloseTo(2, 6);
    // The burst ends; the threads idle for a second; a new burst's first batch ends saturated.
    rate.pause();
    rate.record(1200, true, 1);
    for (let i = 1; i <= 5; i++) rate.record(1200 + 2 * i, true, 1);
    expect(rate.slowdown()).toBeCloseTo(2, 6);
  });

  it("keeps its estimate when the batch size changes, as a slowdown rather than a rate", () => {
    const latency = measured();
    // Saturated at batch size 1 (dynamic batching off): 2 threads, each batch 1.1 ms, ending
    // every 1.1 ms instead of every 0.55 ms: twice as slow as the run times say.
    const rate = new ServiceRate();
    for (let i = 1; i <= 500; i++) rate.record(1.1 * i, true, 1.1 / 2);
    const ctx = { latency, maxBatchSize: 64, threads: 2, inFlightItems: 0 };
    const runTimes = drainMs(64_000, { ...ctx, slowdown: undefined }) as number;
    // Back at batch size 64 (about 1,000 batches of 7.4 ms over 2 threads: 3.7 s by the run
    // times), twice as slow. A rate measured at size 1 (1 item per 1.1 ms) would say 70 s.
    expect(runTimes).toBeGreaterThan(3600);
    expect(runTimes).toBeLessThan(4000);
    expect(drainMs(64_000, { ...ctx, slowdown: rate.slowdown() })).toBeCloseTo(2 * runTimes, 3);
  });
});
