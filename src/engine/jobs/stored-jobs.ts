/**
 * The stored jobs live in this process and what their writes' answers do to them: a save takes in
 * the store's records (a job the store holds as ended, ended first by another node, ends here as
 * stored), an end is announced once saved, and a failed write either lets the jobs go (a cluster:
 * another node runs them) or ends them failed until the journal has saved that (one node).
 */
import type { Failure } from "../errors.js";
import type { BatchRecord, BatchWrite, ItemWrite, JobStore, StartedRun } from "../job-store.js";
import type { EngineLogger } from "../logger.js";
import type { Principal } from "../types.js";
import type { Job, JobItem } from "./job.js";
import { JobJournal } from "./job-journal.js";
import { isTerminal } from "./job-state.js";
import { LiveJobs } from "./live-jobs.js";

/** Options of {@link StoredJobs}. */
export interface StoredJobsOptions {
  readonly store: JobStore;
  readonly log: EngineLogger;
  readonly clock: () => number;
  /** See `JobRunnerOptions.releaseUnsaved`. */
  readonly releaseUnsaved: boolean;
  /** Takes items out of the batcher (a job that ends or is let go). */
  readonly unqueue: (items: readonly JobItem[]) => void;
  /** Fails an item that never got an outcome, as the runner settles items (metrics included). */
  readonly failItem: (item: JobItem, f: Failure, now: number) => void;
  /** Told of every write that failed (metrics). */
  readonly onStoreError?: (() => void) | undefined;
}

/** See the file comment. */
export class StoredJobs {
  readonly #o: StoredJobsOptions;
  readonly #live = new LiveJobs();
  readonly #journal: JobJournal;

  constructor(options: StoredJobsOptions) {
    this.#o = options;
    this.#journal = new JobJournal({
      store: options.store,
      log: options.log,
      onStoreError: options.onStoreError,
    });
  }

  /** Stored jobs that are queued or processing. */
  get active(): number {
    return this.#live.size - this.#journal.unsavedCount;
  }

  /** The caller's live stored job with this id (an admin's: anyone's). */
  find(principal: Principal, batchId: string): Job | undefined {
    return this.#live.find(principal, batchId);
  }

  /** The live stored job of `record`, if it is still running. */
  of(record: Pick<BatchRecord, "owner" | "batchId">): Job | undefined {
    return this.#live.of(record);
  }

  add(job: Job): void {
    this.#live.add(job);
  }

  values(): IterableIterator<Job> {
    return this.#live.values();
  }

  /**
   * Lets a live stored job go without an end (see `JobRunner.release`). A job that ended here but
   * whose end was not saved is let go too: the store holds it unended.
   */
  release(job: Job): void {
    if (job.released || job.pk === undefined) return;
    this.#o.unqueue(job.queuedItems());
    this.#live.delete(job);
    job.release();
  }

  /** Saves the failure of jobs whose writes failed; those saved are let go. */
  async retryUnrecorded(): Promise<void> {
    for (const job of await this.#journal.retry()) this.#live.delete(job);
  }

  /**
   * Saves in one transaction and takes in what the store answered for each job. A failed write
   * lets the stored jobs it concerned go, or fails them (see `JobRunnerOptions.releaseUnsaved`);
   * resolves false then.
   */
  save(
    jobs: Iterable<Job>,
    items: readonly ItemWrite[],
    batches: readonly BatchWrite[],
    started?: readonly StartedRun[],
  ): Promise<boolean> {
    return this.#journal.save(jobs, items, batches, started).then((saved) => {
      if ("records" in saved) {
        this.#takeIn(jobs, saved.records);
        return true;
      }
      for (const job of jobs) {
        if (job.pk === undefined) continue;
        if (this.#o.releaseUnsaved) this.release(job);
        else this.#endUnsaved(job, items, saved.failure);
      }
      if (!this.#o.releaseUnsaved) void this.retryUnrecorded();
      return false;
    });
  }

  /**
   * Announces the end of `ended` jobs: an infer job's at once, a stored job's once its end is in
   * the store (a failed write ends it failed instead, see `job-journal.ts`).
   */
  retireOnceSaved(ended: readonly Job[], saved: Promise<boolean>): void {
    if (ended.length === 0) return;
    for (const job of ended) if (job.pk === undefined) this.#retire(job);
    if (ended.some((job) => job.pk !== undefined))
      void saved.then((ok) => {
        if (ok) for (const job of ended) if (job.pk !== undefined) this.#retire(job);
      });
  }

  #retire(job: Job): void {
    if (job.pk !== undefined) this.#live.delete(job);
    this.#o.log.debug(
      { batchId: job.batchId, status: job.status, error: job.error },
      "batch ended",
    );
    job.notify();
  }

  /**
   * Gives each job what the store answered for it. A job the store holds as ended while it still
   * runs here (another node ended it first, or cancelled it) ends here as stored.
   */
  #takeIn(jobs: Iterable<Job>, records: readonly BatchRecord[]): void {
    if (records.length === 0) return;
    const byPk = new Map(records.map((r) => [r.pk, r]));
    for (const job of jobs) {
      const record = job.pk === undefined ? undefined : byPk.get(job.pk);
      if (record === undefined) continue;
      job.record(record);
      if (!job.active || !isTerminal(record.status)) {
        if (!job.terminal) job.notify();
        continue;
      }
      const now = this.#o.clock();
      this.#o.unqueue(job.queuedItems());
      for (const item of job.items) item.settled = true;
      if (record.status === "completed") job.begin(now);
      job.end(record.status as "completed" | "failed" | "cancelled", record.error, now);
      this.#retire(job);
    }
  }

  /**
   * Ends a stored job whose write failed (see `job-journal.ts`): failed with `f`, its unsettled
   * items and those whose outcome was in the lost write to be saved as `f`; kept readable until
   * the journal has saved that.
   */
  #endUnsaved(job: Job, lost: readonly ItemWrite[], f: Failure): void {
    const indices = lost.filter((w) => w.pk === job.pk).map((w) => w.index);
    if (!job.terminal) {
      this.#o.unqueue(job.queuedItems());
      const now = this.#o.clock();
      for (const item of job.items) {
        if (item.settled) continue;
        this.#o.failItem(item, f, now);
        indices.push(item.index);
      }
      job.end("failed", f, now);
    }
    job.markUnrecorded(f, indices);
    this.#journal.hold(job);
    this.#live.add(job);
    job.notify();
  }
}
