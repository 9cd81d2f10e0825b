import { describe, expect, it } from "vitest";
import { resolveBatchingOptions } from "../../src/engine/index.js";
import {
  decideBatch,
  type PolicyContext,
  planDispatch,
  type QueueState,
  THROUGHPUT_SLACK_MS,
  waitingPays,
} from "../../src/engine/scheduling/batch-policy.js";
import { LatencyModel } from "../../src/engine/scheduling/latency-model.js";

function latency(a = 1, b = 0.1): LatencyModel {
  const m = new LatencyModel();
  for (let i = 0; i < 5; i++) for (const s of [1, 8, 32, 64]) m.observe(s, a + b * s);
  return m;
}

const NOW = 1_000_000;
const queue = (q: Partial<QueueState>): QueueState => ({
  pending: 1,
  oldestArrival: NOW,
  earliestDeadline: NOW + 5000,
  arrivalRatePerMs: 0,
  ...q,
});
const ctx = (c: Partial<PolicyContext> = {}): PolicyContext => ({
  now: NOW,
  options: resolveBatchingOptions({ maxBatchSize: 32, maxWaitTimeMs: 50 }),
  modelMaxBatchSize: 1024,
  idleThreads: 0,
  freeSlots: 0,
  slots: 4,
  inFlightItems: 64,
  startDelayMs: 0,
  latency: latency(),
  ...c,
});

describe("decideBatch", () => {
  it("does nothing for an empty queue", () => {
    expect(decideBatch(queue({ pending: 0 }), ctx())).toEqual({ kind: "empty" });
  });

  it("dispatches a full batch at once", () => {
    // 32 is measured; the target is the smallest size within 3 % of its throughput.
    const d = decideBatch(queue({ pending: 100 }), ctx());
    expect(d).toEqual({ kind: "dispatch", size: 29, reason: "full" });
  });

  it("runs the largest preferred size the waiting items fill, at once, where the model has them", () => {
    const preferred = { preferredBatchSizes: [4, 8, 64] };
    expect(decideBatch(queue({ pending: 10 }), ctx(preferred))).toEqual({
      kind: "dispatch",
      size: 8,
      reason: "preferred",
    });
    // Never past the batch limit (32 here): 64 is out of reach.
    expect(decideBatch(queue({ pending: 100 }), ctx(preferred))).toMatchObject({ size: 8 });
    // Fewer items than the smallest: the usual rules decide (a young partial batch waits).
    expect(decideBatch(queue({ pending: 3 }), ctx(preferred))).not.toMatchObject({
      reason: "preferred",
    });
  });

  it("runs the largest batch for a backlog with no deadline near (a job's items)", () => {
    // The same queue as above, but its earliest deadline is the end of a job's window.
    const d = decideBatch(
      queue({ pending: 100, earliestDeadline: NOW + THROUGHPUT_SLACK_MS }),
      ctx(),
    );
    expect(d).toEqual({ kind: "dispatch", size: 32, reason: "full" });
    // A deadline nearer than that keeps the latency-minded size.
    const near = decideBatch(
      queue({ pending: 100, earliestDeadline: NOW + THROUGHPUT_SLACK_MS - 1 }),
      ctx(),
    );
    expect(near).toEqual({ kind: "dispatch", size: 29, reason: "full" });
  });

  it("shares a full batch's worth of items out among idle threads", () => {
    // 32 items, target 29: with two idle threads, two batches of 16 rather than 29 and 3.
    const d = decideBatch(queue({ pending: 32 }), ctx({ idleThreads: 2, freeSlots: 4 }));
    expect(d).toEqual({ kind: "dispatch", size: 16, reason: "full" });
    // A backlog that fills a target-size batch for every idle thread is not split.
    const big = decideBatch(queue({ pending: 100 }), ctx({ idleThreads: 2, freeSlots: 4 }));
    expect(big).toEqual({ kind: "dispatch", size: 29, reason: "full" });
  });

  it("runs the largest size while it is unmeasured and a backlog fills it, then trusts its time", () => {
    const options = resolveBatchingOptions({ maxBatchSize: 256 });
    const m = latency(1, 0.1); // sizes 1..64 measured; 256 only on the fitted line
    expect(decideBatch(queue({ pending: 1000 }), ctx({ options, latency: m }))).toEqual({
      kind: "dispatch",
      size: 256,
      reason: "explore",
    });
    // Not without a backlog that fills it, nor when it would not fit well within the deadline.
    expect(decideBatch(queue({ pending: 100 }), ctx({ options, latency: m }))).not.toMatchObject({
      reason: "explore",
    });
    expect(
      decideBatch(
        queue({ pending: 1000, earliestDeadline: NOW + 40 }),
        ctx({ options, latency: m }),
      ),
    ).not.toMatchObject({ reason: "explore" });
    // Measured: 256 items take 12 ms, far better per item than the line's 26.6 ms. Chosen.
    for (let i = 0; i < 3; i++) m.observe(256, 12);
    expect(decideBatch(queue({ pending: 1000 }), ctx({ options, latency: m }))).toEqual({
      kind: "dispatch",
      size: 256,
      reason: "full",
    });
  });

  it("never exceeds the model's own batch limit", () => {
    const d = decideBatch(queue({ pending: 100 }), ctx({ modelMaxBatchSize: 4 }));
    expect(d).toMatchObject({ kind: "dispatch", size: 4 });
  });

  it("waits for more items while all threads are busy, until the max wait ends", () => {
    const d = decideBatch(queue({ pending: 3 }), ctx());
    expect(d).toEqual({ kind: "wait", until: NOW + 50 });
  });

  it("dispatches what it has once the oldest item has waited max_wait_time_ms", () => {
    const d = decideBatch(queue({ pending: 3, oldestArrival: NOW - 50 }), ctx());
    expect(d).toEqual({ kind: "dispatch", size: 3, reason: "max_wait" });
  });

  it("dispatches early when waiting longer would miss an item's deadline", () => {
    const d = decideBatch(queue({ pending: 3, earliestDeadline: NOW + 2 }), ctx());
    expect(d).toMatchObject({ kind: "dispatch", reason: "deadline" });
  });

  it("wakes up in time for the deadline when it comes before the max wait", () => {
    const d = decideBatch(queue({ pending: 3, earliestDeadline: NOW + 20 }), ctx());
    expect(d.kind).toBe("wait");
    expect((d as { until: number }).until).toBeLessThan(NOW + 20);
  });

  it("dispatches at once to an idle thread when nothing else is arriving", () => {
    const d = decideBatch(queue({ pending: 1, arrivalRatePerMs: 0 }), ctx({ idleThreads: 1 }));
    expect(d).toEqual({ kind: "dispatch", size: 1, reason: "idle" });
  });

  it("keeps an idle thread waiting briefly when items arrive fast enough to fill a batch", () => {
    const d = decideBatch(queue({ pending: 2, arrivalRatePerMs: 50 }), ctx({ idleThreads: 1 }));
    expect(d.kind).toBe("wait");
  });

  it("fills a free pipeline slot once the queue holds its share of the work in the system", () => {
    // 64 items run in 2 batches, 4 slots: a next batch of 22 keeps every slot busy.
    const c = ctx({ freeSlots: 2, inFlightItems: 64, latency: latency(1, 0.001) });
    expect(decideBatch(queue({ pending: 21 }), c).kind).toBe("wait");
    expect(decideBatch(queue({ pending: 22 }), c)).toEqual({
      kind: "dispatch",
      size: 22,
      reason: "pipeline",
    });
  });

  it("does not fill a pipeline slot with less than its share, nor when no slot is free", () => {
    expect(decideBatch(queue({ pending: 20 }), ctx({ freeSlots: 0, inFlightItems: 64 })).kind).toBe(
      "wait",
    );
    expect(decideBatch(queue({ pending: 20 }), ctx({ freeSlots: 2, inFlightItems: 64 })).kind).toBe(
      "wait",
    );
  });

  it("without dynamic batching dispatches at once, up to max_batch_size", () => {
    const options = resolveBatchingOptions({ enableDynamicBatching: false, maxBatchSize: 16 });
    expect(decideBatch(queue({ pending: 1 }), ctx({ options }))).toEqual({
      kind: "dispatch",
      size: 16,
      reason: "no_batching",
    });
  });

  it("uses the latency model's target size rather than max_batch_size when it is smaller", () => {
    const options = resolveBatchingOptions({ maxBatchSize: 1024 });
    const m = latency(1, 0.094);
    for (let i = 0; i < 3; i++) m.observe(1024, 1 + 0.094 * 1024);
    const d = decideBatch(queue({ pending: 2000 }), ctx({ options, latency: m }));
    expect(d.kind).toBe("dispatch");
    expect((d as { size: number }).size).toBeLessThan(1024);
  });
});

describe("waitingPays", () => {
  it("is false when nothing arrives", () => {
    expect(waitingPays(queue({ pending: 1 }), ctx({ idleThreads: 1 }), 32, NOW + 50)).toBe(false);
  });

  it("is false when the fixed cost per batch is negligible (batching buys nothing)", () => {
    expect(
      waitingPays(
        queue({ pending: 1, arrivalRatePerMs: 0.05 }),
        ctx({ latency: latency(0.001, 1) }),
        32,
        NOW + 50,
      ),
    ).toBe(false);
  });

  it("is false when filling the batch would keep the thread idle longer than the batch runs", () => {
    // 1 item runs in ~1.1 ms; 27 more at 1 per ms would take 27 ms.
    expect(
      waitingPays(
        queue({ pending: 1, arrivalRatePerMs: 1 }),
        ctx({ latency: latency(1, 0.1) }),
        28,
        NOW + 50,
      ),
    ).toBe(false);
  });

  it("is true when a high fixed cost can be shared by items arriving within one run time", () => {
    expect(
      waitingPays(
        queue({ pending: 1, arrivalRatePerMs: 10 }),
        ctx({ latency: latency(5, 0.1) }),
        32,
        NOW + 50,
      ),
    ).toBe(true);
  });
});

describe("planDispatch", () => {
  it("lets a ready queue with deadlines near go before a job's backlog, whatever their ages", () => {
    const job = {
      key: "job",
      queue: queue({
        pending: 500,
        oldestArrival: NOW - 10_000,
        earliestDeadline: NOW + 3_600_000,
      }),
      ctx: ctx(),
    };
    const online = {
      key: "online",
      queue: queue({ pending: 40, oldestArrival: NOW - 1, earliestDeadline: NOW + 5000 }),
      ctx: ctx(),
    };
    expect(planDispatch([job, online])).toMatchObject({ kind: "dispatch", key: "online" });
    // Alone, the backlog runs; among online queues the oldest goes first.
    expect(planDispatch([job])).toMatchObject({ kind: "dispatch", key: "job" });
    const older = { ...online, key: "older", queue: { ...online.queue, oldestArrival: NOW - 5 } };
    expect(planDispatch([job, online, older])).toMatchObject({ kind: "dispatch", key: "older" });
  });
});
