/**
 * Live jobs and their items: how items enter the batcher, how model-batch outcomes, deadlines and
 * cancels become item outcomes, batch states and store writes (one `save` per event), and the
 * live status of a job. The {@link BatchProcessor} decides what to run; this runs it.
 */
import { randomUUID } from "node:crypto";
import { BatchStats } from "./batch-stats.js";
import { viewOf } from "./batch-views.js";
import { type BatchOutcome, DynamicBatcher, queueKey } from "./dynamic-batcher.js";
import { type Failure, failure } from "./errors.js";
import type { InferencePool, ModelCatalog } from "./inference-pool.js";
import { ITEM_FAILURES, Job, type JobItem } from "./job.js";
import type {
  BatchRecord,
  BatchWrite,
  ItemWrite,
  JobStore,
  StartedRun,
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
  /** A recovered item that an earlier process had handed to a thread. */
  readonly started?: boolean;
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
  /**
   * Stored jobs whose failure could not be saved either (see {@link #unrecorded}): kept in
   * {@link #jobs} so every read shows them failed, and saved again on {@link retryUnrecorded}.
   */
  readonly #unrecordedJobs = new Set<Job>();
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
      onExpired: (items) => this.#fail(items, ITEM_FAILURES.deadline),
      clock: o.clock,
    });
  }

  /** Stored jobs that are queued or processing. */
  get activeStored(): number {
    return this.#jobs.size - this.#unrecordedJobs.size;
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
        this.failRecovered(batch, pending, ITEM_FAILURES.modelUnavailable);
      else this.start(batch, pending);
    }
    if (unfinished.length > 0)
      this.#log.info({ batches: unfinished.length }, "re-queued unfinished batches");
  }

  /** Adopts a job recovered from the store whose model is gone: its pending items fail. */
  failRecovered(record: BatchRecord, pending: readonly StoredInput[], error: Failure): void {
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
      () => this.#fail(job.queuedItems(), ITEM_FAILURES.deadline, true),
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
        ranBefore: input.started === true,
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
    // What a thread now holds is saved before it runs, so that after a crash the store tells an
    // item that ran (its result lost) from one that never started.
    const runs: StartedRun[] = [];
    const batches: BatchWrite[] = [];
    let run: { job: Job; lo: number; hi: number } | undefined;
    const flush = () => {
      if (run?.job.pk !== undefined) runs.push({ pk: run.job.pk, lo: run.lo, hi: run.hi });
    };
    for (const item of items) {
      const job = item.job;
      if (run !== undefined && run.job === job && item.index === run.hi + 1) {
        run.hi = item.index;
        continue;
      }
      flush();
      run = { job, lo: item.index, hi: item.index };
      if (job.status === "queued") {
        job.transition("processing");
        job.startedAt = now;
        if (job.pk !== undefined) batches.push(batchWrite(job));
        job.notify();
      }
    }
    flush();
    if (runs.length > 0) void this.#persist(new Set(items.map((i) => i.job)), [], batches, runs);
  }

  #onComplete(items: readonly JobItem[], outcome: BatchOutcome): void {
    const writes: ItemWrite[] = [];
    const touched = new Set<Job>();
    let crashed: Failure | undefined;
    const model = (items[0] as JobItem).model;
    if (!outcome.ok) {
      const errorId = randomUUID();
      this.#log.error(
        { err: outcome.error, errorId, model, size: items.length },
        "model batch failed",
      );
      crashed = failure("INTERNAL", `model execution failed (error_id ${errorId})`);
    }
    const now = this.#clock();
    for (const o of this.#observers)
      o.onBatchDone?.(model, items.length, outcome.ok ? outcome.result.inferenceMs : 0, outcome.ok);
    let nonFinite = 0;
    for (let i = 0; i < items.length; i++) {
      const item = items[i] as JobItem;
      const job = item.job;
      if (job.terminal) continue; // cancelled while running: the outcome was already written
      touched.add(job);
      if (!outcome.ok) {
        this.#itemFailed(job, writes, item, crashed as Failure, now);
        continue;
      }
      const { output, outputSize, confidence, inferenceMs } = outcome.result;
      // A view, not a copy: the store copies it into its row, infer results into a number[].
      const row = output.subarray(i * outputSize, (i + 1) * outputSize);
      const itemConfidence = confidence?.[i] ?? 0;
      // No answer carries NaN or Infinity, whatever the model computes.
      if (!allFinite(row) || !Number.isFinite(itemConfidence)) {
        nonFinite++;
        this.#itemFailed(job, writes, item, ITEM_FAILURES.nonFiniteOutput, now);
        continue;
      }
      this.#itemDone(item, "success", now);
      job.succeeded++;
      this.#keep(job, writes, item, row, itemConfidence, inferenceMs, null);
    }
    if (nonFinite > 0)
      this.#log.warn({ model, items: nonFinite }, "model produced non-finite outputs");
    this.commit(writes, touched);
  }

  #itemFailed(job: Job, writes: ItemWrite[], item: JobItem, f: Failure, now: number): void {
    this.#itemDone(item, f.code === "DEADLINE_EXCEEDED" ? "expired" : "failed", now);
    job.recordFailure(f);
    this.#keep(job, writes, item, null, 0, 0, f);
  }

  /** Records an item outcome: in memory for infer jobs, as a write for stored ones. */
  #keep(
    job: Job,
    writes: ItemWrite[],
    item: JobItem,
    output: Float32Array | null,
    confidence: number,
    ms: number,
    error: Failure | null,
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
  #fail(items: readonly JobItem[], error: Failure, removeQueued = false): void {
    const failed = removeQueued ? this.batcher.remove(items) : items;
    if (failed.length === 0) return;
    const writes: ItemWrite[] = [];
    const touched = new Set<Job>();
    const now = this.#clock();
    for (const item of failed) {
      if (item.job.terminal) continue;
      // An item that ran before a restart did start: its expiry says that its result was lost.
      const f = item.ranBefore && error === ITEM_FAILURES.deadline ? ITEM_FAILURES.runLost : error;
      this.#itemFailed(item.job, writes, item, f, now);
      touched.add(item.job);
    }
    this.commit(writes, touched);
  }

  /** Ends a live job now: queued items leave the batcher, running ones are written off. */
  #endJob(
    job: Job,
    status: "cancelled" | "failed",
    reason: Failure,
    queuedError: Failure,
    runningError: Failure,
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
    this.#retireOnceSaved(
      [job],
      this.#persist([job], writes, job.pk === undefined ? [] : [batchWrite(job)]),
    );
  }

  /** On shutdown, an infer job whose items are still queued fails (its caller gets UNAVAILABLE). */
  endQueuedEphemeral(job: Job): void {
    if (job.queuedItems().length === 0) return;
    this.#endJob(
      job,
      "failed",
      ITEM_FAILURES.shutdown,
      ITEM_FAILURES.shutdown,
      ITEM_FAILURES.shutdown,
    );
  }

  /** Cancels a live job; outputs already produced are kept. */
  cancel(job: Job): void {
    this.#endJob(
      job,
      "cancelled",
      CANCELLED_BY_REQUEST,
      ITEM_FAILURES.cancelledQueued,
      ITEM_FAILURES.cancelledRunning,
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
    const saved = this.#persist(touched, writes, batches);
    for (const job of touched) if (!job.terminal) job.notify();
    this.#retireOnceSaved(ended, saved);
  }

  /**
   * Announces the end of `ended` jobs: an infer job's at once, a stored job's once its end is in
   * the store (a failed write ends it failed instead, see {@link #unrecorded}).
   */
  #retireOnceSaved(ended: readonly Job[], saved: Promise<boolean>): void {
    if (ended.length === 0) return;
    for (const job of ended) {
      clearTimeout(job.deadlineTimer);
      if (job.pk === undefined) this.#retire(job);
    }
    if (ended.some((job) => job.pk !== undefined))
      void saved.then((ok) => {
        if (ok) for (const job of ended) if (job.pk !== undefined) this.#retire(job);
      });
  }

  #retire(job: Job): void {
    clearTimeout(job.deadlineTimer);
    if (job.pk !== undefined) this.#jobs.delete(jobKey(job.owner, job.batchId));
    this.#log.debug({ batchId: job.batchId, status: job.status, error: job.error }, "batch ended");
    job.notify();
  }

  /** Saves writes of `jobs`; resolves false (never rejects) when the store failed them. */
  #persist(
    jobs: Iterable<Job>,
    items: ItemWrite[],
    batches: BatchWrite[],
    started: StartedRun[] = [],
  ): Promise<boolean> {
    if (items.length === 0 && batches.length === 0 && started.length === 0) return SAVED;
    return this.#store.save(items, batches, started).then(
      () => true,
      (error: unknown) => {
        this.#unrecorded(error, [...jobs], items);
        return false;
      },
    );
  }

  /**
   * A write failed (disk full, I/O error, constraint): the store no longer holds what the jobs
   * it concerned did, so each of them ends `failed` with an INTERNAL failure whose `error_id` is
   * in the log, whatever it reached in memory. Unsettled items and items whose outcome was in the
   * lost write get that failure too. The end is saved at once and, if the store still fails, on
   * every {@link retryUnrecorded}; until then the job stays in memory so every read shows it
   * failed. A process that stops before it is saved leaves the batch unfinished in the store, and
   * the next start runs its unfinished items again.
   */
  #unrecorded(error: unknown, jobs: readonly Job[], lost: readonly ItemWrite[]): void {
    const stored = jobs.filter((job) => job.pk !== undefined);
    if (stored.length === 0) return;
    const errorId = randomUUID();
    this.#log.error(
      { err: error, errorId, batchIds: stored.map((job) => job.batchId) },
      "saving batch progress failed; the batches it concerned fail",
    );
    for (const o of this.#observers) o.onStoreError?.();
    const f = failure("INTERNAL", `saving the batch's progress failed (error_id ${errorId})`);
    const now = this.#clock();
    for (const job of stored) {
      const pk = job.pk as number;
      const indices = new Set(lost.filter((w) => w.pk === pk).map((w) => w.index));
      if (!job.terminal) {
        this.batcher.remove(job.queuedItems());
        for (const item of job.items) {
          if (item.settled) continue;
          item.settled = true;
          this.#itemDone(item, "failed", now);
          job.recordFailure(f);
          indices.add(item.index);
        }
        job.transition("failed");
        job.error = f;
        job.completedAt = now;
      }
      clearTimeout(job.deadlineTimer);
      job.unrecorded ??= { failure: f, indices: new Set() };
      for (const index of indices) job.unrecorded.indices.add(index);
      job.items = [];
      this.#jobs.set(jobKey(job.owner, job.batchId), job);
      this.#unrecordedJobs.add(job);
      job.notify();
    }
    void this.retryUnrecorded();
  }

  /** Saves the failure of jobs whose writes failed; those saved leave memory. */
  async retryUnrecorded(): Promise<void> {
    for (const job of [...this.#unrecordedJobs]) {
      const { failure: f, indices } = job.unrecorded as NonNullable<Job["unrecorded"]>;
      const pk = job.pk as number;
      const items: ItemWrite[] = [...indices].map((index) => ({
        pk,
        index,
        output: null,
        confidence: 0,
        processingTimeMs: 0,
        error: f,
      }));
      try {
        await this.#store.save(items, [{ ...batchWrite(job), status: "failed", error: f }]);
      } catch {
        continue; // still failing: the next retry tries again
      }
      this.#unrecordedJobs.delete(job);
      this.#jobs.delete(jobKey(job.owner, job.batchId));
    }
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
    if (job.unrecorded !== null) {
      const failed = { ...job, status: "failed" as const, error: job.unrecorded.failure };
      return viewOf(failed, { queuePosition: 0, estimatedCompletionTime: job.completedAt }, now);
    }
    if (job.terminal)
      return viewOf(job, { queuePosition: 0, estimatedCompletionTime: job.completedAt }, now);
    const first = job.firstQueued();
    const queuePosition = first === undefined ? 0 : this.batcher.positionOf(first);
    // The batch ends when its last waiting item has run: everything dispatched before that item
    // (its own items and, by the weights, the other classes' meanwhile), after what is in flight.
    const last = job.lastQueued();
    const through = last === undefined ? 0 : this.batcher.positionOf(last) + 1;
    const ms = this.batcher.estimateMs(job.modelId, through);
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

const CANCELLED_BY_REQUEST = failure("CANCELLED", "cancelled by request");

const SAVED = Promise.resolve(true);

function allFinite(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return false;
  return true;
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
