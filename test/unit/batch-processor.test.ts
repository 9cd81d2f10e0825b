import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterEach, describe, expect, it } from "vitest";
import {
  BatchEndedError,
  BatchExistsError,
  BatchNotFoundError,
  BatchProcessor,
  type BatchProcessorOptions,
  type BatchView,
  CancelledError,
  DeadlineExceededError,
  InvalidInputError,
  ModelUnavailableError,
  PermissionDeniedError,
  type Principal,
  QueueFullError,
  ResultsNotReadyError,
  ShuttingDownError,
  type SubmitRequest,
} from "../../src/engine/index.js";
import { ITEM_FAILURES } from "../../src/engine/jobs/item-failures.js";
import { SqliteJobStore } from "../../src/store/sqlite-job-store.js";
import { FailingStore } from "../fixtures/failing-store.js";
import { FakePool, fakeCatalog, until } from "../fixtures/fake-pool.js";

const alice: Principal = { owner: "alice", admin: false };
const bob: Principal = { owner: "bob", admin: false };
const admin: Principal = { owner: "root", admin: true };

const open: BatchProcessor[] = [];
const dirs: string[] = [];

async function start(
  options: Partial<BatchProcessorOptions> & { dataDir?: string; threads?: number } = {},
) {
  const pool = (options.pool as FakePool | undefined) ?? new FakePool(options.threads ?? 1);
  const store = options.store ?? new SqliteJobStore({ dataDir: options.dataDir ?? ":memory:" });
  const processor = await BatchProcessor.create({ models: fakeCatalog(), ...options, pool, store });
  open.push(processor);
  return { processor, pool };
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "bp-proc-"));
  dirs.push(dir);
  return dir;
}

const items = (n: number, width = 3) =>
  Array.from({ length: n }, (_, i) => ({ input: Array.from({ length: width }, (_, k) => i + k) }));

async function settle(
  processor: BatchProcessor,
  principal: Principal,
  batchId: string,
): Promise<BatchView> {
  let last: BatchView | undefined;
  for await (const view of processor.watch(principal, batchId)) last = view;
  return last as BatchView;
}

afterEach(async () => {
  for (const p of open.splice(0)) await p.close({ timeoutMs: 100 });
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("BatchProcessor", () => {
  it("warms every model up at start: each size twice on the regular threads, and once as online work where the pool keeps threads for it", async () => {
    const withOnline = new FakePool(1);
    withOnline.onlineThreads = 1;
    const { pool } = await start({ batching: { maxBatchSize: 64 }, pool: withOnline });
    const { pool: without } = await start({ batching: { maxBatchSize: 64 } });
    const of = (p: FakePool) =>
      p.received.filter((b) => b.model === "default").map((b) => [b.dims[0], b.urgent]);
    expect(of(without)).toEqual([
      [1, false],
      [1, false],
      [8, false],
      [8, false],
      [64, false],
      [64, false],
    ]);
    expect(of(pool)).toEqual([
      [1, false],
      [1, false],
      [1, true],
      [8, false],
      [8, false],
      [8, true],
      [64, false],
      [64, false],
      [64, true],
    ]);
  });

  it("runs a submitted batch to completion with one result per item", async () => {
    const { processor } = await start();
    const receipt = await processor.submit(alice, { data: items(5), priority: "high" });
    expect(receipt).toMatchObject({ status: "queued", requestCount: 5 });
    expect(receipt.batchId).toMatch(/^batch_[0-9a-f]{32}$/);
    expect((await settle(processor, alice, receipt.batchId)).status).toBe("completed");
    const results = await processor.results(alice, receipt.batchId);
    expect(results.results.map((r) => r.requestId)).toEqual([
      "req_1",
      "req_2",
      "req_3",
      "req_4",
      "req_5",
    ]);
    expect(results.results[2]?.output).toEqual([2 + 3 + 4, 3]);
    expect(results.results.every((r) => r.confidence === 0.5 && r.error === null)).toBe(true);
    expect(results.batchSize).toBe(5);
  });

  it("returns the same batch for the same batch_id and payload", async () => {
    const { processor } = await start();
    const first = await processor.submit(alice, { data: items(2), batchId: "job-1" });
    const again = await processor.submit(alice, { data: items(2), batchId: "job-1" });
    expect(again.batchId).toBe(first.batchId);
    const page = await processor.list(alice);
    expect(page.batches).toHaveLength(1);
  });

  it("rejects a reused batch_id with another payload as ALREADY_EXISTS", async () => {
    const { processor } = await start();
    await processor.submit(alice, { data: items(2), batchId: "job-1" });
    await expect(processor.submit(alice, { data: items(3), batchId: "job-1" })).rejects.toThrow(
      BatchExistsError,
    );
    await expect(
      processor.submit(alice, { data: items(2), batchId: "job-1", priority: "low" }),
    ).rejects.toThrow(BatchExistsError);
  });

  it("scopes batch_id to the API key that used it", async () => {
    const { processor } = await start();
    await processor.submit(alice, { data: items(2), batchId: "shared-name" });
    const theirs = await processor.submit(bob, { data: items(3), batchId: "shared-name" });
    expect(theirs.requestCount).toBe(3);
  });

  it("rejects a submit that would overflow MAX_QUEUE_SIZE and queues none of it", async () => {
    const { processor, pool } = await start({
      maxQueueSize: 10,
      batching: { maxBatchSize: 2, enableDynamicBatching: false },
    });
    pool.hold();
    await processor.submit(alice, { data: items(10) });
    await until(() => pool.heldCount === 2);
    const pending = processor.stats().pending;
    await expect(processor.submit(alice, { data: items(10 - pending + 1) })).rejects.toThrow(
      QueueFullError,
    );
    expect(processor.stats().pending).toBe(pending);
    expect((await processor.list(alice)).batches).toHaveLength(1);
    const error = await processor.submit(alice, { data: items(11) }).catch((e: unknown) => e);
    expect((error as QueueFullError).retryAfterMs).toBeGreaterThanOrEqual(1000);
  });

  it("lets an infer's request go once its items are queued: the wait holds the job, not the request", async () => {
    setFlagsFromString("--expose-gc");
    const collect = runInNewContext("gc") as () => void;
    const { processor, pool } = await start();
    pool.hold();
    let request: SubmitRequest | undefined = { data: items(50), priority: "low" };
    const data = new WeakRef(request.data);
    const answer = processor.infer(alice, request);
    request = undefined;
    await until(() => pool.heldCount > 0);
    collect();
    expect(data.deref()).toBeUndefined();
    pool.release();
    expect((await answer).results.map((r) => r.error)).toEqual(Array(50).fill(null));
  });

  it("refuses at once a request whose items could not start before its deadline", async () => {
    // Every model batch reports 100 ms, so the latency model expects 100 ms per batch of 2.
    const { processor, pool } = await start({
      pool: new FakePool(1, () => 100),
      batching: { maxBatchSize: 2, enableDynamicBatching: false },
    });
    for (let i = 0; i < 3; i++) await processor.infer(alice, { data: items(2) });
    pool.hold();
    await processor.submit(alice, { data: items(20) });
    await until(() => pool.heldCount === 2);
    // 4 items in flight and 16 normal items ahead: about 10 batches x 100 ms.
    const refused = await processor
      .infer(alice, { data: items(1), timeoutMs: 500 })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DeadlineExceededError);
    expect(String(refused)).toMatch(/timeout_ms=500.*about 1000 ms/);
    await expect(processor.submit(alice, { data: items(1), timeoutMs: 500 })).rejects.toThrow(
      DeadlineExceededError,
    );
    expect(processor.stats().pending).toBe(16);
    // The same request with room before its deadline, or of a class served ahead, is taken.
    const patient = processor.infer(alice, { data: items(1), timeoutMs: 5000 });
    const urgent = processor.infer(alice, { data: items(1), timeoutMs: 500, priority: "critical" });
    await until(() => processor.stats().pending === 18);
    pool.release();
    expect((await patient).results).toHaveLength(1);
    expect((await urgent).results).toHaveLength(1);
  });

  it("rejects a submit beyond MAX_CONCURRENT_BATCHES active batches", async () => {
    const { processor, pool } = await start({ maxConcurrentBatches: 2 });
    pool.hold();
    await processor.submit(alice, { data: items(1) });
    await processor.submit(alice, { data: items(1) });
    await expect(processor.submit(alice, { data: items(1) })).rejects.toThrow(
      /too many active batches: 2 are queued or processing, of at most 2/,
    );
    pool.release();
    await until(
      async () => (await processor.list(alice, { status: "active" })).batches.length === 0,
    );
    await expect(processor.submit(alice, { data: items(1) })).resolves.toMatchObject({
      status: "queued",
    });
  });

  it("answers results with FAILED_PRECONDITION until the batch ends, unless partial", async () => {
    const { processor, pool } = await start({
      batching: { maxBatchSize: 2, enableDynamicBatching: false },
    });
    pool.hold();
    const { batchId } = await processor.submit(alice, { data: items(8) });
    await expect(processor.results(alice, batchId)).rejects.toThrow(ResultsNotReadyError);
    expect((await processor.results(alice, batchId, { partial: true })).results).toHaveLength(0);
    pool.release();
    await settle(processor, alice, batchId);
    expect((await processor.results(alice, batchId)).results).toHaveLength(8);
  });

  it("cancels a running batch, keeping outputs produced before the cancel", async () => {
    const { processor, pool } = await start({
      batching: { maxBatchSize: 2, enableDynamicBatching: false },
    });
    const { batchId } = await processor.submit(alice, { data: items(3) });
    await settle(processor, alice, batchId);
    pool.hold();
    const before = pool.received.length;
    const big = await processor.submit(alice, { data: items(10) });
    await until(() => pool.heldCount === 2);
    const view = await processor.cancel(alice, big.batchId);
    expect(view.status).toBe("cancelled");
    pool.release();
    await until(() => processor.stats().inFlightBatches === 0);
    const results = await processor.results(alice, big.batchId);
    expect(results.status).toBe("cancelled");
    expect(results.results).toHaveLength(10);
    expect(
      results.results.filter(
        (r) =>
          r.error?.code === "CANCELLED" &&
          r.error.message === "the batch was cancelled while the item was running",
      ),
    ).toHaveLength(4);
    expect(
      results.results.filter(
        (r) =>
          r.error?.code === "CANCELLED" &&
          r.error.message === "the batch was cancelled before the item ran",
      ),
    ).toHaveLength(6);
    const sentAfter = pool.received.slice(before).reduce((n, b) => n + (b.dims[0] as number), 0);
    expect(sentAfter).toBe(4);
    await expect(processor.cancel(alice, batchId)).rejects.toThrow(BatchEndedError);
    await expect(processor.cancel(alice, big.batchId)).resolves.toMatchObject({
      status: "cancelled",
    });
  });

  it("fails a batch whose deadline passes while it is queued, and its items never reach a thread", async () => {
    const { processor, pool } = await start({ batching: { maxBatchSize: 1 } });
    pool.hold();
    await processor.submit(alice, { data: items(4, 2) });
    await until(() => pool.heldCount === 2);
    const late = await processor.submit(alice, { data: items(3, 7), timeoutMs: 100 });
    const final = await settle(processor, alice, late.batchId);
    expect(final.status).toBe("failed");
    expect(final.error).toEqual({
      code: "DEADLINE_EXCEEDED",
      message: "3 of 3 items did not start within timeout_ms=100",
    });
    expect(final.startedAt).toBeNull();
    pool.release();
    await until(() => processor.stats().pending === 0 && processor.stats().inFlightBatches === 0);
    expect(pool.received.some((b) => b.dims[1] === 7)).toBe(false);
  });

  it("hides one key's batches from another and shows them to an admin", async () => {
    const { processor } = await start();
    const { batchId } = await processor.submit(alice, { data: items(1) });
    await expect(processor.status(bob, batchId)).rejects.toThrow(BatchNotFoundError);
    await expect(processor.results(bob, batchId, { partial: true })).rejects.toThrow(
      BatchNotFoundError,
    );
    await expect(processor.cancel(bob, batchId)).rejects.toThrow(BatchNotFoundError);
    expect((await processor.status(admin, batchId)).batchId).toBe(batchId);
    expect((await processor.list(bob)).batches).toHaveLength(0);
    expect((await processor.list(admin)).batches.map((b) => b.batchId)).toContain(batchId);
  });

  it("lists newest first with status filters and page tokens", async () => {
    const { processor, pool } = await start();
    const done: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { batchId } = await processor.submit(alice, { data: items(1) });
      await settle(processor, alice, batchId);
      done.push(batchId);
    }
    pool.hold();
    const active = await processor.submit(alice, { data: items(1) });
    expect(
      (await processor.list(alice, { status: "active" })).batches.map((b) => b.batchId),
    ).toEqual([active.batchId]);
    const first = await processor.list(alice, { status: "completed", limit: 2 });
    expect(first.batches.map((b) => b.batchId)).toEqual([done[4], done[3]]);
    const second = await processor.list(alice, {
      status: "completed",
      limit: 2,
      pageToken: first.nextPageToken,
    });
    expect(second.batches.map((b) => b.batchId)).toEqual([done[2], done[1]]);
    await expect(processor.list(alice, { status: "done" })).rejects.toThrow(
      /^status: expected active, all or one of/,
    );
    await expect(processor.list(alice, { limit: 5000 })).rejects.toThrow(/^limit: /);
    await expect(processor.list(alice, { pageToken: "garbage" })).rejects.toThrow(/^page_token: /);
  });

  it("lets only admins configure, validates the whole change, and keeps it across restarts", async () => {
    const dataDir = tempDir();
    const { processor } = await start({ dataDir });
    await expect(processor.configure(alice, { maxBatchSize: 8 })).rejects.toThrow(
      PermissionDeniedError,
    );
    const error = await processor
      .configure(admin, { maxBatchSize: 8, maxWaitTimeMs: -1 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).field).toBe("maxWaitTimeMs");
    expect(processor.config.maxBatchSize).toBe(64);
    await processor.configure(admin, { maxBatchSize: 8, priorityWeights: { low: 0.1 } });
    await processor.close();
    const { processor: reopened } = await start({ dataDir });
    expect(reopened.config).toMatchObject({
      maxBatchSize: 8,
      priorityWeights: { critical: 1, high: 0.8, normal: 0.5, low: 0.1 },
    });
  });

  it("streams queued, processing and completed, then ends", async () => {
    const { processor, pool } = await start();
    pool.hold();
    const { batchId } = await processor.submit(alice, { data: items(2) });
    const seen: string[] = [];
    const watching = (async () => {
      for await (const view of processor.watch(alice, batchId))
        seen.push(`${view.status}:${view.completedRequests}`);
    })();
    await until(() => seen.length > 0);
    pool.release();
    await watching;
    expect(seen[0]).toMatch(/^(queued|processing):0$/);
    expect(seen.at(-1)).toBe("completed:2");
  });

  it("infers synchronously through the same batcher", async () => {
    const { processor } = await start();
    const results = await processor.infer(alice, {
      data: [{ input: [1, 2] }, { input: [3, 4, 5], requestId: "x" }],
    });
    expect(results.status).toBe("completed");
    expect(results.results.map((r) => [r.requestId, r.output])).toEqual([
      ["req_1", [3, 2]],
      ["x", [12, 3]],
    ]);
    expect((await processor.list(admin)).batches).toHaveLength(0);
  });

  it("stops an infer whose caller went away", async () => {
    const { processor, pool } = await start();
    pool.hold();
    await processor.submit(alice, { data: items(4) });
    await until(() => pool.heldCount > 0);
    const controller = new AbortController();
    const pending = processor.infer(alice, { data: items(3) }, controller.signal);
    controller.abort();
    await expect(pending).rejects.toThrow(CancelledError);
  });

  it("fails the items of a model batch that crashed without showing the cause", async () => {
    const { processor, pool } = await start();
    pool.failNext(1);
    const { batchId } = await processor.submit(alice, { data: items(2) });
    const final = await settle(processor, alice, batchId);
    expect(final.status).toBe("failed");
    const results = await processor.results(alice, batchId);
    for (const r of results.results) {
      expect(r.error?.code).toBe("INTERNAL");
      expect(r.error?.message).toMatch(/^model execution failed \(error_id [0-9a-f-]{36}\)$/);
    }
    expect(JSON.stringify(results)).not.toContain("passwd");
    expect(JSON.stringify(final.error)).not.toContain("passwd");
  });

  it("fails the items of a model batch the pool refused with the pool's reason", async () => {
    const { processor, pool } = await start();
    pool.failNext(1, new ModelUnavailableError("default", "not in the model repository"));
    const { batchId } = await processor.submit(alice, { data: items(2) });
    expect((await settle(processor, alice, batchId)).status).toBe("failed");
    for (const r of (await processor.results(alice, batchId)).results) {
      expect(r.error?.code).toBe("UNAVAILABLE");
      expect(r.error?.message).toBe('model "default" is unavailable: not in the model repository');
    }
  });

  it("purges ended batches once the result TTL has passed", async () => {
    let now = Date.now();
    const { processor } = await start({ resultTtlMs: 1000, clock: () => now });
    const { batchId } = await processor.submit(alice, { data: items(1) });
    await settle(processor, alice, batchId);
    expect(await processor.purge()).toBe(0);
    now += 1500;
    expect(await processor.purge()).toBe(1);
    await expect(processor.status(alice, batchId)).rejects.toThrow(BatchNotFoundError);
  });

  it("takes no new work once closing", async () => {
    const { processor } = await start();
    await processor.close();
    await expect(processor.submit(alice, { data: items(1) })).rejects.toThrow(ShuttingDownError);
    await expect(processor.infer(alice, { data: items(1) })).rejects.toThrow(ShuttingDownError);
    await expect(processor.status(alice, "anything")).rejects.toThrow(ShuttingDownError);
    await expect(processor.list(alice)).rejects.toThrow(ShuttingDownError);
  });

  it("runs queued work left by a previous process, once per item", async () => {
    const dataDir = tempDir();
    const first = await start({
      dataDir,
      batching: { maxBatchSize: 2, enableDynamicBatching: false },
    });
    first.pool.hold();
    const { batchId } = await first.processor.submit(alice, { data: items(10) });
    await until(() => first.pool.heldCount === 2);
    await first.processor.close({ timeoutMs: 10 });
    const second = await start({ dataDir });
    const final = await settle(second.processor, alice, batchId);
    expect(final.status).toBe("completed");
    const results = await second.processor.results(alice, batchId);
    expect(results.results.map((r) => r.output[1])).toEqual(Array(10).fill(3));
    // Warm-up batches are 4 wide; the recovered items are 3 wide. At most the 10 items run again
    // (fewer if the first process stored some outcomes before it closed).
    const rerun = second.pool.received
      .filter((b) => b.dims[1] === 3)
      .reduce((n, b) => n + (b.dims[0] as number), 0);
    expect(rerun).toBeGreaterThan(0);
    expect(rerun).toBeLessThanOrEqual(10);
  });

  it("fails recovered work whose model is no longer available, item by item", async () => {
    const dataDir = tempDir();
    const first = await start({ dataDir });
    first.pool.hold();
    const { batchId } = await first.processor.submit(alice, {
      data: items(3, 4),
      metadata: { model_id: "fixed4" },
    });
    await first.processor.close({ timeoutMs: 10 });
    const second = await start({
      dataDir,
      models: fakeCatalog({ fixed4: { available: false, reason: "gone" } }),
    });
    const view = await second.processor.status(alice, batchId);
    expect(view.status).toBe("failed");
    const { results } = await second.processor.results(alice, batchId);
    expect(results.map((r) => r.error)).toEqual(
      Array(3).fill({ code: "UNAVAILABLE", message: "the model is no longer available" }),
    );
  });
});

describe("BatchProcessor failures inside the server", () => {
  it("fails an item whose model output is not finite, and no answer carries NaN", async () => {
    const { processor, pool } = await start();
    pool.poisoned.add(7);
    const { batchId } = await processor.submit(alice, {
      data: [{ input: [1, 2] }, { input: [7, 1] }],
    });
    const final = await settle(processor, alice, batchId);
    expect(final.status).toBe("failed");
    expect(final.error).toEqual({
      code: "INTERNAL",
      message: `1 of 2 items failed; first: INTERNAL: ${ITEM_FAILURES.nonFiniteOutput.message}`,
    });
    const { results } = await processor.results(alice, batchId);
    expect(results[0]).toMatchObject({ output: [3, 2], error: null });
    expect(results[1]).toMatchObject({
      output: [],
      confidence: 0,
      error: ITEM_FAILURES.nonFiniteOutput,
    });
    const inferred = await processor.infer(alice, { data: [{ input: [7, 1] }, { input: [2] }] });
    expect(inferred.results.map((r) => [r.output, r.error?.code ?? null])).toEqual([
      [[], "INTERNAL"],
      [[2, 1], null],
    ]);
  });

  it("fails a batch whose progress cannot be saved, ends its watchers, and saves the failure once the store works", async () => {
    const inner = new SqliteJobStore({ dataDir: ":memory:" });
    const store = new FailingStore(inner);
    const logged: Record<string, unknown>[] = [];
    let storeErrors = 0;
    const { processor, pool } = await start({
      store,
      observer: { onStoreError: () => storeErrors++ },
      logger: { debug() {}, info() {}, warn() {}, error: (fields) => logged.push({ ...fields }) },
    });
    pool.hold();
    const { batchId } = await processor.submit(alice, { data: items(3) });
    const events: BatchView[] = [];
    const watching = (async () => {
      for await (const view of processor.watch(alice, batchId)) events.push(view);
    })();
    await until(() => pool.heldCount > 0);
    store.failSaves();
    pool.release();
    await watching;
    const last = events.at(-1) as BatchView;
    expect(last.status).toBe("failed");
    expect(last.error?.code).toBe("INTERNAL");
    const errorId = /^saving the batch's progress failed \(error_id ([0-9a-f-]{36})\)$/.exec(
      last.error?.message ?? "",
    )?.[1];
    expect(errorId).toBeDefined();
    expect(logged.some((fields) => fields.errorId === errorId)).toBe(true);
    expect(storeErrors).toBeGreaterThan(0);
    expect(await processor.status(alice, batchId)).toMatchObject({ status: "failed" });
    expect(processor.stats().activeBatches).toBe(0);
    // The store still holds the batch unfinished until a save succeeds.
    expect((await inner.findBatch("alice", batchId))?.status).not.toBe("failed");
    store.heal();
    await processor.purge();
    expect(await inner.findBatch("alice", batchId)).toMatchObject({
      status: "failed",
      error: last.error,
      failed: 3,
    });
    const stored = await inner.getResults(
      (await inner.findBatch("alice", batchId))?.pk ?? 0,
      false,
    );
    expect(stored.map((r) => r.error)).toEqual(Array(3).fill(last.error && { ...last.error }));
  });

  it("tells after a restart which unfinished items ran and which never started", async () => {
    const dataDir = tempDir();
    const inner = new SqliteJobStore({ dataDir });
    const store = new FailingStore(inner);
    const first = await start({
      store,
      batching: { maxBatchSize: 2, enableDynamicBatching: false },
    });
    first.pool.hold();
    const { batchId } = await first.processor.submit(alice, { data: items(6), timeoutMs: 1000 });
    // Two model batches (items 0-3) are on the thread; 4 and 5 wait. Then nothing more is saved,
    // as when the process is killed.
    await until(() => first.pool.heldCount === 2);
    store.failSaves();
    await first.processor.close({ timeoutMs: 10 });
    const second = await start({ dataDir, clock: () => Date.now() + 60_000 });
    const final = await settle(second.processor, alice, batchId);
    expect(final.status).toBe("failed");
    expect(final.error).toEqual({
      code: "DEADLINE_EXCEEDED",
      message: `2 of 6 items did not start within timeout_ms=1000; 4 more failed; first: UNAVAILABLE: ${ITEM_FAILURES.runLost.message}`,
    });
    const { results } = await second.processor.results(alice, batchId);
    expect(results.map((r) => r.error)).toEqual([
      ...Array(4).fill(ITEM_FAILURES.runLost),
      ...Array(2).fill(ITEM_FAILURES.deadline),
    ]);
    expect(second.pool.received.some((b) => b.dims[1] === 3)).toBe(false);
  });

  it("rejects an invalid batch_id on every lookup, quoting none of it", async () => {
    const { processor } = await start();
    const huge = "x".repeat(1_000_000);
    const calls = [
      () => processor.status(alice, huge),
      () => processor.results(alice, huge),
      () => processor.cancel(alice, huge),
      async () => {
        for await (const _ of processor.watch(alice, huge)) break;
      },
    ];
    for (const call of calls) {
      const error = await call().then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error).toBeInstanceOf(InvalidInputError);
      expect(error?.message).toBe("batch_id: must be at most 128 characters, got 1000000");
    }
    await expect(processor.status(alice, "a b")).rejects.toThrow(/^batch_id: may contain only/);
  });
});
