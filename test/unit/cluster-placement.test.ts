/**
 * The cluster placement on its own: a real job runner over an in-process pool and an in-memory
 * store, and an in-process cluster (`fake-cluster.ts`) in place of BullMQ and Redis. What a node
 * hands the cluster, how it runs what the cluster hands it, and how it answers for batches that
 * wait for a node or run on another one.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  type BatchRecord,
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
import { FakeCluster } from "../fixtures/fake-cluster.js";
import { FakePool, fakeCatalog, until } from "../fixtures/fake-pool.js";
import { storedBatch } from "../fixtures/stored-batch.js";

const open: { runner: JobRunner; store: SqliteJobStore; placement: ClusterPlacement }[] = [];

afterEach(async () => {
  for (const { runner, store, placement } of open.splice(0)) {
    runner.shutdown();
    await placement.leave();
    await runner.batcher.close();
    await store.close();
  }
});

function setup({ maxQueueSize = 10_000 } = {}) {
  const pool = new FakePool(1);
  const store = new SqliteJobStore({ dataDir: ":memory:" });
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
  return { pool, store, cluster, placement, configured };
}

const reread = async (store: SqliteJobStore, record: BatchRecord) =>
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
    const ran = await cluster.node?.run(record.pk, new AbortController().signal);
    expect(ran).toBe("ended");
    const views = cluster.published.get(record.pk) ?? [];
    expect(views.at(-1)).toMatchObject({ batchId: record.batchId, status: "completed" });
    expect((await reread(store, record)).status).toBe("completed");
    // A batch that has ended already is not run again.
    expect(await cluster.node?.run(record.pk, new AbortController().signal)).toBe("ended");
  });

  it("cancels a batch it runs when the cluster aborts the run, and hands back the rest when the node leaves", async () => {
    const { pool, store, cluster, placement } = setup();
    await placement.start();
    pool.hold();
    const cancelled = await storedBatch(store, 6);
    const abort = new AbortController();
    const run = cluster.node?.run(cancelled.record.pk, abort.signal);
    await until(() => pool.heldCount === 2);
    abort.abort();
    expect(await run).toBe("ended");
    expect((await reread(store, cancelled.record)).status).toBe("cancelled");

    pool.release();
    pool.hold();
    const held = await storedBatch(store, 2);
    const leaving = cluster.node?.run(held.record.pk, new AbortController().signal);
    await until(() => pool.received.length === 3);
    await placement.leave();
    expect(await leaving).toBe("released");
    expect(cluster.closed).toBe(true);
    pool.release();
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

  it("answers a waiting batch with its place in the cluster's backlog, and a running one with its node's last view", async () => {
    const { store, cluster, placement } = setup();
    await storedBatch(store, 10, { priority: "critical" });
    await storedBatch(store, 5, { priority: "low" });
    const { record } = await storedBatch(store, 3, { priority: "low" });
    const receipt = await placement.enqueue(record);
    // 5 low items stored before it, and meanwhile critical gets 1.0 / 0.2 times as many: all 10.
    expect(receipt).toMatchObject({ status: "queued", queuePosition: 15, requestCount: 3 });
    const running = { ...(await placement.view(record)), status: "processing" as const };
    cluster.publish(record.pk, running);
    expect(await placement.view(await reread(store, record))).toEqual(running);
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

  it("streams a batch running elsewhere from its node's views, to the terminal one", async () => {
    const { store, cluster, placement } = setup();
    const { record } = await storedBatch(store, 2);
    const base = await placement.view(record);
    cluster.publish(record.pk, { ...base, status: "processing" });
    const seen: string[] = [];
    const watching = (async () => {
      for await (const view of placement.watch(record)) seen.push(view.status);
    })();
    await until(() => seen.length === 1);
    cluster.publish(record.pk, { ...base, status: "processing", completedRequests: 1 });
    cluster.publish(record.pk, { ...base, status: "completed", completedRequests: 2 });
    await watching;
    expect(seen).toEqual(["processing", "processing", "completed"]);
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
