/**
 * Live jobs and their items: how items enter the batcher, how model-batch outcomes, deadlines and
 * cancels become item outcomes, batch states and store writes (one `save` per event), and the
 * live status of a job. The {@link BatchProcessor} decides what to run; this runs it.
 */
import { randomUUID } from "node:crypto";
import { BatchStats } from "./batch-stats.js";
import { viewOf } from "./batch-views.js";
import { type BatchOutcome, DynamicBatcher, queueKey } from "./dynamic-batcher.js";
import type { InferencePool, ModelCatalog } from "./inference-pool.js";
import { ITEM_ERRORS, Job, type JobItem } from "./job.js";
import type {
  BatchRecord,
  BatchWrite,
  ItemWrite,
  JobStore,
  StoredInput,
  UnfinishedBatch,
} from "./job-store.js";
import type { EngineLogger } from "./logger.js";
import type { EngineObserver, ItemOutcome } from "./observer.js";
import type { ResolvedBatchingOptions } from "./options.js";
import type { BatchView, ItemResult, Principal, SubmitReceipt } from "./types.js";

/** An item to queue: a stored input, or an infer item's numbers as the client sent them. */
export interface ItemSource {
  readonly index: number;
  readonly requestId: string;
  readonly input: ArrayLike<number>;
  readonly shape: readonly number[];
}

/** Options of {@link JobRunner}. */
export interface JobRunnerOptions {
  readonly store: JobStore;
  readonly pool: InferencePool;
  readonly batching: () => ResolvedBatchingOptions;
  readonly modelMaxBatchSize: (model: string) => number;
  readonly log: EngineLogger;
  readonly clock: () => number;
  /** Told about dispatches, model batches and item outcomes (metrics). */
  readonly observer?: EngineObserver | undefined;
}

/** See the file comment. */
export class JobRunner {
  readonly batcher: DynamicBatcher<JobItem>;
  /** What ran and how it went (cancelled items are not counted). */
  readonly stats: BatchStats;
  /** The stats first, then whatever the embedder observes with. */
  readonly #observers: readonly EngineObserver[];
  readonly #observesDispatch: boolean;
  readonly #store: JobStore;
  readonly #log: EngineLogger;
  readonly #clock: () => number;
  /** Live (queued or processing) stored jobs by `${owner}\u0000${batchId}`. */
  readonly #jobs = new Map<string, Job>();
  /** Live infer jobs (never stored): failed on shutdown so no caller waits forever. */
  readonly #ephemeral = new Set<Job>();
  #seq = 0;

  constructor(o: JobRunnerOptions) {
    this.#store = o.store;
    this.#log = o.log;
    this.#clock = o.clock;
    this.stats = new BatchStats({ clock: o.clock });
    this.#observers = o.observer === undefined ? [this.stats] : [this.stats, o.observer];
    this.#observesDispatch = this.#observers.some((observer) => observer.onDispatch !== undefined);
    this.batcher = new DynamicBatcher<JobItem>({
      pool: o.pool,
      options: o.batching,
      modelMaxBatchSize: o.modelMaxBatchSize,
      onDispatch: (items) => this.#onDispatch(items),
      onComplete: (items, outcome) => this.#onComplete(items, outcome),
      onExpired: (items) => this.#fail(items, ITEM_ERRORS.deadline),
      clock: o.clock,
    });
  }

  /** Stored jobs that are queued or processing. */
  get activeStored(): number {
    return this.#jobs.size;
  }

  /** The live stored job of `record`, if it is still running. */
  liveOf(record: Pick<BatchRecord, "owner" | "batchId">): Job | undefined {
    return this.#jobs.get(jobKey(record.owner, record.batchId));
  }

  /**
   * Runs an infer job (never stored) and resolves once it has ended; an aborted `signal`
   * cancels it.
   */
  async runEphemeral(job: Job, inputs: readonly ItemSource[], signal?: AbortSignal): Promise<void> {
    const ended = new Promise<void>((resolve) => {
      const unsubscribe = job.subscribe(() => {
        if (!job.terminal) return;
        unsubscribe();
        resolve();
      });
    });
    const onAbort = () => this.cancel(job);
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#ephemeral.add(job);
    try {
      this.enqueue(job, inputs);
      await ended;
    } finally {
      this.#ephemeral.delete(job);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Stops deadline timers and fails infer jobs whose items are still queued (shutdown). */
  shutdown(): void {
    for (const job of this.#jobs.values()) {
      clearTimeout(job.deadlineTimer);
      job.notify();
    }
    for (const job of [...this.#ephemeral]) this.endQueuedEphemeral(job);
  }

  /**
   * Takes over the batches a previous process left queued or processing: each runs again with
   * the items that have no outcome, or fails them when its model is gone.
   */
  recover(unfinished: readonly UnfinishedBatch[], models: ModelCatalog): void {
    for (const { batch, pending } of unfinished) {
      const model = models.get(batch.modelId);
      if (model === undefined || !model.available)
        this.failRecovered(batch, pending, ITEM_ERRORS.modelUnavailable);
      else this.start(batch, pending);
    }
    if (unfinished.length > 0)
      this.#log.info({ batches: unfinished.length }, "re-queued unfinished batches");
  }

  /** Adopts a job recovered from the store whose model is gone: its pending items fail. */
  failRecovered(record: BatchRecord, pending: readonly StoredInput[], error: string): void {
    const job = new Job(record);
    this.#jobs.set(jobKey(job.owner, job.batchId), job);
    job.items = this.#itemsOf(job, pending);
    this.#fail(job.items, error);
  }

  /** Starts a stored job (just created, or recovered) with the inputs that have no outcome. */
  start(record: BatchRecord, pending: readonly StoredInput[]): Job {
    const job = new Job(record);
    this.#jobs.set(jobKey(job.owner, job.batchId), job);
    this.enqueue(job, pending);
    return job;
  }

  /** Queues a job's items and arms its deadline. */
  enqueue(job: Job, inputs: readonly ItemSource[]): void {
    const now = this.#clock();
    job.items = this.#itemsOf(job, inputs);
    this.batcher.enqueue(job.items);
    job.deadlineTimer = setTimeout(
      () => this.#fail(job.queuedItems(), ITEM_ERRORS.deadline, true),
      Math.max(0, job.deadline - now),
    );
  }

  #itemsOf(job: Job, inputs: readonly ItemSource[]): JobItem[] {
    const now = this.#clock();
    return inputs.map((input): JobItem => {
      const itemShape = input.shape;
      return {
        job,
        index: input.index,
        requestId: input.requestId,
        model: job.modelId,
        itemShape,
        queue: queueKey({ model: job.modelId, itemShape }),
        data: input.input,
        priority: job.priority,
        deadline: job.deadline,
        seq: this.#seq++,
        arrival: now,
        group: job,
        queued: false,
        settled: false,
      };
    });
  }

  #itemDone(item: JobItem, outcome: ItemOutcome, now: number): void {
    for (const o of this.#observers)
      o.onItemDone?.(
        item.model,
        item.priority,
        outcome,
        now - item.arrival,
        (outcome === "success" || outcome === "failed") && now > item.deadline,
      );
  }

  #onDispatch(items: readonly JobItem[]): void {
    const now = this.#clock();
    if (this.#observesDispatch) {
      const waits = items.map((item) => now - item.arrival);
      const priorities = items.map((item) => item.priority);
      for (const o of this.#observers)
        o.onDispatch?.((items[0] as JobItem).model, items.length, waits, priorities);
    }
    let last: Job | undefined;
    for (const { job } of items) {
      if (job === last) continue;
      last = job;
      if (job.status === "queued") {
        job.transition("processing");
        job.startedAt = now;
        job.notify();
      }
    }
  }

  #onComplete(items: readonly JobItem[], outcome: BatchOutcome): void {
    const writes: ItemWrite[] = [];
    const touched = new Set<Job>();
    let errorMessage: string | undefined;
    if (!outcome.ok) {
      const errorId = randomUUID();
      this.#log.error(
        { err: outcome.error, errorId, model: items[0]?.model, size: items.length },
        "model batch failed",
      );
      errorMessage = `INTERNAL: model execution failed (error_id ${errorId})`;
    }
    const now = this.#clock();
    const model = (items[0] as JobItem).model;
    for (const o of this.#observers)
      o.onBatchDone?.(model, items.length, outcome.ok ? outcome.result.inferenceMs : 0, outcome.ok);
    for (let i = 0; i < items.length; i++) {
      const item = items[i] as JobItem;
      const job = item.job;
      if (job.terminal) continue; // cancelled while running: the outcome was already written
      this.#itemDone(item, outcome.ok ? "success" : "failed", now);
      touched.add(job);
      if (!outcome.ok) {
        job.recordFailure(errorMessage as string);
        this.#keep(job, writes, item, null, 0, 0, errorMessage as string);
        continue;
      }
      const { output, outputSize, confidence, inferenceMs } = outcome.result;
      // A view, not a copy: the store copies it into its row, infer results into a number[].
      const row = output.subarray(i * outputSize, (i + 1) * outputSize);
      job.succeeded++;
      this.#keep(job, writes, item, row, confidence?.[i] ?? 0, inferenceMs, null);
    }
    this.commit(writes, touched);
  }

  /** Records an item outcome: in memory for infer jobs, as a write for stored ones. */
  #keep(
    job: Job,
    writes: ItemWrite[],
    item: JobItem,
    output: Float32Array | null,
    confidence: number,
    ms: number,
    error: string | null,
  ): void {
    item.settled = true;
    if (job.pk === undefined) {
      (job.results as (ItemResult | undefined)[])[item.index] = {
        requestId: item.requestId,
        output: output === null ? [] : Array.from(output),
        confidence,
        processingTimeMs: ms,
        error,
      };
    } else {
      writes.push({
        pk: job.pk,
        index: item.index,
        output,
        confidence,
        processingTimeMs: ms,
        error,
      });
    }
  }

  /** Fails items that never ran (deadline, model gone); `removeQueued` takes them out of the batcher first. */
  #fail(items: readonly JobItem[], error: string, removeQueued = false): void {
    const failed = removeQueued ? this.batcher.remove(items) : items;
    if (failed.length === 0) return;
    const writes: ItemWrite[] = [];
    const touched = new Set<Job>();
    const now = this.#clock();
    for (const item of failed) {
      if (item.job.terminal) continue;
      this.#itemDone(item, error === ITEM_ERRORS.deadline ? "expired" : "failed", now);
      item.job.recordFailure(error);
      this.#keep(item.job, writes, item, null, 0, 0, error);
      touched.add(item.job);
    }
    this.commit(writes, touched);
  }

  /** Ends a live job now: queued items leave the batcher, running ones are written off. */
  #endJob(
    job: Job,
    status: "cancelled" | "failed",
    reason: string,
    queuedError: string,
    runningError: string,
  ): void {
    if (job.terminal) return;
    const waiting = new Set(this.batcher.remove(job.queuedItems()));
    const writes: ItemWrite[] = [];
    const now = this.#clock();
    for (const item of job.items) {
      if (item.settled) continue;
      this.#itemDone(item, status === "cancelled" ? "cancelled" : "failed", now);
      const error = waiting.has(item) ? queuedError : runningError;
      job.recordFailure(error);
      this.#keep(job, writes, item, null, 0, 0, error);
    }
    job.transition(status);
    job.error = reason;
    job.completedAt = this.#clock();
    this.#persist(writes, job.pk === undefined ? [] : [batchWrite(job)]);
    this.#retire(job);
  }

  /** On shutdown, an infer job whose items are still queued fails (its caller gets UNAVAILABLE). */
  endQueuedEphemeral(job: Job): void {
    if (job.queuedItems().length === 0) return;
    this.#endJob(job, "failed", ITEM_ERRORS.shutdown, ITEM_ERRORS.shutdown, ITEM_ERRORS.shutdown);
  }

  /** Cancels a live job; outputs already produced are kept. */
  cancel(job: Job): void {
    this.#endJob(
      job,
      "cancelled",
      "CANCELLED: cancelled by request",
      ITEM_ERRORS.cancelledQueued,
      ITEM_ERRORS.cancelledRunning,
    );
  }

  /** Writes outcomes, ends jobs with nothing left, notifies watchers. */
  commit(writes: ItemWrite[], touched: ReadonlySet<Job>): void {
    const batches: BatchWrite[] = [];
    const ended: Job[] = [];
    for (const job of touched) {
      if (job.remaining === 0) {
        const { status, error } = job.outcome();
        job.transition(status);
        job.error = error;
        job.completedAt = this.#clock();
        ended.push(job);
      }
      if (job.pk !== undefined) batches.push(batchWrite(job));
    }
    this.#persist(writes, batches);
    for (const job of ended) this.#retire(job);
    for (const job of touched) if (!job.terminal) job.notify();
  }

  #retire(job: Job): void {
    clearTimeout(job.deadlineTimer);
    if (job.pk !== undefined) this.#jobs.delete(jobKey(job.owner, job.batchId));
    this.#log.debug({ batchId: job.batchId, status: job.status, error: job.error }, "batch ended");
    job.notify();
  }

  #persist(items: ItemWrite[], batches: BatchWrite[]): void {
    if (items.length === 0 && batches.length === 0) return;
    this.#store
      .save(items, batches)
      .catch((error: unknown) => this.#log.error({ err: error }, "saving batch progress failed"));
  }

  /** The caller's live job with this id (an admin's: anyone's). */
  live(principal: Principal, batchId: string): Job | undefined {
    const own = this.#jobs.get(jobKey(principal.owner, batchId));
    if (own !== undefined || !principal.admin) return own;
    for (const job of this.#jobs.values()) if (job.batchId === batchId) return job;
    return undefined;
  }

  /** The live status of a job, with its queue position and estimated completion. */
  view(job: Job): BatchView {
    const now = this.#clock();
    if (job.terminal)
      return viewOf(job, { queuePosition: 0, estimatedCompletionTime: job.completedAt }, now);
    const first = job.firstQueued();
    const queuePosition = first === undefined ? 0 : this.batcher.positionOf(first);
    const ms = this.batcher.estimateMs(job.modelId, queuePosition + job.remaining);
    return viewOf(
      job,
      { queuePosition, estimatedCompletionTime: ms === undefined ? null : now + ms },
      now,
    );
  }

  /** What a submit answers for a live job. */
  receipt(job: Job): SubmitReceipt {
    const view = this.view(job);
    return {
      batchId: view.batchId,
      status: view.status,
      estimatedCompletionTime: view.estimatedCompletionTime,
      queuePosition: view.queuePosition,
      requestCount: view.totalRequests,
    };
  }
}

function jobKey(owner: string, batchId: string): string {
  return `${owner}\u0000${batchId}`;
}

function batchWrite(job: Job): BatchWrite {
  return {
    pk: job.pk as number,
    status: job.status,
    error: job.error,
    startedAt: job.startedAt,
    completedAt: job.completedAt,
  };
}
