/**
 * Where a job's chunks run: on this node alone ({@link JobFeeder}), or on whichever node of a
 * cluster takes each ({@link ClusterJobFeeder}). `Jobs` calls one of them and no other.
 */
import type { JobRecord, JobView } from "./job-types.js";

/** See the file comment. */
export interface JobExecution {
  /** Jobs running in this process (a cluster node: chunks it runs). */
  readonly running: number;
  /** Starts a job just stored (sealed). */
  run(record: JobRecord): Promise<void>;
  /** Picks up what a process that stopped left. */
  recover(): Promise<void>;
  /** Cancels a job; resolves with its final view, or undefined when it had ended already. */
  cancel(pk: number): Promise<JobView | undefined>;
  /** A job's live view from here, when this node has a fresher one than the store. */
  view(pk: number): JobView | undefined;
  /** Calls `listener` on every change this node sees; undefined when it sees none (poll). */
  subscribe(pk: number, listener: () => void): (() => void) | undefined;
  /** Stops running chunks; what is unfinished runs again after the next start (or elsewhere). */
  close(): Promise<void>;
}
