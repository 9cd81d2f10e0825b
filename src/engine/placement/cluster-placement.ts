/**
 * The placement of a node in a cluster: a stored batch runs on whichever node takes it, so this
 * node hands each new batch to the cluster, runs what it takes ({@link NodeRuns}), and answers
 * for batches that run elsewhere (or wait to be taken) from the shared store and from what their
 * node publishes.
 */
import { setMaxListeners } from "node:events";
import { type Failure, StoreUnavailableError } from "../errors.js";
import type { BatchRecord, ItemWrite } from "../job-store.js";
import {
  CANCELLED_BY_REQUEST,
  ITEM_FAILURES,
  isBehind,
  isTerminal,
  type Job,
  receiptOf,
  viewOf,
  viewOfRecord,
  viewWithLiveFacts,
} from "../jobs/index.js";
import type { ResolvedBatchingOptions } from "../options.js";
import { admissionRefusal, positionInSchedule } from "../scheduling/index.js";
import type { BatchView, Priority, SubmitReceipt } from "../types.js";
import type { ValidSubmit } from "../validation.js";
import type { Cluster } from "./cluster.js";
import { NodeRuns } from "./node-runs.js";
import type { Activity, Placement, PlacementContext } from "./placement.js";

/** A cluster has no pass values of its own: every class's backlog starts level. */
const EVEN_PASSES: Readonly<Record<Priority, number>> = Object.freeze({
  critical: 0,
  high: 0,
  normal: 0,
  low: 0,
});

/** Batches read per store call when handing unheld batches to the cluster. */
const REQUEUE_PAGE = 500;

/** How long a cancel waits for the node running the batch to end it, ms. */
const CANCEL_WAIT_MS = 2000;

/** See the file comment. */
export class ClusterPlacement implements Placement {
  readonly #c: PlacementContext;
  readonly #cluster: Cluster;
  readonly #runs: NodeRuns;
  /** Aborted on leaving: ends the watches this node serves for batches of other nodes. */
  readonly #closed = new AbortController();

  constructor(context: PlacementContext, cluster: Cluster) {
    this.#c = context;
    this.#cluster = cluster;
    this.#runs = new NodeRuns({
      cluster,
      store: context.store,
      runner: context.runner,
      clock: context.clock,
    });
    // Every watch served here listens on it: many at once are normal, not a leak.
    setMaxListeners(0, this.#closed.signal);
  }

  /** Starts taking batches, and hands the cluster every stored batch it does not hold. */
  async start(): Promise<void> {
    await this.#cluster.start({
      run: (pk, signal) => this.#runs.run(pk, signal),
      configure: (options) => this.#c.configure(options),
      weights: () => this.#c.batching().priorityWeights,
    });
    await this.#requeueUnheld();
  }

  /**
   * Refuses a durable submit over the whole cluster: the work stored and not yet done against
   * the per-node limits times the nodes taking batches. The local queue's estimates stand for
   * the cluster's.
   */
  async admissionRefusal(valid: ValidSubmit): Promise<Error | undefined> {
    const [activity, nodes] = await Promise.all([this.#c.store.activity(), this.#cluster.nodes()]);
    const local = this.#c.admission();
    return admissionRefusal(valid, true, {
      queue: {
        pending: activity.pendingItems,
        estimateMs: (model, items) => local.queue.estimateMs(model, Math.ceil(items / nodes)),
        expectedWaitMs: (model, priority) => local.queue.expectedWaitMs(model, priority),
      },
      activeStored: activity.activeBatches,
      maxQueueSize: local.maxQueueSize * nodes,
      maxConcurrentBatches: local.maxConcurrentBatches * nodes,
    });
  }

  /**
   * Hands a batch just stored to the cluster. When that fails the batch is ended as failed (no
   * node would ever take it) and the caller gets the error.
   */
  async enqueue(record: BatchRecord): Promise<SubmitReceipt> {
    try {
      await this.#cluster.enqueue(record);
    } catch (error) {
      const notQueued = ITEM_FAILURES.notHandedOver;
      await this.#endUnheld(record, "failed", notQueued, notQueued).catch(() => {
        // The store is away too: the next node to start hands the batch over (see #requeueUnheld).
      });
      throw error instanceof StoreUnavailableError ? error : new StoreUnavailableError(error);
    }
    return receiptOf(await this.view(record));
  }

  /**
   * The status of a batch that is not live here, as the store holds it (`record`, just read):
   * with the queue position and estimate of its node's last view; for one no node has taken yet,
   * where it stands in the cluster's backlog.
   */
  async view(record: BatchRecord): Promise<BatchView> {
    if (!isTerminal(record.status)) {
      const latest = await this.#cluster.latest(record.pk);
      if (latest !== undefined) return viewWithLiveFacts(record, latest, this.#c.clock());
      if (record.status === "queued") return this.#waitingView(record);
    }
    return viewOfRecord(record, this.#c.clock());
  }

  /** See `Placement.liveView`: the store's record now, with the job's live facts. */
  async liveView(job: Job): Promise<BatchView> {
    const { store, runner, clock } = this.#c;
    const record = await store.findBatch(job.owner, job.batchId);
    const live = runner.view(job);
    return record === undefined ? live : viewWithLiveFacts(record, live, clock());
  }

  /**
   * Status events of a batch that is not live here, ending after the terminal one. Views its node
   * published before the first read are older than it: those are skipped, so the stream never
   * goes back.
   */
  async *watch(record: BatchRecord, signal?: AbortSignal): AsyncGenerator<BatchView> {
    let last = await this.view(record);
    yield last;
    if (isTerminal(last.status)) return;
    const until =
      signal === undefined ? this.#closed.signal : AbortSignal.any([signal, this.#closed.signal]);
    for await (const view of this.#cluster.watch(record.pk, until)) {
      if (isBehind(view, last)) continue;
      last = view;
      yield view;
      if (isTerminal(view.status)) return;
    }
  }

  /**
   * Cancels a batch that is not live here: one still waiting to be taken is ended here, as
   * cancelled; one running elsewhere is cancelled by its node, and the answer waits (briefly)
   * for that end.
   */
  async cancel(record: BatchRecord): Promise<BatchView> {
    const how = await this.#cluster.cancel(record);
    if (how === "removed")
      return this.#endUnheld(
        record,
        "cancelled",
        CANCELLED_BY_REQUEST,
        ITEM_FAILURES.cancelledQueued,
      );
    const timeout = AbortSignal.timeout(CANCEL_WAIT_MS);
    let last = await this.view(record);
    try {
      for await (const view of this.watch(record, timeout)) last = view;
    } catch {
      // Not ended within the wait: the answer is how it stands; the cancel still reaches it.
    }
    return last;
  }

  configured(options: ResolvedBatchingOptions): Promise<void> {
    return this.#cluster.configured(options);
  }

  activity(): Promise<Activity> {
    return this.#c.store.activity();
  }

  unavailable(): string | undefined {
    return this.#cluster.unavailable();
  }

  async stopTaking(): Promise<void> {
    await this.#cluster.stopTaking().catch((error: unknown) => {
      this.#c.log.warn({ err: error }, "the cluster did not stop handing this node batches");
    });
  }

  /**
   * The batches this node holds go back to the cluster with the outcomes saved so far, and the
   * connections close.
   */
  async leave(): Promise<void> {
    this.#closed.abort();
    this.#runs.release();
    await this.#cluster.close().catch((error: unknown) => {
      this.#c.log.warn({ err: error }, "closing the cluster connections failed");
    });
  }

  /**
   * A batch waiting for a node: its queue position is the items the cluster runs before its
   * first one (those of its class stored before it, and the other classes' by the weights, as
   * on one node), and its completion estimate that work and its own items shared over the
   * nodes at this node's pace. Without Redis it answers the stored view.
   */
  async #waitingView(record: BatchRecord): Promise<BatchView> {
    const { store, runner, clock } = this.#c;
    const [backlog, nodes] = await Promise.all([
      store.backlog(record.pk).catch(() => undefined),
      this.#cluster.nodes().catch(() => 1),
    ]);
    const now = clock();
    if (backlog === undefined) return viewOfRecord(record, now);
    const queuePosition = positionInSchedule({
      priority: record.priority,
      ahead: backlog.aheadInClass,
      passes: EVEN_PASSES,
      counts: backlog.pending,
      weights: this.#c.batching().priorityWeights,
    });
    const remaining = record.total - record.succeeded - record.failed;
    const ms = runner.estimateMs(record.modelId, Math.ceil((queuePosition + remaining) / nodes));
    return viewOf(
      record,
      { queuePosition, estimatedCompletionTime: ms === undefined ? null : now + ms },
      now,
    );
  }

  /**
   * Hands the cluster every stored batch that has not ended; those it already holds are left as
   * they are. Run at each start, it picks up a batch whose hand-over failed with Redis away.
   */
  async #requeueUnheld(): Promise<void> {
    let cursor: string | undefined;
    do {
      const page = await this.#c.store.listBatches({
        statuses: ["queued", "processing"],
        limit: REQUEUE_PAGE,
        cursor,
      });
      await Promise.all(page.batches.map((record) => this.#cluster.enqueue(record)));
      cursor = page.nextCursor;
    } while (cursor !== undefined);
  }

  /** Ends a batch that no node holds: every item without an outcome, and the batch. */
  async #endUnheld(
    record: BatchRecord,
    status: "cancelled" | "failed",
    error: Failure,
    itemError: Failure,
  ): Promise<BatchView> {
    const { store, clock } = this.#c;
    const loaded = await store.loadBatch(record.pk);
    if (loaded === undefined) return viewOfRecord(record, clock());
    const now = clock();
    const items: ItemWrite[] = loaded.pending.map((item) => ({
      pk: record.pk,
      index: item.index,
      output: null,
      confidence: 0,
      processingTimeMs: 0,
      error: itemError,
    }));
    const [ended] = await store.save(items, [
      { pk: record.pk, status, error, startedAt: loaded.batch.startedAt, completedAt: now },
    ]);
    const view = viewOfRecord(ended ?? record, now);
    this.#cluster.publish(record.pk, view);
    return view;
  }
}
