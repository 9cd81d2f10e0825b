/**
 * Live jobs and their items: how items enter the batcher, what its dispatches and finished model
 * batches do to their jobs (the items' outcomes, batch states and store writes are settled by
 * `item-outcomes.ts`, one `save` per event, whose answer `stored-jobs.ts` takes in), and the live
 * status of a job. The processor decides what to run; this runs it.
 */
import type { InferencePool, ModelCatalog } from "../inference-pool.js";
import type {
  BatchRecord,
  BatchWrite,
  JobStore,
  StoredInput,
  UnfinishedBatch,
} from "../job-store.js";
import type { EngineLogger } from "../logger.js";
import type { EngineObserver } from "../observer.js";
import type { ResolvedBatchingOptions } from "../options.js";
import { paddingPlanOf } from "../padding.js";
import { type BatchOutcome, DynamicBatcher } from "../scheduling/index.js";
import type { EngineTracer } from "../tracer.js";
import type { BatchView, Principal, ProcessorStats } from "../types.js";
import type { ValidSubmit } from "../validation.js";
import { tracedBatch } from "./batch-trace.js";
import { liveViewOf } from "./batch-views.js";
import { CANCELLED_BY_REQUEST, ITEM_FAILURES } from "./item-failures.js";
import { ItemOutcomes } from "./item-outcomes.js";
import { type ItemSource, Job, type JobItem } from "./job.js";
import { batchWrite, startedRuns } from "./job-journal.js";
import { sourceOf } from "./job-parts.js";
import { batchFailure, failed } from "./outcomes.js";
import { StoredJobs } from "./stored-jobs.js";

/** Options of {@link JobRunner}. */
export interface JobRunnerOptions {
  readonly store: JobStore;
  readonly pool: InferencePool;
  readonly models: ModelCatalog;
  readonly batching: () => ResolvedBatchingOptions;
  readonly log: EngineLogger;
  readonly clock: () => number;
  /** Told about dispatches, model batches and item outcomes (metrics). */
  readonly observer?: EngineObserver | undefined;
  /** Told what each traced request's items go through. */
  readonly tracer?: EngineTracer | undefined;
  /** This node's name, kept with each stored batch it runs. @defaultValue none kept */
  readonly node?: string | undefined;
  /**
   * What becomes of a stored job whose write failed. Alone (false), it ends failed, and the
   * journal saves that once the store takes writes again. In a cluster (true), it is let go
   * ({@link JobRunner.release}): its items without a stored outcome run again on whichever node
   * takes the batch next, so an outage never fails work that could still run.
   */
  readonly releaseUnsaved?: boolean | undefined;
}

/** See the file comment. */
export class JobRunner {
  readonly batcher: DynamicBatcher<JobItem>;
  readonly #observer: EngineObserver | undefined;
  readonly #tracer: EngineTracer | undefined;
  readonly #node: string | null;
  readonly #observesDispatch: boolean;
  readonly #log: EngineLogger;
  readonly #clock: () => number;
  readonly #models: ModelCatalog;
  readonly #pool: InferencePool;
  readonly #stored: StoredJobs;
  readonly #outcomes: ItemOutcomes;
  /** Live infer jobs (never stored): failed on shutdown so no caller waits forever. */
  readonly #ephemeral = new Set<Job>();
  #arrivals = 0;
  /** Numbers arrivals across jobs (ties within a deadline go by it). */
  readonly #seq = () => this.#arrivals++;

  constructor(o: JobRunnerOptions) {
    this.#log = o.log;
    this.#clock = o.clock;
    this.#models = o.models;
    this.#pool = o.pool;
    this.#observer = o.observer;
    this.#tracer = o.tracer;
    this.#node = o.node ?? null;
    this.#observesDispatch = o.observer?.onDispatch !== undefined;
    this.batcher = new DynamicBatcher<JobItem>({
      pool: o.pool,
      options: o.batching,
      modelMaxBatchSize: (model) => o.models.get(model)?.maxBatchSize ?? 1,
      modelMaxWaitTimeMs: (model) => o.models.get(model)?.maxWaitTimeMs,
      modelPreferredBatchSizes: (model) => o.models.get(model)?.preferredBatchSizes,
      onDispatch: (items) => this.#onDispatch(items),
      onComplete: (items, outcome) => this.#onComplete(items, outcome),
      onExpired: (items) => this.#outcomes.fail(items, ITEM_FAILURES.deadline),
      clock: o.clock,
    });
    this.#stored = new StoredJobs({
      store: o.store,
      log: o.log,
      clock: o.clock,
      releaseUnsaved: o.releaseUnsaved === true,
      unqueue: (items) => this.batcher.remove(items),
      failItem: (item, f, now) => this.#outcomes.settle(item, failed(f), [], now, "failed"),
      onStoreError: () => this.#observer?.onStoreError?.(),
    });
    this.#outcomes = new ItemOutcomes({
      stored: this.#stored,
      log: o.log,
      clock: o.clock,
      observer: o.observer,
      unqueue: (items) => this.batcher.remove(items),
    });
  }

  /** Stored jobs that are queued or processing. */
  get activeStored(): number {
    return this.#stored.active;
  }

  /** The caller's live stored job with this id (an admin's: anyone's). */
  live(principal: Principal, batchId: string): Job | undefined {
    return this.#stored.find(principal, batchId);
  }

  /** The live stored job of `record`, if it is still running. */
  liveOf(record: Pick<BatchRecord, "owner" | "batchId">): Job | undefined {
    return this.#stored.of(record);
  }

  /** Live state of this process, for metrics and health. */
  stats(): ProcessorStats {
    const batcher = this.batcher;
    return {
      pending: batcher.pending,
      pendingByPriority: batcher.pendingByPriority(),
      pendingByModel: batcher.pendingByModel(),
      inFlightBatches: batcher.inFlight,
      activeBatches: this.activeStored,
      threads: this.#pool.allThreads ?? this.#pool.threads,
      busyThreads: batcher.busyThreads,
    };
  }

  /** The live status of a job, with its queue position and estimated completion. */
  view(job: Job): BatchView {
    return liveViewOf(job, this.batcher, this.#clock());
  }

  /** Expected time until `items` more items of `model` have run on this node, ms. */
  estimateMs(model: string, items: number): number | undefined {
    return this.batcher.estimateMs(model, items);
  }

  /**
   * Runs a synchronous request as a job that is never stored, and resolves with it once it has
   * ended (its outcomes in `results`); an aborted `signal` cancels it.
   */
  infer(owner: string, batchId: string, valid: ValidSubmit, signal?: AbortSignal): Promise<Job> {
    const job = Job.ephemeral(owner, batchId, valid, this.#clock(), this.#tracer?.current());
    const ended = job.ended();
    const onAbort = () => void this.cancel(job);
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#ephemeral.add(job);
    let queued: Promise<void> = ended;
    try {
      this.#enqueue(
        job,
        valid.items.map((item, index) => ({
          index,
          requestId: item.requestId,
          inputs: item.inputs,
        })),
      );
    } catch (error) {
      queued = Promise.reject(error);
    }
    // The wait holds the job alone (see `BatchProcessor.infer`).
    return this.#untilEnded(job, queued, signal, onAbort);
  }

  async #untilEnded(
    job: Job,
    ended: Promise<void>,
    signal: AbortSignal | undefined,
    onAbort: () => void,
  ): Promise<Job> {
    try {
      await ended;
    } finally {
      this.#ephemeral.delete(job);
      signal?.removeEventListener("abort", onAbort);
    }
    return job;
  }

  /** Stops deadline timers and fails infer jobs whose items are still queued (shutdown). */
  shutdown(): void {
    for (const job of this.#stored.values()) {
      job.disarm();
      job.notify();
    }
    for (const job of [...this.#ephemeral])
      if (job.queuedItems().length > 0) {
        const f = ITEM_FAILURES.shutdown;
        this.#outcomes.endJob(job, "failed", f, f, f);
      }
  }

  /**
   * Runs a stored batch that did not start in this process (left by a process that stopped, or
   * taken from a cluster) with the items that have no outcome, or fails them when its model is gone; a batch
   * whose every item already has an outcome ends at once. A batch live here already is that job.
   */
  adopt({ batch, pending }: UnfinishedBatch): Job {
    const live = this.#stored.of(batch);
    if (live !== undefined) return live;
    if (this.#models.get(batch.modelId)?.available === true && pending.length > 0)
      return this.start(batch, pending);
    const job = new Job({ ...batch, trace: this.#tracer?.current() });
    this.#stored.add(job);
    job.load(pending.map(sourceOf), this.#clock(), this.#seq);
    if (pending.length > 0) this.#outcomes.fail(job.items, ITEM_FAILURES.modelUnavailable);
    else this.#outcomes.commit([], new Set([job]));
    return job;
  }

  /** Starts a stored job (just created, or recovered) with the inputs that have no outcome. */
  start(record: BatchRecord, pending: readonly StoredInput[]): Job {
    const job = new Job({ ...record, trace: this.#tracer?.current() });
    this.#stored.add(job);
    this.#enqueue(job, pending.map(sourceOf));
    return job;
  }

  /**
   * Cancels a live job; outputs already produced are kept. Resolves once the cancel is saved
   * (true) or its write failed (false), so that a read after it shows the end.
   */
  cancel(job: Job): Promise<boolean> {
    return this.#outcomes.endJob(
      job,
      "cancelled",
      CANCELLED_BY_REQUEST,
      ITEM_FAILURES.cancelledQueued,
      ITEM_FAILURES.cancelledRunning,
    );
  }

  /**
   * Lets a live stored job go without an end (a cluster node lost its hold on the batch, or could
   * not save its progress): its queued items leave the batcher, outcomes of its running ones are
   * dropped, and its items without a stored outcome are for whoever runs the batch next.
   */
  release(job: Job): void {
    this.#stored.release(job);
  }

  /** Saves the failure of jobs whose writes failed; those saved are let go. */
  retryUnrecorded(): Promise<void> {
    return this.#stored.retryUnrecorded();
  }

  /** Queues a job's items and arms its deadline. */
  #enqueue(job: Job, inputs: readonly ItemSource[]): void {
    const model = this.#models.get(job.modelId);
    const padding = model === undefined ? undefined : paddingPlanOf(model);
    this.batcher.enqueue(job.load(inputs, this.#clock(), this.#seq, padding));
    job.armDeadline(
      () => this.#outcomes.fail(job.queuedItems(), ITEM_FAILURES.deadline, true),
      this.#clock(),
    );
  }

  #onDispatch(items: readonly JobItem[]): void {
    const now = this.#clock();
    for (const item of items) item.dispatchedAt = now;
    if (this.#observesDispatch) {
      const waits = items.map((item) => now - item.arrival);
      const priorities = items.map((item) => item.priority);
      this.#observer?.onDispatch?.((items[0] as JobItem).model, items.length, waits, priorities);
    }
    const batches: BatchWrite[] = [];
    let last: Job | undefined;
    for (const { job } of items) {
      if (job === last) continue;
      last = job;
      const moved = job.node !== this.#node;
      job.node = this.#node;
      // A batch another node ran before says this one runs it now.
      if (!job.begin(now) && !(moved && job.pk !== undefined)) continue;
      // A stored job's watchers hear of it once the store has it (see #takeIn).
      if (job.pk !== undefined) batches.push(batchWrite(job));
      else job.notify();
    }
    // What a thread now holds is saved before it runs, so that after a crash the store tells an
    // item that ran (its result lost) from one that never started.
    const runs = startedRuns(items);
    if (runs.length > 0)
      void this.#stored.save(new Set(items.map((i) => i.job)), [], batches, runs);
  }

  #onComplete(items: readonly JobItem[], outcome: BatchOutcome): void {
    const model = (items[0] as JobItem).model;
    this.#observer?.onBatchDone?.(
      model,
      items.length,
      outcome.ok ? outcome.result.inferenceMs : 0,
      outcome.ok,
    );
    const crashed = outcome.ok
      ? undefined
      : failed(batchFailure(outcome.error, model, items.length, this.#log));
    const settle = () => this.#outcomes.settleBatch(items, outcome, crashed);
    const traced = this.#tracer === undefined ? undefined : tracedBatch(items, outcome, crashed);
    if (traced === undefined) settle();
    else this.#tracer?.batch({ ...traced, endedAt: this.#clock() }, settle);
  }
}
