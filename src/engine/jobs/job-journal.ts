/**
 * What the job runner writes to the store, and the jobs whose writes failed until their failure
 * is saved.
 *
 * A write that fails (disk full, I/O error, constraint) leaves the store without what the jobs it
 * concerned did, so the runner ends each of them `failed` with the INTERNAL failure this journal
 * answers (its `error_id` is in the log), whatever it reached in memory, and hands it back here
 * with {@link JobJournal.hold}. Its end is saved on every {@link JobJournal.retry} until the store
 * takes it. A process that stops before then leaves the batch unfinished in the store, and the
 * next start runs its unfinished items again: nothing acknowledged is lost.
 */
import { randomUUID } from "node:crypto";
import { type Failure, failure } from "../errors.js";
import type { BatchRecord, BatchWrite, ItemWrite, JobStore, StartedRun } from "../job-store.js";
import type { EngineLogger } from "../logger.js";
import type { Job, JobItem } from "./job.js";

/** Options of {@link JobJournal}. */
export interface JobJournalOptions {
  readonly store: JobStore;
  readonly log: EngineLogger;
  /** Told of every write that failed (metrics). */
  readonly onStoreError?: (() => void) | undefined;
}

/**
 * How a save went: the records of the batches it wrote a state for, as the store answered them,
 * or the failure the stored jobs it concerned end with.
 */
export type SaveResult =
  | { readonly records: readonly BatchRecord[] }
  | { readonly failure: Failure; readonly error: unknown };

const NOTHING: Promise<SaveResult> = Promise.resolve({ records: [] });

/** See the file comment. */
export class JobJournal {
  readonly #o: JobJournalOptions;
  /** Jobs whose failure is still to be saved. */
  readonly #unsaved = new Set<Job>();
  /** Set from a failed write until one succeeds: one outage is one error in the log. */
  #failing = false;

  constructor(options: JobJournalOptions) {
    this.#o = options;
  }

  /** Jobs held by {@link hold} whose failure is not saved yet. */
  get unsavedCount(): number {
    return this.#unsaved.size;
  }

  /**
   * Saves the writes of `jobs` in one transaction; never rejects. The first write that fails is
   * logged as an error with an `error_id`, the ones after it until a write succeeds at debug (an
   * outage is one event), and the next success says the store takes writes again.
   */
  save(
    jobs: Iterable<Job>,
    items: readonly ItemWrite[],
    batches: readonly BatchWrite[],
    started: readonly StartedRun[] = [],
  ): Promise<SaveResult> {
    if (items.length === 0 && batches.length === 0 && started.length === 0) return NOTHING;
    return this.#o.store.save(items, batches, started).then(
      (records) => {
        if (this.#failing) {
          this.#failing = false;
          this.#o.log.info({}, "the store takes writes again");
        }
        return { records };
      },
      (error: unknown) => {
        const errorId = randomUUID();
        const batchIds = [...jobs].filter((j) => j.pk !== undefined).map((j) => j.batchId);
        const fields = { err: error, errorId, batchIds };
        if (this.#failing) this.#o.log.debug(fields, "saving batch progress failed again");
        else this.#o.log.error(fields, "saving batch progress failed");
        this.#failing = true;
        this.#o.onStoreError?.();
        return {
          failure: failure("INTERNAL", `saving the batch's progress failed (error_id ${errorId})`),
          error,
        };
      },
    );
  }

  /** Keeps a job that a failed write ended (see {@link Job.unrecorded}) until its end is saved. */
  hold(job: Job): void {
    this.#unsaved.add(job);
  }

  /** Saves the failure of the held jobs; resolves those whose failure is now saved. */
  async retry(): Promise<Job[]> {
    const saved: Job[] = [];
    for (const job of [...this.#unsaved]) {
      const unrecorded = job.unrecorded;
      if (unrecorded === null || job.pk === undefined) continue;
      const { failure: f, indices } = unrecorded;
      const items: ItemWrite[] = [...indices].map((index) => ({
        pk: job.pk as number,
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
      saved.push(job);
    }
    return saved;
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
    node: job.node,
  };
}
