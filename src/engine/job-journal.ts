/**
 * What the job runner writes to the store, and what becomes of the jobs a write fails for.
 *
 * A write that fails (disk full, I/O error, constraint) leaves the store without what the jobs it
 * concerned did, so each of them ends `failed` with an INTERNAL failure whose `error_id` is in
 * the log, whatever it reached in memory: its unsettled items, and the items whose outcome was in
 * the lost write, get that failure. The end is saved at once and, while the store still fails, on
 * every {@link JobJournal.retry}; until then the runner keeps the job so every read shows it
 * failed. A process that stops before it is saved leaves the batch unfinished in the store, and
 * the next start runs its unfinished items again: nothing acknowledged is lost.
 */
import { randomUUID } from "node:crypto";
import { type Failure, failure } from "./errors.js";
import type { Job, JobItem } from "./job.js";
import type { BatchWrite, ItemWrite, JobStore, StartedRun } from "./job-store.js";
import type { EngineLogger } from "./logger.js";

/** Options of {@link JobJournal}. */
export interface JobJournalOptions {
  readonly store: JobStore;
  readonly log: EngineLogger;
  /** Told of every write that failed (metrics). */
  readonly onStoreError: () => void;
  /**
   * Ends a live job with `f` because its write failed (no-op for one already ended); returns the
   * indices of the items it settled with `f`.
   */
  readonly endWith: (job: Job, f: Failure) => Iterable<number>;
  /** Keeps a job readable while its failure is unsaved (`true`), lets it go once saved. */
  readonly hold: (job: Job, held: boolean) => void;
}

const SAVED = Promise.resolve(true);

/** See the file comment. */
export class JobJournal {
  readonly #o: JobJournalOptions;
  /** Jobs whose failure is still to be saved. */
  readonly #unsaved = new Set<Job>();

  constructor(options: JobJournalOptions) {
    this.#o = options;
  }

  /** Jobs ended by a failed write whose failure is not saved yet. */
  get unsavedCount(): number {
    return this.#unsaved.size;
  }

  /** Saves the writes of `jobs` in one transaction; resolves false (never rejects) if it failed. */
  save(
    jobs: Iterable<Job>,
    items: readonly ItemWrite[],
    batches: readonly BatchWrite[],
    started: readonly StartedRun[] = [],
  ): Promise<boolean> {
    if (items.length === 0 && batches.length === 0 && started.length === 0) return SAVED;
    return this.#o.store.save(items, batches, started).then(
      () => true,
      (error: unknown) => {
        this.#failed(error, [...jobs], items);
        return false;
      },
    );
  }

  /** Saves the failure of jobs whose writes failed; those saved are let go. */
  async retry(): Promise<void> {
    for (const job of [...this.#unsaved]) {
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
        await this.#o.store.save(items, [{ ...batchWrite(job), status: "failed", error: f }]);
      } catch {
        continue; // still failing: the next retry tries again
      }
      this.#unsaved.delete(job);
      this.#o.hold(job, false);
    }
  }

  #failed(error: unknown, jobs: readonly Job[], lost: readonly ItemWrite[]): void {
    const stored = jobs.filter((job) => job.pk !== undefined);
    if (stored.length === 0) return;
    const errorId = randomUUID();
    this.#o.log.error(
      { err: error, errorId, batchIds: stored.map((job) => job.batchId) },
      "saving batch progress failed; the batches it concerned fail",
    );
    this.#o.onStoreError();
    const f = failure("INTERNAL", `saving the batch's progress failed (error_id ${errorId})`);
    for (const job of stored) {
      const indices = new Set(lost.filter((w) => w.pk === job.pk).map((w) => w.index));
      for (const index of this.#o.endWith(job, f)) indices.add(index);
      clearTimeout(job.deadlineTimer);
      job.unrecorded ??= { failure: f, indices: new Set() };
      for (const index of indices) job.unrecorded.indices.add(index);
      job.items = [];
      this.#unsaved.add(job);
      this.#o.hold(job, true);
      job.notify();
    }
    void this.retry();
  }
}

/**
 * The index runs of stored jobs in a model batch handed to a thread: consecutive items of one job
 * form one run (a job's items leave the queue in index order, so a batch holds few runs).
 */
export function startedRuns(items: readonly JobItem[]): StartedRun[] {
  const runs: StartedRun[] = [];
  let run: { pk: number; lo: number; hi: number } | undefined;
  for (const { job, index } of items) {
    if (job.pk === undefined) continue;
    if (run !== undefined && run.pk === job.pk && index === run.hi + 1) {
      run.hi = index;
      continue;
    }
    if (run !== undefined) runs.push(run);
    run = { pk: job.pk, lo: index, hi: index };
  }
  if (run !== undefined) runs.push(run);
  return runs;
}

/** A stored job's state as the store records it. */
export function batchWrite(job: Job): BatchWrite {
  return {
    pk: job.pk as number,
    status: job.status,
    error: job.error,
    startedAt: job.startedAt,
    completedAt: job.completedAt,
  };
}
