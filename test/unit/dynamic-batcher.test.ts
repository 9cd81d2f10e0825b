import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  type Priority,
  type ResolvedBatchingOptions,
  resolveBatchingOptions,
} from "../../src/engine/index.js";
import {
  type BatchItem,
  type BatchOutcome,
  DynamicBatcher,
  queueKey,
} from "../../src/engine/scheduling/dynamic-batcher.js";
import { FakePool } from "../fixtures/fake-pool.js";

interface Item extends BatchItem {
  readonly id: number;
}

let seq = 0;
function makeItem(
  opts: {
    width?: number;
    priority?: Priority;
    deadline?: number;
    group?: object;
    now?: number;
    model?: string;
  } = {},
): Item {
  const width = opts.width ?? 3;
  const id = seq++;
  const inputs = [
    { name: "", datatype: "FP32", shape: [width], data: new Float32Array(width).fill(id) },
  ] as const;
  const model = opts.model ?? "default";
  return {
    id,
    model,
    inputs,
    named: false,
    queue: queueKey({ model, inputs }),
    priority: opts.priority ?? "normal",
    deadline: opts.deadline ?? Date.now() + 60_000,
    seq: id,
    arrival: opts.now ?? Date.now(),
    group: opts.group ?? {},
    queued: false,
  };
}

function setup(
  threads: number,
  batching: Parameters<typeof resolveBatchingOptions>[0],
  modelMaxWaitTimeMs?: (model: string) => number | undefined,
  modelPreferredBatchSizes?: (model: string) => readonly number[] | undefined,
  msPerBatch?: (size: number) => number,
) {
  const pool = new FakePool(threads, msPerBatch);
  let options: ResolvedBatchingOptions = resolveBatchingOptions(batching);
  const completed: { items: readonly Item[]; outcome: BatchOutcome }[] = [];
  const expired: Item[] = [];
  const batcher = new DynamicBatcher<Item>({
    pool,
    options: () => options,
    modelMaxBatchSize: () => 1024,
    modelMaxWaitTimeMs,
    modelPreferredBatchSizes,
    onComplete: (items, outcome) => completed.push({ items, outcome }),
    onExpired: (items) => expired.push(...items),
  });
  return {
    pool,
    batcher,
    completed,
    expired,
    setOptions: (o: Parameters<typeof resolveBatchingOptions>[0]) =>
      (options = resolveBatchingOptions(o, options)),
  };
}

const ids = (rows: number[][]) => rows.map((r) => r[0]);

describe("DynamicBatcher", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_700_000_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("dispatches a full batch as soon as max_batch_size items wait", async () => {
    const { pool, batcher } = setup(1, { maxBatchSize: 4 });
    batcher.enqueue([makeItem(), makeItem(), makeItem(), makeItem(), makeItem()]);
    await vi.advanceTimersByTimeAsync(0);
    expect(pool.received[0]?.dims).toEqual([4, 3]);
  });

  it("holds a partial batch for max_wait_time_ms while every thread is busy", async () => {
    const { pool, batcher } = setup(1, { maxBatchSize: 4, maxWaitTimeMs: 50 });
    pool.hold();
    batcher.enqueue([makeItem(), makeItem(), makeItem(), makeItem()]);
    await vi.advanceTimersByTimeAsync(0);
    batcher.enqueue([makeItem(), makeItem()]);
    await vi.advanceTimersByTimeAsync(49);
    expect(pool.received).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(pool.received).toHaveLength(2);
    expect(pool.received[1]?.dims).toEqual([2, 3]);
  });

  it("forms batches of the model's preferred sizes where its config sets them", async () => {
    const { pool, batcher } = setup(1, { maxBatchSize: 16, maxWaitTimeMs: 50 }, undefined, () => [
      2, 4,
    ]);
    pool.hold();
    batcher.enqueue(Array.from({ length: 7 }, () => makeItem()));
    await vi.advanceTimersByTimeAsync(0);
    // Both of the thread's slots: the largest preferred size the items fill, then the next.
    expect(pool.received.map((b) => b.dims[0])).toEqual([4, 2]);
  });

  it("holds a partial batch for the model's own max_wait_time_ms where its config sets one", async () => {
    const own = new Map([["default", 10]]);
    const { pool, batcher } = setup(1, { maxBatchSize: 4, maxWaitTimeMs: 50 }, (m) => own.get(m));
    pool.hold();
    batcher.enqueue([makeItem(), makeItem(), makeItem(), makeItem()]);
    await vi.advanceTimersByTimeAsync(0);
    batcher.enqueue([makeItem(), makeItem()]);
    await vi.advanceTimersByTimeAsync(9);
    expect(pool.received).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(pool.received).toHaveLength(2);
    expect(pool.received[1]?.dims).toEqual([2, 3]);
    // Without one, the configured wait stands.
    own.delete("default");
    pool.release();
    await vi.advanceTimersByTimeAsync(0);
    pool.hold();
    batcher.enqueue([makeItem(), makeItem(), makeItem(), makeItem()]);
    await vi.advanceTimersByTimeAsync(0);
    batcher.enqueue([makeItem(), makeItem()]);
    await vi.advanceTimersByTimeAsync(49);
    expect(pool.received).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(1);
    expect(pool.received).toHaveLength(4);
  });

  it("gives a freed slot to an online item before a job's backlog, without waiting for others", async () => {
    // No latency targets: the critical item is an ordinary one and waits for a pipeline slot.
    const none = { critical: 0, high: 0, normal: 0, low: 0 };
    const { pool, batcher } = setup(1, {
      maxBatchSize: 4,
      maxWaitTimeMs: 50,
      priorityLatencyMs: none,
    });
    pool.hold();
    const far = Date.now() + 3_600_000;
    batcher.enqueue(Array.from({ length: 12 }, () => makeItem({ deadline: far, priority: "low" })));
    await vi.advanceTimersByTimeAsync(0);
    expect(pool.received).toHaveLength(2);
    batcher.enqueue([makeItem({ width: 5, priority: "critical", deadline: Date.now() + 5000 })]);
    await vi.advanceTimersByTimeAsync(0);
    expect(pool.received).toHaveLength(2);
    pool.release();
    pool.hold();
    await vi.advanceTimersByTimeAsync(1);
    expect(pool.received[2]?.dims).toEqual([1, 5]);
    expect(pool.received[2]?.urgent).toBe(false);
    expect(pool.received[3]?.dims).toEqual([4, 3]);
  });

  it("sends an item of a class with a latency target at once, urgent, while every slot holds background batches", async () => {
    const { pool, batcher } = setup(2, { maxBatchSize: 4, maxWaitTimeMs: 50 });
    pool.hold();
    const far = Date.now() + 3_600_000;
    batcher.enqueue(Array.from({ length: 40 }, () => makeItem({ deadline: far, priority: "low" })));
    await vi.advanceTimersByTimeAsync(0);
    // Two threads, each with its running batch and the next one ready: the pipeline is full.
    expect(pool.received.map((b) => b.urgent)).toEqual([false, false, false, false]);
    batcher.enqueue([makeItem({ width: 5, priority: "critical", deadline: Date.now() + 5000 })]);
    await vi.advanceTimersByTimeAsync(0);
    // Dispatched before the 24 low items still waiting, without waiting for a slot to free,
    // and marked to run before the low batches queued on its thread.
    expect(pool.received).toHaveLength(5);
    expect(pool.received[4]).toMatchObject({ dims: [1, 5], urgent: true });
    expect(batcher.pendingByPriority().low).toBe(24);
    // One express slot per thread: a second and a third critical item, each arriving alone.
    batcher.enqueue([makeItem({ width: 5, priority: "critical", deadline: Date.now() + 5000 })]);
    await vi.advanceTimersByTimeAsync(0);
    batcher.enqueue([makeItem({ width: 5, priority: "critical", deadline: Date.now() + 5000 })]);
    await vi.advanceTimersByTimeAsync(0);
    expect(pool.received).toHaveLength(6);
    expect(batcher.pendingByPriority().critical).toBe(1);
    // The first slot to free goes to the critical item still waiting, before every low one.
    pool.releaseOne();
    await vi.advanceTimersByTimeAsync(0);
    expect(pool.received[6]).toMatchObject({ dims: [1, 5], urgent: true });
    pool.release();
    await vi.advanceTimersByTimeAsync(10);
    expect(batcher.pending).toBe(0);
  });

  it("keeps an online item's batch free of background items from the same queue", async () => {
    const { pool, batcher } = setup(1, { maxBatchSize: 8, maxWaitTimeMs: 50 });
    pool.hold();
    const far = Date.now() + 3_600_000;
    batcher.enqueue(Array.from({ length: 40 }, () => makeItem({ deadline: far, priority: "low" })));
    await vi.advanceTimersByTimeAsync(0);
    expect(pool.received).toHaveLength(2);
    const soon = Date.now() + 5000;
    batcher.enqueue([
      makeItem({ priority: "critical", deadline: soon }),
      makeItem({ priority: "high", deadline: soon }),
    ]);
    await vi.advanceTimersByTimeAsync(0);
    // One batch of the two online items (critical and high both have a target by default), not
    // filled up to 8 with low items, which keep their places.
    expect(pool.received[2]).toMatchObject({ dims: [2, 3], urgent: true });
    expect(batcher.pendingByPriority().low).toBe(24);
    pool.release();
    await vi.advanceTimersByTimeAsync(10);
  });

  it("keeps background batches within half the smallest active target while an online class has traffic", async () => {
    // Batches that run 1 ms per item.
    const { pool, batcher } = setup(
      1,
      { maxBatchSize: 64, maxWaitTimeMs: 0 },
      undefined,
      undefined,
      (size) => size,
    );
    const latency = batcher.latencyOf("default");
    for (const size of [1, 2, 4, 8, 16, 32, 64])
      for (let k = 0; k < 3; k++) latency.observe(size, size);
    const far = Date.now() + 3_600_000;
    const low = () =>
      Array.from({ length: 64 }, () => makeItem({ deadline: far, priority: "low" }));
    batcher.enqueue(low());
    await vi.advanceTimersByTimeAsync(10);
    expect(pool.received[0]?.dims[0]).toBe(64);
    // A critical item (target 100 ms by default): background batches now run within 50 ms.
    batcher.enqueue([makeItem({ priority: "critical", deadline: Date.now() + 5000 })]);
    batcher.enqueue(low());
    await vi.advanceTimersByTimeAsync(10);
    const sizes = pool.received.slice(1).map((b) => b.dims[0] as number);
    expect(sizes[0]).toBe(1);
    expect(Math.max(...sizes.slice(1))).toBe(50);
    // Once the class has been quiet for a second, they grow back.
    await vi.advanceTimersByTimeAsync(1100);
    const before = pool.received.length;
    batcher.enqueue(low());
    await vi.advanceTimersByTimeAsync(10);
    expect(pool.received[before]?.dims[0]).toBe(64);
  });

  it("keeps each thread's next batch ready but no more: threads x 2 in flight", async () => {
    const { pool, batcher } = setup(2, { maxBatchSize: 4, maxWaitTimeMs: 0 });
    pool.hold();
    batcher.enqueue(Array.from({ length: 100 }, () => makeItem()));
    await vi.advanceTimersByTimeAsync(10);
    expect(pool.received).toHaveLength(4);
    expect(batcher.inFlight).toBe(4);
    pool.release();
    await vi.advanceTimersByTimeAsync(10);
    expect(pool.received.reduce((n, b) => n + (b.dims[0] as number), 0)).toBe(100);
  });

  it("never sends an item whose deadline passed to a thread", async () => {
    const { pool, batcher, expired } = setup(1, { maxBatchSize: 2, maxWaitTimeMs: 0 });
    pool.hold();
    batcher.enqueue([makeItem(), makeItem(), makeItem(), makeItem()]);
    await vi.advanceTimersByTimeAsync(0);
    const late = makeItem({ deadline: Date.now() + 10 });
    batcher.enqueue([late]);
    await vi.advanceTimersByTimeAsync(20);
    pool.release();
    await vi.advanceTimersByTimeAsync(10);
    const sent = pool.received.flatMap((b) => ids(b.rows));
    expect(sent).not.toContain(late.id);
    expect(expired.map((i) => i.id)).toEqual([late.id]);
  });

  it("dispatches for a deadline early enough that the item it waited for then runs", async () => {
    // max_wait_time_ms is longer than the item's slack: only the deadline rule dispatches it,
    // and the rule that lets items start must then agree that it still ends in time.
    const { pool, batcher, expired } = setup(1, { maxBatchSize: 4, maxWaitTimeMs: 1000 });
    for (let i = 0; i < 5; i++) {
      batcher.latencyOf("default").observe(1, 30);
      batcher.latencyOf("default").observe(4, 30);
    }
    pool.hold();
    batcher.enqueue([makeItem(), makeItem(), makeItem(), makeItem()]);
    await vi.advanceTimersByTimeAsync(0);
    // The thread is busy with 4 items; a lone item would wait for company until max_wait.
    const tight = makeItem({ deadline: Date.now() + 100 });
    batcher.enqueue([tight]);
    await vi.advanceTimersByTimeAsync(99);
    pool.release();
    await vi.advanceTimersByTimeAsync(10);
    expect(expired.map((i) => i.id)).toEqual([]);
    expect(pool.received.flatMap((b) => ids(b.rows))).toContain(tight.id);
  });

  it("does not start an item that would end after its deadline", async () => {
    const { pool, batcher, expired } = setup(1, { maxBatchSize: 1, maxWaitTimeMs: 0 });
    for (let i = 0; i < 5; i++) batcher.latencyOf("default").observe(1, 50);
    const tooTight = makeItem({ deadline: Date.now() + 30 });
    // Would end in time at the mean run time, but not if this run is half as slow again.
    const noMargin = makeItem({ deadline: Date.now() + 60 });
    const inTime = makeItem({ deadline: Date.now() + 200 });
    batcher.enqueue([tooTight, noMargin, inTime]);
    await vi.advanceTimersByTimeAsync(0);
    expect(pool.received.flatMap((b) => ids(b.rows))).toEqual([inTime.id]);
    expect(expired.map((i) => i.id)).toEqual([tooTight.id, noMargin.id]);
  });

  it("counts the wait behind a running batch when every thread is busy", async () => {
    const { pool, batcher, expired } = setup(1, { maxBatchSize: 1, maxWaitTimeMs: 0 });
    for (let i = 0; i < 5; i++) batcher.latencyOf("default").observe(1, 50);
    pool.hold();
    batcher.enqueue([makeItem()]);
    await vi.advanceTimersByTimeAsync(0);
    // One batch runs; the next would wait ~50 ms for the thread and run ~50 ms.
    const tooTight = makeItem({ deadline: Date.now() + 80 });
    const inTime = makeItem({ deadline: Date.now() + 300 });
    batcher.enqueue([tooTight, inTime]);
    await vi.advanceTimersByTimeAsync(0);
    pool.release();
    await vi.advanceTimersByTimeAsync(10);
    expect(pool.received.flatMap((b) => ids(b.rows))).toContain(inTime.id);
    expect(expired.map((i) => i.id)).toEqual([tooTight.id]);
  });

  it("expects a new item to wait for its class and the others' weighted share", async () => {
    const { pool, batcher, setOptions } = setup(1, { maxBatchSize: 4, maxWaitTimeMs: 0 });
    expect(batcher.expectedWaitMs("default", "normal")).toBeUndefined();
    for (let i = 0; i < 5; i++) batcher.latencyOf("default").observe(4, 40);
    pool.hold();
    batcher.enqueue(Array.from({ length: 8 }, () => makeItem({ priority: "critical" })));
    await vi.advanceTimersByTimeAsync(0); // 2 batches of 4 go to the (held) thread
    batcher.enqueue([
      ...Array.from({ length: 8 }, () => makeItem({ priority: "critical" })),
      ...Array.from({ length: 8 }, () => makeItem({ priority: "low" })),
    ]);
    // After the 8 items in flight: critical's 8 plus low's share meanwhile (8 x 0.2) = 9.6 items,
    // 17.6 in all -> 5 batches of 40 ms.
    expect(batcher.expectedWaitMs("default", "critical")).toBe(200);
    // low: 8 in flight, its 8 plus every critical item (8 x 1.0 / 0.2 > 8) = 24 -> 6 batches.
    expect(batcher.expectedWaitMs("default", "low")).toBe(240);
    setOptions({ priorityWeights: { low: 0 } });
    expect(batcher.expectedWaitMs("default", "low")).toBeUndefined();
    pool.release();
  });

  it("applies a configuration change to the next dispatched batch", async () => {
    const { pool, batcher, setOptions } = setup(1, { maxBatchSize: 8, maxWaitTimeMs: 0 });
    pool.hold();
    batcher.enqueue(Array.from({ length: 8 }, () => makeItem()));
    await vi.advanceTimersByTimeAsync(0);
    setOptions({ maxBatchSize: 2 });
    batcher.enqueue(Array.from({ length: 8 }, () => makeItem()));
    await vi.advanceTimersByTimeAsync(0);
    expect(pool.received.map((b) => b.dims[0])).toEqual([8, 2]);
  });

  it("without dynamic batching never merges two requests into one model batch", async () => {
    const { pool, batcher } = setup(1, { maxBatchSize: 4, enableDynamicBatching: false });
    const a = {};
    const b = {};
    const items = [
      ...Array.from({ length: 3 }, () => makeItem({ group: a })),
      ...Array.from({ length: 6 }, () => makeItem({ group: b })),
    ];
    batcher.enqueue(items);
    await vi.advanceTimersByTimeAsync(50);
    expect(pool.received.map((r) => r.dims[0])).toEqual([3, 4, 2]);
    const groupOf = new Map(items.map((i) => [i.id, i.group]));
    for (const batch of pool.received)
      expect(new Set(ids(batch.rows).map((id) => groupOf.get(id as number))).size).toBe(1);
  });

  it("never puts items of different shapes in one model batch", async () => {
    const { pool, batcher } = setup(2, { maxBatchSize: 16, maxWaitTimeMs: 1 });
    batcher.enqueue(Array.from({ length: 40 }, (_, i) => makeItem({ width: i % 2 === 0 ? 3 : 5 })));
    await vi.advanceTimersByTimeAsync(20);
    expect(pool.received.reduce((n, b) => n + (b.dims[0] as number), 0)).toBe(40);
    for (const batch of pool.received)
      expect(new Set(batch.rows.map((r) => r.length)).size).toBe(1);
  });

  it("removes waiting items so they never run", async () => {
    const { pool, batcher } = setup(1, { maxBatchSize: 2, maxWaitTimeMs: 0 });
    pool.hold();
    batcher.enqueue([makeItem(), makeItem(), makeItem(), makeItem()]);
    await vi.advanceTimersByTimeAsync(0);
    const gone = [makeItem(), makeItem()];
    batcher.enqueue(gone);
    expect(batcher.remove(gone)).toHaveLength(2);
    expect(batcher.pending).toBe(0);
    pool.release();
    await vi.advanceTimersByTimeAsync(10);
    expect(pool.received.flatMap((b) => ids(b.rows))).not.toContain(gone[0]?.id);
  });

  it("reports every model batch's outcome, failures included", async () => {
    const { pool, batcher, completed } = setup(1, { maxBatchSize: 2, maxWaitTimeMs: 0 });
    pool.failNext(1);
    batcher.enqueue([makeItem(), makeItem(), makeItem(), makeItem()]);
    await vi.advanceTimersByTimeAsync(10);
    expect(completed.map((c) => c.outcome.ok)).toEqual([false, true]);
  });

  it("runs the halves of a batch the runtime refuses until the item it cannot take fails alone", async () => {
    const { pool, batcher, completed } = setup(1, { maxBatchSize: 8, maxWaitTimeMs: 0 });
    const items = Array.from({ length: 8 }, () => makeItem());
    const bad = items[5] as Item;
    pool.refused.add(bad.id);
    batcher.enqueue(items);
    await vi.advanceTimersByTimeAsync(10);
    const failed = completed.filter((c) => !c.outcome.ok).flatMap((c) => c.items);
    const ran = completed.filter((c) => c.outcome.ok).flatMap((c) => c.items);
    expect(failed.map((i) => i.id)).toEqual([bad.id]);
    expect(ran.map((i) => i.id).sort((a, b) => a - b)).toEqual(
      items.filter((i) => i !== bad).map((i) => i.id),
    );
    // 8 -> halves of 4 (one refused) -> 2 (one refused) -> 1: seven runs in all.
    expect(pool.received.map((b) => b.dims[0])).toEqual([8, 4, 4, 2, 2, 1, 1]);
  });

  it("fails every item of a refused batch at once when both halves are refused too", async () => {
    const { pool, batcher, completed } = setup(1, { maxBatchSize: 8, maxWaitTimeMs: 0 });
    const items = Array.from({ length: 8 }, () => makeItem());
    pool.refused.add((items[1] as Item).id);
    pool.refused.add((items[6] as Item).id);
    batcher.enqueue(items);
    await vi.advanceTimersByTimeAsync(10);
    expect(pool.received.map((b) => b.dims[0])).toEqual([8, 4, 4]);
    expect(completed.every((c) => !c.outcome.ok)).toBe(true);
    expect(completed.flatMap((c) => c.items)).toHaveLength(8);
    // Other failures are not the runtime refusing an item: the batch fails as it ran.
    pool.refused.clear();
    pool.failNext(1);
    completed.length = 0;
    batcher.enqueue(Array.from({ length: 4 }, () => makeItem()));
    await vi.advanceTimersByTimeAsync(10);
    expect(completed.map((c) => [c.items.length, c.outcome.ok])).toEqual([[4, false]]);
  });

  it("keeps each lane of threads to its own slots: a busy model never holds back one with threads of its own", async () => {
    const { pool, batcher } = setup(1, { maxBatchSize: 1, maxWaitTimeMs: 0 });
    pool.lanes.set("a", 1);
    pool.lanes.set("b", 2);
    pool.hold();
    batcher.enqueue(Array.from({ length: 6 }, () => makeItem({ model: "a" })));
    batcher.enqueue(Array.from({ length: 6 }, () => makeItem({ model: "b" })));
    batcher.enqueue(Array.from({ length: 6 }, () => makeItem({ model: "default" })));
    await vi.advanceTimersByTimeAsync(0);
    // Slots are threads x pipeline depth (2), per lane: a 2, b 4, the shared lane (1 thread) 2.
    const sent = (model: string) => pool.received.filter((b) => b.model === model).length;
    expect([sent("a"), sent("b"), sent("default")]).toEqual([2, 4, 2]);
    expect(batcher.inFlight).toBe(8);
    // Busy threads are counted per lane: 1 + 2 + 1, not the shared lane's 1 thread.
    expect(batcher.busyThreads).toBe(4);
    pool.release();
    await vi.advanceTimersByTimeAsync(10);
    expect([sent("a"), sent("b"), sent("default")]).toEqual([6, 6, 6]);
    expect(batcher.inFlight).toBe(0);
    expect(batcher.busyThreads).toBe(0);
  });

  it("close resolves only after running batches end", async () => {
    const { pool, batcher } = setup(1, { maxBatchSize: 2, maxWaitTimeMs: 0 });
    pool.hold();
    batcher.enqueue([makeItem(), makeItem()]);
    await vi.advanceTimersByTimeAsync(0);
    let closed = false;
    const closing = batcher.close().then(() => (closed = true));
    await vi.advanceTimersByTimeAsync(10);
    expect(closed).toBe(false);
    pool.release();
    await closing;
    expect(closed).toBe(true);
  });
});
