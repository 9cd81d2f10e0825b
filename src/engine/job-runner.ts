/**
 * Live jobs and their items: how items enter the batcher, how model-batch outcomes, deadlines and
 * cancels become item outcomes, batch states and store writes (one `save` per event), and the
 * live status of a job. The {@link BatchProcessor} decides what to run; this runs it.
 */
import { randomUUID } from "node:crypto";
import { BatchStats } from "./batch-stats.js";
import { liveViewOf } from "./batch-views.js";
import { type BatchOutcome, DynamicBatcher, queueKey } from "./dynamic-batcher.js";
import { DomainError, type Failure, failure } from "./errors.js";
import type { InferencePool, ModelCatalog } from "./inference-pool.js";
import { CANCELLED_BY_REQUEST, ITEM_FAILURES, Job, type JobItem } from "./job.js";
import { batchWrite, JobJournal, startedRuns } from "./job-journal.js";
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
import type { BatchView, ItemResult, Principal } from "./types.js";

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
  readonly #log: EngineLogger;
  readonly #clock: () => number;
  /** Live (queued or processing) stored jobs by `${owner}\u0000${batchId}`. */
  readonly #jobs = new Map<string, Job>();
  /** Live infer jobs (never stored): failed on shutdown so no caller waits forever. */
  readonly #ephemeral = new Set<Job>();
  readonly #journal: JobJournal;
  #seq = 0;

  constructor(o: JobRunnerOptions) {
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
    this.#journal = new JobJournal({
      store: o.store,
      log: o.log,
      onStoreError: () => {
        for (const observer of this.#observers) observer.onStoreError?.();
      },
      endWith: (job, f) => this.#endWith(job, f),
      hold: (job, held) => {
        const key = jobKey(job.owner, job.batchId);
        if (held) this.#jobs.set(key, job);
        else this.#jobs.delete(key);
      },
    });
  }

  /** Stored jobs that are queued or processing. */
  get activeStored(): number {
    return this.#jobs.size - this.#journal.unsavedCount;
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
   * Takes over the batches a previous process left queued or processing (see {@link adopt}).
   */
  recover(unfinished: readonly UnfinishedBatch[], models: ModelCatalog): void {
    for (const batch of unfinished) this.adopt(batch, models);
    if (unfinished.length > 0)
      this.#log.info({ batches: unfinished.length }, "re-queued unfinished batches");
  }

  /**
   * Runs a stored batch that did not start here (left by a process that stopped, or taken from a
   * cluster): with the items that have no outcome, or failing them when its model is gone. A
   * batch whose every item already has an outcome ends at once.
   */
  adopt({ batch, pending }: UnfinishedBatch, models: ModelCatalog): Job {
    const model = models.get(batch.modelId);
    if (model?.available && pending.length > 0) return this.start(batch, pending);
    const job = new Job(batch);
    this.#jobs.set(jobKey(job.owner, job.batchId), job);
    job.items = this.#itemsOf(job, pending);
    if (pending.length > 0) this.#fail(job.items, ITEM_FAILURES.modelUnavailable);
    else {
      // Every outcome was saved, and the process stopped before the batch's end was.
      if (job.status === "queued") job.transition("processing");
      this.commit([], new Set([job]));
    }
    return job;
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
    const batches: BatchWrite[] = [];
    let last: Job | undefined;
    for (const { job } of items) {
      if (job === last) continue;
      last = job;
      if (job.status !== "queued") continue;
      job.transition("processing");
      job.startedAt = now;
      if (job.pk !== undefined) batches.push(batchWrite(job));
      job.notify();
    }
    // What a thread now holds is saved before it runs, so that after a crash the store tells an
    // item that ran (its result lost) from one that never started.
    const runs = startedRuns(items);
    if (runs.length > 0)
      void this.#journal.save(new Set(items.map((i) => i.job)), [], batches, runs);
  }

  #onComplete(items: readonly JobItem[], outcome: BatchOutcome): void {
    const writes: ItemWrite[] = [];
    const touched = new Set<Job>();
    let crashed: Failure | undefined;
    const model = (items[0] as JobItem).model;
    if (!outcome.ok && outcome.error instanceof DomainError) {
      // The pool refused the batch for a reason callers may read (its model was unloaded).
      this.#log.warn({ err: outcome.error, model, size: items.length }, "model batch refused");
      crashed = failure(outcome.error.code, outcome.error.message);
    } else if (!outcome.ok) {
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
        label: "",
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
      this.#journal.save([job], writes, job.pk === undefined ? [] : [batchWrite(job)]),
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
    const saved = this.#journal.save(touched, writes, batches);
    for (const job of touched) if (!job.terminal) job.notify();
    this.#retireOnceSaved(ended, saved);
  }

  /**
   * Announces the end of `ended` jobs: an infer job's at once, a stored job's once its end is in
   * the store (a failed write ends it failed instead, see `job-journal.ts`).
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

  /**
   * Ends a live job with `f` because a write for it failed (see `job-journal.ts`); returns the
   * indices of the items it settled with it.
   */
  #endWith(job: Job, f: Failure): number[] {
    if (job.terminal) return [];
    const now = this.#clock();
    const settled: number[] = [];
    this.batcher.remove(job.queuedItems());
    for (const item of job.items) {
      if (item.settled) continue;
      item.settled = true;
      this.#itemDone(item, "failed", now);
      job.recordFailure(f);
      settled.push(item.index);
    }
    job.transition("failed");
    job.error = f;
    job.completedAt = now;
    return settled;
  }

  /** Saves the failure of jobs whose writes failed (see `job-journal.ts`). */
  retryUnrecorded(): Promise<void> {
    return this.#journal.retry();
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
    return liveViewOf(job, this.batcher, this.#clock());
  }
}

function allFinite(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return false;
  return true;
}

function jobKey(owner: string, batchId: string): string {
  return `${owner}\u0000${batchId}`;
}
