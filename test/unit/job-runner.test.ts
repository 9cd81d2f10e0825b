/**
 * The job runner on its own, with an in-process pool and an in-memory store: how items of stored
 * and infer jobs enter the batcher, and how model-batch outcomes, deadlines, cancels, failed
 * writes and a shutdown become item outcomes, job states and store writes.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  type EngineObserver,
  type ItemOutcome,
  ModelUnavailableError,
} from "../../src/engine/index.js";
import { ITEM_FAILURES } from "../../src/engine/jobs/item-failures.js";
import { JobRunner } from "../../src/engine/jobs/job-runner.js";
import { resolveBatchingOptions } from "../../src/engine/options.js";
import { validateSubmit } from "../../src/engine/validation.js";
import { SqliteJobStore } from "../../src/store/sqlite-job-store.js";
import { FailingStore } from "../fixtures/failing-store.js";
import { FakePool, fakeCatalog, until } from "../fixtures/fake-pool.js";
import { storedBatch } from "../fixtures/stored-batch.js";

const runners: JobRunner[] = [];
const stores: SqliteJobStore[] = [];

afterEach(async () => {
  for (const runner of runners.splice(0)) {
    runner.shutdown();
    await runner.batcher.close();
  }
  for (const store of stores.splice(0)) await store.close();
});

/** A runner over a fake pool of one thread and a failing-on-demand in-memory store. */
function setup(batching = { maxBatchSize: 2, enableDynamicBatching: false }) {
  const pool = new FakePool(1);
  const inner = new SqliteJobStore({ dataDir: ":memory:" });
  stores.push(inner);
  const store = new FailingStore(inner);
  const outcomes: ItemOutcome[] = [];
  const counts = { dispatched: 0, batches: 0, storeErrors: 0 };
  const observer: EngineObserver = {
    onDispatch: () => counts.dispatched++,
    onBatchDone: () => counts.batches++,
    onItemDone: (_model, _priority, outcome) => outcomes.push(outcome),
    onStoreError: () => counts.storeErrors++,
  };
  const options = resolveBatchingOptions(batching);
  const runner = new JobRunner({
    store,
    pool,
    models: fakeCatalog(),
    batching: () => options,
    log: { debug() {}, info() {}, warn() {}, error() {} },
    clock: Date.now,
    observer,
  });
  runners.push(runner);
  return { runner, pool, store, inner, outcomes, counts };
}

describe("JobRunner", () => {
  it("runs a stored batch to its end: one saved outcome per item, the job let go once its end is saved", async () => {
    const { runner, inner, outcomes, counts } = setup();
    const { record, inputs } = await storedBatch(inner, 5);
    const job = runner.start(record, inputs);
    expect(runner.liveOf(record)).toBe(job);
    expect(runner.activeStored).toBe(1);
    await job.ended();
    expect(job.status).toBe("completed");
    expect(job.succeeded).toBe(5);
    await until(() => runner.liveOf(record) === undefined);
    expect(runner.activeStored).toBe(0);
    expect(await inner.findBatch("alice", record.batchId)).toMatchObject({
      status: "completed",
      succeeded: 5,
    });
    const results = await inner.getResults(record.pk, false);
    expect(results.map((r) => Array.from(r.output ?? []))).toEqual([
      [1, 2],
      [2, 2],
      [3, 2],
      [4, 2],
      [5, 2],
    ]);
    expect(outcomes).toEqual(Array(5).fill("success"));
    expect(counts).toMatchObject({ dispatched: 3, batches: 3, storeErrors: 0 });
  });

  it("keeps an infer job's outcomes in memory and writes nothing to the store for it", async () => {
    const { runner, store } = setup();
    const valid = validateSubmit(
      { data: [{ input: [1, 2] }, { input: [3] }] },
      fakeCatalog(),
      "default",
    );
    const job = await runner.infer("alice", "infer-1", valid);
    expect(job.pk).toBeUndefined();
    expect(job.status).toBe("completed");
    expect(job.results?.map((r) => r?.output)).toEqual([
      [3, 2],
      [3, 1],
    ]);
    expect(store.saves).toEqual([]);
  });

  it("cancels a job: queued items never run, running ones are written off as cancelled while running", async () => {
    const { runner, pool, inner, outcomes } = setup();
    pool.hold();
    const { record, inputs } = await storedBatch(inner, 6);
    const job = runner.start(record, inputs);
    // One thread, two batches in flight: items 0-3 are on the thread, 4 and 5 wait.
    await until(() => pool.heldCount === 2);
    runner.cancel(job);
    expect(job.status).toBe("cancelled");
    pool.release();
    await until(() => runner.liveOf(record) === undefined);
    const results = await inner.getResults(record.pk, false);
    expect(results.map((r) => r.error)).toEqual([
      ...Array(4).fill(ITEM_FAILURES.cancelledRunning),
      ...Array(2).fill(ITEM_FAILURES.cancelledQueued),
    ]);
    expect(pool.received).toHaveLength(2);
    expect(outcomes).toEqual(Array(6).fill("cancelled"));
  });

  it("fails the items that have not started when the deadline passes, and sums them up in the batch's error", async () => {
    const { runner, pool, inner } = setup();
    pool.hold();
    const { record, inputs } = await storedBatch(inner, 6, { timeoutMs: 40 });
    const job = runner.start(record, inputs);
    await until(() => job.failed === 2);
    pool.release();
    await job.ended();
    expect(job.status).toBe("failed");
    expect(job.error).toEqual({
      code: "DEADLINE_EXCEEDED",
      message: "2 of 6 items did not start within timeout_ms=40",
    });
    expect(job.succeeded).toBe(4);
  });

  it("adopts stored batches: failing the items of a model that is gone, ending at once one whose items all have outcomes, and answering the live job for one that runs", async () => {
    const { runner, inner } = setup();
    const gone = await storedBatch(inner, 3, { model: "broken" });
    const loaded = await inner.loadBatch(gone.record.pk);
    const failed = runner.adopt(loaded as NonNullable<typeof loaded>);
    await failed.ended();
    expect(failed.status).toBe("failed");
    expect(failed.failedWith("UNAVAILABLE")).toBe(3);

    const done = await storedBatch(inner, 2);
    await inner.save(
      done.inputs.map((input) => ({
        pk: done.record.pk,
        index: input.index,
        output: Float32Array.of(1),
        confidence: 0,
        processingTimeMs: 1,
        error: null,
      })),
      [{ pk: done.record.pk, status: "processing", error: null, startedAt: 1, completedAt: null }],
    );
    const finished = runner.adopt((await inner.loadBatch(done.record.pk)) as never);
    await finished.ended();
    expect(finished.status).toBe("completed");
    await until(
      async () => (await inner.findBatch("alice", done.record.batchId))?.status === "completed",
    );

    const running = await storedBatch(inner, 2);
    const job = runner.start(running.record, running.inputs);
    expect(runner.adopt((await inner.loadBatch(running.record.pk)) as never)).toBe(job);
  });

  it("fails a stored job whose write failed with an INTERNAL error id, keeps it readable, and lets it go once the retry saves it", async () => {
    const { runner, pool, store, inner, counts } = setup();
    pool.hold();
    const { record, inputs } = await storedBatch(inner, 2);
    const job = runner.start(record, inputs);
    await until(() => pool.heldCount === 1);
    store.failSaves();
    pool.release();
    await until(() => job.unrecorded !== null);
    // Whatever it reached in memory, it reads as failed with the write's failure.
    const failure = job.unrecorded?.failure;
    expect(failure?.code).toBe("INTERNAL");
    expect(failure?.message).toMatch(
      /^saving the batch's progress failed \(error_id [0-9a-f-]{36}\)$/,
    );
    expect(runner.view(job)).toMatchObject({ status: "failed", error: failure });
    expect(runner.liveOf(record)).toBe(job);
    expect(runner.activeStored).toBe(0);
    expect(counts.storeErrors).toBeGreaterThan(0);
    await runner.retryUnrecorded();
    expect(runner.liveOf(record)).toBe(job);
    store.heal();
    await runner.retryUnrecorded();
    expect(runner.liveOf(record)).toBeUndefined();
    expect(await inner.findBatch("alice", record.batchId)).toMatchObject({
      status: "failed",
      failed: 2,
      error: failure,
    });
  });

  it("fails every item of a model batch the pool could not run: a crash as INTERNAL with an error id, a refusal in the pool's words", async () => {
    const { runner, pool } = setup();
    const valid = validateSubmit({ data: [{ input: [1] }] }, fakeCatalog(), "default");
    pool.failNext(1);
    const crashed = await runner.infer("alice", "a", valid);
    expect(crashed.results?.[0]?.error?.code).toBe("INTERNAL");
    expect(crashed.results?.[0]?.error?.message).toMatch(
      /^model execution failed \(error_id [0-9a-f-]{36}\)$/,
    );
    expect(crashed.results?.[0]?.error?.message).not.toMatch(/passwd/);
    pool.failNext(1, new ModelUnavailableError("default", "unloaded by a reload"));
    const refused = await runner.infer("alice", "b", valid);
    expect(refused.results?.[0]?.error).toEqual({
      code: "UNAVAILABLE",
      message: 'model "default" is unavailable: unloaded by a reload',
    });
  });

  it("fails on shutdown the infer jobs whose items still wait, so no caller waits for ever", async () => {
    const { runner, pool } = setup();
    pool.hold();
    const valid = validateSubmit(
      { data: Array.from({ length: 6 }, () => ({ input: [1] })) },
      fakeCatalog(),
      "default",
    );
    const answer = runner.infer("alice", "waiting", valid);
    await until(() => pool.heldCount === 2);
    runner.shutdown();
    const job = await answer;
    expect(job.status).toBe("failed");
    expect(job.error).toBe(ITEM_FAILURES.shutdown);
    pool.release();
  });
});
