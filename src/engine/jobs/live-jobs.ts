/**
 * The stored jobs live in this process (queued, processing, or ended by a failed write whose end
 * is not saved yet), found by owner and id as every read path asks for them.
 */
import type { BatchRecord } from "../job-store.js";
import type { Principal } from "../types.js";
import type { Job } from "./job.js";

/** See the file comment. */
export class LiveJobs {
  /** By `${owner}\u0000${batchId}`. */
  readonly #jobs = new Map<string, Job>();

  get size(): number {
    return this.#jobs.size;
  }

  add(job: Job): void {
    this.#jobs.set(key(job), job);
  }

  /**
   * Lets `job` go; a newer job of the same batch (taken again after this one was let go) stays.
   */
  delete(job: Job): void {
    const k = key(job);
    if (this.#jobs.get(k) === job) this.#jobs.delete(k);
  }

  /** The live job of `record`, if it is live. */
  of(record: Pick<BatchRecord, "owner" | "batchId">): Job | undefined {
    return this.#jobs.get(key(record));
  }

  /** The caller's live job with this id (an admin's: anyone's). */
  find(principal: Principal, batchId: string): Job | undefined {
    const own = this.#jobs.get(key({ owner: principal.owner, batchId }));
    if (own !== undefined || !principal.admin) return own;
    for (const job of this.#jobs.values()) if (job.batchId === batchId) return job;
    return undefined;
  }

  values(): IterableIterator<Job> {
    return this.#jobs.values();
  }
}

function key(job: { readonly owner: string; readonly batchId: string }): string {
  return `${job.owner}\u0000${job.batchId}`;
}
