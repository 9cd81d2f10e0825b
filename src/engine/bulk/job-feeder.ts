/**
 * Runs stored jobs: pulls each job's chunks into the batcher a few at a time as earlier ones end
 * (so a job never meets the queue limit and memory does not grow with it), turns each chunk's
 * item outcomes into line outcomes written once with the job's counters, and ends the job:
 * completed once every chunk has run, cancelled on request, expired when its completion window
 * ends, failed when its model is gone or a write fails. Chunks run as synchronous requests of the
 * job runner (never stored as batches), with the job's class and the window's end as deadline.
 */
import type { Failure } from "../errors.js";
import type { ModelCatalog } from "../inference-pool.js";
import type { EngineLogger } from "../logger.js";
import type { EngineObserver } from "../observer.js";
import type { ItemResult, Priority } from "../types.js";
import { type ChunkRunner, chunkOutcomes, runChunk } from "./chunk-run.js";
import type { JobData, JobWrite } from "./job-data.js";
import type { JobExecution } from "./job-execution.js";
import { JOB_FAILURES, withUnrun } from "./job-failures.js";
import { JobRate } from "./job-rate.js";
import { CHUNK_LINES } from "./job-spec.js";
import {
  isJobEnded,
  type JobCallback,
  type JobLine,
  type JobRecord,
  type JobStatus,
  type JobView,
} from "./job-types.js";

/** Options of {@link JobFeeder}. */
export interface JobFeederOptions {
  readonly data: JobData;
  readonly runner: ChunkRunner;
  readonly models: ModelCatalog;
  /**
   * The inference threads a model's batches run on (its own, or the shared set's); with the batch
   * size it sets how many chunks a job keeps queued.
   */
  readonly threads: (model: string) => number;
  /** The largest batch a model runs now (the configured size within the model's own limit). */
  readonly batchSize: (model: string) => number;
  readonly clock: () => number;
  readonly log: EngineLogger;
  readonly observer?: EngineObserver | undefined;
  /** Told once about each job that ended here, with its final view (callbacks). */
  readonly onEnded?: ((view: JobView, callback: JobCallback | null) => void) | undefined;
}

/** A job that runs in this process. */
class RunningJob {
  readonly pk: number;
  readonly owner: string;
  readonly jobId: string;
  readonly modelId: string;
  readonly priority: Priority;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly total: number;
  readonly invalid: number;
  readonly callback: JobCallback | null;
  status: JobStatus;
  error: Failure | null = null;
  startedAt: number | null;
  completedAt: number | null = null;
  completed: number;
  failed: number;
  /** Chunks still to run, in order. */
  readonly todo: number[];
  /** Chunks in the batcher, with the controller that stops each. */
  readonly running = new Map<number, AbortController>();
  /** Set once the job is to end: how, and the outcome of its lines that will not run. */
  ending: { status: "cancelled" | "expired" | "failed"; error: Failure; line: Failure } | null =
    null;
  readonly rate = new JobRate();
  expiry: NodeJS.Timeout | undefined;
  #listeners: (() => void)[] = [];

  constructor(record: JobRecord, todo: number[]) {
    this.pk = record.pk;
    this.owner = record.owner;
    this.jobId = record.jobId;
    this.modelId = record.modelId;
    this.priority = record.priority;
    this.createdAt = record.createdAt;
    this.expiresAt = record.expiresAt;
    this.total = record.counts.total;
    this.invalid = record.counts.invalid;
    this.callback = record.callback;
    this.status = record.status;
    this.startedAt = record.startedAt;
    this.completed = record.counts.completed;
    this.failed = record.counts.failed;
    this.todo = todo;
  }

  get finished(): number {
    return this.completed + this.failed + this.invalid;
  }

  write(addCompleted: number, addFailed: number): JobWrite {
    return {
      pk: this.pk,
      status: this.status,
      error: this.error,
      startedAt: this.startedAt,
      completedAt: this.completedAt,
      addCompleted,
      addFailed,
    };
  }

  view(now: number): JobView {
    const ended = isJobEnded(this.status);
    return {
      jobId: this.jobId,
      status: this.status,
      modelId: this.modelId,
      priority: this.priority,
      createdAt: this.createdAt,
      startedAt: this.startedAt,
      completedAt: this.completedAt,
      expiresAt: this.expiresAt,
      counts: {
        total: this.total,
        completed: this.completed,
        failed: this.failed,
        invalid: this.invalid,
      },
      progress: this.total === 0 ? 1 : this.finished / this.total,
      itemsPerSecond: ended ? 0 : this.rate.perSecond(now),
      estimatedCompletionTime: ended
        ? this.completedAt
        : this.rate.eta(now, this.total - this.finished),
      error: this.error,
    };
  }

  subscribe(listener: () => void): () => void {
    this.#listeners = [...this.#listeners, listener];
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  notify(): void {
    for (const listener of this.#listeners) listener();
  }
}

/** See the file comment. */
export class JobFeeder implements JobExecution {
  readonly #o: JobFeederOptions;
  readonly #jobs = new Map<number, RunningJob>();
  #closing = false;

  constructor(options: JobFeederOptions) {
    this.#o = options;
  }

  /** Jobs running in this process. */
  get running(): number {
    return this.#jobs.size;
  }

  /** The live view of a job running here, or undefined. */
  view(pk: number): JobView | undefined {
    return this.#jobs.get(pk)?.view(this.#o.clock());
  }

  /** Calls `listener` on every change of a job running here; undefined when it is not. */
  subscribe(pk: number, listener: () => void): (() => void) | undefined {
    return this.#jobs.get(pk)?.subscribe(listener);
  }

  /** Starts a stored job (just uploaded, or left queued or running by a process that stopped). */
  async run(record: JobRecord): Promise<void> {
    if (this.#closing || this.#jobs.has(record.pk) || isJobEnded(record.status)) return;
    const todo = await this.#o.data.pendingChunks(record.pk);
    if (this.#jobs.has(record.pk)) return;
    const job = new RunningJob(record, todo);
    this.#jobs.set(job.pk, job);
    job.rate.note(this.#o.clock(), job.finished);
    const untilExpiry = job.expiresAt - this.#o.clock();
    if (untilExpiry <= 0) this.#end(job, "expired");
    else {
      job.expiry = setTimeout(() => this.#end(job, "expired"), untilExpiry);
      job.expiry.unref?.();
    }
    this.#feed(job);
  }

  /** Runs the jobs a process that stopped left queued or running. */
  async recover(): Promise<void> {
    for (const record of await this.#o.data.loadUnfinishedJobs()) await this.run(record);
  }

  /** Cancels a job running here; resolves with its final view, or undefined when it is not here. */
  async cancel(pk: number): Promise<JobView | undefined> {
    const job = this.#jobs.get(pk);
    if (job === undefined) return undefined;
    const ended = new Promise<void>((resolve) => {
      const unsubscribe = job.subscribe(() => {
        if (!isJobEnded(job.status)) return;
        unsubscribe();
        resolve();
      });
    });
    this.#end(job, "cancelled");
    await ended;
    return job.view(this.#o.clock());
  }

  /**
   * Stops feeding: chunks in the batcher are let go without their outcomes (they run again after
   * the next start), and no job changes state.
   */
  async close(): Promise<void> {
    this.#closing = true;
    for (const job of this.#jobs.values()) clearTimeout(job.expiry);
  }

  /** Chunks a job keeps in the batcher: enough that its threads never wait for the next one. */
  #depth(job: RunningJob): number {
    const batch = this.#o.batchSize(job.modelId);
    return Math.max(2, 1 + Math.ceil((2 * this.#o.threads(job.modelId) * batch) / CHUNK_LINES));
  }

  #feed(job: RunningJob): void {
    if (this.#closing) return;
    if (job.ending !== null) {
      if (job.running.size === 0) void this.#finish(job);
      return;
    }
    if (job.status === "queued" && job.todo.length > 0) this.#start(job);
    const depth = this.#depth(job);
    while (job.running.size < depth && job.todo.length > 0) {
      const chunk = job.todo.shift() as number;
      const stop = new AbortController();
      job.running.set(chunk, stop);
      void this.#runChunk(job, chunk, stop.signal).finally(() => {
        job.running.delete(chunk);
        this.#feed(job);
      });
    }
    if (job.running.size === 0 && job.todo.length === 0) void this.#finish(job);
  }

  async #runChunk(job: RunningJob, chunk: number, signal: AbortSignal): Promise<void> {
    const { data, log } = this.#o;
    try {
      const lines = await data.chunkLines(job.pk, chunk);
      if (this.#closing) return;
      const model = this.#o.models.get(job.modelId);
      if (model?.available !== true) {
        this.#end(job, "failed", JOB_FAILURES.modelGone);
        return;
      }
      const now = this.#o.clock();
      const results = await runChunk(this.#o.runner, job, chunk, lines, model, now, signal);
      // Shut down with the chunk in the batcher: it runs again after the next start.
      if (this.#closing) return;
      await this.#record(job, chunk, lines, results);
    } catch (error) {
      if (this.#closing) return;
      log.error({ err: error, jobId: job.jobId, chunk }, "a job's chunk could not be recorded");
      this.#o.observer?.onStoreError?.();
      this.#end(job, "failed", JOB_FAILURES.storeFailed);
    }
  }

  /** queued -> running, as its first chunks go into the batcher. */
  #start(job: RunningJob): void {
    job.status = "running";
    job.startedAt = this.#o.clock();
    job.notify();
    this.#o.data.saveJob(job.write(0, 0)).catch((error: unknown) => {
      this.#o.log.error({ err: error, jobId: job.jobId }, "a job's start could not be saved");
      this.#o.observer?.onStoreError?.();
      this.#end(job, "failed", JOB_FAILURES.storeFailed);
    });
  }

  /** Writes a chunk's line outcomes and the job's counters in one transaction. */
  async #record(
    job: RunningJob,
    chunk: number,
    lines: readonly JobLine[],
    results: readonly (ItemResult | undefined)[],
  ): Promise<void> {
    const { outcomes, completed, failed } = chunkOutcomes(
      lines,
      results,
      job.ending?.line ?? JOB_FAILURES.failedLine,
    );
    const saved = await this.#o.data.saveChunk(
      job.pk,
      chunk,
      outcomes,
      job.write(completed, failed),
    );
    if (!saved) return;
    job.completed += completed;
    job.failed += failed;
    if (completed > 0) this.#o.observer?.onJobLines?.(job.modelId, "completed", completed);
    if (failed > 0) this.#o.observer?.onJobLines?.(job.modelId, "failed", failed);
    job.rate.note(this.#o.clock(), job.finished);
    job.notify();
  }

  /** Marks a job to end; it ends once its chunks in the batcher have come back. */
  #end(job: RunningJob, status: "cancelled" | "expired" | "failed", reason?: Failure): void {
    if (job.ending !== null || isJobEnded(job.status)) return;
    clearTimeout(job.expiry);
    job.ending =
      status === "cancelled"
        ? { status, error: JOB_FAILURES.cancelled, line: JOB_FAILURES.cancelledLine }
        : status === "expired"
          ? { status, error: JOB_FAILURES.expired, line: JOB_FAILURES.expiredLine }
          : { status, error: reason ?? JOB_FAILURES.storeFailed, line: JOB_FAILURES.failedLine };
    for (const stop of job.running.values()) stop.abort();
    this.#feed(job);
  }

  /** Ends a job whose chunks have all come back: completed, or as {@link #end} said. */
  async #finish(job: RunningJob): Promise<void> {
    if (isJobEnded(job.status) || this.#closing) return;
    const now = this.#o.clock();
    const ending = job.ending;
    // Lines without an outcome end as the job did; their outcomes are written by no one, and
    // every read of them says so (see the results reader). The store counts them.
    const unrun = job.total - job.finished;
    job.status = ending?.status ?? "completed";
    job.completedAt = now;
    if (ending !== null) job.error = withUnrun(ending.error, unrun, job.total);
    if (job.startedAt === null && ending === null) job.startedAt = now;
    try {
      const ended = await this.#o.data.endJob(job.pk, {
        status: job.status,
        error: job.error,
        completedAt: now,
        startedAt: job.startedAt,
      });
      if (ended !== undefined) {
        job.completed = ended.counts.completed;
        job.failed = ended.counts.failed;
      } else job.failed += unrun;
    } catch (error) {
      this.#o.log.error({ err: error, jobId: job.jobId }, "a job's end could not be saved");
      this.#o.observer?.onStoreError?.();
      job.failed += unrun;
    }
    if (unrun > 0) this.#o.observer?.onJobLines?.(job.modelId, "failed", unrun);
    this.#jobs.delete(job.pk);
    this.#o.log.info(
      { jobId: job.jobId, status: job.status, completed: job.completed, failed: job.failed },
      "job ended",
    );
    const view = job.view(now);
    job.notify();
    this.#o.onEnded?.(view, job.callback);
  }
}
