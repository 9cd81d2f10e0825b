/**
 * The engine's part in a cluster: running the batches this node takes, telling the other nodes
 * how they stand, and answering for batches that run elsewhere (or wait to be taken) from the
 * shared store and from what their node publishes. The {@link BatchProcessor} asks this for every
 * batch that is not live in its own process.
 */
import { setMaxListeners } from "node:events";
import { type AdmissionState, admissionRefusal } from "./admission.js";
import { positionInSchedule } from "./batch-policy.js";
import { mergeSnapshots, type StatsSnapshot } from "./batch-stats.js";
import { receiptOf, viewOf, viewOfRecord } from "./batch-views.js";
import type { Cluster, PeerFigures } from "./cluster.js";
import { type Failure, StoreUnavailableError } from "./errors.js";
import type { ModelCatalog } from "./inference-pool.js";
import { CANCELLED_BY_REQUEST, ITEM_FAILURES, type Job } from "./job.js";
import type { JobRunner } from "./job-runner.js";
import { isTerminal } from "./job-state.js";
import type { BatchRecord, ItemWrite, JobStore } from "./job-store.js";
import type { EngineLogger } from "./logger.js";
import type { ResolvedBatchingOptions } from "./options.js";
import type { BatchView, Priority, SubmitReceipt } from "./types.js";
import type { ValidSubmit } from "./validation.js";

/** Options of {@link ClusterMember}. */
export interface ClusterMemberOptions {
  readonly cluster: Cluster;
  readonly store: JobStore;
  readonly runner: JobRunner;
  readonly models: ModelCatalog;
  readonly clock: () => number;
  readonly log: EngineLogger;
  /** The batching configuration in force. */
  readonly batching: () => ResolvedBatchingOptions;
  /** This node's counters, shared with the other nodes. */
  readonly stats: () => StatsSnapshot;
}

/** Counters of the whole cluster (or of one node alone). */
export interface OverallStats extends StatsSnapshot {
  /** Stored batches queued or processing. */
  readonly activeBatches: number;
  /** Items waiting to run (in a cluster: stored items without an outcome, running ones included). */
  readonly queueLength: number;
}

/** A cluster has no pass values of its own: every class's backlog starts level. */
const EVEN_PASSES: Readonly<Record<Priority, number>> = Object.freeze({
  critical: 0,
  high: 0,
  normal: 0,
  low: 0,
});

/** How often a node shares its counters, ms. */
const STATS_SHARE_MS = 5000;
/** A node's counters count for the cluster until this old: older, it has left. */
const STATS_FRESH_MS = 3 * STATS_SHARE_MS;
const STATS_KEY = "stats";

/** Least time between two progress views a node publishes of one batch, ms. */
const PUBLISH_INTERVAL_MS = 200;

/** Batches read per store call when handing unheld batches to the cluster. */
const REQUEUE_PAGE = 500;

/** How long a cancel waits for the node running the batch to end it, ms. */
const CANCEL_WAIT_MS = 2000;

/** See the file comment. */
export class ClusterMember {
  readonly #o: ClusterMemberOptions;
  /** Resolves once this node has stopped running batches (shutdown): the rest go back. */
  readonly #released: Promise<void>;
  #release!: () => void;
  /** Aborted on release: ends the watches this node serves for batches of other nodes. */
  readonly #closed = new AbortController();
  #shareTimer: NodeJS.Timeout | undefined;

  constructor(options: ClusterMemberOptions) {
    this.#o = options;
    this.#released = new Promise((resolve) => (this.#release = resolve));
    // Every watch served here listens on it: many at once are normal, not a leak.
    setMaxListeners(0, this.#closed.signal);
  }

  /**
   * Starts taking batches, and hands the cluster every stored batch it does not hold;
   * `configure` applies a configuration another node changed.
   */
  async start(configure: (options: ResolvedBatchingOptions) => void): Promise<void> {
    await this.#o.cluster.start({
      run: (pk, signal) => this.run(pk, signal),
      configure,
      weights: () => this.#o.batching().priorityWeights,
    });
    this.#shareTimer = setInterval(() => this.#shareStats(), STATS_SHARE_MS);
    this.#shareTimer.unref();
    this.#shareStats();
    await this.#requeueUnheld();
  }

  /** Tells every other node the configuration changed. */
  configured(options: ResolvedBatchingOptions): Promise<void> {
    return this.#o.cluster.configured(options);
  }

  /** See `Cluster.shareFigures`. */
  shareFigures(key: string, bucket: number, value: unknown, ttlMs: number): Promise<void> {
    return this.#o.cluster.shareFigures(key, bucket, value, ttlMs);
  }

  /** See `Cluster.peerFigures`. */
  peerFigures(key: string, buckets: readonly number[]): Promise<PeerFigures[]> {
    return this.#o.cluster.peerFigures(key, buckets);
  }

  /**
   * The cluster's counters: this node's `local` snapshot merged with the latest each other node
   * shared (those silent for longer than {@link STATS_FRESH_MS} have left), and the stored work
   * not yet done.
   */
  async overallStats(local: StatsSnapshot): Promise<OverallStats> {
    const bucket = Math.floor(this.#o.clock() / STATS_SHARE_MS);
    const buckets = Array.from({ length: STATS_FRESH_MS / STATS_SHARE_MS }, (_, i) => bucket - i);
    const [peers, activity] = await Promise.all([
      this.#o.cluster.peerFigures(STATS_KEY, buckets),
      this.#o.store.activity(),
    ]);
    const latest = new Map<string, PeerFigures>();
    for (const peer of peers)
      if ((latest.get(peer.node)?.bucket ?? Number.NEGATIVE_INFINITY) < peer.bucket)
        latest.set(peer.node, peer);
    const snapshots = [...latest.values()].map((peer) => peer.value as StatsSnapshot);
    return {
      ...mergeSnapshots([local, ...snapshots]),
      activeBatches: activity.activeBatches,
      queueLength: activity.pendingItems,
    };
  }

  /** Shares this node's counters for {@link overallStats} on other nodes. */
  #shareStats(): void {
    const bucket = Math.floor(this.#o.clock() / STATS_SHARE_MS);
    this.#o.cluster
      .shareFigures(STATS_KEY, bucket, this.#o.stats(), STATS_FRESH_MS + STATS_SHARE_MS)
      .catch((error: unknown) => this.#o.log.debug({ err: error }, "sharing counters failed"));
  }

  /** See `Cluster.unavailable`. */
  unavailable(): string | undefined {
    return this.#o.cluster.unavailable();
  }

  /** The first step of a shutdown: this node takes no more batches. */
  async stopTaking(): Promise<void> {
    await this.#o.cluster.stopTaking().catch((error: unknown) => {
      this.#o.log.warn({ err: error }, "the cluster did not stop handing this node batches");
    });
  }

  /**
   * The last step of a shutdown, once running model batches have finished: the batches this node
   * holds go back to the cluster with the outcomes saved so far, and the connections close.
   */
  async leave(): Promise<void> {
    clearInterval(this.#shareTimer);
    this.#closed.abort();
    this.#release();
    await this.#o.cluster.close().catch((error: unknown) => {
      this.#o.log.warn({ err: error }, "closing the cluster connections failed");
    });
  }

  /** Runs a stored batch this node took; see `ClusterNode.run`. */
  async run(pk: number, signal: AbortSignal): Promise<"ended" | "released"> {
    const { runner, store, models } = this.#o;
    if (this.#closed.signal.aborted) return "released";
    const loaded = await store.loadBatch(pk);
    if (loaded === undefined || isTerminal(loaded.batch.status)) return "ended";
    const job = runner.liveOf(loaded.batch) ?? runner.adopt(loaded, models);
    const stopPublishing = this.#publishing(pk, job);
    const onAbort = () => runner.cancel(job);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await Promise.race([ended(job), this.#released]);
    } finally {
      signal.removeEventListener("abort", onAbort);
      stopPublishing();
    }
    return job.terminal ? "ended" : "released";
  }

  /**
   * The status of a batch that is not live here: its node's last view; for one no node has taken
   * yet, where it stands in the cluster's backlog; else the stored one.
   */
  async view(record: BatchRecord): Promise<BatchView> {
    if (!isTerminal(record.status)) {
      const latest = await this.#o.cluster.latest(record.pk);
      if (latest !== undefined) return latest;
      if (record.status === "queued") return this.#waitingView(record);
    }
    return viewOfRecord(record, this.#o.clock());
  }

  /**
   * A batch waiting for a node: its queue position is the items the cluster runs before its
   * first one (those of its class stored before it, and the other classes' by the weights, as
   * on one node), and its completion estimate that work and its own items shared over the
   * nodes at this node's pace. Without Redis it answers the stored view.
   */
  async #waitingView(record: BatchRecord): Promise<BatchView> {
    const { store, cluster, runner, clock } = this.#o;
    const [backlog, nodes] = await Promise.all([
      store.backlog(record.pk).catch(() => undefined),
      cluster.nodes().catch(() => 1),
    ]);
    const now = clock();
    if (backlog === undefined) return viewOfRecord(record, now);
    const queuePosition = positionInSchedule({
      priority: record.priority,
      ahead: backlog.aheadInClass,
      passes: EVEN_PASSES,
      counts: backlog.pending,
      weights: this.#o.batching().priorityWeights,
    });
    const remaining = record.total - record.succeeded - record.failed;
    const ms = runner.batcher.estimateMs(
      record.modelId,
      Math.ceil((queuePosition + remaining) / nodes),
    );
    return viewOf(
      record,
      { queuePosition, estimatedCompletionTime: ms === undefined ? null : now + ms },
      now,
    );
  }

  /** Status events of a batch that is not live here, ending after the terminal one. */
  async *watch(record: BatchRecord, signal?: AbortSignal): AsyncGenerator<BatchView> {
    const first = await this.view(record);
    yield first;
    if (isTerminal(first.status)) return;
    const until =
      signal === undefined ? this.#closed.signal : AbortSignal.any([signal, this.#closed.signal]);
    for await (const view of this.#o.cluster.watch(record.pk, until)) {
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
    const how = await this.#o.cluster.cancel(record);
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

  /**
   * Hands a batch just stored to the cluster. When that fails the batch is ended as failed (no
   * node would ever take it) and the caller gets the error.
   */
  async enqueue(record: BatchRecord): Promise<SubmitReceipt> {
    try {
      await this.#o.cluster.enqueue(record);
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
   * Hands the cluster every stored batch that has not ended; those it already holds are left as
   * they are. Run at each start, it picks up a batch whose hand-over failed with Redis away.
   */
  async #requeueUnheld(): Promise<number> {
    let cursor: string | undefined;
    let count = 0;
    do {
      const page = await this.#o.store.listBatches({
        statuses: ["queued", "processing"],
        limit: REQUEUE_PAGE,
        cursor,
      });
      await Promise.all(page.batches.map((record) => this.#o.cluster.enqueue(record)));
      count += page.batches.length;
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    return count;
  }

  /**
   * Why a durable submit is refused, over the whole cluster: the work stored and not yet done
   * against the per-node limits times the nodes taking batches. The local queue's estimates
   * stand for the cluster's.
   */
  async admissionRefusal(valid: ValidSubmit, local: AdmissionState): Promise<Error | undefined> {
    const [activity, nodes] = await Promise.all([
      this.#o.store.activity(),
      this.#o.cluster.nodes(),
    ]);
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

  /** Ends a batch that no node holds: every item without an outcome, and the batch. */
  async #endUnheld(
    record: BatchRecord,
    status: "cancelled" | "failed",
    error: Failure,
    itemError: Failure,
  ): Promise<BatchView> {
    const { store, clock } = this.#o;
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
    await store.save(items, [
      {
        pk: record.pk,
        status,
        error,
        startedAt: loaded.batch.startedAt,
        completedAt: now,
      },
    ]);
    const ended = await store.loadBatch(record.pk);
    const view = viewOfRecord(ended?.batch ?? record, now);
    this.#o.cluster.publish(record.pk, view);
    return view;
  }

  /**
   * Publishes a job's view on each change: a new status at once, progress at most every
   * {@link PUBLISH_INTERVAL_MS}.
   */
  #publishing(pk: number, job: Job): () => void {
    const { cluster, runner, clock } = this.#o;
    let last = 0;
    let status = job.status;
    let timer: NodeJS.Timeout | undefined;
    const publish = () => {
      clearTimeout(timer);
      timer = undefined;
      last = clock();
      status = job.status;
      cluster.publish(pk, runner.view(job));
    };
    publish();
    const unsubscribe = job.subscribe(() => {
      if (job.status !== status) publish();
      else if (timer === undefined)
        timer = setTimeout(publish, Math.max(0, last + PUBLISH_INTERVAL_MS - clock()));
    });
    return () => {
      clearTimeout(timer);
      unsubscribe();
    };
  }
}

/** Resolves once `job` has ended and its end is announced. */
function ended(job: Job): Promise<void> {
  if (job.terminal && job.unrecorded === null) return Promise.resolve();
  return new Promise((resolve) => {
    const unsubscribe = job.subscribe(() => {
      if (!job.terminal) return;
      unsubscribe();
      resolve();
    });
  });
}
