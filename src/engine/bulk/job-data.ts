/**
 * A job's persistence as the engine sees it (the port that `src/store/` implements): the job's
 * row, its lines in chunks written once at upload, and each chunk's outcomes written once, with
 * the job's counters, when the chunk has run. A chunk is the unit of recovery: after a crash, a
 * chunk without outcomes runs again whole, so every line ends with exactly one outcome.
 */
import type { Failure } from "../errors.js";
import type { Priority } from "../types.js";
import type { JobCallback, JobLine, JobRecord, JobStatus, LineOutcome } from "./job-types.js";

/** A job to create (status `validating`, no lines yet). */
export interface NewJob {
  readonly owner: string;
  readonly jobId: string;
  readonly modelId: string;
  readonly priority: Priority;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly callback: JobCallback | null;
  /** How long it is kept once it has ended, ms; null for the server's result TTL. */
  readonly keepMs: number | null;
}

/** A job's new state, and what to add to its counters. */
export interface JobWrite {
  readonly pk: number;
  readonly status: JobStatus;
  readonly error: Failure | null;
  readonly startedAt: number | null;
  readonly completedAt: number | null;
  readonly addCompleted: number;
  readonly addFailed: number;
}

/** A page of jobs, newest first. */
export interface JobListQuery {
  /** Only this owner's jobs; undefined for every owner (admin). */
  readonly owner?: string | undefined;
  readonly statuses?: readonly JobStatus[] | undefined;
  readonly limit: number;
  readonly cursor?: string | undefined;
}

/** The engine's persistence interface for jobs. */
export interface JobData {
  /**
   * Creates a job in `validating`; when `(owner, jobId)` exists already nothing is written and the
   * existing record comes back with `created: false`.
   */
  createJob(job: NewJob): Promise<{ created: boolean; record: JobRecord }>;
  /** Stores chunk `chunk` of a validating job (lines in input order). */
  addChunk(pk: number, chunk: number, lines: readonly JobLine[]): Promise<void>;
  /** Ends a job's upload: `validating` -> `queued`, with its line counts and digest. */
  sealJob(
    pk: number,
    sealed: { total: number; invalid: number; chunks: number; payloadHash: string },
  ): Promise<JobRecord>;
  /** Deletes a job and everything of it (an upload that did not finish). */
  dropJob(pk: number): Promise<void>;
  /** A job by id: the owner's own, or, with owner undefined, any owner's (oldest first). */
  findJob(owner: string | undefined, jobId: string): Promise<JobRecord | undefined>;
  getJob(pk: number): Promise<JobRecord | undefined>;
  listJobs(query: JobListQuery): Promise<{ jobs: JobRecord[]; nextCursor: string | undefined }>;
  /** The first line number of each chunk, in chunk order. */
  chunkStarts(pk: number): Promise<number[]>;
  /** The lines of one chunk. */
  chunkLines(pk: number, chunk: number): Promise<JobLine[]>;
  /** The outcomes of one chunk, in line order; undefined when it has not run. */
  chunkOutcomes(pk: number, chunk: number): Promise<LineOutcome[] | undefined>;
  /** Chunks without outcomes, in chunk order. */
  pendingChunks(pk: number): Promise<number[]>;
  /**
   * Writes a chunk's outcomes and the job's new state in one transaction; a chunk that has
   * outcomes already keeps them, and a job that has ended takes no more: then nothing is written
   * (resolves false).
   */
  saveChunk(
    pk: number,
    chunk: number,
    outcomes: readonly LineOutcome[],
    job: JobWrite,
  ): Promise<boolean>;
  /** Writes a job's new state, unless it has ended (a job never leaves an end). */
  saveJob(job: JobWrite): Promise<void>;
  /**
   * Ends a job that has not ended, in one transaction: its status, error and end time, and its
   * lines without an outcome counted failed, so its counts add up. Resolves with the ended
   * record, or undefined when it had ended already (another node, or a race, was first).
   */
  endJob(
    pk: number,
    end: {
      status: JobStatus;
      error: Failure | null;
      completedAt: number;
      startedAt: number | null;
    },
  ): Promise<JobRecord | undefined>;
  /** Jobs left queued or running, oldest first; jobs left validating are deleted. */
  loadUnfinishedJobs(): Promise<JobRecord[]>;
  /**
   * Deletes at most `limit` jobs (or slices of a large one) whose keeping time, their own or
   * `defaultKeepMs`, has passed at `now`, oldest first; returns how many deletions it made.
   */
  purgeJobs(now: number, defaultKeepMs: number, limit: number): Promise<number>;
}
