/**
 * The cluster placement on its own: a real job runner over an in-process pool and an in-memory
 * store, and an in-process cluster (`fake-cluster.ts`) in place of BullMQ and Redis. What a node
 * hands the cluster, how it runs what the cluster hands it, and how it answers for batches that
 * wait for a node or run on another one.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  type BatchRecord,
  type JobStore,
  QueueFullError,
  type ResolvedBatchingOptions,
  StoreUnavailableError,
} from "../../src/engine/index.js";
import { ITEM_FAILURES } from "../../src/engine/jobs/item-failures.js";
import { JobRunner } from "../../src/engine/jobs/job-runner.js";
import { resolveBatchingOptions } from "../../src/engine/options.js";
import { ClusterPlacement } from "../../src/engine/placement/cluster-placement.js";
import { validateSubmit } from "../../src/engine/validation.js";
import { SqliteJobStore } from "../../src/store/sqlite-job-store.js";
import { FailingStore } from "../fixtures/failing-store.js";
import { FakeCluster } from "../fixtures/fake-cluster.js";
import { FakePool, fakeCatalog, until } from "../fixtures/fake-pool.js";
import { storedBatch } from "../fixtures/stored-batch.js";

const open: { runner: JobRunner; store: FailingStore; placement: ClusterPlacement }[] = [];

afterEach(async () => {
  for (const { runner, store, placement } of open.splice(0)) {
    runner.shutdown();
    await placement.leave();
    await runner.batcher.close();
    await store.close();
  }
});

/** What steers a run: a cancel and a lost hold, each to abort. */
function control() {
  const cancel = new AbortController();
  const lost = new AbortController();
  return { cancel, lost, signals: { cancel: cancel.signal, lost: lost.signal } };
}

function setup({ maxQueueSize = 10_000 } = {}) {
  const pool = new FakePool(1);
  const store = new FailingStore(new SqliteJobStore({ dataDir: ":memory:" }));
  let batching = resolveBatchingOptions({ maxBatchSize: 2, enableDynamicBatching: false });
  const configured: ResolvedBatchingOptions[] = [];
  const log = { debug() {}, info() {}, warn() {}, error() {} };
  const runner = new JobRunner({
    store,
    pool,
    models: fakeCatalog(),
    batching: () => batching,
    log,
    clock: Date.now,
    releaseUnsaved: true,
  });
  const cluster = new FakeCluster();
  const placement = new ClusterPlacement(
    {
      store,
      runner,
      admission: () => ({
        queue: runner.batcher,
        activeStored: runner.activeStored,
        maxQueueSize,
        maxConcurrentBatches: 0,
      }),
      batching: () => batching,
      configure: (next) => {
        batching = next;
        configured.push(next);
      },
      clock: Date.now,
      log,
    },
    cluster,
  );
  open.push({ runner, store, placement });
  return { pool, store, cluster, placement, configured, runner };
}

const reread = async (store: JobStore, record: BatchRecord) =>
  (await store.findBatch(record.owner, record.batchId)) as BatchRecord;

describe("ClusterPlacement", () => {
  it("starts taking batches and hands the cluster every stored batch that has not ended", async () => {
    const { store, cluster, placement } = setup();
    const a = await storedBatch(store, 2);
    const b = await storedBatch(store, 2);
    const ended = await storedBatch(store, 1);
    await store.save(
      [],
      [{ pk: ended.record.pk, status: "cancelled", error: null, startedAt: null, completedAt: 1 }],
    );
    await placement.start();
    expect(cluster.node).toBeDefined();
    expect(cluster.enqueued.sort()).toEqual([a.record.pk, b.record.pk].sort());
  });

  it("runs a batch the cluster hands it, publishing its views until it ends", async () => {
    const { store, cluster, placement } = setup();
    await placement.start();
    const { record } = await storedBatch(store, 3);
    const ran = await cluster.node?.run(record.pk, control().signals);
    expect(ran).toBe("ended");
    const views = cluster.published.get(record.pk) ?? [];
    expect(views.at(-1)).toMatchObject({ batchId: record.batchId, status: "completed" });
    expect((await reread(store, record)).status).toBe("completed");
    // A batch that has ended already is not run again.
    expect(await cluster.node?.run(record.pk, control().signals)).toBe("ended");
  });

  it("cancels a batch it runs when the cluster aborts the run, and hands back the rest when the node leaves", async () => {
    const { pool, store, cluster, placement } = setup();
    await placement.start();
    pool.hold();
    const cancelled = await storedBatch(store, 6);
    const steer = control();
    const run = cluster.node?.run(cancelled.record.pk, steer.signals);
    await until(() => pool.heldCount === 2);
    steer.cancel.abort();
    expect(await run).toBe("ended");
    expect((await reread(store, cancelled.record)).status).toBe("cancelled");

    pool.release();
    pool.hold();
    const held = await storedBatch(store, 2);
    const leaving = cluster.node?.run(held.record.pk, control().signals);
    await until(() => pool.received.length === 3);
    await placement.leave();
    expect(await leaving).toBe("released");
    expect(cluster.closed).toBe(true);
    pool.release();
  });

  it("stops a batch whose hold was lost, without an end, leaving its items for whoever takes it", async () => {
    const { pool, store, cluster, placement } = setup();
    await placement.start();
    const { record } = await storedBatch(store, 6);
    pool.hold();
    const steer = control();
    const run = cluster.node?.run(record.pk, steer.signals);
    await until(() => pool.heldCount === 2);
    steer.lost.abort();
    expect(await run).toBe("released");
    pool.release();
    await new Promise((resolve) => setTimeout(resolve, 20));
    // The batch it held is not ended, and the outcomes of what ran after the loss were dropped.
    const after = await reread(store, record);
    expect(after.status).toBe("processing");
    expect(after.succeeded + after.failed).toBe(0);
    // Whoever takes it next runs every item once.
    expect(await cluster.node?.run(record.pk, control().signals)).toBe("ended");
    const ended = await reread(store, record);
    expect(ended).toMatchObject({ status: "completed", succeeded: 6, failed: 0 });
  });

  it("lets a batch go whose progress could not be saved, never failing it, and ends it when taken again", async () => {
    const { pool, store, cluster, placement } = setup();
    await placement.start();
    const { record } = await storedBatch(store, 6);
    pool.hold();
    const run = cluster.node?.run(record.pk, control().signals);
    await until(() => pool.heldCount === 2);
    store.failSaves();
    pool.release();
    expect(await run).toBe("unsaved");
    store.heal();
    const between = await reread(store, record);
    expect(between.status).toBe("processing");
    expect(between.failed).toBe(0);
    expect(await cluster.node?.run(record.pk, control().signals)).toBe("ended");
    expect(await reread(store, record)).toMatchObject({
      status: "completed",
      succeeded: 6,
      failed: 0,
    });
    expect((await store.getResults(record.pk, true)).every((r) => r.error === null)).toBe(true);
  });

  it("reads a batch it runs as the store holds it, and ends it as stored when another node ended it first", async () => {
    const { pool, store, cluster, placement, runner } = setup();
    await placement.start();
    const { record } = await storedBatch(store, 4);
    pool.hold();
    const run = cluster.node?.run(record.pk, control().signals);
    await until(() => pool.heldCount === 2);
    // Another node ended it meanwhile (it had taken the batch over and finished it).
    const writes = [0, 1, 2, 3].map((index) => ({
      pk: record.pk,
      index,
      output: Float32Array.of(9),
      confidence: 1,
      processingTimeMs: 1,
      error: null,
    }));
    await store.save(writes, [
      { pk: record.pk, status: "completed", error: null, startedAt: 1, completedAt: 2 },
    ]);
    pool.release();
    expect(await run).toBe("ended");
    const stored = await reread(store, record);
    expect(stored).toMatchObject({ status: "completed", succeeded: 4, failed: 0 });
    const results = await store.getResults(record.pk, true);
    expect(results.map((r) => Array.from(r.output ?? []))).toEqual([[9], [9], [9], [9]]);
    expect(runner.liveOf(record)).toBeUndefined();
  });

  it("ends a batch that could not be handed to the cluster as failed, and answers UNAVAILABLE", async () => {
    const { store, cluster, placement } = setup();
    cluster.failEnqueue = true;
    const { record } = await storedBatch(store, 2);
    await expect(placement.enqueue(record)).rejects.toThrow(StoreUnavailableError);
    expect(await reread(store, record)).toMatchObject({
      status: "failed",
      error: ITEM_FAILURES.notHandedOver,
      failed: 2,
    });
  });

  it("answers a waiting batch with its place in the cluster's backlog, and a running one as stored with its node's estimates", async () => {
    const { store, cluster, placement } = setup();
    await storedBatch(store, 10, { priority: "critical" });
    await storedBatch(store, 5, { priority: "low" });
    const { record } = await storedBatch(store, 3, { priority: "low" });
    const receipt = await placement.enqueue(record);
    // 5 low items stored before it, and meanwhile critical gets 1.0 / 0.2 times as many: all 10.
    expect(receipt).toMatchObject({ status: "queued", queuePosition: 15, requestCount: 3 });
    await store.save(
      [
        {
          pk: record.pk,
          index: 0,
          output: Float32Array.of(1),
          confidence: 1,
          processingTimeMs: 1,
          error: null,
        },
      ],
      [{ pk: record.pk, status: "processing", error: null, startedAt: 5, completedAt: null }],
    );
    // Its node's last view is older than the store (it says queued, nothing done): the store's
    // status and counts stand, the view adds where the batch stands in that node's queue.
    const published = {
      ...(await placement.view(record)),
      queuePosition: 7,
      estimatedCompletionTime: 99,
    };
    cluster.publish(record.pk, published);
    expect(await placement.view(await reread(store, record))).toMatchObject({
      status: "processing",
      completedRequests: 1,
      queuePosition: 7,
      estimatedCompletionTime: 99,
    });
  });

  it("cancels a batch waiting for a node by ending it here, and publishes its end", async () => {
    const { store, cluster, placement } = setup();
    const { record } = await storedBatch(store, 2);
    cluster.cancelAnswer = "removed";
    const view = await placement.cancel(record);
    expect(view).toMatchObject({ status: "cancelled", failedRequests: 2 });
    expect(cluster.published.get(record.pk)?.at(-1)).toMatchObject({ status: "cancelled" });
    const results = await store.getResults(record.pk, false);
    expect(results.map((r) => r.error)).toEqual(Array(2).fill(ITEM_FAILURES.cancelledQueued));
  });

  it("waits for the node running a batch to end it when cancelled from here", async () => {
    const { store, cluster, placement } = setup();
    const { record } = await storedBatch(store, 2);
    cluster.cancelAnswer = "signalled";
    const running = { ...(await placement.view(record)), status: "processing" as const };
    cluster.publish(record.pk, running);
    const cancelling = placement.cancel(record);
    setTimeout(() => cluster.publish(record.pk, { ...running, status: "cancelled" }), 10);
    expect(await cancelling).toMatchObject({ status: "cancelled" });
  });

  it("streams a batch running elsewhere from its node's views, to the terminal one, never going back", async () => {
    const { store, cluster, placement } = setup();
    const { record } = await storedBatch(store, 2);
    await store.save(
      [],
      [{ pk: record.pk, status: "processing", error: null, startedAt: 5, completedAt: null }],
    );
    const base = await placement.view(await reread(store, record));
    const seen: string[] = [];
    const watching = (async () => {
      for await (const view of placement.watch(await reread(store, record)))
        seen.push(`${view.status} ${view.completedRequests}`);
    })();
    await until(() => seen.length === 1);
    cluster.publish(record.pk, { ...base, status: "processing", completedRequests: 1 });
    // A view published before the one above arrives late: it is older than what was shown.
    cluster.publish(record.pk, { ...base, status: "queued", completedRequests: 0 });
    cluster.publish(record.pk, { ...base, status: "completed", completedRequests: 2 });
    await watching;
    expect(seen).toEqual(["processing 0", "processing 1", "completed 2"]);
  });

  it("refuses a durable submit over the whole cluster's stored work, the limits scaled by its nodes", async () => {
    const { store, cluster, placement } = setup({ maxQueueSize: 10 });
    await storedBatch(store, 12);
    const valid = validateSubmit({ data: [{ input: [1] }] }, fakeCatalog(), "default");
    expect(await placement.admissionRefusal(valid)).toBeInstanceOf(QueueFullError);
    cluster.nodeCount = 2;
    expect(await placement.admissionRefusal(valid)).toBeUndefined();
    expect(await placement.activity()).toEqual({ activeBatches: 1, pendingItems: 12 });
  });

  it("applies a configuration another node changed, and tells the others of its own", async () => {
    const { cluster, placement, configured } = setup();
    await placement.start();
    const next = resolveBatchingOptions({ maxBatchSize: 8 });
    cluster.node?.configure(next);
    expect(configured).toEqual([next]);
    expect(cluster.node?.weights()).toEqual(next.priorityWeights);
    await placement.configured(next);
    expect(cluster.configurations).toEqual([next]);
  });
});
